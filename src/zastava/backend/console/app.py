"""The console's routes: server-rendered pages under ``/ui`` and two APIs (login links, simulations).

Authentication is the backend's own: the operator proves an OpTok once — pasted into the login form (the
``Authorization`` and ``DPoP`` headers of a request ``POST /ui/login``, verified by the backend's
authenticator exactly as an API call, DPoP proof and all) or through a one-time link made by
``zastava console login`` with the operator's credentials — and gets a session cookie (HttpOnly,
SameSite=Strict, Secure over TLS, ``__Host-`` prefixed then). Pages are read-only; the two writes (run a
simulation, log out) carry the session's CSRF token and must come from the console's own origin. Every query
is scoped to the session's tenant, and each page needs the API scope that reads the same data.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio.to_thread
import jinja2
import orjson
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..auth import (
    SCOPE_ADMISSION_READ,
    SCOPE_POLICY_SIMULATE,
    SCOPE_RUNTIME_READ,
    AuthError,
    Principal,
)
from ..inventory import DRIFT_KINDS, minute_of
from . import queries
from .charts import stacked_bars
from .sessions import ConsoleSession, SessionStore
from .simulation import SimulationError, SimulationService, request_from_json

__all__ = ["ConsoleApp"]

SESSION_COOKIE = "zastava-console"
LOGIN_COOKIE = "zastava-login"
PAGE_SIZE = 50
FACETS_SECONDS = 10.0
MAX_FILTER = 1024
MAX_FORM_BYTES = 1_100_000
WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on form posts, and the
    # origin check below needs the real one; other origins still get no referrer (login-link codes stay here)
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
EXAMPLE_CANDIDATE = """\
zastava:
  admission:
    enforce: true
    failOpenNamespaces: [dev, test]
    verify: {imageSignature: true, sbomReferrer: true, scannerPolicyPass: true}
    registryDenylist: []
    bannedTags: [latest]
