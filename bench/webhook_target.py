"""The process under load in ``bench_webhook.py``: one HTTPS server on loopback, in one of three variants.

``python bench/webhook_target.py VARIANT PORT CERT KEY BACKEND_URL [--no-decisions] [--httptools] [--quiet]
[--workers N]``

``--workers N`` (``raw`` only): ``zastava.webhook.workers: N`` — the supervisor of ``zastava webhook serve``
with N worker processes (:mod:`zastava.webhook.workers`; each uses uvicorn's ``http="auto"``: httptools).
Every variant settles its heap before serving, as ``zastava webhook serve`` does.

* ``raw`` — the webhook as ``zastava webhook serve`` runs it (raw ASGI :class:`WebhookApp`).
* ``starlette`` — the same admitter behind Starlette routing (:func:`starlette_app`).
* ``bare`` — the baseline: a bare ASGI handler that reads the body and answers a fixed AdmissionReview.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.webhook_starlette import starlette_app

from zastava.config import ZastavaConfig
from zastava.telemetry.setup import runtime_core, settle_heap
from zastava.webhook.server import WebhookServer, bind_socket, build_webhook

FIXED = (
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":'
    b'{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}'
)


async def bare(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(FIXED)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": FIXED})


def main() -> None:
    variant, port, cert, key, backend = sys.argv[1:6]
    decisions = "--no-decisions" not in sys.argv
    workers = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else 1
    config = ZastavaConfig(
        backend={"baseAddress": backend, "allowInsecureHttp": True, "requestTimeoutSeconds": 5},
        admission={"resolveTags": False},
        runtime={"authority": {"requireMutualTls": False}},
        webhook={
            "listen": f"127.0.0.1:{port}",
            "certPath": cert,
            "keyPath": key,
            "postDecisions": decisions,
            "workers": workers,
        },
    )
    if workers > 1:
        from zastava.telemetry.logging import configure_logging
        from zastava.webhook.workers import run_workers

        if "--quiet" in sys.argv:  # the workers log to stderr: to /dev/null, like the other variants' logs
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
        configure_logging("WARNING")
        sys.exit(run_workers(config, bind_socket("127.0.0.1", int(port), reuse_port=True), workers))
    sink = open(os.devnull, "w") if "--quiet" in sys.argv else sys.stderr  # noqa: SIM115 (process lifetime)
    metrics = runtime_core(config, "webhook", stream=sink)
    components = build_webhook(config, metrics=metrics)
    if variant == "starlette":
        inner = starlette_app(components.app)
        raw = components.app

        async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
            if scope["type"] == "lifespan":
                await raw(scope, receive, send)
            else:
                await inner(scope, receive, send)

        components.app = app  # type: ignore[assignment]
    elif variant == "bare":
        components.app = bare  # type: ignore[assignment]
    http = "httptools" if "--httptools" in sys.argv else "h11"
    server = WebhookServer(
        components, cert_path=cert, key_path=key, sock=bind_socket("127.0.0.1", int(port)), http=http
    )
    settle_heap()
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
