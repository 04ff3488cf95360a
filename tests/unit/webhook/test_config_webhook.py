from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zastava.config import ConfigError, load_config


def test_webhook_section_defaults_and_overrides() -> None:
    config = load_config(
        text="zastava:\n  webhook: {listen: '127.0.0.1:9443', deadlineMarginSeconds: 1}\n"
        "  admission: {registryDenylist: [docker.io], bannedTags: [latest, dev]}\n"
    )
    assert config.webhook.listen == "127.0.0.1:9443" and config.webhook.deadline_margin_seconds == 1
    assert config.webhook.failure_ttl_seconds == 5 and config.webhook.decision_batch_max == 100
    assert config.admission.registry_denylist == ["docker.io"] and config.admission.allow_warn is True


@pytest.mark.parametrize(
    ("yaml_text", "path"),
    [
        ("zastava: {webhook: {listen: 'nope'}}", "zastava.webhook"),
        ("zastava: {webhook: {listen: '127.0.0.1:70000'}}", "zastava.webhook"),
        ("zastava: {webhook: {decisionsPath: 'x'}}", "zastava.webhook"),
        ("zastava: {webhook: {failureTTL: 3}}", "zastava.webhook.failureTTL"),
        ("zastava: {admission: {baseImageAllowlist: ['sha256:xyz']}}", "zastava.admission"),
    ],
)
def test_invalid_webhook_settings_name_the_key(yaml_text: str, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text=yaml_text)
    assert any(p == path for p, _ in info.value.errors), info.value.errors


def test_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZASTAVA_WEBHOOK__FAILURETTLSECONDS", "2")
    assert load_config(text="").webhook.failure_ttl_seconds == 2


def test_patterns_and_banned_tags_are_normalised_at_load() -> None:
    config = load_config(
        text="zastava:\n  admission:\n"
        "    registryDenylist: [Index.Docker.IO/nginx, 'evil.io:443', docker.io/library/nginx]\n"
        "    registryAllowlist: ['GHCR.io:443/acme', 'localhost:5000', 'docker.io/library/*']\n"
        "    bannedTags: [LATEST, latest, Edge]\n"
    )
    admission = config.admission
    assert admission.registry_denylist == ["docker.io/library/nginx", "evil.io"]
    assert admission.registry_allowlist == ["ghcr.io/acme", "localhost:5000", "docker.io/library/*"]
    assert admission.banned_tags == ["latest", "edge"]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("ghcr.io/acme/", "empty component"),
        ("ghcr.io/Acme", "must be lowercase"),
        ("ghcr.io/acme/api:1", "tag"),
        ("evil.io:0443", "leading zeros"),
        ("ghcr.io/acme/api@sha256:" + "a" * 64, "digest"),
    ],
)
def test_config_validate_names_an_odd_pattern(tmp_path: Path, pattern: str, why: str) -> None:
    """``zastava config validate`` (the operator's front door): exit 2, the key path and what is wrong."""
    source = tmp_path / "z.yaml"
    source.write_text(yaml.safe_dump({"zastava": {"admission": {"registryDenylist": ["evil.io", pattern]}}}))
    result = subprocess.run(
        [sys.executable, "-m", "zastava", "config", "validate", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "zastava.admission.registryDenylist" in result.stderr and "entry 1" in result.stderr
    assert why in result.stderr, result.stderr


def _validate(tmp_path: Path, policy: dict[str, object]) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "trust.yaml"
    source.write_text(yaml.safe_dump({"zastava": {"admission": {"trustPolicies": [policy]}}}))
    return subprocess.run(
        [sys.executable, "-m", "zastava", "config", "validate", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _public_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_config_validate_accepts_a_readable_trust_policy(tmp_path: Path) -> None:
    """The control case for the refusals below: the same shape with a readable key file is valid."""
    key = tmp_path / "alice.pub"
    key.write_text(_public_key_pem())
    result = _validate(
        tmp_path,
        {
            "name": "team-a",
            "images": ["registry.example.com/team-a/**"],
            "authorities": [
                {"key": {"path": str(key)}},
                {
                    "keyless": {
                        "issuer": "https://token.actions.githubusercontent.com",
                        "subjectRegExp": "^https://github.com/acme/",
                    }
                },
            ],
            "threshold": 1,
            "attestations": [{"predicateType": "https://slsa.dev/provenance/v1"}],
            "mode": "enforce",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "valid"


@pytest.mark.parametrize(
    ("policy", "path", "why"),
    [
        (  # a key that is not in the shape
            {"name": "p", "images": ["a.io/**"], "authorities": [{"key": {"path": "/k"}}], "colour": 1},
            "zastava.admission.trustPolicies.0.colour",
            "",
        ),
        (  # a key file that does not exist
            {
                "name": "p",
                "images": ["a.io/**"],
                "authorities": [{"key": {"path": "/nonexistent/alice.pub"}}],
            },
            "zastava.admission.trustPolicies.0.authorities.0.key.path",
            "/nonexistent/alice.pub: cannot read",
        ),
        (  # a key file that is not a key
            {"name": "p", "images": ["a.io/**"], "authorities": [{"key": {"pem": "not a key"}}]},
            "zastava.admission.trustPolicies.0.authorities.0.key.pem",
            "not a PEM/DER public key",
        ),
        (  # a bad regular expression
            {
                "name": "p",
                "images": ["a.io/**"],
                "authorities": [{"keyless": {"issuer": "x", "subjectRegExp": "("}}],
            },
            "zastava.admission.trustPolicies.0.authorities.0.keyless",
            "invalid regex",
        ),
        (  # more signatures required than authorities named
            {
                "name": "p",
                "images": ["a.io/**"],
                "authorities": [{"keyless": {"issuer": "x", "subject": "y"}}],
                "threshold": 2,
            },
            "zastava.admission.trustPolicies.0",
            "threshold 2 exceeds",
        ),
        (  # a glob that is not a normalisable image name
            {
                "name": "p",
                "images": ["A.io/Team/**"],
                "authorities": [{"keyless": {"issuer": "x", "subject": "y"}}],
            },
            "zastava.admission.trustPolicies.0.images.0",
            "repositories are lowercase",
        ),
        (  # a glob with a character class (not offered: it would let a pattern escape normalisation)
            {
                "name": "p",
                "images": ["a.io/[**"],
                "authorities": [{"keyless": {"issuer": "x", "subject": "y"}}],
            },
            "zastava.admission.trustPolicies.0.images.0",
            "unexpected character",
        ),
    ],
)
def test_config_validate_refuses_bad_trust_policies(
    tmp_path: Path, policy: dict[str, object], path: str, why: str
) -> None:
    """``zastava config validate`` is the front door for trust policies: unknown keys, unreadable or invalid
    keys, bad regexes, impossible thresholds and bad globs exit 2 naming the key path (issue 15, item 1)."""
    result = _validate(tmp_path, policy)
    assert result.returncode == 2, result.stdout + result.stderr
    assert path in result.stderr, result.stderr
    assert why in result.stderr, result.stderr
