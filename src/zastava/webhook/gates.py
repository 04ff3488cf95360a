"""The gates of spec §4.1, configured by ``zastava.admission``.

Local gates need nothing but the reference: registry allow/deny lists, tag bans, untagged images. Backend
gates read the ``/policy/runtime`` result: signature (``verify.imageSignature``), SBOM availability
(``verify.sbomReferrer``), the scanner verdict (``verify.scannerPolicyPass``; ``warn`` passes with a warning
when ``allowWarn``) and the base-image allowlist by digest. Each gate returns human-readable reasons.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ..config import Admission
from ..contracts import ImagePolicy
from .images import ImageRef

__all__ = ["BackendVerdict", "backend_gates", "local_gates", "registry_matches"]


def registry_matches(name: str, pattern: str) -> bool:
    """``pattern`` is a registry host, a ``host/path`` prefix (whole components) or a glob (``*``, ``?``)."""
    pattern = pattern.strip().rstrip("/")
    if not pattern:
        return False
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.startswith(pattern + "/")


def local_gates(ref: ImageRef, policy: Admission) -> list[str]:
    """Reasons to deny that need no backend."""
    reasons: list[str] = []
    name = ref.name
    if any(registry_matches(name, p) for p in policy.registry_denylist):
        reasons.append(f"registry {ref.registry} / repository {ref.repository} is denied")
    if policy.registry_allowlist and not any(registry_matches(name, p) for p in policy.registry_allowlist):
        reasons.append(f"{name} is not in the registry allowlist")
    if ref.digest is None:
        if ref.tag is None and policy.deny_untagged:
            reasons.append("image has no tag and no digest (implicitly :latest)")
        elif ref.tag is not None and ref.tag in policy.banned_tags:
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
