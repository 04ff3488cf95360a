"""Image posture: is it signed by a trusted key/identity, has it an SBOM, attestations, a Rekor entry.

:func:`check_posture` is what ``zastava verify`` prints. It never raises for registry trouble: an unreachable
or throttling registry yields ``resolve="unknown"`` with the reason (spec §12). Admission and the backend use
:class:`~.verifier.ImageVerifier` (trust policies, caching) over the same fetch and verification code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ...contracts.runtime_event import Attestation, Evidence, Posture
from ...telemetry import fields
from ..errors import InvalidReference, RegistryError
from ..reference import ImageReference, parse_reference
from ..transport.auth import CredentialStore
from ..transport.client import RegistryClient
from ..transport.manifest import DigestPolicy, ResolvedImage
from ..verification.dsse import predicate_kind
from ..verification.findings import Finding
from ..verification.policies import Check, Item, Material, item_id, verify_item
from ..verification.trust import TrustedSigners
from .fetch import fetch_material

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
    """Findings by (signature material, image digest, signers fingerprint): all immutable inputs, so entries
    never go stale; bounded (oldest first out)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self.items: OrderedDict[tuple[str, str, str], Finding] = OrderedDict()
        self.hits = 0
        self._lock = threading.Lock()  # verifications run in worker threads

    def check(self, item: Item, digest: str, signers: TrustedSigners) -> Finding:
        """:data:`~zastava.registry.verification.policies.Check`, memoised."""
        key = (item_id(item), digest, signers.fingerprint)
        with self._lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
                self.hits += 1
                return found
        found = verify_item(item, digest, signers)
        with self._lock:
            self.items[key] = found
            if len(self.items) > self.max_entries:
                self.items.popitem(last=False)
        return found


_SHARED_CACHE = VerificationCache()


def _summarise(material: Material, signers: TrustedSigners, check: Check) -> tuple[list[Finding], list[str]]:
    findings = [check(item, material.digest, signers) for item in material.items]
    sbom = list(material.sbom_types)
    for finding in findings:
        if (
            finding.verified
            and finding.predicate_type
            and predicate_kind(finding.predicate_type).startswith("sbom-")
        ):
            sbom.append(f"attestation:{finding.predicate_type}")
    return findings, sbom


async def check_posture(
    client: RegistryClient,
    ref: ImageReference | str,
    trust: TrustedSigners,
    *,
    digest_policy: DigestPolicy | None = None,
    resolved: ResolvedImage | None = None,
    cache: VerificationCache | None = None,
    credentials: CredentialStore | None = None,
) -> ImagePosture:
    """Resolve ``ref`` and summarise its signatures, SBOM referrers and attestations under ``trust``
    (``digest_policy`` defaults to the client's; ``credentials``, e.g. a pod's imagePullSecrets, replace the
    client's store for this call)."""
    with client.using_credentials(credentials):
        return await _check(client, ref, trust, digest_policy, resolved, cache)


async def _check(
    client: RegistryClient,
    ref: ImageReference | str,
    trust: TrustedSigners,
    digest_policy: DigestPolicy | None,
    resolved: ResolvedImage | None,
    cache: VerificationCache | None,
) -> ImagePosture:
    policy: DigestPolicy = digest_policy or client.config.digest_policy
    check = (cache or _SHARED_CACHE).check
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
    step = "digest resolution"
    try:
        resolved = resolved or await client.resolve(image)
        digests = resolved.digests_for(policy)
        step = "fetching signatures"
        materials = await asyncio.gather(*(fetch_material(client, image, d) for d in digests))
    except RegistryError as exc:
        log.warning(f"registry: {step} failed", extra=fields(image=str(image), error=str(exc)))
        posture.resolve = "unknown"
        posture.error = f"{type(exc).__name__}: {exc}"
        posture.reasons.append(f"{step} failed: {exc}")
        return posture
    posture.resolved = resolved.pinned
    posture.digest = resolved.digest
    posture.index_digest = resolved.index_digest
    posture.platform_digest = resolved.platform_digest
    verified_by_digest: dict[str, list[Finding]] = {}
    for material in materials:
        findings, sbom = await asyncio.to_thread(_summarise, material, trust, check)
        signatures = [f for f in findings if f.role == "signature"]
        posture.signatures += signatures
        posture.attestations += [f for f in findings if f.role == "attestation"]
        posture.sbom_media_types += sbom
        posture.reasons += list(material.problems)
        posture.referrers_source = posture.referrers_source or material.referrers_source
        verified_by_digest[material.digest] = [s for s in signatures if s.verified]
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
