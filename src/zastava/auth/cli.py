"""``zastava authority``: run the reference Authority, fetch a token as an operator, hash a client secret."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Authority OpToks: reference server and operator tools.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> None:
    from ..terminal import fail

    fail(message, code)


@app.command("serve")
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="Authority YAML (root key 'authority').")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0: any free port).")] = 8443,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Server certificate (PEM). Without it: plain HTTP.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM).")] = None,
    client_ca: Annotated[
        Path | None, typer.Option(help="CA for client certificates (optional; bind tokens to them).")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="DEBUG, INFO, WARNING, ERROR (default: zastava.runtime.logging.level)."),
    ] = None,
    zastava_config: Annotated[
        Path | None,
        typer.Option(
            "--zastava-config",
            help="Zastava YAML for the log format and its tenant/environment/deployment scope and tracing "
            "(zastava.runtime); default: the ZASTAVA_* environment and the defaults.",
        ),
    ] = None,
) -> None:
    """Serve discovery, JWKS, the client-credentials token endpoint and /metrics."""
    import uvicorn

    from ..config import ConfigError, load_config
    from ..telemetry.setup import runtime_core
    from ..telemetry.tracing import TracingUnavailable, shutdown_tracing
    from .authority import ReferenceAuthority, load_authority_config
    from .mtls import uvicorn_tls_kwargs

    try:
        metrics = runtime_core(
            load_config(zastava_config, warn=False),
            "authority",
            level=log_level.upper() if log_level else None,
            guardrails=False,
        )
    except ConfigError as exc:
        _fail(str(exc))
    except TracingUnavailable as exc:
        _fail(f"zastava.runtime.tracing.otlpEndpoint: {exc}")

    try:
        settings = load_authority_config(config)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    if (tls_cert is None) != (tls_key is None):
        _fail("--tls-cert and --tls-key go together")
    if client_ca is not None and tls_cert is None:
        _fail("--client-ca needs --tls-cert/--tls-key")
    if not settings.issuer.startswith("https://") and tls_cert is not None:
        _fail(f"issuer {settings.issuer} must be https:// when serving TLS")
    try:
        authority = ReferenceAuthority(settings, config_dir=config.resolve().parent, metrics=metrics)
    except (OSError, ValueError) as exc:
        _fail(f"cannot load client credentials: {exc}")
        return
    kwargs = (
        uvicorn_tls_kwargs(certfile=tls_cert, keyfile=tls_key, client_ca=client_ca)
        if tls_cert is not None and tls_key is not None
        else {}
    )
    try:
        uvicorn.run(authority.app, host=host, port=port, log_level="warning", log_config=None, **kwargs)
    finally:
        shutdown_tracing()


@app.command("token")
def token(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Zastava YAML (uses zastava.runtime.authority).")
    ],
    method: Annotated[
        str | None, typer.Option(help="With --url: print request headers for this call.")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="With --method: the request URL the DPoP proof is for.")
    ] = None,
) -> None:
    """Obtain an OpTok with the configured client; print the token response (or, with --method/--url, the
    headers for one request). Output contains credentials: handle it as a secret."""
    import asyncio
    import json
    import time

    from ..config import ConfigError, load_config
    from .errors import AuthorityError
    from .provider import TokenProvider

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
        return
    if (method is None) != (url is None):
        _fail("--method and --url go together")

    async def run() -> dict[str, object]:
        async with TokenProvider.from_config(cfg.runtime.authority, tenant=cfg.runtime.tenant) as provider:
            if method is not None and url is not None:
                return dict(await provider.headers(method, url))
            tok = await provider.token()
            return {
                "access_token": tok.value,
                "token_type": tok.token_type,
                "expires_in": round(tok.expires_at - time.time()),
                "scope": tok.scope,
                "dpop_jkt": provider.dpop.jkt,
            }

    try:
        result = asyncio.run(run())
    except (AuthorityError, ValueError, OSError) as exc:
        _fail(f"no token: {exc}", 1)
        return
    typer.echo(json.dumps(result, indent=2))


@app.command("hash-secret")
def hash_secret_cmd(
    secret_file: Annotated[Path, typer.Argument(help="File holding the client secret (- for stdin).")],
) -> None:
    """Print the ``secretSha256`` of a client secret, for the Authority YAML."""
    import sys

    from .authority import hash_secret

    text = sys.stdin.read() if str(secret_file) == "-" else secret_file.read_text(encoding="utf-8")
    typer.echo(hash_secret(text.strip()))


@app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Directory for authority.yaml and the client secrets.")],
    issuer: Annotated[str, typer.Option(help="The Authority's public URL.")] = "https://127.0.0.1:8443",
    tenant: Annotated[str, typer.Option(help="Tenant of the observer and webhook clients.")] = "tenant-01",
) -> None:
    """Write a development setup: authority.yaml with observer and webhook clients and their secrets."""
    from .authority import write_dev_setup

    try:
        paths = write_dev_setup(directory, issuer=issuer, tenant=tenant)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    for name, path in paths.items():
        typer.echo(f"{name}\t{path}")


@app.command("example-config")
def example_config() -> None:
    """Print an example Authority YAML."""
    typer.echo(EXAMPLE.strip())


EXAMPLE = """
authority:
  issuer: https://127.0.0.1:8443
  tokenLifetimeSeconds: 300
  keyRotationSeconds: 86400      # 0: rotate only on restart
  requireDpop: true
  requireNonce: false
  tenants: [tenant-01]
  clients:
    - clientId: zastava-observer
      tenant: tenant-01
      secretFile: observer.secret          # or secretSha256: <hex>, or publicKeyPath: observer.pub.pem
      audiences: [scanner, zastava]
      scopes: [api:scanner.runtime.write]
    - clientId: zastava-webhook
      tenant: tenant-01
      secretFile: webhook.secret
      audiences: [scanner, zastava]
      scopes: [api:scanner.policy.read]
"""
