"""The gates of spec §4.1, configured by ``zastava.admission``.

Local gates need nothing but the reference: registry allow/deny lists, tag bans, untagged images. They
compare normalised names only — the image parsed by ``zastava.registry.reference``, the patterns normalised
by the same rules when the configuration was loaded — so no spelling of a denied image gets through
(``tests/unit/webhook/test_references.py``). A denylisted host is denied on every port; an allowlisted host
allows only the port it names (none = 443). Tag bans compare case-insensitively and apply to the implied
``latest`` of an image with no tag. Backend gates read the ``/policy/runtime`` result: signature
(``verify.imageSignature``), SBOM availability (``verify.sbomReferrer``), the scanner verdict
(``verify.scannerPolicyPass``; ``warn`` passes with a warning when ``allowWarn``) and the base-image
allowlist by digest. Each gate returns human-readable reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Admission
from ..contracts import ImagePolicy
from ..registry.reference import ImageReference, name_matches

__all__ = ["BackendVerdict", "backend_gates", "local_gates"]


def local_gates(ref: ImageReference, policy: Admission) -> list[str]:
    """Reasons to deny that need no backend."""
    reasons: list[str] = []
    if any(name_matches(ref, p, any_port=True) for p in policy.registry_denylist):
        reasons.append(f"registry {ref.registry} / repository {ref.repository} is denied")
    if policy.registry_allowlist and not any(name_matches(ref, p) for p in policy.registry_allowlist):
        reasons.append(f"{ref.name} is not in the registry allowlist")
    if ref.digest is None:
        if ref.implicit_tag and policy.deny_untagged:
            reasons.append("image has no tag and no digest (implicitly :latest)")
        elif ref.tag is not None and ref.tag.lower() in policy.banned_tags:
            reasons.append(f"tag :{ref.tag} is banned (pin a version or a digest)")
    return reasons


@dataclass(slots=True)
class BackendVerdict:
    deny: list[str] = field(default_factory=list)
    warn: list[str] = field(default_factory=list)


def backend_gates(result: ImagePolicy, policy: Admission) -> BackendVerdict:
    verdict = BackendVerdict()
    verify = policy.verify
    backend_reasons = [r for r in result.reasons if r]
    if verify.image_signature and not result.signed:
        verdict.deny.append("image signature not verified")
    if verify.sbom_referrer and not result.has_sbom:
        verdict.deny.append("no SBOM (neither a referrer nor a catalog entry)")
    if result.policy_verdict == "fail":
        target = verdict.deny if verify.scanner_policy_pass else verdict.warn
        target.append("scanner policy verdict: fail")
        target.extend(r for r in backend_reasons if r not in target)
    elif result.policy_verdict == "warn":
        target = verdict.warn if (policy.allow_warn or not verify.scanner_policy_pass) else verdict.deny
        target.append("scanner policy verdict: warn")
        target.extend(r for r in backend_reasons if r not in target)
    if policy.base_image_allowlist:
        base = result.base_image_digest
        if base is None:
            verdict.deny.append("base image unknown (a base-image allowlist is configured)")
        elif base not in policy.base_image_allowlist:
            verdict.deny.append(f"base image {base} is not in the allowlist")
    return verdict
