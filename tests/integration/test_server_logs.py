"""One log format in every server: ``zastava backend serve`` and ``zastava authority serve`` (the observer's
and the webhook's are checked in their suites) write only JSON objects, each with the component and the
tenant/environment/deployment scope of ``zastava.runtime``, uvicorn's own records included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from tests.harness.devstack import free_port

ZASTAVA = [sys.executable, "-m", "zastava"]
SCOPE = {"tenant": "tenant-01", "environment": "qa", "deployment": "lab-7"}


def _zastava_config(path: Path, **sections: Any) -> Path:
    runtime = {"environment": SCOPE["environment"], "deployment": SCOPE["deployment"]}
    path.write_text(yaml.safe_dump({"zastava": {"runtime": runtime, **sections}}))
    return path


def _serve(args: list[str], log_path: Path, ready_url: str) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*ZASTAVA, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")},
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def _json_lines(log_path: Path, component: str) -> list[dict[str, Any]]:
    lines = []
    for raw in log_path.read_text().splitlines():
        if not raw.strip():
            continue
        line = orjson.loads(raw)  # raises on anything that is not one JSON object per line
        assert line["component"] == component and line["plane"] == "runtime", line
        assert line["environment"] == SCOPE["environment"] and line["deployment"] == SCOPE["deployment"]
        assert "tenant" in line and {"ts", "level", "logger", "msg"} <= set(line)
        lines.append(line)
    return lines


def test_backend_serve_logs_json_with_the_deployment_scope(tmp_path: Path) -> None:
    port = free_port()
    config = _zastava_config(tmp_path / "backend.yaml")
    url = f"http://127.0.0.1:{port}"
    process = _serve(
        [
            "backend",
            "serve",
            "--config",
            str(config),
            "--store",
            f"sqlite:///{tmp_path / 'b.db'}",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        tmp_path / "backend.log",
        f"{url}/readyz",
    )
    try:
        bad = httpx.post(f"{url}/api/v1/scanner/runtime/events", content=b"{not json", timeout=5)
        assert bad.status_code == 400
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # uvicorn logs a warning
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)
    finally:
        _stop(process)
    lines = _json_lines(tmp_path / "backend.log", "backend")
    assert any(line["logger"] == "uvicorn.error" for line in lines), lines
    serving = next(line for line in lines if line["msg"] == "backend serving")
    assert serving["url"] == url and serving["auth"] == "static" and serving["tenant"] == "tenant-01"


def test_authority_serve_logs_json_with_the_deployment_scope(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    init = subprocess.run(
        [*ZASTAVA, "authority", "init", str(tmp_path / "authority"), "--issuer", issuer],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    scope = _zastava_config(tmp_path / "scope.yaml")
    process = _serve(
        [
            "authority",
            "serve",
            "-c",
            str(tmp_path / "authority" / "authority.yaml"),
            "--port",
            str(port),
            "--zastava-config",
            str(scope),
        ],
        tmp_path / "authority.log",
        f"{issuer}/.well-known/openid-configuration",
    )
    client = _zastava_config(
        tmp_path / "observer.yaml",
        backend={"baseAddress": "http://127.0.0.1:9", "allowInsecureHttp": True},
    )
    data = yaml.safe_load(client.read_text())
    data["zastava"]["runtime"]["authority"] = {
        "issuer": issuer,
        "clientId": "zastava-observer",
        "clientSecretPath": str(tmp_path / "authority" / "observer.secret"),
        "requireMutualTls": False,
    }
    client.write_text(yaml.safe_dump(data))
    try:
        token = subprocess.run(
            [*ZASTAVA, "authority", "token", "-c", str(client)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert token.returncode == 0, token.stderr
    finally:
        _stop(process)
    lines = _json_lines(tmp_path / "authority.log", "authority")
    issued = next(line for line in lines if line["msg"] == "token issued")
    assert issued["client_id"] == "zastava-observer" and issued["tenant"] == "tenant-01"
    assert "access_token" not in issued and not any("eyJ" in str(v) for v in issued.values())
