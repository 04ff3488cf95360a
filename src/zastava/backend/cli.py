"""CLI of the reference backend: ``zastava backend serve``, ``zastava catalog import``,
``zastava runtime policy test`` (spec §3.4 step 4). Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from ..terminal import fail, read_input, write_json

__all__ = ["backend_app", "catalog_app", "runtime_app"]


backend_app = typer.Typer(help="The reference runtime backend.", no_args_is_help=True)
catalog_app = typer.Typer(help="The backend's image catalog.", no_args_is_help=True)
runtime_app = typer.Typer(help="Runtime policy and events, as the backend sees them.", no_args_is_help=True)
policy_app = typer.Typer(help="Runtime policy verdicts.", no_args_is_help=True)
runtime_app.add_typer(policy_app, name="policy")

BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Backend base URL (default $ZASTAVA_BACKEND_URL, else zastava.backend.baseAddress of --config, "
        "else http://127.0.0.1:8080).",
    ),
]
ClientConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Zastava YAML: credentials and TLS from zastava.runtime.authority (OpTok, DPoP, client "
        "certificate, caBundlePath), the backend from zastava.backend.",
    ),
]
InsecureOption = Annotated[
    bool, typer.Option("--allow-insecure-http", help="Allow http:// to a non-loopback backend.")
]


def _call_backend(
    config_path: Path | None,
    backend: str | None,
    allow_insecure_http: bool,
    component: str,
    method: str,
    path: str,
    **kwargs: Any,
) -> Any:
    """One backend call with the operator's credentials; exits 2 on configuration errors, 1 when the
    backend cannot be reached or refuses (with its reason)."""
    import asyncio

    import httpx

    from ..auth.errors import AuthorityError
    from ..auth.operator import OperatorConfigError, operator_client, operator_config

    try:
        config = operator_config(config_path, backend, allow_insecure_http=allow_insecure_http)
    except OperatorConfigError as exc:
        fail(str(exc))

    async def call() -> tuple[httpx.Response, str]:
        async with operator_client(config, component=component) as client:
            response = await client.request(method, path, **kwargs)
            return response, client.refusal_hint(response)

    url = config.backend.base_address + path
    try:
        response, hint = asyncio.run(call())
    except (ValueError, OSError) as exc:  # unusable credentials or certificates named in the config
        fail(f"zastava.runtime.authority: {exc}")
    except AuthorityError as exc:
        fail(f"no OpTok from the Authority: {exc}", 1)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the backend at {url}: {type(exc).__name__}: {exc}", 1)
    if response.status_code != 200:
        fail(f"backend refused {method} {path} ({response.status_code}): {_error_text(response)}{hint}", 1)
    return response.json()


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


@backend_app.command("serve")
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML configuration (zastava.backendServer).")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="sqlite:///PATH (default) or postgresql://…")
    ] = None,
    listen: Annotated[str | None, typer.Option("--listen", help="HOST:PORT (default 127.0.0.1:8080)")] = None,
    policy: Annotated[Path | None, typer.Option("--policy", help="Backend policy file (YAML).")] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR (default runtime.logging.level)"),
    ] = None,
) -> None:
    """Serve the backend API (migrations are applied to the store on start)."""
    import uvicorn
    from pydantic import ValidationError

    from ..config import BackendServer, ConfigError, load_config, start_up_problems
    from ..telemetry import settle_heap
    from ..telemetry.logging import fields
    from ..telemetry.setup import runtime_core
    from ..telemetry.tracing import TracingUnavailable, shutdown_tracing
    from .app import create_app
    from .policy import PolicyError
    from .store import StoreError

    try:
        cfg = load_config(config, warn=False)
    except ConfigError as exc:
        fail(str(exc))
    overrides: dict[str, Any] = {}
    if store:
        overrides["store"] = store
    if listen:
        overrides["listen"] = listen
    if policy:
        overrides["policy_file"] = str(policy)
    try:
        settings = BackendServer.model_validate({**cfg.backend_server.model_dump(), **overrides})
    except ValidationError as exc:
        fail(
            "; ".join(
                ".".join(["zastava.backendServer", *map(str, e["loc"])])
                + ": "
                + e["msg"].removeprefix("Value error, ")
                for e in exc.errors(include_url=False)
            )
        )
    # the refusals `zastava config validate --component backend` reports too (one list, zastava.config)
    problems = start_up_problems(cfg.model_copy(update={"backend_server": settings}), "backend")
    if problems:
        fail("\n".join(f"{key}: {message}" for key, message in problems))
    host, port = _split_listen(settings.listen)
    try:
        runtime_core(cfg, "backend", level=log_level.upper() if log_level else None, guardrails=False)
    except TracingUnavailable as exc:
        fail(f"zastava.runtime.tracing.otlpEndpoint: {exc}")
    authenticator = None
    tls: dict[str, Any] = {}
    if settings.auth_mode == "optok":
        from .optok import optok_authenticator

        authenticator, _verifier = optok_authenticator(cfg.model_copy(update={"backend_server": settings}))
    if settings.tls_cert_file and settings.tls_key_file:
        from ..auth import uvicorn_tls_kwargs

        tls = uvicorn_tls_kwargs(
            certfile=settings.tls_cert_file, keyfile=settings.tls_key_file, client_ca=settings.client_ca_file
        )
    from ..registry.errors import TrustConfigError
    from ..registry.settings import image_verifier, trust_configured

    # /policy/runtime verifies signatures in the registries (zastava.admission.trustPolicies, and the default
    # signers of zastava.registry.trust); with neither configured nothing could verify, so nothing is signed
    try:
        verifier = image_verifier(cfg) if trust_configured(cfg) else None
    except TrustConfigError as exc:
        fail(f"{exc.path}: {exc}" if exc.path else str(exc))
    try:
        app = create_app(settings, authenticator=authenticator, verifier=verifier)
    except (StoreError, PolicyError) as exc:
        fail(str(exc))
    settle_heap()
    scheme = "https" if tls else "http"
    logging.getLogger("zastava.backend").info(
        "backend serving",
        extra=fields(
            url=f"{scheme}://{host}:{port}", auth=settings.auth_mode, store=app.service.store.redacted_url
        ),
    )
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,  # uvicorn's records go through the JSON handler of runtime_core
            access_log=False,
            lifespan="on",
            limit_concurrency=settings.max_concurrent_requests,  # beyond it: 503, bounded memory
            **tls,
        )
    finally:
        shutdown_tracing()


@backend_app.command("check-policy")
def check_policy(
    source: Annotated[str, typer.Argument(help="Backend policy file (YAML), or - for stdin.")],
) -> None:
    """Validate a backend policy file; print its revision (exit 2 with the offending key when invalid)."""
    from .policy import PolicyError, load_policy

    try:
        policy = load_policy(read_input(source).decode("utf-8", errors="replace"), source)
    except PolicyError as exc:
        fail(str(exc))
    typer.echo(
        f"valid: {len(policy.rules)} rule(s), ttlSeconds {policy.ttl_seconds}, revision {policy.revision()}"
    )


@catalog_app.command("import")
def catalog_import(
    image: Annotated[str, typer.Option("--image", help="Image digest sha256:<hex> (or repo@sha256:<hex>).")],
    sbom: Annotated[str | None, typer.Option("--sbom", help="CycloneDX JSON file, or - for stdin.")] = None,
    signed: Annotated[bool, typer.Option("--signed", help="The image signature was verified.")] = False,
    rekor: Annotated[str | None, typer.Option("--rekor", help="Rekor entry UUID.")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base image digest.")] = None,
    backend: BackendOption = None,
    config: ClientConfigOption = None,
    allow_insecure_http: InsecureOption = False,
) -> None:
    """Put an image's SBOM and posture facts into the backend catalog (needs the catalog write scope)."""
    from .catalog import image_digest

    digest = image_digest(image)
    if digest is None:
        fail(f"--image must be sha256:<64 hex> or repo@sha256:<64 hex>, got {image!r}")
    body: dict[str, Any] = {"signed": signed}
    if sbom is not None:
        try:
            body["sbom"] = json.loads(read_input(sbom))
        except ValueError as exc:
            fail(f"{sbom} is not JSON: {exc}")
    if rekor:
        body["rekor"] = {"uuid": rekor}
    if base:
        body["baseImageDigest"] = base
    path = f"/api/v1/scanner/catalog/images/{digest}"
    entry = _call_backend(config, backend, allow_insecure_http, "catalog-import", "PUT", path, json=body)
    typer.echo(
        f"{entry['digest']}: signed={str(entry['signed']).lower()} hasSbom={str(entry['hasSbom']).lower()} "
        f"components={len(entry['components'])} vulnerabilities={len(entry['vulnerabilities'])}"
    )


