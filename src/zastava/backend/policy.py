"""Backend runtime policy: a validated YAML file of rules → per-image verdicts of ``/policy/runtime``.

Example (every key shown)::

    ttlSeconds: 300
    rules:
      - name: require-signature
        check: signed                 # signed | sbom | vulnerabilities | baseImage
        action: fail                  # warn | fail
        reason: unsigned
        namespaces: ["*"]             # fnmatch patterns; default all
        excludeNamespaces: [dev]
        labels: {env: prod}           # all must match; default none required
      - check: sbom
        action: fail
        reason: missing SBOM
      - check: vulnerabilities
        minSeverity: high             # counts vulnerabilities at or above this severity
        maxCount: 0                   # fires when more than maxCount are found
        action: fail
      - check: baseImage
        allow: ["sha256:…"]           # fires when the base image is unknown or not listed
        action: warn

The verdict is ``fail`` when a fail rule fires, else ``warn`` when a warn rule fires, else ``pass``; reasons
are those of the rules that fired, in file order. The policy revision is the canonical id of the validated
policy, so it changes when (and only when) the policy's meaning changes; the engine reloads the file when it
changes and keeps serving the previous policy if the new file is invalid.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ..contracts import ImagePolicy, RekorRef, canonical_id
from .catalog import SEVERITIES
from .store import CatalogHead

if TYPE_CHECKING:
    from ..registry.verification.policies import ImageVerdict

__all__ = ["DEFAULT_POLICY", "Policy", "PolicyEngine", "PolicyError", "evaluate", "load_policy"]

log = logging.getLogger("zastava.backend.policy")

MAX_POLICY_BYTES = 1_000_000


class PolicyError(ValueError):
    """The policy file cannot be read or is invalid; the message names the offending key."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Rule(_Model):
    name: str | None = None
    action: Literal["warn", "fail"] = "fail"
    reason: str | None = Field(None, max_length=512)
    namespaces: list[str] = Field(default_factory=lambda: ["*"], max_length=1024)
    exclude_namespaces: list[str] = Field(default_factory=list, max_length=1024)
    labels: dict[str, str] = Field(default_factory=dict)

    def applies(self, namespace: str | None, labels: dict[str, str]) -> bool:
        ns = namespace or ""
        if not any(fnmatch.fnmatchcase(ns, pattern) for pattern in self.namespaces):
            return False
        if any(fnmatch.fnmatchcase(ns, pattern) for pattern in self.exclude_namespaces):
            return False
        return all(labels.get(key) == value for key, value in self.labels.items())


class SignedRule(_Rule):
    check: Literal["signed"]


class SbomRule(_Rule):
    check: Literal["sbom"]


class VulnerabilityRule(_Rule):
    check: Literal["vulnerabilities"]
    min_severity: Literal["info", "low", "medium", "high", "critical"] = "high"
    max_count: int = Field(0, ge=0)


class BaseImageRule(_Rule):
    check: Literal["baseImage"]
    allow: list[Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]] = Field(max_length=10_000)


Rule = Annotated[SignedRule | SbomRule | VulnerabilityRule | BaseImageRule, Field(discriminator="check")]


class Policy(_Model):
    ttl_seconds: int = Field(300, ge=0, le=86400)
    rules: list[Rule] = Field(default_factory=list, max_length=1000)

    def revision(self) -> str:
        return canonical_id(self.model_dump(mode="json", by_alias=True))


#: With no policy file: unsigned images and images without an SBOM fail (spec §4.1, §5.2 example reasons).
DEFAULT_POLICY = Policy(
    rules=[
        SignedRule(check="signed", action="fail", reason="unsigned"),
        SbomRule(check="sbom", action="fail", reason="missing SBOM"),
    ]
)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:10]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc or '<root>'}: {err['msg']}")
    return "; ".join(parts)


def load_policy(text: str, origin: str = "<policy>") -> Policy:
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(f"{origin}: policy file larger than {MAX_POLICY_BYTES} bytes")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{origin}: not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise PolicyError(f"{origin}: the policy must be a mapping with 'rules'")
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        raise PolicyError(f"{origin}: {_validation_message(exc)}") from None


def _reason(rule: _Rule, default: str) -> str:
    return rule.reason or default


