"""The signature gate when the webhook verifies locally (``admission.trustPolicies`` set): what one image's
:class:`~zastava.registry.VerifyOutcome` means for admission.

* a matching trust policy that is not satisfied denies (``enforce``) or warns (``warn``), its reason naming
  the policy and what is missing;
* an image no trust policy matches is governed by ``verify.imageSignature`` against the default signers
  (``zastava.registry.trust``);
* the registry could not be reached → *unavailable*: the namespace's fail-open/closed decides;
* the digest does not exist in its registry (or another registry error that is an answer) → deny.

SBOM availability is decided by the admitter: a referrer or verified SBOM attestation found here, or the
backend's catalog when the backend is asked anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Admission
from ..registry import VerifyOutcome

__all__ = ["LocalVerdict", "local_verdict", "needs_backend"]


@dataclass(slots=True)
class LocalVerdict:
    deny: list[str] = field(default_factory=list)
    warn: list[str] = field(default_factory=list)
    unavailable: str | None = None
    signed: bool | None = None
    has_sbom: bool | None = None
    digest: str | None = None  # the digest that was verified


def local_verdict(outcome: VerifyOutcome, admission: Admission) -> LocalVerdict:
    out = LocalVerdict(digest=outcome.key.digest or None)
    verdict = outcome.verdict
    if verdict is None:
        if outcome.unavailable:
            out.unavailable = outcome.error or "registry unavailable"
        else:
            out.deny.append(f"cannot verify the image: {outcome.error}")
        return out
    out.signed, out.has_sbom = verdict.signed, verdict.has_sbom
    if verdict.matched:
        for result in verdict.results:
            if not result.satisfied:
                (out.deny if result.mode == "enforce" else out.warn).append(result.summary())
    elif admission.verify.image_signature and not verdict.signed:
        out.deny.append("image signature not verified: " + "; ".join(verdict.reasons()))
    return out


def needs_backend(admission: Admission, base_address: str) -> bool:
    """With local verification, the backend is asked only for what only it knows: the scanner verdict and the
    base image (and then its catalog also counts for SBOM availability)."""
    if not base_address:
        return False
    return admission.verify.scanner_policy_pass or bool(admission.base_image_allowlist)
