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
