"""A reverse proxy in front of the real loopback registry (``devstack.RegistryServer``) that records every
request it forwards and can trickle its answers: the attacker's registry of the admission red-team tests.

* ``requests`` — ``(method, path)`` of every request that reached it: a reference that must never be looked
  up (denied by a local rule) leaves it empty;
* ``trickle_seconds`` — when set, a GET's body is sent one byte at a time with that pause between bytes, each
  pause shorter than the client's read timeout, so only an overall bound on verification ends it.

Served by uvicorn on loopback in a thread of the test process (:class:`tests.harness.servers.ThreadedServer`);
the registry behind it is the real distribution registry.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

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
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.trickle_seconds: float | None = None
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.server = ThreadedServer(self._app())

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
        self.trickle_seconds = None

    def _app(self) -> Starlette:
        client = httpx.AsyncClient(timeout=30, follow_redirects=False)

        async def proxy(request: Request) -> Response:
            with self._lock:
                self.requests.append((request.method, request.url.path))
            upstream = await client.request(
                request.method,
                f"{self.upstream}{request.url.path}",
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
