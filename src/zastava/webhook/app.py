"""HTTP layer: ``POST /admit``, ``POST /mutate`` (digest pinning), ``/healthz``, ``/readyz``, ``/metrics``
as a raw ASGI app (the hot path).

:class:`WebhookApp` is a plain ASGI callable (``bench/bench_webhook.py`` compares it with the same handlers
behind Starlette routing, ``tests/harness/webhook_starlette.py``). ``/admit`` always
answers a well-formed AdmissionReview response, or a 400 when the body is not an AdmissionReview at all, a
413 when it exceeds ``maxBodyBytes``: never a 500. Every other answer — including an AdmissionReview with a
readable ``request.uid`` but invalid fields, and an unexpected error inside the admitter (answered like a
backend failure) — is settled by the admitter's one decision (:mod:`.decision`: fail-open/closed per
namespace, ``enforce: false`` admits with a dry-run warning). ``/mutate`` admits, with a JSONPatch when
images could be pinned.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..telemetry import ZastavaMetrics
from .admitter import Admitter
from .review import (
    AdmissionResponse,
    ReviewError,
    load_review,
    parse_review,
    review_response,
    validate_review,
)

__all__ = ["WebhookApp"]

log = logging.getLogger("zastava.webhook.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _uid_of(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    request = data.get("request") if isinstance(data, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    return uid if isinstance(uid, str) and 0 < len(uid) <= 256 else None


def query_timeout(query_string: bytes) -> str | None:
    if b"timeout=" not in query_string:
        return None
    return _timeout_param(query_string) if len(query_string) <= 256 else _parse_timeout(query_string)


def _parse_timeout(query_string: bytes) -> str | None:
    values = parse_qs(query_string.decode("latin-1")).get("timeout")
    return values[0] if values else None


#: the API server sends the same ``?timeout=10s`` on every review: parsed once (parse_qs costs ~5 µs)
_timeout_param = functools.lru_cache(maxsize=64)(_parse_timeout)


class WebhookApp:
    def __init__(
        self,
        admitter: Admitter,
        *,
        metrics: ZastavaMetrics | None = None,
        max_body_bytes: int = 8 * 1024 * 1024,
        ready: Callable[[], bool] = lambda: True,
        on_startup: list[Callable[[], Awaitable[None]]] | None = None,
        on_shutdown: list[Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self.admitter = admitter
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.ready = ready
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []

    # ------------------------------------------------------------------------------------- handlers

    async def admit(self, body: bytes, timeout_param: str | None) -> tuple[int, bytes]:
        """(HTTP status, body) for one ``POST /admit``: a warm answer when the admitter has one
        (:meth:`Admitter.warm_answer`), else the full review."""
        try:
            data = load_review(body)
            try:
                warm = self.admitter.warm_answer(data)
            except Exception:  # the full review answers instead
                log.exception("warm answer failed")
                warm = None
            if warm is not None:
                return 200, warm
            review = validate_review(data)
        except ReviewError as exc:
            uid = _uid_of(body)
            if uid is None:
                return 400, _error(str(exc))
            return 200, review_response(self.admitter.invalid_review(uid, str(exc)))
        try:
            response = await self.admitter.review(review, timeout_param=timeout_param)
        except Exception as exc:  # a bug must not become a 500: answer as for an unavailable backend
            log.exception(
                "admission failed unexpectedly", extra={"zastava_fields": {"uid": review.request.uid}}
            )
            response = self.admitter.internal_error(review.request, exc)
        return 200, review_response(response)

    async def mutate(self, body: bytes, timeout_param: str | None) -> tuple[int, bytes]:
        """(HTTP status, body) for one ``POST /mutate``: digest pinning. Never denies: a body that is not an
        AdmissionReview is a 400, anything else is admitted (with a patch, or without when something failed:
        the validating ``/admit`` decides)."""
        try:
            review = parse_review(body)
        except ReviewError as exc:
            uid = _uid_of(body)
            if uid is None:
                return 400, _error(str(exc))
            return 200, review_response(AdmissionResponse(uid=uid, allowed=True))
        try:
            response = await self.admitter.mutate(review, timeout_param=timeout_param)
        except Exception:  # pinning is best effort; /admit still gates the Pod
            log.exception("digest pinning failed", extra={"zastava_fields": {"uid": review.request.uid}})
            response = AdmissionResponse(uid=review.request.uid, allowed=True)
        return 200, review_response(response)

    def metrics_body(self) -> bytes:
        return self.metrics.render() if self.metrics is not None else b""

    # ----------------------------------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        log.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        method = scope["method"]
        if path == "/admit" or path == "/mutate":
            if method != "POST":
                return await _respond(send, 405, _error("use POST"), _JSON)
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                return await _respond(send, 413, _error(f"body exceeds {self.max_body_bytes} bytes"), _JSON)
            handler = self.admit if path == "/admit" else self.mutate
            status, data = await handler(body, query_timeout(scope.get("query_string", b"")))
            return await _respond(send, status, data, _JSON)
        if method not in ("GET", "HEAD"):
            return await _respond(send, 405, _error("method not allowed"), _JSON)
        if path == "/healthz":
            return await _respond(send, 200, b"ok\n", _TEXT)
        if path == "/readyz":
            ok = self.ready()
            return await _respond(send, 200 if ok else 503, b"ready\n" if ok else b"not ready\n", _TEXT)
        if path == "/metrics":
            headers = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
            return await _respond(send, 200, self.metrics_body(), headers)
        return await _respond(send, 404, _error("not found"), _JSON)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
