from __future__ import annotations

import pytest

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
