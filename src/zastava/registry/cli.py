"""``zastava registry resolve|referrers`` and ``zastava verify``.

``verify`` exits 0 when the image is signed by a trusted key/identity (under the digest policy), 1 when it is
not, 2 on errors (bad arguments, unreadable trust material, registry unreachable).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from ..config import Registry
    from .transport.client import RegistryClient

app = typer.Typer(help="OCI registry: digest resolution and referrers.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Zastava YAML (uses its zastava.registry section).")
]
InsecureOption = Annotated[
    list[str] | None, typer.Option("--insecure-registry", help="Allow plain HTTP to this registry host.")
]
DockerConfigOption = Annotated[
    Path | None, typer.Option("--docker-config", help="docker config.json with registry credentials.")
]
PlatformOption = Annotated[
    str | None, typer.Option("--platform", help="os/arch or os/arch/variant (default linux/amd64).")
]


def _fail(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _section(
    config: Path | None, insecure: list[str] | None, docker_config: Path | None, platform: str | None
) -> Registry:
    from ..config import ConfigError, Registry, load_config

    try:
        section = load_config(config, warn=False).registry if config else Registry()
    except ConfigError as exc:
        _fail(str(exc))
    update: dict[str, Any] = {}
    if insecure:
        update["insecure_registries"] = [*section.insecure_registries, *insecure]
    if docker_config:
        update["docker_config_path"] = str(docker_config)
    if platform:
        update["platform"] = platform
    return section.model_copy(update=update)


def _client(section: Registry) -> RegistryClient:
    from .settings import client_config, credentials
    from .transport.client import RegistryClient

    try:
        return RegistryClient(client_config(section), credentials(section))
    except ValueError as exc:
        _fail(str(exc))


def _run(coro: Any) -> Any:
    from .errors import RegistryError

    try:
        return asyncio.run(coro)
    except RegistryError as exc:
        _fail(f"{type(exc).__name__}: {exc}")


@app.command("resolve")
def resolve(
    ref: Annotated[str, typer.Argument(help="Image reference, e.g. registry:5000/app:1")],
    config: ConfigOption = None,
    insecure_registry: InsecureOption = None,
    docker_config: DockerConfigOption = None,
    platform: PlatformOption = None,
) -> None:
    """Resolve a tag to its digest(s): the index digest and the platform manifest digest."""
    section = _section(config, insecure_registry, docker_config, platform)

    async def go() -> dict[str, Any]:
        async with _client(section) as client:
            return (await client.resolve(ref)).to_json()

    sys.stdout.write(json.dumps(_run(go()), indent=2) + "\n")


@app.command("referrers")
def referrers(
    ref: Annotated[str, typer.Argument(help="Image reference (tag or digest)")],
    artifact_type: Annotated[
        str | None, typer.Option("--artifact-type", help="Only this artifactType.")
    ] = None,
    config: ConfigOption = None,
    insecure_registry: InsecureOption = None,
    docker_config: DockerConfigOption = None,
) -> None:
    """List referrers (OCI 1.1 API, or the sha256-<hex> tag fallback), optionally by artifact type."""
    section = _section(config, insecure_registry, docker_config, None)

    async def go() -> dict[str, Any]:
        async with _client(section) as client:
            found = await client.referrers(ref, artifact_type)
            return {
                "subject": found.subject,
                "source": found.source,
                "referrers": [d.to_json() for d in found],
                "rejected": found.rejected,
            }

    sys.stdout.write(json.dumps(_run(go()), indent=2) + "\n")


def verify(
    ref: Annotated[str, typer.Argument(help="Image reference (tag or digest)")],
    key: Annotated[
        list[Path] | None, typer.Option("--key", help="cosign public key (PEM); repeatable.")
    ] = None,
    identity: Annotated[str | None, typer.Option("--identity", help="Keyless: certificate subject.")] = None,
    identity_regexp: Annotated[
        str | None, typer.Option("--identity-regexp", help="Keyless: certificate subject regex.")
    ] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="Keyless: OIDC issuer URL.")] = None,
    issuer_regexp: Annotated[
        str | None, typer.Option("--issuer-regexp", help="Keyless: OIDC issuer regex.")
    ] = None,
    trusted_root: Annotated[
        str | None, typer.Option("--trusted-root", help="trusted_root.json, or sigstore-public-good.")
    ] = None,
    digest_policy: Annotated[
        str | None, typer.Option("--digest-policy", help="index | platform | any | all")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full posture as JSON.")] = False,
    config: ConfigOption = None,
    insecure_registry: InsecureOption = None,
    docker_config: DockerConfigOption = None,
    platform: PlatformOption = None,
) -> None:
    """Verify an image's signature: exit 0 verified, 1 not verified, 2 error. Prints the reasons."""
    from .errors import TrustConfigError
    from .settings import default_signers
    from .verification.trust import BUILTIN_ROOT, KeylessIdentity, TrustedSigners

    section = _section(config, insecure_registry, docker_config, platform)
    if digest_policy is not None:
        if digest_policy not in ("index", "platform", "any", "all"):
            _fail("--digest-policy must be index, platform, any or all")
        section = section.model_copy(update={"digest_policy": digest_policy})
    keyless = any(v is not None for v in (identity, identity_regexp, issuer, issuer_regexp))
    try:
        if key or keyless:
            identities = []
            if keyless:
                if (issuer is None) == (issuer_regexp is None) or (identity is None) == (
                    identity_regexp is None
                ):
                    _fail(
                        "keyless verification needs one of --issuer / --issuer-regexp and one of "
                        "--identity / --identity-regexp"
                    )
                identities.append(
                    KeylessIdentity(
                        issuer=issuer,
                        issuer_regex=issuer_regexp,
                        subject=identity,
                        subject_regex=identity_regexp,
                    )
                )
            root = trusted_root or section.trust.trusted_root_path
            if keyless and root is None:
                root = BUILTIN_ROOT  # the Sigstore public-good root shipped with the sigstore package
            policy = TrustedSigners.from_files(
                key or [],
                identities,
                root,
                require_tlog_for_keys=section.trust.require_tlog_for_keys,
            )
        else:
            policy = default_signers(section)
    except TrustConfigError as exc:
        _fail(f"{exc.path}: {exc}" if exc.path else str(exc))
    if policy.empty:
        _fail(
            "nothing to verify against: give --key, or --identity/--issuer, or a config with trust settings"
        )

    from .posture import check_posture

    async def go() -> Any:
        async with _client(section) as client:
            return await check_posture(client, ref, policy, digest_policy=section.digest_policy)

    posture = _run(go())
    if as_json:
        sys.stdout.write(posture.model_dump_json(by_alias=True, indent=2) + "\n")
    else:
        status = "verified" if posture.signed else ("error" if posture.error else "NOT verified")
        sys.stdout.write(f"{posture.reference}: {status}\n")
        if posture.resolved:
            sys.stdout.write(f"  resolved: {posture.resolved}\n")
        for signer in posture.signed_by:
            sys.stdout.write(f"  signed by: {signer}\n")
        if posture.rekor_uuid:
            sys.stdout.write(f"  rekor uuid: {posture.rekor_uuid}\n")
        sys.stdout.write(f"  sbom: {', '.join(posture.sbom_media_types) or 'none'}\n")
        for reason in posture.reasons:
            sys.stdout.write(f"  reason: {reason}\n")
    if posture.error:
        raise typer.Exit(2)
    raise typer.Exit(0 if posture.signed else 1)
