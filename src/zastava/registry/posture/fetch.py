"""Fetching the signature material of one image digest: cosign's ``.sig``/``.att``/``.sbom`` tags, and its
referrers (OCI 1.1 API or the tag-schema fallback) — sigstore bundles and SBOM artifacts.

Everything fetched is bounded (layer count, payload sizes from the client's limits). An unreachable registry
(:class:`~zastava.registry.errors.RegistryUnavailable`) propagates: the caller then knows nothing and applies
fail-open/closed. Anything else that goes wrong with one piece (a tag that is an index, a referrer whose
subject is another digest, a missing blob) becomes a problem recorded in the material, and that piece is
left out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Literal

from ..errors import RegistryError, RegistryUnavailable
from ..reference import ImageReference, fallback_tag
from ..transport.client import RegistryClient
from ..transport.manifest import Manifest
from ..transport.referrers import Referrers, is_sbom_media_type
from ..verification.bundles import is_bundle_type
from ..verification.cosign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    LegacyLayer,
)
from ..verification.dsse import DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE
from ..verification.policies import BundleBlob, Material

__all__ = ["fetch_legacy", "fetch_material"]

_MAX_LAYERS = 32  # signatures per .sig/.att manifest considered (cosign appends one layer per signature)
_MAX_PAYLOAD = 256 * 1024  # a simple-signing payload is ~300 bytes; 256 KiB leaves room for annotations
_MAX_BUNDLES = 32


async def fetch_legacy(
    client: RegistryClient, ref: ImageReference, digest: str, suffix: Literal[".sig", ".att"]
) -> list[LegacyLayer]:
    """The layers of the ``sha256-<hex><suffix>`` manifest ([] when the tag does not exist)."""
    tag = fallback_tag(digest, suffix)
    manifest: Manifest | None = await client.find_manifest(ref.with_tag(tag))
    if manifest is None:
        return []
    if manifest.is_index:
        raise RegistryError(f"{tag} is an index, not a cosign {suffix} manifest")
    out = []
    for layer in manifest.layers()[:_MAX_LAYERS]:
        limit = client.config.max_blob_bytes
        payload = await client.get_blob(ref, layer.digest, max_bytes=min(limit, _MAX_PAYLOAD))
        raw_sig = layer.annotations.get(SIGNATURE_ANNOTATION, "")
        try:
            signature = base64.b64decode(raw_sig, validate=True) if raw_sig else b""
        except binascii.Error:
            signature = b"\x00invalid-base64"  # never verifies; the reason says the signature is bad
        out.append(
            LegacyLayer(
                tag=tag,
                media_type=layer.media_type,
                layer_digest=layer.digest,
                payload=payload,
                signature=signature,
                certificate=layer.annotations.get(CERTIFICATE_ANNOTATION) or None,
                chain=layer.annotations.get(CHAIN_ANNOTATION) or None,
                bundle=layer.annotations.get(BUNDLE_ANNOTATION) or None,
            )
        )
    return out


class _Gathered:
    def __init__(self) -> None:
        self.legacy: list[LegacyLayer] = []
        self.bundles: list[BundleBlob] = []
        self.sbom_types: list[str] = []
        self.problems: list[str] = []
        self.source: str | None = None


async def _legacy(client: RegistryClient, ref: ImageReference, digest: str, out: _Gathered) -> None:
    suffixes: tuple[Literal[".sig", ".att"], ...] = (".sig", ".att")
    for suffix in suffixes:
        try:
            out.legacy += await fetch_legacy(client, ref, digest, suffix)
        except RegistryUnavailable:
            raise
        except RegistryError as exc:
            out.problems.append(f"{fallback_tag(digest, suffix)}: {exc}")
    try:
        sbom = await client.find_manifest(ref.with_tag(fallback_tag(digest, ".sbom")))
    except RegistryUnavailable:
        raise
    except RegistryError as exc:
        out.problems.append(f"{fallback_tag(digest, '.sbom')}: {exc}")
        return
    if sbom is not None and not sbom.is_index:
        out.sbom_types += [
            layer.media_type for layer in sbom.layers() if is_sbom_media_type(layer.media_type)
        ]


async def _referrers(client: RegistryClient, ref: ImageReference, digest: str, out: _Gathered) -> None:
    try:
        found: Referrers = await client.referrers(ref, digest=digest)
    except RegistryUnavailable:
        raise
    except RegistryError as exc:
        out.problems.append(f"referrers of {digest}: {exc}")
        return
    out.source = found.source
    out.problems += [f"referrer rejected: {problem}" for problem in found.rejected]
    for descriptor in found.descriptors[: _MAX_BUNDLES * 4]:
        artifact_type = descriptor.artifact_type
        try:
            manifest = None
            if artifact_type is None:
                manifest = await client.manifest(ref.with_digest(descriptor.digest))
                artifact_type = manifest.artifact_type
            if is_sbom_media_type(artifact_type):
                out.sbom_types.append(str(artifact_type))
            elif is_bundle_type(artifact_type) and len(out.bundles) < _MAX_BUNDLES:
                manifest = manifest or await client.manifest(ref.with_digest(descriptor.digest))
                layers = manifest.layers()
                if not layers:
                    out.problems.append(f"bundle referrer {descriptor.digest} has no layer")
                    continue
                raw = await client.get_blob(ref, layers[0].digest)
                out.bundles.append(BundleBlob(descriptor.digest, raw))
            elif artifact_type in (DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE):
                out.problems.append(
                    f"referrer {descriptor.digest}: bare DSSE envelope without verification material, ignored"
                )
        except RegistryUnavailable:
            raise
        except RegistryError as exc:
            out.problems.append(f"referrer {descriptor.digest}: {exc}")


async def fetch_material(client: RegistryClient, ref: ImageReference, digest: str) -> Material:
    """Signature material, SBOM referrers and fetch problems of ``digest`` in ``ref``'s repository."""
    out = _Gathered()
    await asyncio.gather(_legacy(client, ref, digest, out), _referrers(client, ref, digest, out))
    return Material(
        digest=digest,
        legacy=tuple(out.legacy),
        bundles=tuple(out.bundles),
        sbom_types=tuple(dict.fromkeys(out.sbom_types)),
        problems=tuple(out.problems),
        referrers_source=out.source,
    )