"""

Handler = Callable[[Request, ConsoleSession], Awaitable[Response]]


class BadInput(ValueError):
    """A query parameter or form field the console does not accept (400)."""


def _iso(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _ago(us: int | None, now_us: int) -> str:
    if us is None:
        return "never"
    seconds = max(0, (now_us - us) // 1_000_000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


class ConsoleApp:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.settings = service.settings.console
        self.sessions = SessionStore(service.store, self.settings)
        self.simulations = SimulationService(service)
        self.static_auth = service.settings.auth_mode == "static"
        #: tenant → (expires at, facets): the inventory's counts by node/namespace/workload/image are read at
        #: most every FACETS_SECONDS per tenant (they walk every running container)
        self._facets: dict[str, tuple[float, dict[str, list[tuple[str, int]]]]] = {}
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("zastava.backend.console", "templates"),
            autoescape=True,
            undefined=jinja2.ChainableUndefined,  # records are JSON: absent optional fields read as empty
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["ts"] = _iso
        self.env.filters["json"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)
        self.static = {
            item.name: item.read_bytes()
            for item in resources.files("zastava.backend.console").joinpath("static").iterdir()
            if item.name.endswith(tuple(STATIC_TYPES))
        }

    # ------------------------------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/ui", self.home, methods=["GET"]),
            Route("/ui/", self.home, methods=["GET"]),
            Route("/ui/login", self.login_form, methods=["GET"]),
            Route("/ui/login", self.login, methods=["POST"]),
            Route("/ui/login/link", self.link_form, methods=["GET"]),
            Route("/ui/login/link", self.link_login, methods=["POST"]),
            Route("/ui/logout", page(self.logout, None, write=True), methods=["POST"]),
            Route("/ui/inventory", page(self.inventory, SCOPE_RUNTIME_READ), methods=["GET"]),
            Route("/ui/drift", page(self.drift, SCOPE_RUNTIME_READ), methods=["GET"]),
            Route("/ui/admission", page(self.admission, SCOPE_ADMISSION_READ), methods=["GET"]),
            Route(
                "/ui/admission/{decision_id:int}",
                page(self.admission_detail, SCOPE_ADMISSION_READ),
                methods=["GET"],
            ),
            Route("/ui/health", page(self.health, SCOPE_RUNTIME_READ), methods=["GET"]),
            Route("/ui/simulate", page(self.simulate_form, SCOPE_POLICY_SIMULATE), methods=["GET"]),
            Route("/ui/simulate", page(self.simulate, SCOPE_POLICY_SIMULATE, write=True), methods=["POST"]),
            Route("/ui/static/{name}", self.static_file, methods=["GET"]),
        ]

    # ---------------------------------------------------------------------------------------- plumbing

    def now_us(self) -> int:
        return int(self.service.now_us())

    def _secure(self, request: Request) -> bool:
        mode = self.settings.secure_cookies
        return mode == "always" or (mode == "auto" and request.url.scheme == "https")

    def _cookie_name(self, request: Request) -> str:
        # the __Host- prefix (Secure, Path=/, no Domain) stops a sibling host from planting the cookie
        return f"__Host-{SESSION_COOKIE}" if self._secure(request) else SESSION_COOKIE

    def render(
        self,
        request: Request,
        template: str,
        *,
        session: ConsoleSession | None = None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        now = self.now_us()
        html = self.env.get_template(template).render(
            session=session,
            path=request.url.path,
            now_us=now,
            ago=lambda us: _ago(us, now),
            static_auth=self.static_auth,
            cursor_in_request="cursor" in request.query_params,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def _same_origin(self, request: Request) -> bool:
        """A browser's unsafe request must come from the console's own pages (CSRF defence in depth)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc.lower() == (request.headers.get("host") or "").lower()

    async def _form(self, request: Request) -> dict[str, str]:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            raise BadInput(f"form larger than {MAX_FORM_BYTES} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise BadInput(f"form larger than {MAX_FORM_BYTES} bytes")
        from urllib.parse import parse_qsl

        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadInput(f"unreadable form: {exc}") from None
        return dict(pairs)

    async def _session(self, request: Request) -> ConsoleSession | None:
        token = request.cookies.get(self._cookie_name(request))
        return await anyio.to_thread.run_sync(self.sessions.load, token, self.now_us())

    def _login_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"/ui/login?{urlencode({'next': target})}", status_code=303, headers=SECURITY_HEADERS
        )

    def _page(
        self, handler: Handler, scope: str | None, *, write: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session: ConsoleSession | None = None
            try:
                session = await self._session(request)
                if session is None:
                    if write:
                        return self.render(
                            request, "error.html", status=401, message="your session has ended; log in again"
                        )
                    return self._login_redirect(request)
                if write and not self._same_origin(request):
                    return self.render(
                        request,
                        "error.html",
                        session=session,
                        status=403,
                        message="cross-site request refused",
                    )
                if scope is not None:
                    session.principal.require(scope)
                return await handler(request, session)
            except AuthError as exc:
                return self.render(
                    request, "error.html", session=session, status=exc.status, message=str(exc)
                )
            except BadInput as exc:
                return self.render(request, "error.html", session=session, status=400, message=str(exc))
            except (OperationalError, InterfaceError, PoolTimeout):
                return self.render(
                    request,
                    "error.html",
                    session=session,
                    status=503,
                    message="the store is unavailable; retry shortly",
                )

        return endpoint

    # ------------------------------------------------------------------------------------------- login

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/ui/inventory", status_code=303, headers=SECURITY_HEADERS)

    @staticmethod
    def _next(value: str | None) -> str:
        if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
            return value
        return "/ui/inventory"

    def _login_page(
        self, request: Request, *, error: str | None = None, status: int = 200, next_: str | None = None
    ) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = self.render(
            request,
            "login.html",
            status=status,
            error=error,
            nonce=nonce,
            next=self._next(next_ or request.query_params.get("next")),
            login_url=f"{request.url.scheme}://{request.headers.get('host', '')}/ui/login",
            base_url=f"{request.url.scheme}://{request.headers.get('host', '')}",
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=600,
            path="/ui/login",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )
        return response

    async def login_form(self, request: Request) -> Response:
        return self._login_page(request)

    def _login_checks(self, request: Request, form: dict[str, str]) -> str | None:
        if not self._same_origin(request):
            return "cross-site login refused"
        cookie = request.cookies.get(LOGIN_COOKIE)
        presented = form.get("nonce", "")
        if not cookie or not secrets.compare_digest(cookie.encode(), presented.encode()):
            return "the login form expired; try again"
        return None

    async def login(self, request: Request) -> Response:
        try:
            form = await self._form(request)
        except BadInput as exc:
            return self._login_page(request, error=str(exc), status=400)
        next_ = form.get("next")
        problem = self._login_checks(request, form)
        if problem:
            return self._login_page(request, error=problem, status=403, next_=next_)
        try:
            headers = pasted_headers(form.get("credentials", ""))
        except BadInput as exc:
            return self._login_page(request, error=str(exc), status=400, next_=next_)
        scope = dict(request.scope)
        scope["headers"] = [
            (k, v) for k, v in request.scope["headers"] if k not in (b"authorization", b"dpop", b"cookie")
        ] + headers
        try:
            principal = await self.service.authenticate(Request(scope))
        except AuthError as exc:
            return self._login_page(request, error=f"not logged in: {exc}", status=401, next_=next_)
        return await self._start_session(request, principal, "static" if self.static_auth else "token", next_)

    async def _start_session(
        self, request: Request, principal: Principal, method: str, next_: str | None
    ) -> Response:
        token, _session = await anyio.to_thread.run_sync(
            self.sessions.create, principal, method, self.now_us()
        )
        response = RedirectResponse(self._next(next_), status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(
            self._cookie_name(request),
            token,
            max_age=self.settings.session_seconds,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    async def link_form(self, request: Request) -> Response:
        code = request.query_params.get("code")
        principal = await anyio.to_thread.run_sync(self.sessions.peek_link, code, self.now_us())
        nonce = secrets.token_urlsafe(24)
        response = self.render(
            request,
            "link.html",
            principal=principal,
            code=code or "",
            nonce=nonce,
            status=200 if principal else 404,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=600,
            path="/ui/login",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )
        return response

    async def link_login(self, request: Request) -> Response:
        try:
            form = await self._form(request)
        except BadInput as exc:
            return self._login_page(request, error=str(exc), status=400)
        problem = self._login_checks(request, form)
        if problem:
            return self._login_page(request, error=problem, status=403)
        principal = await anyio.to_thread.run_sync(self.sessions.redeem_link, form.get("code"), self.now_us())
        if principal is None:
            return self._login_page(request, error="this login link is unknown, used or expired", status=401)
        return await self._start_session(request, principal, "link", None)

    async def logout(self, request: Request, session: ConsoleSession) -> Response:
        form = await self._form(request)
        if not session.csrf_ok(form.get("csrf")):
            return self.render(
                request, "error.html", session=session, status=403, message="missing or wrong CSRF token"
            )
        token = request.cookies.get(self._cookie_name(request), "")
        await anyio.to_thread.run_sync(self.sessions.delete, token)
        response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(
            self._cookie_name(request),
            path="/",
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )
        return response

    async def static_file(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        data = self.static.get(name)
        if data is None:
            return Response("not found", status_code=404, media_type="text/plain")
        suffix = name[name.rfind(".") :]
        return Response(
            data,
            media_type=STATIC_TYPES[suffix],
            headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"},
        )

    # ------------------------------------------------------------------------------------------- pages

    @staticmethod
    def _filter(request: Request, name: str) -> str | None:
        value = request.query_params.get(name)
        if value is None or value == "":
            return None
        if len(value) > MAX_FILTER or "\x00" in value:
            raise BadInput(f"{name} filter is too long or contains NUL")
        return value

    def _window(self, request: Request) -> tuple[str | None, int | None]:
        window = self._filter(request, "window")
        if window is None:
            return None, None
        if window not in WINDOWS:
            raise BadInput(f"window must be one of {', '.join(WINDOWS)}")
        return window, self.now_us() - WINDOWS[window] * 1_000_000

    async def inventory(self, request: Request, session: ConsoleSession) -> Response:
        tenant = session.principal.tenant
        filters = {name: self._filter(request, name) for name in ("node", "namespace", "workload", "image")}
        stopped = request.query_params.get("state") == "stopped"
        cursor = self._filter(request, "cursor")

        def load() -> tuple[queries.Page, dict[str, list[tuple[str, int]]]]:
            try:
                page = queries.inventory_page(
                    self.service.store, tenant, running=not stopped, cursor=cursor, limit=PAGE_SIZE, **filters
                )
            except ValueError as exc:
                raise BadInput(str(exc)) from None
            return page, self._tenant_facets(tenant)

        page, facets = await anyio.to_thread.run_sync(load)
        query = {k: v for k, v in filters.items() if v}
        if stopped:
            query["state"] = "stopped"
        return self.render(
            request,
            "inventory.html",
            session=session,
            page=page,
            facets=facets,
            filters=filters,
            stopped=stopped,
            query=query,
            urlencode=urlencode,
        )

    def _tenant_facets(self, tenant: str) -> dict[str, list[tuple[str, int]]]:
        now = time.monotonic()
        hit = self._facets.get(tenant)
        if hit is not None and hit[0] > now:
            return hit[1]
        facets = queries.inventory_facets(self.service.store, tenant)
        if len(self._facets) > 1000:
            self._facets.clear()
        self._facets[tenant] = (now + FACETS_SECONDS, facets)
        return facets

    async def drift(self, request: Request, session: ConsoleSession) -> Response:
        kind = self._filter(request, "kind")
        if kind is not None and kind not in DRIFT_KINDS:
            raise BadInput(f"kind must be one of {', '.join(DRIFT_KINDS)}")
        filters = {name: self._filter(request, name) for name in ("node", "namespace", "image")}
        window, since = self._window(request)
        cursor = self._filter(request, "cursor")
        tenant = session.principal.tenant

        def load() -> queries.Page:
            try:
                return queries.drift_page(
                    self.service.store,
                    tenant,
                    kind=kind,
                    since_us=since,
                    cursor=cursor,
                    limit=PAGE_SIZE,
                    **filters,
                )
            except ValueError as exc:
                raise BadInput(str(exc)) from None

        page = await anyio.to_thread.run_sync(load)
        query = {k: v for k, v in {**filters, "kind": kind, "window": window}.items() if v}
        return self.render(
            request,
            "drift.html",
            session=session,
            page=page,
            filters=filters,
            kind=kind,
            kinds=DRIFT_KINDS,
            window=window,
            windows=list(WINDOWS),
            query=query,
            urlencode=urlencode,
        )

    async def admission(self, request: Request, session: ConsoleSession) -> Response:
        outcome = self._filter(request, "outcome")
        if outcome is not None and outcome not in queries.OUTCOMES:
            raise BadInput(f"outcome must be one of {', '.join(queries.OUTCOMES)}")
        namespace = self._filter(request, "namespace")
        window, since = self._window(request)
        cursor = self._filter(request, "cursor")
        tenant = session.principal.tenant
        now = self.now_us()

        def load() -> tuple[queries.Page, dict[int, dict[str, int]]]:
            try:
                page = queries.decision_page(
                    self.service.store,
                    tenant,
                    outcome=outcome,
                    namespace=namespace,
                    since_us=since,
                    cursor=cursor,
                    limit=PAGE_SIZE,
                )
            except ValueError as exc:
                raise BadInput(str(exc)) from None
            return page, queries.decision_series(self.service.store, tenant, now)

        page, series = await anyio.to_thread.run_sync(load)
        chart = stacked_bars(
            series,
            end_minute=minute_of(now),
            minutes=60,
            order=queries.OUTCOMES,
            title="admission decisions per minute",
        )
        query = {k: v for k, v in {"outcome": outcome, "namespace": namespace, "window": window}.items() if v}
        return self.render(
            request,
            "admission.html",
            session=session,
            page=page,
            chart=chart,
            outcome=outcome,
            outcomes=queries.OUTCOMES,
            namespace=namespace,
            window=window,
            windows=list(WINDOWS),
            query=query,
            urlencode=urlencode,
        )

    async def admission_detail(self, request: Request, session: ConsoleSession) -> Response:
        decision_id = int(request.path_params["decision_id"])
        tenant = session.principal.tenant
        row = await anyio.to_thread.run_sync(queries.decision, self.service.store, tenant, decision_id)
        if row is None:  # another tenant's id looks exactly like a missing one
            return self.render(
                request,
                "error.html",
                session=session,
                status=404,
                message=f"no admission decision {decision_id}",
            )
        return self.render(request, "decision.html", session=session, row=row)

    async def health(self, request: Request, session: ConsoleSession) -> Response:
        tenant = session.principal.tenant
        now = self.now_us()

        def load() -> tuple[list[dict[str, Any]], dict[int, dict[str, int]], dict[int, dict[str, int]]]:
            store = self.service.store
            return (
                queries.health(store, tenant, now),
                queries.event_series(store, tenant, now),
                queries.decision_series(store, tenant, now),
            )

        rows, events, decisions = await anyio.to_thread.run_sync(load)
        end = minute_of(now)
        kinds = ("CONTAINER_START", "CONTAINER_STOP", *DRIFT_KINDS, "ATTESTATION_STATUS", "AGENT_WARNING")
        return self.render(
            request,
            "health.html",
            session=session,
            nodes=rows,
            events_chart=stacked_bars(
                events, end_minute=end, minutes=60, order=kinds, title="events received per minute"
            ),
            decisions_chart=stacked_bars(
                decisions,
                end_minute=end,
                minutes=60,
                order=queries.OUTCOMES,
                title="admission decisions per minute",
            ),
            agent_status=lambda row: _agent_status(row, now),
        )

    async def simulate_form(self, request: Request, session: ConsoleSession) -> Response:
        return self.render(
            request,
            "simulate.html",
            session=session,
            config=EXAMPLE_CANDIDATE,
            baseline="",
            days=7,
            report=None,
            error=None,
            errors=[],
        )

    async def simulate(self, request: Request, session: ConsoleSession) -> Response:
        form = await self._form(request)
        if not session.csrf_ok(form.get("csrf")):
            return self.render(
                request, "error.html", session=session, status=403, message="missing or wrong CSRF token"
            )
        for scope in (SCOPE_RUNTIME_READ, SCOPE_ADMISSION_READ):
            session.principal.require(scope)
        config, baseline = form.get("config", ""), form.get("baseline", "")
        days_text = form.get("days", "7")
        context: dict[str, Any] = {
            "config": config,
            "baseline": baseline,
            "days": days_text,
            "report": None,
            "error": None,
            "errors": [],
        }
        try:
            if not days_text.isdigit():
                raise SimulationError(400, "days must be a whole number")
            include = [name for name in ("workloads", "requests") if form.get(name, "on") == "on"] or [
                "workloads",
                "requests",
            ]
            sim = request_from_json(
                {"config": config, "baseline": baseline or None, "days": int(days_text), "include": include}
            )
            context["report"] = await self.simulations.run(session.principal.tenant, sim)
            context["report_json"] = orjson.dumps(context["report"], option=orjson.OPT_INDENT_2).decode()
        except SimulationError as exc:
            context["error"], context["errors"] = str(exc), exc.errors
            return self.render(request, "simulate.html", session=session, status=exc.status, **context)
        return self.render(request, "simulate.html", session=session, **context)

    # -------------------------------------------------------------------------------------------- APIs

    async def api_login_link(self, request: Request, principal: Principal) -> Response:
        """``POST /api/v1/scanner/console/login-links``: a one-time console login for the caller."""
        code, expires = await anyio.to_thread.run_sync(self.sessions.create_link, principal, self.now_us())
        base = f"{request.url.scheme}://{request.headers.get('host', '')}"
        body = {
            "url": f"{base}/ui/login/link?{urlencode({'code': code})}",
            "expiresAt": _iso(expires).replace(" ", "T"),
            "tenant": principal.tenant,
            "subject": principal.subject,
        }
        return Response(
            orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    async def api_simulate(self, request: Request, principal: Principal) -> Response:
        """``POST /api/v1/scanner/policy/simulations``."""
        for scope in (SCOPE_POLICY_SIMULATE, SCOPE_RUNTIME_READ, SCOPE_ADMISSION_READ):
            principal.require(scope)
        raw = await self.service.body(request)
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise SimulationError(400, "body must be a JSON object")
            sim = request_from_json(data)
            report = await self.simulations.run(principal.tenant, sim)
        except orjson.JSONDecodeError as exc:
            return _json_error(400, f"body is not valid JSON: {exc}")
        except SimulationError as exc:
            body: dict[str, Any] = {"error": str(exc), "status": exc.status}
            if exc.errors:
                body["errors"] = [{"path": p, "message": m} for p, m in exc.errors]
            return Response(orjson.dumps(body), status_code=exc.status, media_type="application/json")
        return Response(orjson.dumps(report), media_type="application/json")


def _json_error(status: int, message: str) -> Response:
    return Response(
        orjson.dumps({"error": message, "status": status}), status_code=status, media_type="application/json"
    )


def _agent_status(row: dict[str, Any], now_us: int) -> str:
    """No heartbeat exists: "active" = an event in the last 5 min, "quiet" = in the last hour."""
    age = (now_us - row["last_received_us"]) / 1_000_000
    if age <= 300:
        return "active"
    return "quiet" if age <= 3600 else "silent"


def pasted_headers(text: str) -> list[tuple[bytes, bytes]]:
    """The request headers in what an operator pasted: the JSON printed by ``zastava authority token
    --method POST --url …/ui/login``, ``Name: value`` lines, or a bare token (sent as ``Bearer``)."""
    text = text.strip()
    if not text:
        return []
    if len(text) > 64_000:
        raise BadInput("pasted credentials are too long")
    found: dict[str, str] = {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise BadInput("pasted JSON is not valid") from None
        if not isinstance(data, dict):
            raise BadInput("pasted JSON must be an object")
        for key, value in data.items():
            if str(key).lower() in ("authorization", "dpop") and isinstance(value, str):
                found[str(key).lower()] = value
        if not found and isinstance(data.get("access_token"), str):
            found["authorization"] = f"{data.get('token_type') or 'Bearer'} {data['access_token']}"
    elif "\n" in text or text.lower().startswith(("authorization:", "dpop:")):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() in ("authorization", "dpop"):
                found[name.strip().lower()] = value.strip()
    else:
        found["authorization"] = text if " " in text else f"Bearer {text}"
    if not found:
        raise BadInput("no Authorization header found in what was pasted")
    out = []
    for name, value in found.items():
        if any(ord(ch) < 32 for ch in value):
            raise BadInput(f"pasted {name} contains control characters")
        out.append((name.encode(), value.encode("latin-1", errors="replace")))
    return out
