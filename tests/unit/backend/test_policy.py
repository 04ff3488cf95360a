"""Backend policy file: validation with clear errors, verdicts, revision, reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zastava.backend.policy import DEFAULT_POLICY, PolicyEngine, PolicyError, evaluate, load_policy
from zastava.backend.store import CatalogHead
from zastava.registry.verification.policies import ImageVerdict, PolicyResult

DIGEST = "sha256:" + "ab" * 32


def head(**kw: object) -> CatalogHead:
    values: dict[str, object] = {
        "digest": DIGEST,
        "signed": True,
        "has_sbom": True,
        "base_digest": None,
        "rekor": None,
        "updated_us": 1,
        "severities": {},
    }
    values.update(kw)
    return CatalogHead(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules: [{check: signed, action: block}]", "rules.0.signed.action"),
        ("rules: [{check: nope}]", "does not match any of the expected tags"),
        ("rules: [{check: signed, colour: red}]", "rules.0.signed.colour"),
        ("rules: [{check: baseImage, allow: [latest]}]", "rules.0.baseImage.allow.0"),
        ("ttlSeconds: -1", "ttlSeconds"),
        ("[1, 2]", "must be a mapping"),
        ("rules: [", "not valid YAML"),
    ],
)
def test_invalid_policies_name_the_key(text: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(text, "p.yaml")
    assert fragment in str(info.value) and str(info.value).startswith("p.yaml")


def test_empty_policy_passes_everything() -> None:
    policy = load_policy("")
    assert evaluate(policy, None, namespace=None, labels={}).policy_verdict == "pass"


def test_default_policy() -> None:
    result = evaluate(DEFAULT_POLICY, None, namespace="x", labels={})
    assert (result.policy_verdict, result.reasons, result.signed, result.has_sbom) == (
        "fail",
        ["unsigned", "missing SBOM"],
        False,
        False,
    )
    # the catalog's signed flag is evidence, never a signature
    asserted = evaluate(DEFAULT_POLICY, head(rekor={"uuid": "u"}), namespace="x", labels={}, build_ids=["aa"])
    assert (asserted.policy_verdict, asserted.signed, asserted.reasons) == (
        "fail",
        False,
        ["unsigned", "catalog asserts signed: not verified (evidence only)"],
    )
    assert asserted.rekor and asserted.rekor.uuid == "u" and asserted.rekor.verified is False
    # signed is what verification established; its Rekor entry replaces the catalog's
    ok = evaluate(
        DEFAULT_POLICY, head(), namespace="x", labels={}, build_ids=["aa"], verification=verdict(signed=True)
    )
    assert ok.policy_verdict == "pass" and ok.signed and ok.build_ids == ["aa"]
    assert ok.rekor and ok.rekor.uuid == "r1" and ok.rekor.verified is True
    # a failed trust policy is named in the reasons
    bad = evaluate(DEFAULT_POLICY, head(), namespace="x", labels={}, verification=verdict(signed=False))
    assert bad.reasons == [
        "trust policy team-a: 0 of 1 required signature(s) verified (no signature found)",
        "unsigned",
        "catalog asserts signed: not verified (evidence only)",
    ]
    # an SBOM referrer found by verification counts without a catalog entry
    sbom = evaluate(
        DEFAULT_POLICY, None, namespace="x", labels={}, verification=verdict(True, ("text/spdx",))
    )
    assert (sbom.signed, sbom.has_sbom, sbom.policy_verdict) == (True, True, "pass")


def verdict(signed: bool, sbom: tuple[str, ...] = ()) -> ImageVerdict:
    missing = () if signed else ("0 of 1 required signature(s) verified (no signature found)",)
    result = PolicyResult("team-a", "enforce", 1, 1, ("alice",) if signed else (), {}, missing, "r1")
    return ImageVerdict("r.test/a", DIGEST, (result,), True, sbom, (), ())


def test_vulnerability_thresholds_and_selectors() -> None:
    policy = load_policy(
        """
rules:
  - {check: vulnerabilities, minSeverity: critical, action: fail, namespaces: ["prod-*"]}
  - {check: vulnerabilities, minSeverity: medium, maxCount: 2, action: warn, reason: too many}
"""
    )
    sev = head(signed=False, severities={"critical": 1, "medium": 1, "low": 5})
    assert evaluate(policy, sev, namespace="prod-a", labels={}).policy_verdict == "fail"
    assert evaluate(policy, sev, namespace="dev", labels={}).policy_verdict == "pass"  # 2 ≤ maxCount
    more = head(signed=False, severities={"high": 2, "medium": 1})
    result = evaluate(policy, more, namespace="dev", labels={})
    assert (result.policy_verdict, result.reasons) == ("warn", ["too many"])


def test_revision_depends_on_meaning_not_formatting() -> None:
    a = load_policy("rules: [{check: signed, action: fail}]")
    b = load_policy("# comment\nrules:\n  - action: fail\n    check: signed\n")
    c = load_policy("rules: [{check: signed, action: warn}]")
    assert a.revision() == b.revision() != c.revision()


def test_engine_reloads_on_change_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules: [{check: signed}]")
    engine = PolicyEngine(path, reload_seconds=3600)
    _, rev1 = engine.current()
    path.write_text("rules: [{check: sbom}]")
    os.utime(path, ns=(1, 1))
    assert engine.current()[1] == rev1  # not re-checked before reload_seconds
    assert engine.refresh() is True
    _, rev2 = engine.current()
    assert rev2 != rev1
    path.write_text("rules: {")
    os.utime(path, ns=(2, 2))
    assert engine.refresh() is False and engine.last_error and engine.current()[1] == rev2


def test_engine_refuses_a_bad_file_at_start(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        PolicyEngine(tmp_path / "missing.yaml")
