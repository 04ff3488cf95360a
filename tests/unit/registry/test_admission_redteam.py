"""Red-team properties of the one reference model and the pure trust-policy evaluator (the front-door
versions are in ``tests/integration/webhook/test_admission_redteam.py``): distinct signers for k of n,
``index-or-each`` for the digest policies, globs normalised like images and port-agnostic, hosts that govern
every port of themselves whatever the spelling (hypothesis)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.devstack import signing
from zastava.config import Admission
from zastava.registry import KeylessIdentity, TrustConfigError, TrustedSigners, TrustRoot
from zastava.registry.posture.summary import VerificationCache
from zastava.registry.reference import name_matches, normalise_pattern, parse_reference
from zastava.registry.verification.policies import Material, distinct_count, evaluate
from zastava.webhook.gates import local_gates

from .test_trust_policies import DIGEST, ISSUER, NAME, MemoryPusher, glob, key_authority, keys, policy

__all__ = ["keys"]  # the module fixture shared with test_trust_policies

PLATFORM_A = "sha256:" + hashlib.sha256(b"platform-a").hexdigest()
PLATFORM_B = "sha256:" + hashlib.sha256(b"platform-b").hexdigest()


def test_one_key_under_two_names_does_not_meet_a_threshold_of_two(keys: dict[str, signing.KeyPair]) -> None:
    twice = [key_authority("a1", keys["alice"]), key_authority("a2", keys["alice"])]
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["alice"])  # type: ignore[arg-type]
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["alice"])  # two signatures, one signer
    verdict = evaluate(policy(twice, threshold=2), NAME, [pusher.material()])
    assert not verdict.signed and not verdict.satisfied
    assert verdict.results[0].missing[0].startswith("1 of 2 required signature(s) verified")
    assert "a1, a2 verified but by 1 distinct signer(s)" in verdict.results[0].missing[0]
    # two different keys do
    pair = [key_authority("alice", keys["alice"]), key_authority("bob", keys["bob"])]
    signing.sign_legacy(pusher, "r", DIGEST, key=keys["bob"])  # type: ignore[arg-type]
    assert evaluate(policy(pair, threshold=2), NAME, [pusher.material()]).satisfied


def test_distinct_count_is_a_maximum_matching() -> None:
    # one signature acceptable to two authorities counts once; greedy order must not lose a match
    assert distinct_count({"a": {"s1"}, "b": {"s1"}}) == 1
    assert distinct_count({"a": {"s1", "s2"}, "b": {"s1"}}) == 2
    assert distinct_count({"a": set(), "b": {"s1"}, "c": {"s1", "s2"}}) == 2


def test_index_or_each_wants_the_index_or_every_platform(keys: dict[str, signing.KeyPair]) -> None:
    trust = policy([key_authority("alice", keys["alice"])])
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", PLATFORM_A, key=keys["alice"])  # type: ignore[arg-type]
    index, a, b = pusher.material(DIGEST), pusher.material(PLATFORM_A), pusher.material(PLATFORM_B)
    assert not evaluate(trust, NAME, [index, a, b], combine="index-or-each").signed
    assert evaluate(trust, NAME, [index, a, b], combine="any").signed  # what "any" meant before
    signing.sign_legacy(pusher, "r", PLATFORM_B, key=keys["alice"])  # type: ignore[arg-type]
    index, b = pusher.material(DIGEST), pusher.material(PLATFORM_B)
    assert evaluate(trust, NAME, [index, a, b], combine="index-or-each").signed
    assert not evaluate(trust, NAME, [index, a, b], combine="all").signed
    signed_index = MemoryPusher()
    signing.sign_legacy(signed_index, "r", DIGEST, key=keys["alice"])  # type: ignore[arg-type]
    alone = [signed_index.material(DIGEST), Material(PLATFORM_A), Material(PLATFORM_B)]
    assert evaluate(trust, NAME, alone, combine="index-or-each").signed


def test_trust_globs_follow_docker_defaults_and_name_a_repository() -> None:
    assert glob("docker.io/*").matches("docker.io/library/nginx")
    assert glob("index.docker.io/ngin?").matches("docker.io/library/nginx")
    assert glob("registry-1.docker.io:443/library/**").matches("docker.io/library/nginx")
    assert glob("nginx").matches("docker.io/library/nginx")
    assert glob("**").matches("anything.io/at/all")
    assert glob("*.corp.io/**").matches("eu.corp.io:5000/team/app")  # a wildcard host: every port too
    assert glob("*.corp.io:5000/**").matches("eu.corp.io:5000/a") and not glob("*.corp.io:5000/**").matches(
        "eu.corp.io:5001/a"
    )
    for bad in ("registry.example.com", "*.example.com", "library/*", "team/app*", "\u212aube.io/**"):
        with pytest.raises(TrustConfigError):
            glob(bad)


def test_allow_deny_host_globs_match_the_registry() -> None:
    deny = normalise_pattern("*.evil.io")
    assert name_matches(parse_reference("cdn.evil.io/x/y:1"), deny, any_port=True)
    assert name_matches(parse_reference("cdn.evil.io:5000/x:1"), deny, any_port=True)
    assert not name_matches(parse_reference("evil.io.good.com/x:1"), deny, any_port=True)
    with pytest.raises(Exception, match="not a registry host"):
        Admission(registry_denylist=["library/*"])
    # a glob's host part stays in the host: the allowlist *.corp.io/* does not allow a look-alike path
    allow = Admission(registry_allowlist=["*.corp.io/*"], banned_tags=[])
    assert local_gates(parse_reference("eu.corp.io/team/app:1"), allow) == []
    denied = local_gates(parse_reference("evil.io/x.corp.io/payload:1"), allow)
    assert denied == ["evil.io/x.corp.io/payload is not in the registry allowlist"]


# ------------------------------------------------------------------------- ports, every spelling

_hosts = st.sampled_from(["evil.io", "EVIL.io", "Evil.Io", "evil.IO"])
_ports = st.one_of(st.none(), st.just(443), st.integers(min_value=1, max_value=65535))
_paths = st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=3)
_suffix = st.sampled_from([":1", ":v1.2", "@sha256:" + "c" * 64, ":1@sha256:" + "d" * 64])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(host=_hosts, port=_ports, path=_paths, suffix=_suffix, pattern=_hosts, https_port=st.booleans())
def test_a_host_governs_every_port_of_itself(
    host: str, port: int | None, path: list[str], suffix: str, pattern: str, https_port: bool
) -> None:
    image = f"{host}{'' if port is None else f':{port}'}/{'/'.join(path)}{suffix}"
    ref = parse_reference(image)
    # the denylist entry ``evil.io`` (any spelling, :443 is the same host) denies it on every port
    deny = Admission(registry_denylist=[pattern + (":443" if https_port else "")], banned_tags=[])
    assert any("is denied" in r for r in local_gates(ref, deny)), image
    deny_glob = Admission(registry_denylist=[f"{pattern}/**"], banned_tags=[])
    assert any("is denied" in r for r in local_gates(ref, deny_glob)), image
    # a trust policy for ``evil.io/**`` governs it on every port
    assert glob(f"{pattern}/**").matches(ref.name), image
    assert glob(f"{pattern}:443/{path[0]}/**").matches(ref.name) or len(path) == 1, image
    # a wildcard host (``*.evil.io``) governs every port of every host under it, in both models
    sub = parse_reference(f"cdn.{image}")
    assert glob(f"*.{pattern}/**").matches(sub.name), image
    wildcard = Admission(registry_denylist=[f"*.{pattern}"], banned_tags=[])
    assert any("is denied" in r for r in local_gates(sub, wildcard)), image
    # a neighbour is never governed
    other = parse_reference(f"{host}x{'' if port is None else f':{port}'}/{'/'.join(path)}{suffix}")
    assert not glob(f"{pattern}/**").matches(other.name)
    assert not any("is denied" in r for r in local_gates(other, deny_glob))


def test_ip_literals_have_one_spelling() -> None:
    assert parse_reference("[0:0:0:0:0:0:0:1]:5000/x:1").registry == "[::1]:5000"
    assert parse_reference("[::FFFF:127.0.0.1]/x:1").registry == "127.0.0.1"
    for bad in ("127.1/x:1", "0x7f.0.0.1/x:1", "2130706433:80/x:1", "10.0.0.010/x:1", "[::g]/x:1"):
        with pytest.raises(Exception, match=r"IPv4|registry host"):
            parse_reference(bad)
    assert name_matches(
        parse_reference("[::ffff:127.0.0.1]:5000/x:1"), normalise_pattern("127.0.0.1"), any_port=True
    )


def test_the_findings_memo_is_keyed_by_the_evidence_annotations(tmp_path: Path) -> None:
    """A keyless layer first seen without its Rekor bundle annotation is unverified; the same layer with the
    bundle must verify through the same memo (before, the memo key ignored the chain and bundle)."""
    sigstore = signing.TestSigstore()
    root = TrustRoot.load(sigstore.write_trusted_root(tmp_path / "trusted_root.json"))
    pusher = MemoryPusher()
    signing.sign_legacy(pusher, "r", DIGEST, sigstore=sigstore, identity="ci@zastava.test", issuer=ISSUER)  # type: ignore[arg-type]
    (layer,) = pusher.material().legacy
    identity = KeylessIdentity(issuer=ISSUER, subject="ci@zastava.test")
    signers = TrustedSigners(identities=[identity], trusted_root=root)
    memo = VerificationCache()
    stripped = dataclasses.replace(layer, bundle=None)
    assert not memo.check(stripped, DIGEST, signers).verified
    assert memo.check(layer, DIGEST, signers).verified
