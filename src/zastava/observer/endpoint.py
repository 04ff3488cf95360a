"""The observer's HTTP endpoint (``zastava.observer.listen``, default ``0.0.0.0:9090``): ``GET /metrics``
(Prometheus text: the §8 observer metrics, buffer depth/drops, publish failures, engine health),
``/healthz`` and ``/readyz``. Plain HTTP, read-only: nothing it serves changes the observer.

Readiness means the observer can do its job on this node now:

- ``engine``: the container engine answers one round trip (Docker ``/_ping``, CRI ``Version``, the log
  directory for the log tail), within ``observer.engines.connectTimeoutSeconds``; an engine running on its
  reduced-fidelity fallback (spec §12) is *not* ready;
- ``buffer``: the disk buffer directory is writable, has free space, and the last write to it succeeded;
- ``agent``: the observation loop is running.

``observer run`` serves the endpoint before it opens the engine: while it is still choosing one, ``/readyz``
says so (503) and ``/metrics`` answers.

A backend that does not answer does not make the observer unready: events are buffered (spec §12), and the
buffer depth and publish failures say so on ``/metrics``. Served by uvicorn on the agent's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from ..telemetry.logging import fields
from .engines.base import EngineUnavailable

if TYPE_CHECKING:
    from ..telemetry.metrics import ZastavaMetrics
    from .engines.base import ContainerEngine
    from .publisher import EventPublisher

__all__ = ["ObserverEndpoint", "Readiness", "bind", "probe_engine"]

log = logging.getLogger("zastava.observer.endpoint")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The buffer is unready below this much free space: a few batches of events (500 × ~2 KiB).
MIN_FREE_BYTES = 4 * 1024 * 1024
_METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


async def probe_engine(engine: ContainerEngine, timeout: float) -> str | None:  # noqa: ASYNC109
    """None when the engine answers one round trip within ``timeout``, else why not."""
    if engine.degraded:
        reason = engine.fallback_reason or "unavailable"
        return f"on the {engine.name} fallback (reduced fidelity): {reason}"[:500]
    name = engine.name  # a ResilientEngine not degraded: its primary's name; its ping asks the primary
    try:
        await asyncio.wait_for(engine.ping(), timeout)
    except TimeoutError:
        return f"{name} did not answer within {timeout:g} s"
    except EngineUnavailable as exc:
        return str(exc)[:500]
    return None


def buffer_problem(publisher: EventPublisher) -> str | None:
    directory = publisher.buffer.directory
    if publisher.store_error is not None:
        return f"last write to {directory} failed: {publisher.store_error}"[:500]
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory} is not writable"
    try:
        stat = os.statvfs(directory)
    except OSError as exc:
        return f"{directory}: {exc.strerror or exc}"
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return f"{directory}: {free} bytes free (< {MIN_FREE_BYTES})"
    return None


class Readiness:
    """The checks of ``/readyz``; the result is kept ``cache_seconds`` so that probes cost one engine
    round trip per interval at most. ``engine`` is None while ``observer run`` is still choosing one (the
    endpoint is served before, so that a slow engine at start-up is visible, not a refused connection)."""

    def __init__(
        self,
        engine: ContainerEngine | None,
        *,
        publisher: EventPublisher | None,
        running: Callable[[], bool],
        timeout: float = 2.0,
        cache_seconds: float = 1.0,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.running = running
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._last: tuple[float, bool, dict[str, str]] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> tuple[bool, dict[str, str]]:
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.cache_seconds:
                return self._last[1], self._last[2]
            engine = self.engine
            stopped = "starting" if engine is None else "the observation loop is not running"
            problems: dict[str, str | None] = {
                "agent": None if self.running() else stopped,
                "engine": (
                    await probe_engine(engine, self.timeout)
                    if engine is not None
                    else "starting: no container engine chosen yet"
                ),
                "buffer": buffer_problem(self.publisher) if self.publisher is not None else None,
            }
            checks = {name: problem or "ok" for name, problem in problems.items()}
            ready = all(problem is None for problem in problems.values())
            if self._last is not None and self._last[1] != ready:
                level = logging.INFO if ready else logging.WARNING
                log.log(level, "observer readiness changed", extra=fields(ready=ready, checks=checks))
            self._last = (time.monotonic(), ready, checks)
            return ready, checks


class ObserverEndpoint:
    """The raw ASGI app of ``/metrics``, ``/healthz``, ``/readyz``."""

    def __init__(self, metrics: ZastavaMetrics, readiness: Readiness) -> None:
        self.metrics = metrics
        self.readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return None
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            return await _respond(send, 405, b'{"error":"method not allowed"}\n', b"application/json")
        if path == "/metrics":
            return await _respond(send, 200, self.metrics.render(), _METRICS_TYPE)
        if path == "/healthz":
            return await _respond(send, 200, b"ok\n", b"text/plain; charset=utf-8")
        if path == "/readyz":
            ready, checks = await self.readiness.check()
            body = orjson.dumps({"ready": ready, "checks": checks}) + b"\n"
            return await _respond(send, 200 if ready else 503, body, b"application/json")
        return await _respond(send, 404, b'{"error":"not found"}\n', b"application/json")


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def bind(listen: str) -> socket.socket:
    """The listening socket for ``HOST:PORT`` (``[v6]:PORT`` too); OSError when it cannot be bound."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    return sock


async def serve(
    app: ObserverEndpoint,
    sock: socket.socket,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until ``stop`` is set (the caller owns the signal handlers); ``started`` is
    set once connections are accepted."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # observer run installs its own SIGINT/SIGTERM handlers

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if started is not None:
                started.set()

    server = _Server(
        uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
    )

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
