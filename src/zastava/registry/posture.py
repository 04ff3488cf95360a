"""Image posture: is it signed by a trusted key/identity, has it an SBOM, attestations, a Rekor entry.

:func:`check_posture` is what the admission webhook and the observer call. It never raises for registry
trouble:
an unreachable or throttling registry yields ``resolve="unknown"`` with the reason (spec §12: the webhook then
allows or denies per ``resolveTags``/``failOpenNamespaces``; the observer defers to the backend).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..contracts.runtime_event import Attestation, Evidence, Posture
from ..telemetry import fields
from .bundles import is_bundle_type, verify_bundle
from .client import DigestPolicy, RegistryClient, ResolvedImage
from .cosign import LegacyLayer, fetch_legacy, verify_legacy_layer
from .dsse import DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE
from .errors import InvalidReference, RegistryError
from .findings import Finding
from .reference import ImageReference, fallback_tag, parse_reference
from .referrers import Referrers, is_sbom_media_type
from .trust import TrustPolicy

__all__ = ["ImagePosture", "VerificationCache", "check_posture"]

log = logging.getLogger("zastava.registry.posture")


class ImagePosture(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    reference: str
    resolve: Literal["ok", "unknown"] = "ok"
    resolved: str | None = None  # repo@digest
    digest: str | None = None
    index_digest: str | None = None
    platform_digest: str | None = None
    digest_policy: DigestPolicy = "index"
    signed: bool = False
    signed_by: list[str] = Field(default_factory=list)
    signatures: list[Finding] = Field(default_factory=list)
    sbom: bool = False
    sbom_media_types: list[str] = Field(default_factory=list)
    attestations: list[Finding] = Field(default_factory=list)
    attestation_present: bool = False
    attestation_verified: bool = False
    rekor_uuid: str | None = None
    referrers_source: str | None = None
    reasons: list[str] = Field(default_factory=list)
    error: str | None = None

    # ------------------------------------------------------------------------ contract views (§2.1)

    def runtime_posture(self) -> Posture:
        """The runtime event's ``posture`` block; unknown fields stay unknown when resolution failed."""
        if self.resolve == "unknown":
            return Posture(image_signed=None, sbom_referrer="unknown", attestation=None)
        attestation = None
        if self.attestation_present:
            uuid = next((a.rekor_uuid for a in self.attestations if a.verified and a.rekor_uuid), None)
            attestation = Attestation(uuid=uuid or self.rekor_uuid, verified=self.attestation_verified)
        return Posture(
            image_signed=self.signed,
            sbom_referrer="present" if self.sbom else "missing",
            attestation=attestation,
        )

    def evidence(self) -> list[Evidence]:
        """``registry.*`` evidence items for a runtime event."""
        out = [Evidence(signal="registry.referrers", value=f"sbom: {t}") for t in self.sbom_media_types]
        out += [Evidence(signal="registry.signature", value=f"signed by: {s}") for s in self.signed_by]
        if self.rekor_uuid:
            out.append(Evidence(signal="registry.rekor", value=f"uuid: {self.rekor_uuid}"))
        if self.resolve == "unknown":
            out.append(Evidence(signal="registry.resolve", value="unknown"))
        return out


