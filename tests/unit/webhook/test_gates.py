from __future__ import annotations

import pytest

from zastava.config import Admission
from zastava.contracts import ImagePolicy
from zastava.registry.reference import parse_reference
from zastava.webhook.gates import backend_gates, local_gates

from .reviews import DIGEST_A, DIGEST_B


def test_local_gates() -> None:
    policy = Admission(registry_allowlist=["ghcr.io/acme"], registry_denylist=["ghcr.io/acme/bad"])
    assert local_gates(parse_reference("ghcr.io/acme/api:1"), policy) == []
    assert local_gates(parse_reference("ghcr.io/acme/bad:1"), policy) == [
        "registry ghcr.io / repository acme/bad is denied"
    ]
    assert local_gates(parse_reference("quay.io/x/y:1"), policy) == [
        "quay.io/x/y is not in the registry allowlist"
    ]
    assert "tag :latest is banned" in local_gates(parse_reference("ghcr.io/acme/api:latest"), policy)[0]
    assert "no tag and no digest" in local_gates(parse_reference("ghcr.io/acme/api"), policy)[0]
    # a digest pins the image: the tag does not matter then
    assert local_gates(parse_reference(f"ghcr.io/acme/api:latest@{DIGEST_A}"), policy) == []
    relaxed = Admission(banned_tags=[], deny_untagged=False)
    assert local_gates(parse_reference("nginx"), relaxed) == []
    # no tag is the implied :latest: a ban on latest applies without denyUntagged
    banned = Admission(banned_tags=["Latest"], deny_untagged=False)
    assert local_gates(parse_reference("nginx"), banned) == [
        "tag :latest is banned (pin a version or a digest)"
    ]
    assert local_gates(parse_reference("nginx:LATEST"), banned) == [
        "tag :LATEST is banned (pin a version or a digest)"
    ]


def test_denylisted_host_is_denied_on_every_port_allowlisted_host_only_on_its_own() -> None:
    policy = Admission(registry_denylist=["evil.io"], banned_tags=[])
    for image in ("evil.io/x:1", "evil.io:443/x:1", "evil.io:80/x:1", "EVIL.IO:5000/team/x:1"):
        assert local_gates(parse_reference(image), policy), image
    allow = Admission(registry_allowlist=["ghcr.io"], banned_tags=[])
    assert local_gates(parse_reference("ghcr.io:443/acme/api:1"), allow) == []
    assert local_gates(parse_reference("ghcr.io:5000/acme/api:1"), allow) == [
        "ghcr.io:5000/acme/api is not in the registry allowlist"
    ]
    own_port = Admission(registry_allowlist=["localhost:5000"], banned_tags=[])
    assert local_gates(parse_reference("localhost:5000/a:1"), own_port) == []
    assert local_gates(parse_reference("localhost/a:1"), own_port) != []


def _result(**kwargs: object) -> ImagePolicy:
    values: dict[str, object] = {"signed": True, "has_sbom": True, "policy_verdict": "pass"}
    values.update(kwargs)
    return ImagePolicy.model_validate(values)


def test_backend_gates_follow_verify_flags() -> None:
    strict = Admission()
    verdict = backend_gates(
        _result(signed=False, has_sbom=False, policy_verdict="fail", reasons=["CVE-1"]), strict
    )
    assert verdict.deny == [
        "image signature not verified",
        "no SBOM (neither a referrer nor a catalog entry)",
        "scanner policy verdict: fail",
        "CVE-1",
    ]
    lax = Admission.model_validate(
        {"verify": {"imageSignature": False, "sbomReferrer": False, "scannerPolicyPass": False}}
    )
    verdict = backend_gates(
        _result(signed=False, has_sbom=False, policy_verdict="fail", reasons=["CVE-1"]), lax
    )
    assert verdict.deny == [] and verdict.warn == ["scanner policy verdict: fail", "CVE-1"]


def test_warn_verdict_and_allow_warn() -> None:
    assert backend_gates(_result(policy_verdict="warn"), Admission()).warn == ["scanner policy verdict: warn"]
    assert backend_gates(_result(policy_verdict="warn"), Admission(allow_warn=False)).deny == [
        "scanner policy verdict: warn"
    ]


def test_base_image_allowlist() -> None:
    policy = Admission(base_image_allowlist=[DIGEST_A])
    assert backend_gates(_result(base_image_digest=DIGEST_A), policy).deny == []
    assert backend_gates(_result(base_image_digest=DIGEST_B), policy).deny == [
        f"base image {DIGEST_B} is not in the allowlist"
    ]
    assert "base image unknown" in backend_gates(_result(), policy).deny[0]
    with pytest.raises(ValueError, match="baseImageAllowlist"):
        Admission(base_image_allowlist=["sha256:nothex"])