@policy_app.command("test")
def policy_test(
    image: Annotated[str, typer.Option("--image", help="Image digest or reference.")],
    namespace: Annotated[str | None, typer.Option("--namespace", help="Namespace the image runs in.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Pod label KEY=VALUE (repeatable).")
    ] = None,
    backend: BackendOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the backend response as JSON.")] = False,
    config: ClientConfigOption = None,
    allow_insecure_http: InsecureOption = False,
) -> None:
    """Print the backend's verdict, reasons and most recent build-ids for an image.

    Exit status 0 whatever the verdict; 1 when the backend cannot answer or refuses; 2 on bad arguments.
    """
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--label must be KEY=VALUE, got {item!r}")
        labels[key] = value
    request: dict[str, Any] = {"images": [image], "labels": labels}
    if namespace is not None:
        request["namespace"] = namespace
    data = _call_backend(
        config, backend, allow_insecure_http, "policy-test", "POST", _policy_path(config), json=request
    )
    if as_json:
        write_json(data)
        return
    result = data["results"].get(image)
    if result is None:  # the backend could not verify it in time (registry unreachable): no verdict
        fail(f"the backend gave no verdict for {image}: it could not verify its signatures (see its log)", 1)
    typer.echo(f"image:     {image}")
    typer.echo(f"verdict:   {result['policyVerdict']}")
    typer.echo(f"signed:    {str(result['signed']).lower()}")
    typer.echo(f"hasSbom:   {str(result['hasSbom']).lower()}")
    typer.echo("reasons:   " + ("; ".join(result.get("reasons") or []) or "-"))
    typer.echo("buildIds:  " + (" ".join(result.get("buildIds") or []) or "-"))
    if result.get("rekor", {}).get("uuid"):
        typer.echo(f"rekor:     {result['rekor']['uuid']}")
    typer.echo(f"ttl:       {data['ttlSeconds']}s   policyRevision: {data.get('policyRevision', '-')}")


def _policy_path(config: Path | None) -> str:
    from ..config import ConfigError, load_config

    try:
        return load_config(config, warn=False).backend.policy_path
    except ConfigError as exc:
        fail(str(exc))


def _error_text(response: Any) -> str:
    try:
        return str(response.json().get("error", response.text))[:2000]
    except ValueError:
        return str(response.text)[:2000]
