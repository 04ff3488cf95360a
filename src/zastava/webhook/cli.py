"""``zastava webhook serve | review | certs``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..terminal import err, fail, read_input

if TYPE_CHECKING:
    from ..config import ZastavaConfig
    from ..telemetry import ZastavaMetrics
    from .server import WebhookComponents

app = typer.Typer(help="Kubernetes validating admission webhook (spec §4).", no_args_is_help=True)


def _config(path: Path | None, *, warn: bool = True) -> object:
    from ..config import ConfigError, load_config

    try:
        return load_config(path, warn=warn)
    except ConfigError as exc:
        for key, message in exc.errors:
            err.print(f"{key}: {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _build(
    cfg: ZastavaConfig, *, use_backend: bool, metrics: ZastavaMetrics | None = None
) -> WebhookComponents:
    from .server import ConfigurationError, build_configured_webhook

    try:
        return build_configured_webhook(cfg, use_backend=use_backend, metrics=metrics)
    except ConfigurationError as exc:
        fail(str(exc))


@app.command("serve")
def serve_command(
    config: Annotated[Path | None, typer.Option("--config", help="zastava YAML configuration")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="serving certificate (PEM chain)")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="serving key (PEM)")] = None,
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT (default zastava.webhook.listen)")
    ] = None,
    self_signed: Annotated[
        bool,
        typer.Option(
            "--self-signed",
            help="Local use (make run): create a self-signed CA + cert at the cert/key paths if absent.",
        ),
    ] = False,
) -> None:
    """Serve POST /admit, /healthz, /readyz and /metrics over HTTPS (certificate reloaded when it changes)."""
    import asyncio

    from ..config import ZastavaConfig, start_up_problems
    from ..telemetry.setup import runtime_core, settle_heap
    from ..telemetry.tracing import TracingUnavailable, shutdown_tracing
    from .server import bind_socket, parse_listen, serve

    cfg = _config(config, warn=False)  # runtime_core logs the guardrail warnings in the JSON format
    assert isinstance(cfg, ZastavaConfig)
    updates: dict[str, object] = {}
    if cert is not None:
        updates["cert_path"] = str(cert)
    if key is not None:
        updates["key_path"] = str(key)
    if listen is not None:
        updates["listen"] = listen
    if updates:
        cfg = cfg.model_copy(update={"webhook": cfg.webhook.model_copy(update=updates)})
    cert_file, key_file = Path(cfg.webhook.cert_path), Path(cfg.webhook.key_path)
    if self_signed and not (cert_file.is_file() and key_file.is_file()):
        from .certs import generate_certs, write_certs

        if cert_file.parent != key_file.parent or (cert_file.name, key_file.name) != ("tls.crt", "tls.key"):
            fail("--self-signed needs --cert DIR/tls.crt and --key DIR/tls.key in one directory")
        write_certs(generate_certs(extra_dns=["localhost"], ip_addresses=["127.0.0.1"]), cert_file.parent)
        err.print(f"wrote a self-signed CA and certificate to {cert_file.parent} (trust its ca.crt)")
    # the refusals `zastava config validate --component webhook` reports too (one list, zastava.config)
    problems = start_up_problems(cfg, "webhook")
    for path_key, message in problems:
        err.print(f"{path_key}: {message}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    try:
        metrics = runtime_core(cfg, "webhook")
    except TracingUnavailable as exc:
        fail(f"zastava.runtime.tracing.otlpEndpoint: {exc}")
    try:
        host, port = parse_listen(cfg.webhook.listen)
        sock = bind_socket(host, port, reuse_port=cfg.webhook.workers > 1)
    except (ValueError, OSError) as exc:
        fail(f"cannot listen on {cfg.webhook.listen}: {exc}")
    if cfg.webhook.workers > 1:
        from .workers import run_workers

        shutdown_tracing()  # the workers trace (and log) for themselves
        raise typer.Exit(run_workers(cfg, sock, cfg.webhook.workers))
    components = _build(cfg, use_backend=True, metrics=metrics)
    settle_heap()
    try:
        asyncio.run(
            serve(components, cert_path=cfg.webhook.cert_path, key_path=cfg.webhook.key_path, sock=sock)
        )
    except KeyboardInterrupt:
        pass
    finally:
        shutdown_tracing()


@app.command("review")
def review_command(
    source: Annotated[str, typer.Argument(help="AdmissionReview JSON file, or - for standard input")],
    config: Annotated[Path | None, typer.Option("--config", help="zastava YAML configuration")] = None,
    no_backend: Annotated[
        bool,
        typer.Option(
            "--no-backend",
            help="Offline: call neither the backend nor registries (images count as unverifiable).",
        ),
    ] = False,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="as the API server's ?timeout= (10s)")
    ] = None,
    mutate: Annotated[
        bool, typer.Option("--mutate", help="Answer as POST /mutate (digest pinning: the JSONPatch).")
    ] = False,
) -> None:
    """Evaluate one AdmissionReview and print the AdmissionReview response.

    Exit status: 0 allowed, 1 denied, 2 not an AdmissionReview (the error is printed).
    """
    import asyncio

    import orjson

    from ..config import ZastavaConfig

    cfg = _config(config)
    assert isinstance(cfg, ZastavaConfig)
    body = read_input(source)
    components = _build(cfg, use_backend=not no_backend)

    async def run() -> tuple[int, bytes]:
        try:
            handler = components.app.mutate if mutate else components.app.admit
            return await handler(body, timeout)
        finally:
            await components.close_clients()

    status, data = asyncio.run(run())
    if status != 200:
        fail(orjson.loads(data).get("error", data.decode()))
    document = orjson.loads(data)
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    raise typer.Exit(0 if document["response"]["allowed"] else 1)


@app.command("certs")
def certs_command(
    out: Annotated[Path, typer.Option("--out", help="directory for ca.crt, ca.key, tls.crt, tls.key")],
    service: Annotated[str, typer.Option("--service", help="webhook Service name")] = "zastava-webhook",
    namespace: Annotated[str, typer.Option("--namespace", help="webhook namespace")] = "stellaops",
    dns: Annotated[list[str] | None, typer.Option("--dns", help="extra DNS name (repeatable)")] = None,
    ip: Annotated[list[str] | None, typer.Option("--ip", help="IP address SAN (repeatable)")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=3650)] = 365,
) -> None:
    """Generate a self-signed CA and a serving certificate for <service>.<namespace>.svc; print caBundle."""
    from .certs import generate_certs, write_certs

    try:
        bundle = generate_certs(service, namespace, extra_dns=dns, ip_addresses=ip, days=days)
        paths = write_certs(bundle, out)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    for name, path in paths.items():
        err.print(f"wrote {name}: {path}", highlight=False)
    typer.echo(bundle.ca_bundle)
