"""The backend's ASGI application: Starlette routes over :class:`BackendService`.

``create_app(settings)`` returns a :class:`BackendApp` (an ASGI callable; ``.service`` holds the store,
policy, rate limiter). Every response carries ``Zastava-Schema-Versions``. Database work runs in worker
threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from ..config import BackendServer
from ..contracts import (
    SCHEMA_VERSIONS_HEADER,
    EventKind,
    ImagePolicy,
    IngestResponse,
    RuntimePolicyRequest,
    RuntimePolicyResponse,
    versions,
)
from ..contracts.base import format_utc
from ..contracts.canonical import canonical_id
from ..contracts.wire import loads
from ..registry.errors import InvalidReference, RegistryError
from ..registry.posture.verifier import ImageVerifier, VerifyOutcome
from ..registry.reference import parse_reference
from ..registry.verification.policies import ImageVerdict
from . import auth
from .auth import Authenticator, AuthError, Principal, static_tenant
from .catalog import DIGEST_RE, CatalogPut, SbomError, build_entry, build_record, reference_digest
from .decisions import prepare_decisions
from .ingest import BodyError, Ingestor, Prepared, read_body, split_envelopes
from .openapi import document
from .policy import PolicyEngine, evaluate
from .ratelimit import RateLimiter
from .store import Page, Store

__all__ = ["ApiError", "BackendApp", "BackendService", "create_app"]

log = logging.getLogger("zastava.backend")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

JSON = "application/json"


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


def _json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=JSON, headers=dict(headers or {}))


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json_response({"error": message, "status": status}, status, headers)


def _iso(us: int) -> str:
    return format_utc(datetime.fromtimestamp(us / 1_000_000, tz=UTC))


class BackendMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "zastava_backend_requests",
            "HTTP requests, by endpoint and status",
            ("endpoint", "status"),
            registry=self.registry,
        )
        self.latency_ms = Histogram(
            "zastava_backend_request_latency_ms",
            "Request latency in ms, by endpoint",
            ("endpoint",),
            buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=self.registry,
        )
        self.events = Counter(
            "zastava_backend_ingest_events",
            "Ingested envelopes, by result",
            ("result",),
            registry=self.registry,
        )
        self.delta_scans = Counter(
            "zastava_backend_delta_scans_requested", "Delta-scan requests recorded", registry=self.registry
        )
        self.rate_limited = Counter(
            "zastava_backend_rate_limited", "Requests refused by a rate cap", registry=self.registry
        )
        self.purged = Counter(
            "zastava_backend_purged_rows",
            "Rows deleted by retention, by table",
            ("table",),
            registry=self.registry,
        )


class BackendService:
    """Store, policy, caps and authentication of one backend process; handlers are thin over it."""

    def __init__(
        self,
        settings: BackendServer,
        store: Store,
        *,
        authenticator: Authenticator | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        verifier: ImageVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        #: signatures, attestations and SBOM referrers verified in the registries (zastava.registry); None:
        #: nothing is verified, so no image is signed
        self.verifier = verifier
        self.authenticate = authenticator or static_tenant(settings.static_tenant)
        self.clock = clock
        self.policy = PolicyEngine(settings.policy_file, reload_seconds=settings.policy_reload_seconds)
        self.limiter = RateLimiter(
            (settings.tenant_rate.events_per_second, settings.tenant_rate.burst),
            (settings.node_rate.events_per_second, settings.node_rate.burst),
            clock=monotonic,
        )
        self.ingestor = Ingestor(store)
        self.metrics = BackendMetrics()
        self._cpu: anyio.CapacityLimiter | None = None

    def now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def purge_once(self) -> dict[str, int]:
        retention = self.settings.retention
        counts = self.store.purge(
            self.now_us(),
            events_s=retention.events_seconds,
            decisions_s=retention.admission_decisions_seconds,
            delta_scans_s=retention.delta_scans_seconds,
        )
        for table, count in counts.items():
            if count:
                self.metrics.purged.labels(table).inc(count)
        if any(counts.values()):
            log.info("retention purge", extra={"zastava_fields": {"deleted": counts}})
        return counts

    async def body(self, request: Request) -> bytes:
        return await read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            content_encoding=request.headers.get("content-encoding"),
            max_bytes=self.settings.max_body_bytes,
            max_decompressed=self.settings.max_decompressed_bytes,
            max_lines=2 * self.settings.max_events_per_request,  # what split_envelopes accepts
        )

    async def json_model(self, request: Request, model: type[M]) -> M:
        raw = await self.body(request)
        return await self.cpu(_json_model, raw, model)

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound request work (parsing, validation) in a worker thread, at most
        :data:`CPU_WORKERS` at a time: each holds the GIL while it runs, and the fewer threads contend for
        it, the sooner the event loop gets it back (a ``/healthz`` waits behind them, not behind 40)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._cpu_limiter())

    def _cpu_limiter(self) -> anyio.CapacityLimiter:
        if self._cpu is None:
            self._cpu = anyio.CapacityLimiter(CPU_WORKERS)
        return self._cpu

    # --------------------------------------------------------------------------------------- handlers

    async def ingest_events(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_RUNTIME_WRITE)
        body = await self.body(request)
        prepared = await self.cpu(self._prepare_events, principal.tenant, body, self.now_us())
        wait = self.limiter.acquire(principal.tenant, prepared.per_node)
        if wait is not None:
            self.metrics.rate_limited.inc()
            retry = RateLimiter.retry_after(wait)
            raise ApiError(
                429,
                f"event rate cap reached for tenant or node; retry after {retry} s",
                {"Retry-After": retry},
            )
        response = await anyio.to_thread.run_sync(self.ingestor.store_prepared, prepared)
        m = self.metrics.events
        m.labels("accepted").inc(response.accepted)
        m.labels("duplicate").inc(response.duplicates)
        m.labels("rejected").inc(len(response.rejected))
        self.metrics.delta_scans.inc(len(response.delta_scans_requested))
        return _json_response(response.wire(), _ingest_status(response))

    def _prepare_events(self, tenant: str, body: bytes, now_us: int) -> Prepared:
        items = split_envelopes(body, self.settings.max_events_per_request, parse=False)
        return self.ingestor.prepare(tenant, items, now_us)

    async def list_events(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_RUNTIME_READ)
        q = request.query_params
        tenant = q.get("tenant")
        if tenant is not None and tenant != principal.tenant:
            raise ApiError(403, "tenant filter must be the caller's tenant")
        kind = q.get("kind")
        if kind is not None and kind not in EventKind.__members__:
            raise ApiError(400, f"unknown kind {kind!r}; known: {', '.join(EventKind.__members__)}")
        page = await anyio.to_thread.run_sync(
            lambda: self.store.query_events(
                principal.tenant,
                node=q.get("node"),
                namespace=q.get("namespace"),
                kind=kind,
                image=q.get("image"),
                since_us=_since(q.get("since")),
                limit=_limit(q.get("limit")),
                cursor=_cursor(q.get("cursor")),
            )
        )
        items = [
            {
                "receivedAt": _iso(item["receivedUs"]),
                "envelope": item["envelope"],
                **({"correlation": item["correlation"]} if item["correlation"] else {}),
            }
            for item in page.items
        ]
        return _json_response(_page(page, items))

    async def verify(self, images: list[str]) -> dict[str, ImageVerdict | None]:
        """Verification verdicts of the pinned images (None: not pinned, or not verifiable); images the
        registry could not answer for within ``verifyTimeoutSeconds`` are left out."""
        verifier = self.verifier
        out: dict[str, ImageVerdict | None] = {image: None for image in images}
        if verifier is None:
            return out
        refs = {}
        for image in images:
            try:
                ref = parse_reference(image)
            except RegistryError:
                continue
            if ref.digest is not None:
                refs[image] = ref
        outcomes: list[VerifyOutcome | None]
        try:
            async with asyncio.timeout(self.settings.verify_timeout_seconds):
                outcomes = list(await asyncio.gather(*(verifier.verify(ref) for ref in refs.values())))
        except TimeoutError:
            outcomes = [verifier.cached(ref) for ref in refs.values()]
        for image, outcome in zip(refs, outcomes, strict=True):
            if outcome is None or outcome.unavailable:
                del out[image]  # unknown: the caller applies its fail-open/closed
            else:
                out[image] = outcome.verdict
        return out

    async def runtime_policy(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_POLICY_READ)
        req = await self.json_model(request, RuntimePolicyRequest)
        response = await self.policy_answer(principal.tenant, req)
        revision = response.policy_revision or ""
        return _json_response(response.wire(), headers={"Zastava-Policy-Revision": revision})

    async def policy_answer(self, tenant: str, req: RuntimePolicyRequest) -> RuntimePolicyResponse:
        """The ``/policy/runtime`` answer for ``tenant`` (the policy simulation asks it in-process)."""
        policy, revision = self.policy.current()
        if self.verifier is not None:
            revision = canonical_id({"policy": revision, "trust": self.verifier.revision})
        verdicts = await self.verify(req.images)

        def decide() -> RuntimePolicyResponse:
            digests: dict[str, str | None] = {}
            invalid: dict[str, ImagePolicy] = {}
            for image in req.images:
                if image not in verdicts:
                    continue  # not verifiable in time: no verdict (the caller's fail-open/closed applies)
                try:
                    digests[image] = reference_digest(image)
                except InvalidReference as exc:  # a verdict, not a 400: the other images still get theirs
                    invalid[image] = ImagePolicy(
                        signed=False, has_sbom=False, policy_verdict="fail", reasons=[str(exc)[:500]]
                    )
            known = sorted({d for d in digests.values() if d})
            heads = self.store.catalog_heads(tenant, known)
            builds = self.store.recent_build_ids(tenant, known)
            results = {
                image: evaluate(
                    policy,
                    heads.get(digest) if digest else None,
                    namespace=req.namespace,
                    labels=req.labels,
                    build_ids=builds.get(digest) if digest else None,
                    verification=verdicts[image],
                )
                for image, digest in digests.items()
            }
            results.update(invalid)
            return RuntimePolicyResponse(
                ttl_seconds=policy.ttl_seconds, results=results, policy_revision=revision
            )

        return await anyio.to_thread.run_sync(decide)

    async def put_catalog(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_CATALOG_WRITE)
        digest = _digest(request)
        put = await self.json_model(request, CatalogPut)
        try:
            record = build_record(digest, put, self.now_us())
        except SbomError as exc:
            raise ApiError(400, str(exc)) from None
        await anyio.to_thread.run_sync(self.store.catalog_put, principal.tenant, record)
        return await self._catalog_entry(principal.tenant, digest)

    async def get_catalog(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_CATALOG_READ)
        return await self._catalog_entry(principal.tenant, _digest(request))

    async def _catalog_entry(self, tenant: str, digest: str) -> Response:
        def load() -> dict[str, Any] | None:
            record = self.store.catalog_get(tenant, digest)
            if record is None:
                return None
            usage = self.store.component_usage(tenant, digest)
            builds = self.store.recent_build_ids(tenant, [digest]).get(digest, [])
            return build_entry(record, usage, builds).wire()

        entry = await anyio.to_thread.run_sync(load)
        if entry is None:
            raise ApiError(404, f"image {digest} is not in the catalog")
        return _json_response(entry)

    async def list_delta_scans(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_RUNTIME_READ)
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in ("pending", "done"):
            raise ApiError(400, "status must be pending or done")
        page = await anyio.to_thread.run_sync(
            lambda: self.store.query_delta_scans(
                principal.tenant, status=status, limit=_limit(q.get("limit")), cursor=_cursor(q.get("cursor"))
            )
        )
        items = [
            {
                "image": i["image"],
                "reason": i["reason"],
                "status": i["status"],
                "requestedAt": _iso(i["requestedUs"]),
                "lastRequestedAt": _iso(i["lastRequestedUs"]),
                "count": i["count"],
                **({"lastEventId": i["lastEventId"]} if i["lastEventId"] else {}),
            }
            for i in page.items
        ]
        return _json_response(_page(page, items))

    async def ingest_decisions(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_ADMISSION_WRITE)
        body, now = await self.body(request), self.now_us()
        prepared = await self.cpu(
            lambda: prepare_decisions(
                principal.tenant, body, now, max_items=self.settings.max_events_per_request
            )
        )
        inserted = await anyio.to_thread.run_sync(self.store.insert_decisions, prepared.rows)
        response = prepared.response(inserted)
        return _json_response(response.wire(), _ingest_status(response))

    async def list_decisions(self, request: Request, principal: Principal) -> Response:
        principal.require(auth.SCOPE_ADMISSION_READ)
        q = request.query_params
        decision = q.get("decision")
        if decision is not None and decision not in ("Allow", "Deny"):
            raise ApiError(400, "decision must be Allow or Deny")
        page = await anyio.to_thread.run_sync(
            lambda: self.store.query_decisions(
                principal.tenant,
                namespace=q.get("namespace"),
                decision=decision,
                since_us=_since(q.get("since")),
                limit=_limit(q.get("limit")),
                cursor=_cursor(q.get("cursor")),
            )
        )
        items = [{"receivedAt": _iso(i["receivedUs"]), "envelope": i["envelope"]} for i in page.items]
        return _json_response(_page(page, items))


#: Worker threads running request parsing and validation at once (see :meth:`BackendService.cpu`).
CPU_WORKERS = 2


def _json_model(raw: bytes, model: type[M]) -> M:
    """``raw`` as ``model``: strict JSON (duplicate keys refused), strict types."""
    try:
        data = loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:10]
        ]
        raise ApiError(400, "; ".join(parts)) from None


def _ingest_status(response: IngestResponse) -> int:
    if response.received and response.accepted + response.duplicates == 0:
        return 400
    return 202 if response.delta_scans_requested else 200


def _page(page: Page, items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"items": items, "total": page.total}
    if page.next_cursor:
        out["nextCursor"] = page.next_cursor
    return out


def _digest(request: Request) -> str:
    digest = str(request.path_params["digest"])
    if not DIGEST_RE.match(digest):
        raise ApiError(400, f"image digest must be sha256:<64 hex>, got {digest[:100]!r}")
    return digest


def _int_param(name: str, value: str, low: int, high: int, what: str) -> int:
    """An ASCII decimal integer within ``[low, high]``; anything else is a 400 that names the parameter
    (``str.isdigit`` alone also takes ``²`` and other digits ``int()`` refuses, and no bound let a cursor
    past 2⁶³ reach the database)."""
    digits = value.isascii() and value.isdigit() and len(value) <= len(str(high))
    if not digits or not low <= int(value) <= high:
        raise ApiError(400, f"query parameter {name} must be {what}, got {value[:40]!r}")
    return int(value)


#: Largest cursor: row ids are signed 64-bit integers in both stores.
MAX_CURSOR = 2**63 - 1


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    return _int_param("limit", value, 1, 1000, "an integer from 1 to 1000")


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    return _int_param("cursor", value, 0, MAX_CURSOR, "the nextCursor of a previous page")


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        message = f"query parameter since must be an RFC 3339 timestamp, got {value[:64]!r}"
        raise ApiError(400, message) from None
    if parsed.tzinfo is None:
        raise ApiError(400, "query parameter since must carry a timezone (e.g. a trailing Z)")
    try:
        return int(parsed.timestamp() * 1_000_000)
    except (OverflowError, ValueError, OSError):
        raise ApiError(400, "query parameter since is out of range") from None


Handler = Callable[[Request, Principal], Awaitable[Response]]


def _endpoint(
    service: BackendService, name: str, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            principal = await service.authenticate(request)
            response = await handler(request, principal)
        except AuthError as exc:
            response = _error(exc.status, str(exc), exc.headers or None)
        except (ApiError, BodyError) as exc:
            response = _error(exc.status, str(exc), getattr(exc, "headers", None))
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            # the database is down or saturated: nothing was stored; clients keep their data and retry
            log.error(
                "store unavailable", extra={"zastava_fields": {"endpoint": name, "error": type(exc).__name__}}
            )
            response = _error(503, "store unavailable; retry later", {"Retry-After": "5"})
        service.metrics.requests.labels(name, str(response.status_code)).inc()
        service.metrics.latency_ms.labels(name).observe((time.perf_counter() - started) * 1000)
        return response

    return endpoint


class BackendApp:
    """ASGI app: Starlette with the schema-versions header added to every response (errors included)."""

    def __init__(self, service: BackendService, starlette: Starlette) -> None:
        self.service = service
        self.starlette = starlette
        self.state = starlette.state
        self._header = (SCHEMA_VERSIONS_HEADER.lower().encode(), versions.header_value().encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self.starlette(scope, receive, send_with_header)


def create_app(
    settings: BackendServer | None = None,
    *,
    store: Store | None = None,
    authenticator: Authenticator | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    purge: bool = True,
    verifier: ImageVerifier | None = None,
) -> BackendApp:
    """The backend app. Opens (and migrates) the store from ``settings.store`` unless one is given.
    ``verifier`` (:func:`zastava.registry.settings.image_verifier`) verifies the images ``/policy/runtime`` is
    asked about; its registry client is closed with the app."""
    settings = settings or BackendServer()
    owned = store is None
    store = store or Store(settings.store)
    service = BackendService(
        settings, store, authenticator=authenticator, clock=clock, monotonic=monotonic, verifier=verifier
    )
    openapi = orjson.dumps(document())

    async def healthz(_request: Request) -> Response:
        return _json_response({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if await anyio.to_thread.run_sync(store.ready):
            return _json_response({"status": "ready"})
        return _error(503, "store not reachable or not migrated")

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(service.metrics.registry), media_type="text/plain; version=0.0.4")

    async def openapi_json(_request: Request) -> Response:
        return Response(openapi, media_type=JSON)

    def route(path: str, name: str, handler: Handler, method: str) -> Route:
        return Route(path, _endpoint(service, name, handler), methods=[method], name=name)

    api = "/api/v1/scanner"
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        route(f"{api}/runtime/events", "events.ingest", service.ingest_events, "POST"),
        route(f"{api}/runtime/events", "events.list", service.list_events, "GET"),
        route(f"{api}/policy/runtime", "policy.runtime", service.runtime_policy, "POST"),
        route(f"{api}/catalog/images/{{digest}}", "catalog.put", service.put_catalog, "PUT"),
        route(f"{api}/catalog/images/{{digest}}", "catalog.get", service.get_catalog, "GET"),
        route(f"{api}/delta-scans", "deltaScans.list", service.list_delta_scans, "GET"),
        route(f"{api}/admission/decisions", "decisions.ingest", service.ingest_decisions, "POST"),
        route(f"{api}/admission/decisions", "decisions.list", service.list_decisions, "GET"),
    ]
    # the console (issue 18): its pages authenticate by session cookie; its two APIs like every other API
    from .console import ConsoleApp

    console = ConsoleApp(service)
    routes += [
        route(f"{api}/policy/simulations", "policy.simulate", console.api_simulate, "POST"),
        route(f"{api}/console/login-links", "console.loginLink", console.api_login_link, "POST"),
    ]
    if settings.console.enabled:
        routes += console.routes()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_purge_loop(service)) if purge else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if verifier is not None:
                await verifier.close()
                await verifier.client.close()
            if owned:
                store.close()

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail), exc.headers)

    async def server_error(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal error")

    starlette = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    starlette.state.service = service
    return BackendApp(service, starlette)


async def _purge_loop(service: BackendService) -> None:
    interval = service.settings.retention.purge_interval_seconds
    while True:
        try:
            await anyio.to_thread.run_sync(service.purge_once)
        except Exception:
            log.exception("retention purge failed; will retry")
        await asyncio.sleep(interval)
