"""``zastava webhook certs | review | serve`` as an operator runs them (subprocesses, stopped by PID), against
the real reference backend (``real_backend``)."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from cryptography import x509

from tests.harness.devstack import free_port, signing
from tests.harness.polling import wait_ready
from tests.harness.signed import PushedImage, push_synthetic, unique_repo
from tests.unit.webhook.reviews import DIGEST_A, body, pod_with, review

from .conftest import RealBackend

ZASTAVA = [sys.executable, "-m", "zastava"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ZASTAVA, *args], input=stdin, capture_output=True, timeout=60, check=False)


def write_config(path: Path, backend: RealBackend, **webhook: object) -> Path:
    data = {
        "zastava": {
            "backend": {"baseAddress": backend.url, "allowInsecureHttp": True, "requestTimeoutSeconds": 2},
            "runtime": {"authority": {"requireMutualTls": False}},
            "admission": {"failOpenNamespaces": ["dev"]},
            "webhook": {"postDecisions": True, **webhook},
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def pushed(real_backend: RealBackend) -> dict[str, PushedImage]:
    """``ok`` (signed by the backend's trusted key, SBOM in the catalog) and ``unsigned``, in the loopback
    registry."""
    pusher = signing.OciPusher(real_backend.registry.url)
    repo = unique_repo("cli")
    out = {
        n: push_synthetic(pusher, real_backend.registry.host, repo, n.encode(), n) for n in ("ok", "unsigned")
    }
    pusher.close()
    real_backend.sign(out["ok"].pinned)
    for image in out.values():
        real_backend.put_catalog(image.digest, sbom=True)
    return out


def test_certs_writes_a_ca_and_a_serving_cert(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    result = run("webhook", "certs", "--out", str(out), "--namespace", "guard", "--ip", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    ca_pem = (out / "ca.crt").read_bytes()
    assert base64.b64decode(result.stdout.strip()) == ca_pem
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "zastava-webhook.guard.svc" in names.get_values_for_type(x509.DNSName)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))


def test_review_prints_the_response(
    tmp_path: Path, real_backend: RealBackend, pushed: dict[str, PushedImage]
) -> None:
    config = write_config(tmp_path / "z.yaml", real_backend)
    document = review(pod_with({"api": pushed["unsigned"].pinned}))
    source = tmp_path / "review.json"
    source.write_bytes(body(document))
    result = run("webhook", "review", str(source), "--config", str(config))
    assert result.returncode == 1, result.stderr
    response = orjson.loads(result.stdout)["response"]
    assert response["uid"] == document["request"]["uid"] and response["allowed"] is False
    signed = review(pod_with({"a": pushed["ok"].pinned}))
    allowed = run("webhook", "review", "-", "--config", str(config), stdin=body(signed))
    assert allowed.returncode == 0 and orjson.loads(allowed.stdout)["response"]["allowed"] is True


def test_review_offline_and_bad_input(tmp_path: Path) -> None:
    offline = run("webhook", "review", "-", "--no-backend", stdin=body(review(namespace="payments")))
    assert offline.returncode == 1
    assert "no policy backend configured" in orjson.loads(offline.stdout)["response"]["status"]["message"]
    bad = run("webhook", "review", "-", "--no-backend", stdin=b'{"apiVersion": "v1"')
    assert bad.returncode == 2 and b"not valid JSON" in bad.stderr


@contextlib.contextmanager
def serving(tmp_path: Path, config: Path, port: int) -> Iterator[httpx.Client]:
    """``zastava webhook serve --self-signed`` as a subprocess, a client trusting its CA; SIGTERM by PID."""
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [*ZASTAVA, "webhook", "serve", "--config", str(config), "--self-signed"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "tls" / "ca.crt").exists():
            assert process.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()
            time.sleep(0.05)
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.crt"))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=5) as client:
            wait_ready(client, process, tmp_path / "serve.log")
            yield client
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(20) == 0
        log.close()


def test_serve_dry_run_admits_malformed_pods_and_records_them(
    tmp_path: Path, real_backend: RealBackend
) -> None:
    """``enforce: false`` through ``zastava webhook serve`` over TLS: a malformed Pod, an empty ``image`` and
    a Pod over the container cap are admitted with the dry-run warning, annotated and recorded (Deny, not
    enforced) in the real backend; a body that is not an AdmissionReview is still an HTTP 400."""
    port = free_port()
    config = write_config(
        tmp_path / "z.yaml",
        real_backend,
        listen=f"127.0.0.1:{port}",
        certPath=str(tmp_path / "tls" / "tls.crt"),
        keyPath=str(tmp_path / "tls" / "tls.key"),
    )
    data = yaml.safe_load(config.read_text())
    data["zastava"]["admission"]["enforce"] = False
    config.write_text(yaml.safe_dump(data))
    malformed = review()
    malformed["request"]["object"]["spec"]["containers"] = "nope"
    cases = {
        "malformed": (malformed, "spec.containers is not a list"),
        "empty image": (review(pod_with({"app": ""})), "image is missing"),
        "over the cap": (
            review(pod_with({f"c{i}": f"ghcr.io/acme/x@{DIGEST_A}" for i in range(1025)})),
            "more than 1024 containers",
        ),
    }
    with serving(tmp_path, config, port) as client:
        for name, (document, why) in cases.items():
            answer = client.post("/admit?timeout=5s", content=body(document))
            assert answer.status_code == 200, answer.text
            response = orjson.loads(answer.content)["response"]
            assert response["allowed"] is True, (name, response)
            assert response["auditAnnotations"]["decision"] == "dry-run-deny"
            assert response["warnings"][0].startswith("zastava dry-run (enforce: false) would deny")
            assert why in response["warnings"][0], (name, response["warnings"])
            record = real_backend.decision(document["request"]["uid"])
            assert record["decision"] == "Deny" and record["enforced"] is False, (name, record)
        assert client.post("/admit", content=b'{"kind": "Pod"}').status_code == 400
        metrics = client.get("/metrics").text
        assert 'zastava_admission_decisions_total{decision="dry-run-deny"} 3.0' in metrics


def test_serve_over_https_and_stop_on_sigterm(
    tmp_path: Path, real_backend: RealBackend, pushed: dict[str, PushedImage]
) -> None:
    """``--self-signed`` (as ``make run`` uses it) creates the CA and certificate the client then trusts."""
    port = free_port()
    config = write_config(
        tmp_path / "z.yaml",
        real_backend,
        listen=f"127.0.0.1:{port}",
        certPath=str(tmp_path / "tls" / "tls.crt"),
        keyPath=str(tmp_path / "tls" / "tls.key"),
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [*ZASTAVA, "webhook", "serve", "--config", str(config), "--self-signed"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "tls" / "ca.crt").exists():
            assert process.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()
            time.sleep(0.05)
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.crt"))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=5) as client:
            wait_ready(client, process, tmp_path / "serve.log")
            document = review(pod_with({"a": pushed["ok"].pinned}))
            answer = client.post("/admit?timeout=5s", content=body(document))
            assert orjson.loads(answer.content)["response"]["allowed"] is True
        assert real_backend.decision(document["request"]["uid"])["decision"] == "Allow"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(20) == 0
        log.close()
    lines = [
        orjson.loads(line)
        for line in (tmp_path / "serve.log").read_text().splitlines()
        if line.startswith("{")
    ]
    decision = next(line for line in lines if line.get("msg") == "admission decision")
    assert decision["component"] == "webhook" and decision["decision"] == "Allow"