def evaluate(
    policy: Policy,
    head: CatalogHead | None,
    *,
    namespace: str | None,
    labels: dict[str, str],
    build_ids: list[str] | None = None,
    verification: ImageVerdict | None = None,
) -> ImagePolicy:
    """The verdict for one image (``head`` None: not in the catalog, e.g. a reference not pinned).

    ``signed`` is what ``verification`` established cryptographically (the image's signatures against the
    trust policies — :mod:`zastava.registry`); a catalog ``signed`` flag is an operator's assertion, shown as
    evidence in the reasons but never taken for a signature. ``hasSbom``: an SBOM referrer bound to the digest
    or a verified SBOM attestation, or an SBOM document in the catalog (spec §4.1). A matching trust policy
    that is not satisfied fires by its mode (``enforce`` → fail, ``warn`` → warn) with its summary as the
    reason, before the file's rules.
    """
    signed = bool(verification and verification.signed)
    has_sbom = bool((verification and verification.has_sbom) or (head and head.has_sbom))
    fired: list[tuple[str, str]] = []
    evidence: list[str] = []
    if verification is not None and verification.matched:
        # a trust policy the image does not satisfy (signatures or attestations) fires by its own mode
        fired += [
            ("fail" if r.mode == "enforce" else "warn", r.summary())
            for r in verification.results
            if not r.satisfied
        ]
    elif verification is not None:  # the default signers: governed by the `signed` rules
        evidence += [r.summary() for r in verification.results if not r.satisfied]
    if head is not None and head.signed and not signed:
        evidence.append("catalog asserts signed: not verified (evidence only)")
    for rule in policy.rules:
        if not rule.applies(namespace, labels):
            continue
        if isinstance(rule, SignedRule) and not signed:
            fired.append((rule.action, _reason(rule, "unsigned")))
            fired += [(rule.action, item) for item in evidence]  # why: default signers, the catalog flag
        elif isinstance(rule, SbomRule) and not has_sbom:
            fired.append((rule.action, _reason(rule, "missing SBOM")))
        elif isinstance(rule, VulnerabilityRule) and head is not None:
            floor = SEVERITIES.index(rule.min_severity)
            count = sum(n for sev, n in head.severities.items() if SEVERITIES.index(sev) >= floor)
            if count > rule.max_count:
                default = (
                    f"{count} vulnerabilities at or above {rule.min_severity} (allowed {rule.max_count})"
                )
                fired.append((rule.action, _reason(rule, default)))
        elif isinstance(rule, BaseImageRule):
            base = head.base_digest if head else None
            if base is None:
                fired.append((rule.action, _reason(rule, "base image unknown")))
            elif base not in rule.allow:
                fired.append((rule.action, _reason(rule, f"base image {base} not in allowlist")))
    actions = {action for action, _ in fired}
    verdict: Literal["pass", "warn", "fail"] = "fail" if "fail" in actions else "warn" if actions else "pass"
    reasons: list[str] = []
    for _, reason in fired:
        if reason not in reasons:
            reasons.append(reason)
    return ImagePolicy(
        signed=signed,
        has_sbom=has_sbom,
        policy_verdict=verdict,
        reasons=reasons,
        rekor=_rekor(verification, head),
        build_ids=build_ids if build_ids else None,
        base_image_digest=head.base_digest if head else None,
    )


def _rekor(verification: ImageVerdict | None, head: CatalogHead | None) -> RekorRef | None:
    """The transparency-log entry the verification checked; else the catalog's, marked unverified."""
    if verification is not None and verification.rekor_uuid:
        return RekorRef(uuid=verification.rekor_uuid, verified=True)
    if head is not None and head.rekor:
        return RekorRef.model_validate({**head.rekor, "verified": False})
    return None


@dataclass(frozen=True)
class _Loaded:
    policy: Policy
    revision: str
    stamp: tuple[int, int, int] | None


class PolicyEngine:
    """The current policy: from a file (re-read when it changes, checked at most every ``reload_seconds``)."""

    def __init__(self, path: str | Path | None, *, reload_seconds: float = 2.0) -> None:
        self.path = Path(path) if path else None
        self.reload_seconds = reload_seconds
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._loaded = self._load() if self.path else _Loaded(DEFAULT_POLICY, DEFAULT_POLICY.revision(), None)

    def _stamp(self) -> tuple[int, int, int]:
        assert self.path is not None
        st = self.path.stat()
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> _Loaded:
        assert self.path is not None
        try:
            stamp = self._stamp()
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        policy = load_policy(text, str(self.path))
        return _Loaded(policy, policy.revision(), stamp)

    def current(self) -> tuple[Policy, str]:
        if self.path is not None and time.monotonic() - self._checked >= self.reload_seconds:
            self.refresh()
        loaded = self._loaded
        return loaded.policy, loaded.revision

    def refresh(self) -> bool:
        """Re-read the file if it changed; returns True when a new policy was installed."""
        if self.path is None:
            return False
        with self._lock:
            self._checked = time.monotonic()
            try:
                if self._stamp() == self._loaded.stamp:
                    return False
                loaded = self._load()
            except PolicyError as exc:
                if self.last_error != str(exc):
                    log.error("policy reload failed; keeping revision %s: %s", self._loaded.revision, exc)
                self.last_error = str(exc)
                return False
            self.last_error = None
            changed = loaded.revision != self._loaded.revision
            self._loaded = loaded
            if changed:
                log.info("policy reloaded", extra={"zastava_fields": {"policyRevision": loaded.revision}})
            return changed


def describe(policy: Policy) -> dict[str, Any]:
    return policy.model_dump(mode="json", by_alias=True)
