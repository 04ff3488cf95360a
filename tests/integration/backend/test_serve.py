"""``zastava backend serve`` as a real process (uvicorn) with no config file, on SQLite and real PostgreSQL;
the client commands ``catalog import`` and ``runtime policy test`` talk to it over HTTP."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.harness.devstack import free_port
from tests.harness.events import digest_of, envelope, make_event, ndjson, sbom
from zastava.contracts import SCHEMA_VERSIONS_HEADER

ZASTAVA = [sys.executable, "-m", "zastava"]


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*ZASTAVA, "backend", "serve", "--store", store_url, "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"backend did not start: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def cli(*args: str, backend: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZASTAVA, *args, "--backend", backend], capture_output=True, text=True, timeout=60)


def test_serve_ingest_catalog_policy_over_http(server: str, tmp_path: Path) -> None:
    events = [make_event(i) for i in range(500)]
    body = gzip.compress(ndjson([envelope(e) for e in events]))
    r = httpx.post(
        f"{server}/api/v1/scanner/runtime/events",
        content=body,
        headers={"content-encoding": "gzip", "content-type": "application/x-ndjson"},
        timeout=60,
    )
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 500 and r.headers[SCHEMA_VERSIONS_HEADER]

    digest = digest_of("api")
    sbom_file = tmp_path / "sbom.json"
    sbom_file.write_text(json.dumps(sbom()))
    out = cli(
        "catalog",
        "import",
        "--image",
        digest,
        "--sbom",
        str(sbom_file),
        "--signed",
        "--rekor",
        "abc",
        backend=server,
    )
    assert out.returncode == 0, out.stderr
    assert "hasSbom=true components=4" in out.stdout

    # `--signed` is the operator's assertion: evidence in the reasons, never a signature (the backend verifies
    # signatures in the image's registry: test_verification.py)
    out = cli("runtime", "policy", "test", "--image", digest, "--namespace", "payments", backend=server)
    assert out.returncode == 0, out.stderr
    assert (
        "verdict:   fail" in out.stdout
        and "signed:    false" in out.stdout
        and "hasSbom:   true" in out.stdout
    )
    assert "unsigned; catalog asserts signed: not verified (evidence only)" in out.stdout
    assert "9f3a1cd4c0b7adfe91c0e3b51d2f45fb0f76a4c1" in out.stdout and "rekor:     abc" in out.stdout

    out = cli("runtime", "policy", "test", "--image", digest_of("nope"), "--json", backend=server)
    result = orjson.loads(out.stdout)["results"][digest_of("nope")]
    assert result["policyVerdict"] == "fail" and result["reasons"] == ["unsigned", "missing SBOM"]

    page = httpx.get(f"{server}/api/v1/scanner/runtime/events", params={"limit": 1}).json()
    assert page["total"] == 500 and page["nextCursor"]


def test_client_commands_report_an_unreachable_backend() -> None:
    port = free_port()
    out = cli("runtime", "policy", "test", "--image", digest_of("x"), backend=f"http://127.0.0.1:{port}")
    assert out.returncode == 1 and "cannot reach the backend" in out.stderr
    out = cli("catalog", "import", "--image", "latest", backend=f"http://127.0.0.1:{port}")
    assert out.returncode == 2 and "--image must be" in out.stderr
