"""One validation path (issue 16): every refusal a component's start-up makes is a refusal of
``zastava config validate --component`` (exit 2 naming the key), run as the real CLIs; static backend auth is
refused off loopback; an unwritable store stops the backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zastava.config import ConfigError, load_config


def zastava(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zastava", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:8080", "backend.svc:8080"])
def test_static_auth_is_refused_off_loopback(listen: str, tmp_path: Path) -> None:
    text = f"zastava:\n  backendServer:\n    auth: static\n    listen: '{listen}'\n"
    with pytest.raises(ConfigError) as info:
        load_config(text=text, warn=False)
    assert info.value.errors[0][0] == "zastava.backendServer.auth"
    path = tmp_path / "z.yaml"
    path.write_text(text)
    validate = zastava("config", "validate", str(path))
    assert validate.returncode == 2 and "zastava.backendServer.auth" in validate.stderr
    # the same refusal at start-up, before anything is opened
    serve = zastava("backend", "serve", "--config", str(path), "--store", f"sqlite:///{tmp_path}/b.db")
    assert serve.returncode == 2 and "zastava.backendServer.auth" in serve.stderr
    assert not (tmp_path / "b.db").exists()


@pytest.mark.parametrize(
    ("listen", "mode"),
    [
        ("127.0.0.1:8080", "static"),
        ("[::1]:8080", "static"),
        ("localhost:80", "static"),
        ("0.0.0.0:1", "optok"),
    ],
)
def test_auth_defaults_to_optok_unless_only_loopback_can_call(listen: str, mode: str) -> None:
    server = load_config(
        text=f"zastava:\n  backendServer:\n    listen: '{listen}'\n", warn=False
    ).backend_server
    assert server.auth is None and server.auth_mode == mode
    explicit = load_config(
        text=f"zastava:\n  backendServer:\n    listen: '{listen}'\n    auth: optok\n", warn=False
    ).backend_server
    assert explicit.auth_mode == "optok"


def test_unwritable_sqlite_store_fails_start_up_naming_the_key(tmp_path: Path) -> None:
    """/sys refuses new files even to root (a read-only root filesystem says EROFS the same way)."""
    out = zastava("backend", "serve", "--store", "sqlite:////sys/zastava.db", "--listen", "127.0.0.1:9")
    assert out.returncode == 2
    assert "zastava.backendServer.store: cannot write the SQLite database /sys/zastava.db" in out.stderr


def _client_config(tmp_path: Path, **authority: str) -> Path:
    lines = "".join(f"      {k}: {v}\n" for k, v in authority.items())
    path = tmp_path / f"z{len(list(tmp_path.glob('z*.yaml')))}.yaml"
    path.write_text(
        "zastava:\n  backend:\n    baseAddress: https://backend.example:8080\n"
        f"  runtime:\n    authority:\n      issuer: https://authority.example\n{lines}"
        f"  webhook:\n    certPath: {tmp_path}/tls.crt\n    keyPath: {tmp_path}/tls.key\n"
    )
    return path


def test_every_start_up_refusal_is_a_validate_refusal(tmp_path: Path) -> None:
    """For observer and webhook: run the real start-up and ``config validate --component`` on the same
    configs; each refusal of the first names a key the second names, both exit 2."""
    (tmp_path / "tls.crt").write_text("x")
    (tmp_path / "tls.key").write_text("x")
    cases = {
        "zastava.runtime.authority.clientCertPath": _client_config(
            tmp_path, clientSecretPath=str(tmp_path / "tls.crt")
        ),
        "zastava.runtime.authority.clientKeyPath": _client_config(
            tmp_path, clientCertPath=str(tmp_path / "tls.crt"), clientKeyPath=str(tmp_path / "missing.key")
        ),
    }
    for key, path in cases.items():
        for component, start in (
            ("observer", ["observer", "run", "--config", str(path), "--listen", ""]),
            ("webhook", ["webhook", "serve", "--config", str(path), "--listen", "127.0.0.1:0"]),
        ):
            started = zastava(*start)
            assert started.returncode == 2 and key in started.stderr, (component, started.stderr)
            validated = zastava("config", "validate", "--component", component, str(path))
            assert validated.returncode == 2 and key in validated.stderr, (component, validated.stderr)
            assert zastava("config", "validate", str(path)).returncode == 0  # not a component's problem
    # the webhook's own serving certificate, and mode.webhook
    (tmp_path / "tls.key").unlink()
    path = _client_config(tmp_path, requireMutualTls="false", clientSecretPath=str(tmp_path / "tls.crt"))
    started = zastava("webhook", "serve", "--config", str(path), "--listen", "127.0.0.1:0")
    validated = zastava("config", "validate", "--component", "webhook", str(path))
    for out in (started, validated):
        assert out.returncode == 2 and "zastava.webhook.keyPath" in out.stderr, out.stderr
    path.write_text(path.read_text() + "  mode:\n    webhook: false\n    observer: false\n")
    for component, start in (
        ("webhook", ["webhook", "serve", "--config", str(path)]),
        ("observer", ["observer", "run", "--config", str(path), "--listen", ""]),
    ):
        started = zastava(*start)
        validated = zastava("config", "validate", "--component", component, str(path))
        for out in (started, validated):
            assert out.returncode == 2 and f"zastava.mode.{component}" in out.stderr, out.stderr


def test_backend_start_up_refusals_are_validate_refusals(tmp_path: Path) -> None:
    """``backend serve`` and ``config validate --component backend`` refuse the same configs, naming the key:
    an unwritable store, a certificate without its key, a file that is not there."""
    cases = {
        "zastava.backendServer.store": "    store: sqlite:////sys/zastava/b.db\n",
        "zastava.backendServer.tlsKeyFile": f"    tlsCertFile: {tmp_path}/b0.yaml\n",
        "zastava.backendServer.clientCaFile": f"    clientCaFile: {tmp_path}/missing-ca.crt\n",
        "zastava.backendServer.policyFile": f"    policyFile: {tmp_path}/missing-policy.yaml\n",
    }
    for index, (key, line) in enumerate(cases.items()):
        path = tmp_path / f"b{index}.yaml"
        store = "" if "store" in line else f"    store: sqlite:///{tmp_path}/b.db\n"
        path.write_text(f"zastava:\n  backendServer:\n    listen: 127.0.0.1:9\n{store}{line}")
        started = zastava("backend", "serve", "--config", str(path))
        validated = zastava("config", "validate", "--component", "backend", str(path))
        for out in (started, validated):
            assert out.returncode == 2 and key in out.stderr, (key, out.stderr)
        assert zastava("config", "validate", str(path)).returncode == 0
