"""``zastava authority serve`` as a real process (stopped by its PID) and ``zastava authority token`` against
it, configured from a Zastava YAML; its ``/metrics`` counts what it issued and refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from zastava.auth.authority import hash_secret


def _tokens(text: str) -> dict[tuple[str, str], float]:
    """``zastava_authority_tokens_total`` samples by (client, result)."""
    return {
        (s.labels["client"], s.labels["result"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "zastava_authority_tokens_total"
    }


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_and_token_commands(tmp_path: Path) -> None:
    port = _port()
    issuer = f"http://127.0.0.1:{port}"
    (tmp_path / "observer.secret").write_text("observer-secret\n")
    (tmp_path / "authority.yaml").write_text(
        f"""
authority:
  issuer: {issuer}
  tenants: [tenant-01]
  clients:
    - clientId: zastava-observer
      tenant: tenant-01
      secretSha256: {hash_secret("observer-secret")}
      scopes: [api:scanner.runtime.write]
"""
    )
    (tmp_path / "zastava.yaml").write_text(
        f"""
zastava:
  runtime:
    authority:
      issuer: {issuer}
      clientId: zastava-observer
      clientSecretPath: {tmp_path / "observer.secret"}
      requireMutualTls: false
"""
    )
    exe = [sys.executable, "-m", "zastava"]
    server = subprocess.Popen(
        [*exe, "authority", "serve", "-c", str(tmp_path / "authority.yaml"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(issuer + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "authority did not start"
            time.sleep(0.1)
        result = subprocess.run(
            [*exe, "authority", "token", "-c", str(tmp_path / "zastava.yaml")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "ZASTAVA_RUNTIME__AUTHORITY__REQUIREMUTUALTLS": "false"},
        )
        assert result.returncode == 0, result.stderr
        token = json.loads(result.stdout)
        assert token["token_type"] == "DPoP" and token["expires_in"] > 200
        headers = subprocess.run(
            [
                *exe,
                "authority",
                "token",
                "-c",
                str(tmp_path / "zastava.yaml"),
                "--method",
                "POST",
                "--url",
                "https://backend.test/api/v1/scanner/runtime/events",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert headers.returncode == 0, headers.stderr
        assert set(json.loads(headers.stdout)) == {"Authorization", "DPoP"}
        # a wrong secret: exit 1 with the Authority's reason, no traceback
        (tmp_path / "observer.secret").write_text("wrong\n")
        failed = subprocess.run(
            [*exe, "authority", "token", "-c", str(tmp_path / "zastava.yaml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert failed.returncode == 1 and "invalid_client" in failed.stderr, failed.stderr
        # caller-chosen client ids are not label values: 3 distinct unknown ids collapse into one series
        for n in range(3):
            refused = httpx.post(
                issuer + "/token",
                data={"grant_type": "client_credentials", "client_id": f"probe-{n}", "client_secret": "x"},
            )
            assert refused.status_code == 401
        metrics = httpx.get(issuer + "/metrics", timeout=5)
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        assert _tokens(metrics.text) == {
            ("zastava-observer", "issued"): 2,  # `token` and `token --method/--url`
            ("zastava-observer", "invalid_client"): 1,  # the wrong secret
            ("unknown", "invalid_client"): 3,
        }
        assert "probe-" not in metrics.text
        latency = [
            s
            for family in text_string_to_metric_families(metrics.text)
            for s in family.samples
            if s.name == "zastava_authority_request_latency_ms_count"
        ]
        assert {s.labels["endpoint"]: s.value for s in latency}["token"] == 6
        assert "zastava_meter_info{" in metrics.text and 'component="authority"' in metrics.text
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
