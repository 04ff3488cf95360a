"""The webhook's handlers behind Starlette routing: the benchmark's comparison for the raw ASGI app that
``zastava webhook serve`` runs, and a second front for the app's unit tests (both must answer alike)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from zastava.webhook.app import WebhookApp

_JSON = "application/json"


def _too_large() -> Response:
    return Response(b'{"error":"body too large"}', 413, media_type=_JSON)


def starlette_app(webhook: WebhookApp) -> Starlette:
    async def admit(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > webhook.max_body_bytes:
            return _too_large()
        body = await request.body()
        if len(body) > webhook.max_body_bytes:
            return _too_large()
        status, data = await webhook.admit(body, request.query_params.get("timeout"))
        return Response(data, status, media_type=_JSON)

    async def healthz(request: Request) -> Response:
        return Response(b"ok\n", media_type="text/plain")

    async def readyz(request: Request) -> Response:
        ok = webhook.ready()
        return Response(b"ready\n" if ok else b"not ready\n", 200 if ok else 503, media_type="text/plain")

    async def metrics(request: Request) -> Response:
        return Response(webhook.metrics_body(), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/admit", admit, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )
