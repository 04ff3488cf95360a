"""Trust policies (``zastava.admission.trustPolicies``): which images need whose signatures, how many, and
which attestations — evaluated over material that was already fetched.

A policy matches an image by its normalised name (``registry/repository``, no tag or digest) against globs
(``*`` and ``?`` stay within one path component, ``**`` spans components). Every policy that matches must be
satisfied (like Sigstore policy-controller's ClusterImagePolicies): ``threshold`` of its ``authorities`` (k of
n, like Kyverno's attestor ``count`` and Connaisseur's cosign ``threshold``) must each have made a signature
that verifies for the image digest, and every required attestation (``predicateType``) must be verified by
``threshold`` authorities as well. A policy in ``warn`` mode reports instead of denying. An image no policy
matches is checked against the default signers (``zastava.registry.trust``).

Everything here is pure: :func:`evaluate` takes the fetched :class:`Material` of the digest(s) and a
``check`` function (the verifiers of :mod:`.cosign` and :mod:`.bundles`, possibly memoised by the caller).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import TrustConfigError
from .bundles import verify_bundle
from .cosign import LegacyLayer, verify_legacy_layer
from .dsse import predicate_kind
from .findings import Finding
from .trust import TrustedSigners

__all__ = [
    "DEFAULT_POLICY_NAME",
    "Authority",
    "BundleBlob",
    "Check",
    "Combine",
    "ImageGlob",
    "ImageVerdict",
    "Material",
    "PolicyResult",
    "TrustPolicies",
    "TrustPolicy",
    "compile_glob",
    "evaluate",
    "verify_item",
]

#: Name under which the default signers (``zastava.registry.trust``) appear in results.
DEFAULT_POLICY_NAME = "zastava.registry.trust"
_GLOB_CHARS = re.compile(r"[a-z0-9._\-/:*?]+")


# ------------------------------------------------------------------------------------------------ globs


@dataclass(frozen=True, slots=True)
class ImageGlob:
    pattern: str  # as written
    normalised: str
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None


def compile_glob(pattern: str, normalised: str) -> ImageGlob:
    """A glob over ``registry/repository`` names: ``pattern`` as written (checked here), ``normalised`` as the
    reference model normalises it (``zastava.registry.reference.normalise_pattern``: docker's defaults for a
    literal name, canonical host). TrustConfigError says what is wrong with a bad one."""
    if not isinstance(pattern, str) or not pattern or pattern != pattern.strip():
        raise TrustConfigError("an image glob must be a non-empty string without surrounding whitespace")
    if not pattern.isascii():  # before any lower(): the Kelvin sign folds to "k"
        raise TrustConfigError(f"{pattern!r}: image globs are ASCII")
    if len(pattern) > 512:
        raise TrustConfigError("an image glob is at most 512 characters")
    host, sep, _ = pattern.partition("/")
    text = (host.lower() + sep + pattern[len(host) + len(sep) :]) if sep else pattern
    if "@" in text:
        raise TrustConfigError(f"{pattern!r}: globs match repository names; digests are not part of them")
    if not _GLOB_CHARS.fullmatch(text):
        bad = sorted({ch for ch in text if not _GLOB_CHARS.fullmatch(ch)})
        raise TrustConfigError(
            f"{pattern!r}: unexpected character(s) {''.join(bad)!r} (allowed: lowercase letters, digits, "
            "'.', '_', '-', '/', ':' in the host, '*', '**', '?')"
        )
    if "***" in text:
        raise TrustConfigError(f"{pattern!r}: '***' is not a glob; use '**' to span path components")
    if text.startswith("/") or text.endswith("/") or "//" in text:
        raise TrustConfigError(f"{pattern!r}: empty path component")
    if ":" in text.partition("/")[2]:
        raise TrustConfigError(f"{pattern!r}: globs match repository names; tags are not part of them")
    host, slash, path = normalised.partition("/")
    if not slash and "**" not in host:  # ``**`` alone spans every name
        raise TrustConfigError(
            f"{pattern!r} names a registry only and would match no image (globs match registry/repository): "
            f"write {host}/** to govern every repository of {host}"
        )
    if host == "docker.io" and "/" not in path and "**" not in path:
        path = f"library/{path}"  # docker.io/* means the official images, as docker resolves docker.io/x
        normalised = f"{host}/{path}"
    out: list[str] = []
    i = 0
    if slash and "**" not in host and ":" not in host and not host.startswith("["):
        # a host without a port governs every port of it (evil.io:5000 is evil.io's too, and so is
        # eu.corp.io:5000 for *.corp.io): matching more names makes a trust policy stricter, never weaker
        out.extend("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in host)
        out.append("(?::[0-9]+)?")
        i = len(host)
    while i < len(normalised):
        ch = normalised[i]
        if normalised.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
        i += 1
    return ImageGlob(pattern, normalised, re.compile("".join(out)))


# --------------------------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class Authority:
    """One key or one keyless identity (with the root that vouches for it); counts once towards k of n."""

    name: str
    signers: TrustedSigners = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return self.signers.fingerprint


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    name: str
    images: tuple[ImageGlob, ...]
    authorities: tuple[Authority, ...]
    threshold: int = 1
    attestations: tuple[str, ...] = ()
    mode: Literal["enforce", "warn"] = "enforce"

    def __post_init__(self) -> None:
        if not self.authorities:
            raise TrustConfigError(f"trust policy {self.name!r} has no authorities")
        if not 1 <= self.threshold <= len(self.authorities):
            raise TrustConfigError(
                f"trust policy {self.name!r}: threshold {self.threshold} must be between 1 and the number "
                f"of authorities ({len(self.authorities)})"
            )

    def matches(self, name: str) -> bool:
        return any(glob.matches(name) for glob in self.images)


@dataclass(frozen=True, slots=True)
class TrustPolicies:
    """The compiled ``trustPolicies`` section plus the default signers; ``revision`` changes whenever what
    they accept may change (section contents, key and trusted-root material), so caches key on it."""

    policies: tuple[TrustPolicy, ...] = ()
    default: TrustedSigners = field(default_factory=TrustedSigners)
    revision: str = ""

    def matching(self, name: str) -> tuple[TrustPolicy, ...]:
        return tuple(p for p in self.policies if p.matches(name))


# --------------------------------------------------------------------------------------------- material


@dataclass(frozen=True, slots=True)
class BundleBlob:
    """A sigstore bundle fetched from a referrer manifest (``source``: that manifest's digest)."""

    source: str
    raw: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Material:
    """What the registry holds for one image digest: cosign ``.sig``/``.att`` layers, sigstore bundles, SBOM
    media types of referrers bound to the digest, and problems met while fetching (reasons, not verdicts)."""

    digest: str
    legacy: tuple[LegacyLayer, ...] = ()
    bundles: tuple[BundleBlob, ...] = ()
    sbom_types: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    referrers_source: str | None = None

    @property
    def items(self) -> tuple[LegacyLayer | BundleBlob, ...]:
        return (*self.legacy, *self.bundles)


Item = LegacyLayer | BundleBlob
#: Verifies one item for one digest against some signers; :func:`verify_item` or a memoised wrapper of it.
Check = Callable[[Item, str, TrustedSigners], Finding]


def item_id(item: Item) -> str:
    """Identity of a piece of signature material (for memoising verdicts over it)."""
    if isinstance(item, BundleBlob):
        return f"bundle:{item.source}"
    # the chain and the Rekor bundle annotations decide a keyless or tlog-required verdict too: a layer seen
    # first with a broken chain must not stay unverified from the memo once it arrives with a good one
    evidence = hashlib.sha256(
        f"{item.media_type}\0{item.chain or ''}\0{item.bundle or ''}".encode()
    ).hexdigest()
    return f"{item.tag}:{item.layer_digest}:{item.signature.hex()}:{item.certificate or ''}:{evidence}"


def verify_item(item: Item, digest: str, signers: TrustedSigners) -> Finding:
    if isinstance(item, BundleBlob):
        return verify_bundle(item.raw, digest, signers, item.source)
    return verify_legacy_layer(item, digest, signers)


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class PolicyResult:
    policy: str
    mode: Literal["enforce", "warn"]
    threshold: int
    authorities: int
    signed_by: tuple[str, ...]  # authorities with a verified signature (on every digest, for ``all``)
    attested: Mapping[str, tuple[str, ...]]  # required predicate type → authorities that verified it
    missing: tuple[str, ...]  # why it is not satisfied (empty when it is)
    rekor_uuid: str | None = None
    #: distinct signers that verified (what the threshold counts); None: ``len(signed_by)``
    verified: int | None = None

    @property
    def signature_ok(self) -> bool:
        count = len(self.signed_by) if self.verified is None else self.verified
        return count >= self.threshold

    @property
    def satisfied(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        """One line for admission reasons and the backend's reasons: names the policy and what is missing."""
        head = f"trust policy {self.policy}" if self.policy != DEFAULT_POLICY_NAME else self.policy
        if self.satisfied:
            return f"{head}: verified ({', '.join(self.signed_by)})"
        return f"{head}{' (warn)' if self.mode == 'warn' else ''}: " + "; ".join(self.missing)


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    """Everything admission and the backend need to know about one image digest."""

    name: str  # registry/repository
    digest: str
    results: tuple[PolicyResult, ...]  # one per matching policy, or the default signers' when none matches
    matched: bool  # a trust policy matched (else ``results`` holds the default signers' result)
    sbom_types: tuple[str, ...]
    findings: tuple[Finding, ...]
    problems: tuple[str, ...]
    referrers_source: str | None = None

    @property
    def signed(self) -> bool:
        """Every matching policy's signature requirement is met (or, with none matching, a default signer's
        signature verifies)."""
        return bool(self.results) and all(r.signature_ok for r in self.results)

    @property
    def satisfied(self) -> bool:
        """Every matching policy is satisfied: signatures and attestations."""
        return bool(self.results) and all(r.satisfied for r in self.results)

    @property
    def has_sbom(self) -> bool:
        return bool(self.sbom_types)

    @property
    def signed_by(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for r in self.results for a in r.signed_by))

    @property
    def rekor_uuid(self) -> str | None:
        return next((r.rekor_uuid for r in self.results if r.rekor_uuid), None)

    def reasons(self) -> list[str]:
        return [r.summary() for r in self.results]


# ------------------------------------------------------------------------------------------- evaluation


@dataclass(slots=True)
class _PerAuthority:
    signed: list[bool] = field(default_factory=list)  # per digest
    predicates: list[set[str]] = field(default_factory=list)  # per digest: verified predicate types
    #: per digest: the signers (a key's fingerprint, a certificate's identity) whose signature verified for
    #: this authority — what k of n counts, so one signer never counts twice
    signers: list[set[str]] = field(default_factory=list)
    #: per digest: predicate type → signers whose attestation of it verified
    attesters: list[dict[str, set[str]]] = field(default_factory=list)
    why: list[str] = field(default_factory=list)
    rekor: str | None = None


def _signer_id(authority: Authority, finding: Finding) -> str:
    """Who made a verified signature: the key's fingerprint (one key listed twice, under two names or as a
    path and a PEM, is one signer), or the certificate's identity for keyless."""
    keys = authority.signers.keys
    if finding.signer_kind == "key" and len(keys) == 1:
        return "key:" + keys[0].fingerprint
    return f"{finding.signer_kind}:{finding.signer}"


def _collect(
    authority: Authority, materials: Sequence[Material], check: Check, findings: list[Finding]
) -> _PerAuthority:
    out = _PerAuthority()
    for material in materials:
        signed = False
        predicates: set[str] = set()
        signers: set[str] = set()
        attesters: dict[str, set[str]] = {}
        for item in material.items:
            finding = check(item, material.digest, authority.signers)
            findings.append(finding)
            if not finding.verified:
                if finding.reason and finding.role == "signature":
                    out.why.append(finding.reason)
                continue
            out.rekor = out.rekor or finding.rekor_uuid
            if finding.role == "signature":
                signed = True
                signers.add(_signer_id(authority, finding))
            elif finding.predicate_type:
                predicates.add(finding.predicate_type)
                attesters.setdefault(finding.predicate_type, set()).add(_signer_id(authority, finding))
        out.signed.append(signed)
        out.predicates.append(predicates)
        out.signers.append(signers)
        out.attesters.append(attesters)
    return out


def distinct_count(candidates: Mapping[str, set[str]]) -> int:
    """How many authorities can each be credited with a *different* signer: a maximum bipartite matching
    (authorities ↔ signers, augmenting paths; n ≤ 32 authorities). One signature that two authorities both
    accept (the same key listed twice, overlapping keyless identities) counts once, so it cannot meet a
    threshold of 2 on its own."""
    owner: dict[str, str] = {}

    def assign(authority: str, seen: set[str]) -> bool:
        for signer in sorted(candidates[authority]):
            if signer in seen:
                continue
            seen.add(signer)
            if signer not in owner or assign(owner[signer], seen):
                owner[signer] = authority
                return True
        return False

    return sum(1 for authority in candidates if assign(authority, set()))


#: How per-digest results combine: ``any`` one digest, ``all`` of them, or ``index-or-each`` — the first
#: digest (an index, whose signature covers every manifest it lists) or else every other one (each platform).
Combine = Literal["any", "all", "index-or-each"]


def _combine(values: Iterable[bool], combine: Combine) -> bool:
    values = list(values)
    if not values:
        return False
    if combine == "index-or-each":
        return values[0] or (len(values) > 1 and all(values[1:]))
    return all(values) if combine == "all" else any(values)


def _evaluate_one(
    name: str,
    mode: Literal["enforce", "warn"],
    threshold: int,
    authorities: Sequence[Authority],
    attestations: Sequence[str],
    materials: Sequence[Material],
    combine: Combine,
    check: Check,
    findings: list[Finding],
) -> PolicyResult:
    collected = {a.name: _collect(a, materials, check, findings) for a in authorities}
    signed_by = tuple(n for n, c in collected.items() if _combine(c.signed, combine))
    attested = {
        predicate: tuple(
            n for n, c in collected.items() if _combine((predicate in p for p in c.predicates), combine)
        )
        for predicate in attestations
    }
    # k of n counts distinct signers per digest (then ``any``/``all`` over the digests)
    per_digest = [
        distinct_count({n: c.signers[d] for n, c in collected.items()}) for d in range(len(materials))
    ]
    verified = _distinct(per_digest, threshold, combine)
    attested_count = {
        predicate: _distinct(
            [
                distinct_count({n: c.attesters[d].get(predicate, set()) for n, c in collected.items()})
                for d in range(len(materials))
            ],
            threshold,
            combine,
        )
        for predicate in attestations
    }
    missing: list[str] = []
    if verified < threshold:
        if not any(m.items for m in materials):
            detail = "no signature found"
        else:
            detail = "; ".join(
                f"{n}: {c.why[0] if c.why else 'no signature by it'}"
                for n, c in collected.items()
                if n not in signed_by
            )
        if len(signed_by) > verified:
            detail += f"; {', '.join(signed_by)} verified but by {verified} distinct signer(s)"
        missing.append(f"{verified} of {threshold} required signature(s) verified ({detail})")
    for predicate, by in attested.items():
        if attested_count[predicate] < threshold:
            missing.append(
                f"attestation {predicate}: {attested_count[predicate]} of {threshold} required verified"
                + (f" (by {', '.join(by)})" if by else "")
            )
    rekor = next((collected[n].rekor for n in signed_by if collected[n].rekor), None)
    return PolicyResult(
        name, mode, threshold, len(authorities), signed_by, attested, tuple(missing), rekor, verified
    )


def _distinct(per_digest: Sequence[int], threshold: int, combine: Combine) -> int:
    """The distinct-signer count that stands for the digests: the smallest for ``all`` (each must reach
    the threshold), the largest for ``any``; for ``index-or-each`` the index's, or the platforms' smallest."""
    if not per_digest:
        return 0
    if combine == "index-or-each":
        each = min(per_digest[1:]) if len(per_digest) > 1 else 0
        return max(per_digest[0], each)
    return min(per_digest) if combine == "all" else max(per_digest)


def _default_authorities(signers: TrustedSigners) -> list[Authority]:
    """Each default key and identity as its own authority (any one of them suffices)."""
    root, tlog = signers.trusted_root, signers.require_tlog_for_keys
    out = [
        Authority(key.name, TrustedSigners(keys=[key], trusted_root=root, require_tlog_for_keys=tlog))
        for key in signers.keys
    ]
    out += [
        Authority(str(identity), TrustedSigners(identities=[identity], trusted_root=root))
        for identity in signers.identities
    ]
    return out


def evaluate(
    policies: TrustPolicies,
    name: str,
    materials: Sequence[Material],
    *,
    combine: Combine = "any",
    check: Check = verify_item,
) -> ImageVerdict:
    """The verdict for image ``name`` (``registry/repository``) over the material of its digest(s).

    ``materials`` holds one entry per digest the digest policy consults (``combine``: ``any`` of them must
    verify, ``all``, or ``index-or-each``: the first — the index — or every other). The first material's
    digest names the verdict.
    """
    if not materials:
        raise ValueError("evaluate needs the material of at least one digest")
    findings: list[Finding] = []
    matching = policies.matching(name)
    results: list[PolicyResult] = []
    for policy in matching:
        results.append(
            _evaluate_one(
                policy.name,
                policy.mode,
                policy.threshold,
                policy.authorities,
                policy.attestations,
                materials,
                combine,
                check,
                findings,
            )
        )
    if not matching:
        authorities = _default_authorities(policies.default)
        if authorities:
            results.append(
                _evaluate_one(
                    DEFAULT_POLICY_NAME, "enforce", 1, authorities, (), materials, combine, check, findings
                )
            )
        else:
            results.append(
                PolicyResult(
                    DEFAULT_POLICY_NAME,
                    "enforce",
                    1,
                    0,
                    (),
                    {},
                    ("no trust policy matches the image and no default signers are configured",),
                )
            )
    sbom_types = [t for m in materials for t in m.sbom_types]
    for finding in findings:  # an SBOM attestation counts only when a trusted authority verified it
        if finding.verified and finding.predicate_type and finding.role == "attestation":
            kind = predicate_kind(finding.predicate_type)
            if kind.startswith("sbom-"):
                sbom_types.append(f"attestation:{finding.predicate_type}")
    unique: dict[tuple[str, str, bool, str | None], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.source, finding.digest, finding.verified, finding.signer), finding)
    return ImageVerdict(
        name=name,
        digest=materials[0].digest,
        results=tuple(results),
        matched=bool(matching),
        sbom_types=tuple(dict.fromkeys(sbom_types)),
        findings=tuple(unique.values()),
        problems=tuple(p for m in materials for p in m.problems),
        referrers_source=next((m.referrers_source for m in materials if m.referrers_source), None),
    )
