from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.unit.auth.conftest import authority_config
from zastava.auth.authority import ReferenceAuthority, hash_secret, load_authority_config
from zastava.auth.cli import EXAMPLE
from zastava.cli import app


def test_config_refusals() -> None:
    with pytest.raises(ValidationError, match="tenant 'tenant-09' is not in tenants"):
        authority_config(clients=[{"clientId": "a", "tenant": "tenant-09", "secretSha256": "0" * 64}])
    with pytest.raises(ValidationError, match="duplicate clientId a"):
        authority_config(
            clients=[{"clientId": "a", "tenant": "tenant-01", "secretSha256": "0" * 64}] * 2,
        )
    with pytest.raises(ValidationError, match="audiences may not name tenants"):
        authority_config(
            clients=[
                {"clientId": "a", "tenant": "tenant-01", "secretSha256": "0" * 64, "audiences": ["tenant-02"]}
            ]
        )
    with pytest.raises(ValidationError, match="needs secretSha256, secretFile or publicKeyPath"):
        authority_config(clients=[{"clientId": "a", "tenant": "tenant-01"}])
    with pytest.raises(ValidationError, match="Extra inputs"):
        authority_config(bogus=1)


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "authority.yaml"
    path.write_text(EXAMPLE)
    (tmp_path / "observer.secret").write_text("x")
    (tmp_path / "webhook.secret").write_text("y")
    config = load_authority_config(path)
    assert [c.client_id for c in config.clients] == ["zastava-observer", "zastava-webhook"]
    ReferenceAuthority(config, config_dir=tmp_path)
    path.write_text("other: {}\n")
    with pytest.raises(ValueError, match="single root key 'authority'"):
        load_authority_config(path)
    path.write_text("authority: {issuer: x, tenants: []}\n")
    with pytest.raises(ValueError, match=r"authority\.tenants"):
        load_authority_config(path)


def test_rotation_keeps_previous_key_for_grace_and_publishes_next() -> None:
    authority = ReferenceAuthority(authority_config(tokenLifetimeSeconds=60))
    first = authority.current_key.kid
    kids = {k["kid"] for k in authority.jwks()["keys"]}
    assert first in kids and len(kids) == 2  # current + pre-published next
    authority.rotate_keys()
    second = authority.current_key.kid
    assert second in kids  # the next key was already published
    assert {first, second} <= {k["kid"] for k in authority.jwks()["keys"]}
    authority.rotate_keys(retire_previous=True)
    assert {first, second}.isdisjoint({k["kid"] for k in authority.jwks()["keys"]})
    assert all("d" not in k for k in authority.jwks()["keys"])
    assert authority.grace_seconds == 120


def test_cli_hash_secret_and_example(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("hunter2\n")
    runner = CliRunner()
    result = runner.invoke(app, ["authority", "hash-secret", str(secret)])
    assert result.exit_code == 0 and result.output.strip() == hash_secret("hunter2")
    result = runner.invoke(app, ["authority", "example-config"])
    assert result.exit_code == 0 and "clientId: zastava-observer" in result.output
    result = runner.invoke(app, ["authority", "serve", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2


def test_cli_init_writes_a_loadable_setup(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "dev"
    result = runner.invoke(app, ["authority", "init", str(target), "--issuer", "https://127.0.0.1:9443"])
    assert result.exit_code == 0, result.output
    config = load_authority_config(target / "authority.yaml")
    authority = ReferenceAuthority(config, config_dir=target)
    assert authority.token_endpoint == "https://127.0.0.1:9443/token"
    assert (target / "observer.secret").stat().st_mode & 0o777 == 0o600
    assert (target / "observer.secret").read_text() != (target / "webhook.secret").read_text()
    again = runner.invoke(app, ["authority", "init", str(target)])
    assert again.exit_code == 2 and "not overwriting" in again.output
