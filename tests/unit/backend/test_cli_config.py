"""The backend's CLI groups and its configuration section."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zastava.config import ConfigError, load_config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zastava", *args], capture_output=True, text=True, timeout=60
    )


def test_groups_registered() -> None:
    out = run("--help")
    for group in ("backend", "catalog", "runtime"):
        assert group in out.stdout
    assert "test" in run("runtime", "policy", "--help").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nohost"], "listen"),
        (["--store", "mysql://db/x"], "store must be sqlite"),
        (["--listen", "127.0.0.1:99999"], "HOST:PORT"),
    ],
)
def test_serve_refuses_bad_options(args: list[str], message: str, tmp_path: object) -> None:
    out = run("backend", "serve", *args)
    assert out.returncode == 2 and message in out.stderr


def test_serve_refuses_a_bad_policy_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "p.yaml"
    policy.write_text("rules: [{check: what}]")
    out = run("backend", "serve", "--store", f"sqlite:///{tmp_path}/b.db", "--policy", str(policy))
    assert out.returncode == 2 and "p.yaml" in out.stderr


def test_check_policy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.yaml"
    good.write_text("ttlSeconds: 60\nrules: [{check: signed}, {check: sbom, action: warn}]\n")
    out = run("backend", "check-policy", str(good))
    assert out.returncode == 0 and "valid: 2 rule(s), ttlSeconds 60, revision sha256-" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{check: sbom, action: explode}]\n")
    out = run("backend", "check-policy", str(bad))
    assert out.returncode == 2 and "rules.0.sbom.action" in out.stderr


def test_config_section() -> None:
    cfg = load_config(
        text="""
zastava:
  backendServer:
    listen: 0.0.0.0:9000
    store: postgresql://zastava@db/zastava
    maxBodyBytes: 8MiB
    nodeRate: {eventsPerSecond: 100, burst: 500}
    retention: {eventsSeconds: 86400}
""",
        warn=False,
    )
    server = cfg.backend_server
    assert server.max_body_bytes == 8 * 1024 * 1024 and server.node_rate.burst == 500
    assert server.retention.events_seconds == 86400 and server.tenant_rate.burst == 100_000
    with pytest.raises(ConfigError) as info:
        load_config(text="zastava:\n  backendServer:\n    maxBodyByte: 1\n", warn=False)
    assert info.value.errors[0][0] == "zastava.backendServer.maxBodyByte"