class VerificationCache:
    """Verdicts by (signature material digest, image digest, trust fingerprint): all immutable inputs."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self.items: OrderedDict[tuple[str, str, str], Finding] = OrderedDict()
        self.hits = 0

    def get(self, key: tuple[str, str, str]) -> Finding | None:
        found = self.items.get(key)
        if found is not None:
            self.items.move_to_end(key)
            self.hits += 1
        return found

    def put(self, key: tuple[str, str, str], value: Finding) -> None:
        self.items[key] = value
        if len(self.items) > self.max_entries:
            self.items.popitem(last=False)


def _cache_for(client: RegistryClient) -> VerificationCache:
    cache = getattr(client, "verification_cache", None)
    if cache is None:
        cache = VerificationCache()
        client.verification_cache = cache
    return cache


class _Collected:
    def __init__(self) -> None:
        self.signatures: list[Finding] = []
        self.attestations: list[Finding] = []
        self.sbom_types: list[str] = []
        self.reasons: list[str] = []
        self.referrers_source: str | None = None


async def _legacy(
    client: RegistryClient, ref: ImageReference, digest: str, policy: TrustPolicy, out: _Collected
) -> None:
    cache = _cache_for(client)
    for suffix in (".sig", ".att"):
        try:
            layers: list[LegacyLayer] = await fetch_legacy(client, ref, digest, suffix)
        except RegistryError as exc:
            out.reasons.append(f"{fallback_tag(digest, suffix)}: {exc}")
            continue
        for layer in layers:
            key = (
                f"{layer.layer_digest}:{layer.signature.hex()}:{layer.certificate or ''}",
                digest,
                policy.fingerprint,
            )
            finding = cache.get(key)
            if finding is None:
                finding = await asyncio.to_thread(verify_legacy_layer, layer, digest, policy)
                cache.put(key, finding)
            (out.attestations if finding.role == "attestation" else out.signatures).append(finding)
    try:
        sbom = await client.find_manifest(ref.with_tag(fallback_tag(digest, ".sbom")))
    except RegistryError as exc:
        out.reasons.append(f"{fallback_tag(digest, '.sbom')}: {exc}")
        return
    if sbom is not None and not sbom.is_index:
        out.sbom_types += [
            layer.media_type for layer in sbom.layers() if is_sbom_media_type(layer.media_type)
        ]


async def _referrers(
    client: RegistryClient, ref: ImageReference, digest: str, policy: TrustPolicy, out: _Collected
) -> None:
    try:
        found: Referrers = await client.referrers(ref, digest=digest)
    except RegistryError as exc:
        out.reasons.append(f"referrers of {digest}: {exc}")
        return
    out.referrers_source = found.source
    out.reasons += [f"referrer rejected: {problem}" for problem in found.rejected]
    cache = _cache_for(client)
    for descriptor in found:
        artifact_type = descriptor.artifact_type
        try:
            if artifact_type is None:
                manifest = await client.manifest(ref.with_digest(descriptor.digest))
                artifact_type = manifest.artifact_type
            if is_sbom_media_type(artifact_type):
                out.sbom_types.append(str(artifact_type))
                continue
            if is_bundle_type(artifact_type):
                key = (descriptor.digest, digest, policy.fingerprint)
                finding = cache.get(key)
                if finding is None:
                    manifest = await client.manifest(ref.with_digest(descriptor.digest))
                    layers = manifest.layers()
                    if not layers:
                        out.reasons.append(f"bundle referrer {descriptor.digest} has no layer")
                        continue
                    raw = await client.get_blob(ref, layers[0].digest)
                    finding = await asyncio.to_thread(verify_bundle, raw, digest, policy, descriptor.digest)
                    cache.put(key, finding)
                (out.attestations if finding.role == "attestation" else out.signatures).append(finding)
                if finding.predicate_type and finding.predicate_type.startswith("https://cyclonedx.org/bom"):
                    out.sbom_types.append(f"attestation:{finding.predicate_type}")
                continue
            if artifact_type in (DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE):
                out.attestations.append(
                    Finding(
                        kind="sigstore-bundle",
                        role="attestation",
                        digest=digest,
                        source=descriptor.digest,
                        verified=False,
                        reason="bare DSSE referrer: not verified (no verification material)",
                    )
                )
        except RegistryError as exc:
            out.reasons.append(f"referrer {descriptor.digest}: {exc}")


async def check_posture(
    client: RegistryClient,
    ref: ImageReference | str,
    trust: TrustPolicy,
    *,
    resolved: ResolvedImage | None = None,
) -> ImagePosture:
    """Resolve ``ref`` and summarise its signatures, SBOM referrers and attestations under ``trust``."""
    policy: DigestPolicy = trust.digest_policy or client.config.digest_policy
    text = str(ref)
    try:
        image = ref if isinstance(ref, ImageReference) else parse_reference(ref)
    except InvalidReference as exc:
        return ImagePosture(
            reference=text,
            resolve="unknown",
            digest_policy=policy,
            error=str(exc),
            reasons=[f"invalid reference: {exc}"],
        )
    posture = ImagePosture(reference=str(image), digest_policy=policy)
    try:
        resolved = resolved or await client.resolve(image)
    except RegistryError as exc:
        log.warning("registry resolve failed", extra=fields(image=str(image), error=str(exc)))
        posture.resolve = "unknown"
        posture.error = f"{type(exc).__name__}: {exc}"
        posture.reasons.append(f"digest resolution failed: {exc}")
        return posture
    posture.resolved = resolved.pinned
    posture.digest = resolved.digest
    posture.index_digest = resolved.index_digest
    posture.platform_digest = resolved.platform_digest
    digests = resolved.digests_for(policy)
    collected = {d: _Collected() for d in digests}
    await asyncio.gather(
        *(_legacy(client, image, d, trust, collected[d]) for d in digests),
        *(_referrers(client, image, d, trust, collected[d]) for d in digests),
    )
    verified_by_digest: dict[str, list[Finding]] = {}
    for digest, found in collected.items():
        posture.signatures += found.signatures
        posture.attestations += found.attestations
        posture.sbom_media_types += found.sbom_types
        posture.reasons += found.reasons
        posture.referrers_source = posture.referrers_source or found.referrers_source
        verified_by_digest[digest] = [s for s in found.signatures if s.verified]
    if policy == "all":
        posture.signed = all(verified_by_digest[d] for d in digests)
    else:
        posture.signed = any(verified_by_digest[d] for d in digests)
    good = [s for s in posture.signatures if s.verified]
    posture.signed_by = list(dict.fromkeys(s.signer or "?" for s in good))
    posture.sbom_media_types = list(dict.fromkeys(posture.sbom_media_types))
    posture.sbom = bool(posture.sbom_media_types)
    posture.attestation_present = bool(posture.attestations)
    posture.attestation_verified = any(a.verified for a in posture.attestations)
    posture.rekor_uuid = next(
        (f.rekor_uuid for f in [*good, *posture.attestations] if f.verified and f.rekor_uuid), None
    )
    if not posture.signatures:
        posture.reasons.append("unsigned: no signature found")
    elif not posture.signed:
        if policy == "all":
            missing = [d for d in digests if not verified_by_digest[d]]
            posture.reasons.append(f"no verified signature for {', '.join(missing)} (digest policy 'all')")
        for finding in posture.signatures:
            if not finding.verified:
                posture.reasons.append(f"signature not verified ({finding.source}): {finding.reason}")
    if not posture.sbom:
        posture.reasons.append("missing SBOM")
    if not posture.attestation_present:
        posture.reasons.append("no attestation")
    else:
        for finding in posture.attestations:
            if not finding.verified:
                posture.reasons.append(f"attestation not verified ({finding.source}): {finding.reason}")
    return posture
