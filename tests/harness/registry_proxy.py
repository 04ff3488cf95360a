"""A reverse proxy in front of the real loopback registry (``devstack.RegistryServer``) that records every
request it forwards and can trickle its answers: the attacker's registry of the admission red-team tests.

* ``requests`` — ``(method, path)`` of every request that reached it: a reference that must never be looked
  up (denied by a local rule) leaves it empty;
* ``trickle_seconds`` — when set, a GET's body is sent one byte at a time with that pause between bytes, each
  pause shorter than the client's read timeout, so only an overall bound on verification ends it;
* ``redirect`` — when set, called with ``(method, path)`` of every request; a URL it returns is answered as
  ``307 Location: URL`` (a registry sending downloads to storage, or to 169.254.169.254). ``/moved/PATH`` is
  served as ``PATH``, so a relative ``Location: /moved/…`` is a redirect to the same registry;
* ``basic_auth`` — when set, ``(user, password)`` a request must carry (else ``401`` with ``challenge`` as its
  ``WWW-Authenticate``, default ``Basic``); ``authorization`` records the ``Authorization`` header of every
  request (None when absent).

Served by uvicorn on loopback in a thread of the test process (:class:`tests.harness.servers.ThreadedServer`);
the registry behind it is the real distribution registry.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .servers import ThreadedServer

__all__ = ["RegistryProxy"]

_FORWARDED = (
    "content-type",
    "docker-content-digest",
    "docker-distribution-api-version",
    "location",
    "www-authenticate",
)


class RegistryProxy:
    def __init__(self, upstream: str, *, bind: str = "127.0.0.1") -> None:
        self.upstream = upstream.rstrip("/")
        self.trickle_seconds: float | None = None
        self.redirect: Callable[[str, str], str | None] | None = None
        self.basic_auth: tuple[str, str] | None = None
        self.challenge: str | None = None
        self.requests: list[tuple[str, str]] = []
        self.authorization: list[str | None] = []
        self._lock = threading.Lock()
        self.server = ThreadedServer(self._app(), host=bind)

    @property
    def host(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.authorization.clear()
        self.trickle_seconds = None
        self.redirect = None
        self.basic_auth = None
        self.challenge = None

    def _app(self) -> Starlette:
        client = httpx.AsyncClient(timeout=30, follow_redirects=False)

        async def proxy(request: Request) -> Response:
            with self._lock:
                self.requests.append((request.method, request.url.path))
                self.authorization.append(request.headers.get("authorization"))
            if self.basic_auth is not None:
                user, password = self.basic_auth
                wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if request.headers.get("authorization") != wanted:
                    challenge = self.challenge or 'Basic realm="proxy"'
                    return Response(b"", 401, headers={"www-authenticate": challenge})
            location = self.redirect(request.method, request.url.path) if self.redirect else None
            if location is not None:
                return Response(b"", 307, headers={"location": location})
            path = request.url.path
            while path.startswith("/moved/"):
                path = path[len("/moved") :]
            upstream = await client.request(
                request.method,
                f"{self.upstream}{path}",
                params=dict(request.query_params),
                headers={"Accept": request.headers.get("accept", "*/*")},
            )
            headers = {k: v for k, v in upstream.headers.items() if k.lower() in _FORWARDED}
            if request.method == "HEAD":
                headers["content-length"] = upstream.headers.get("content-length", "0")
                return Response(b"", upstream.status_code, headers=headers)
            pause = self.trickle_seconds
            if pause is None:
                return Response(upstream.content, upstream.status_code, headers=headers)
            content = upstream.content

            async def trickle() -> AsyncIterator[bytes]:
                for index in range(len(content)):
                    await asyncio.sleep(pause)
                    yield content[index : index + 1]

            headers["content-length"] = str(len(content))
            return StreamingResponse(trickle(), upstream.status_code, headers=headers)

        return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "HEAD"])])

    def start(self) -> RegistryProxy:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
