"""Assembling the webhook from the configuration and serving it over HTTPS with uvicorn.

:func:`build_webhook` wires cache, backend client, decision recorder, admitter and ASGI app;
:func:`serve` runs it on a socket with the hot-reloading TLS context of :mod:`.tls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

import httpx
import uvicorn

from ..config import ZastavaConfig
from ..registry.posture.verifier import ImageVerifier
from ..telemetry import ZastavaMetrics, fields
from .admitter import Admitter
from .app import WebhookApp
from .policy_client import BackendClient, DecisionRecorder, HeadersProvider
from .resolve import TagResolver
from .tls import CertReloader

__all__ = [
    "ConfigurationError",
    "WebhookComponents",
    "WebhookServer",
    "bind_socket",
    "build_configured_webhook",
    "build_webhook",
    "parse_listen",
    "serve",
]

log = logging.getLogger("zastava.webhook")


@dataclass
class WebhookComponents:
    config: ZastavaConfig
    admitter: Admitter
    app: WebhookApp
    backend: BackendClient | None
    recorder: DecisionRecorder | None
    metrics: ZastavaMetrics
    started: bool = False
    stopping: bool = False
    background: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close_clients(self) -> None:
        """Close the backend client, then the ``closers`` (registry client, token provider, HTTP pools)."""
        if self.backend is not None:
            await self.backend.aclose()
        for close in self.closers:
            try:
                await close()
            except Exception:
                log.exception("closing a webhook dependency failed")


def build_webhook(
    config: ZastavaConfig,
    *,
    metrics: ZastavaMetrics | None = None,
    resolver: TagResolver | None = None,
    headers_provider: HeadersProvider | None = None,
    backend_verify: object = True,
    http_client: httpx.AsyncClient | None = None,
    response_observer: Callable[[httpx.Response], bool] | None = None,
    use_backend: bool = True,
    closers: list[Callable[[], Awaitable[None]]] | None = None,
    verifier: ImageVerifier | None = None,
) -> WebhookComponents:
    """Everything but the listening socket. ``use_backend=False`` leaves images unverifiable (offline).

    ``http_client`` + ``headers_provider`` are :func:`zastava.auth.backend_auth`'s (client certificate and
    OpTok/DPoP headers), ``response_observer`` its provider's ``observe_response`` (DPoP nonces, refused
    tokens: one retry); ``closers`` run at shutdown after the backend client (registry client, token provider
    and their HTTP pools).
    """
    metrics = metrics or ZastavaMetrics(common_tags=config.runtime.metrics.common_tags)
    backend = None
    recorder = None
    if use_backend and config.backend.base_address:  # empty baseAddress: no backend at all
        backend = BackendClient(
            config.backend.base_address,
            policy_path=config.backend.policy_path,
            decisions_path=config.webhook.decisions_path,
            timeout=config.backend.request_timeout_seconds,
            headers_provider=headers_provider,
            verify=backend_verify,
            metrics=metrics,
            http_client=http_client,
            response_observer=response_observer,
        )
        if config.webhook.post_decisions:
            recorder = DecisionRecorder(
                backend,
                max_queue=config.webhook.decision_queue,
                batch_max=config.webhook.decision_batch_max,
                linger_seconds=config.webhook.decision_linger_seconds,
                spool_dir=config.webhook.decision_spool_dir,
                spool_max_bytes=config.webhook.decision_spool_max_bytes,
            )
    if config.admission.resolve_tags and resolver is None and verifier is None:
        log.warning(
            "admission.resolveTags is set but no tag resolver is wired; "
            "tag-only images go to the backend as tags",
            extra=fields(event="webhook.resolver.missing"),
        )
    admitter = Admitter(
        config,
        policy=backend.policy if backend is not None else None,
        resolver=resolver,
        metrics=metrics,
        record=recorder.submit if recorder is not None else None,
        record_lines=recorder.submit_lines if recorder is not None else None,
        verifier=verifier,
    )
    components: WebhookComponents

    async def startup() -> None:
        if recorder is not None:
            recorder.start()
        components.started = True

    async def shutdown() -> None:
        components.stopping = True
        for task in components.background:
            task.cancel()
        if recorder is not None:
            await recorder.flush(2.0)
            await recorder.stop()
        await admitter.cache.close()
        if verifier is not None:
            await verifier.close()
        await components.close_clients()

    app = WebhookApp(
        admitter,
        metrics=metrics,
        max_body_bytes=config.webhook.max_body_bytes,
        ready=lambda: components.started and not components.stopping,
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    components = WebhookComponents(
        config, admitter, app, backend, recorder, metrics, closers=list(closers or ())
    )
    return components


class ConfigurationError(ValueError):
    """A dependency cannot be built from the configuration; the message names the section."""


def build_configured_webhook(
    config: ZastavaConfig, *, use_backend: bool = True, metrics: ZastavaMetrics | None = None
) -> WebhookComponents:
    """The webhook with its real dependencies, as ``zastava webhook serve`` runs it: ``zastava.registry``'s
    client as the tag resolver (only when ``admission.resolveTags`` and not offline; section
    ``zastava.registry``) and
    :func:`zastava.auth.backend_auth`'s HTTP client (client certificate the OpTok is bound to) and
    OpTok/DPoP headers for every backend call. Both are closed at shutdown (``close_clients``)."""
    from ..auth import backend_auth
    from ..registry.errors import TrustConfigError
    from ..registry.settings import image_verifier
    from .resolve import RegistryTagResolver

    closers: list[Callable[[], Awaitable[None]]] = []
    resolver = None
    verifier = None
    # offline (review --no-backend): no registry either
    if use_backend and (config.admission.resolve_tags or config.admission.trust_policies):
        try:
            resolver = RegistryTagResolver.from_config(config)
        except (ValueError, OSError) as exc:
            raise ConfigurationError(f"zastava.registry: {exc}") from None
        closers.append(resolver.aclose)
    if use_backend and config.admission.trust_policies:  # verify locally, sharing the registry client
        assert resolver is not None
        try:
            verifier = image_verifier(config, resolver.client)
        except TrustConfigError as exc:
            raise ConfigurationError(f"{exc.path or 'zastava.admission.trustPolicies'}: {exc}") from None
    auth = None
    if use_backend and config.backend.base_address:
        try:
            auth = backend_auth(config, component="webhook")
        except Exception as exc:  # ValueError (mTLS without a certificate), OSError, AuthorityError (secret)
            raise ConfigurationError(f"zastava.runtime.authority: {exc}") from None
        closers.append(auth.aclose)
    return build_webhook(
        config,
        metrics=metrics,
        resolver=resolver,
        headers_provider=auth.headers_provider if auth is not None else None,
        http_client=auth.http_client if auth is not None else None,
        response_observer=auth.provider.observe_response if auth and auth.provider else None,
        use_backend=use_backend,
        closers=closers,
        verifier=verifier,
    )


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """``reuse_port``: ``SO_REUSEPORT`` — worker processes (:mod:`.workers`) each bind their own socket to
    the address and the kernel spreads new connections over the listening ones by their addresses (one
    shared socket would wake every worker for each connection and leave it to whichever accepts first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it Nagle + delayed ACK add ~40 ms to every TLS response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn, but SIGTERM/SIGINT end the server with exit status 0 (uvicorn re-raises the signal)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


class WebhookServer:
    """Serves :class:`WebhookComponents` over HTTPS until SIGINT/SIGTERM or :meth:`request_exit`."""

    def __init__(
        self,
        components: WebhookComponents,
        *,
        cert_path: str,
        key_path: str,
        sock: socket.socket | None = None,
        http: str = "auto",
    ) -> None:
        config = components.config
        self.components = components
        self.reloader = CertReloader(
            cert_path, key_path, interval=config.webhook.cert_reload_interval_seconds
        )
        self.sock = sock or bind_socket(*parse_listen(config.webhook.listen))
        self.port: int = self.sock.getsockname()[1]
        uv_config = uvicorn.Config(
            components.app,
            lifespan="on",
            http=http,
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=30,
            limit_concurrency=2048,
            timeout_graceful_shutdown=5,
        )
        uv_config.load()
        uv_config.ssl = self.reloader.context  # every handshake picks reloader.current (sni_callback)
        self.server = _Uvicorn(uv_config)

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    def request_exit(self) -> None:
        self.server.should_exit = True

    async def serve(self) -> None:
        components = self.components
        components.background.append(asyncio.get_running_loop().create_task(self.reloader.watch()))
        log.info(
            "webhook serving",
            extra=fields(
                port=self.port,
                cert=str(self.reloader.cert_path),
                fingerprint=self.reloader.fingerprint,
                enforce=components.config.admission.enforce,
            ),
        )
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            for task in components.background:
                task.cancel()
            self.sock.close()


async def serve(
    components: WebhookComponents, *, cert_path: str, key_path: str, sock: socket.socket | None = None
) -> None:
    """Serve HTTPS until SIGINT/SIGTERM; the certificate reloads when its files change."""
    await WebhookServer(components, cert_path=cert_path, key_path=key_path, sock=sock).serve()
