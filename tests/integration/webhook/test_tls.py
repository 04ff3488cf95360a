"""Certificate rotation while serving: new handshakes get the new certificate, nothing is dropped."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from tests.harness.polling import wait_for
from tests.unit.webhook.reviews import DIGEST_A, body, pod_with, review
from zastava.webhook.certs import CertBundle, issue_serving_cert, write_certs

from .conftest import RunningWebhook

Factory = Callable[..., RunningWebhook]


def served_pem(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port))


def same_cert(a: str, b: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(a) == ssl.PEM_cert_to_DER_cert(b)


def test_certificate_rotation_while_serving(webhook: Factory, tls_dir: Path) -> None:
    running = webhook()
    old_pem = (tls_dir / "tls.crt").read_text()
    assert same_cert(served_pem(running.server.port), old_pem)
    document = review(pod_with({"api": f"ghcr.io/acme/api@{DIGEST_A}"}))
    with running.client() as keep_alive:
        assert keep_alive.post("/admit", content=body(document)).status_code == 200
        # rotate: a new serving certificate from the same CA, written atomically (as a Secret update does)
        ca_cert, ca_key = (tls_dir / "ca.crt").read_bytes(), (tls_dir / "ca.key").read_bytes()
        cert, key = issue_serving_cert(ca_cert, ca_key, ["localhost"], ["127.0.0.1"])
        write_certs(CertBundle(ca_cert, ca_key, cert, key), tls_dir)
        assert wait_for(lambda: same_cert(served_pem(running.server.port), cert.decode()))
        assert running.server.reloader.reloads == 1
        # the established connection keeps working, and new connections verify against the CA
        assert keep_alive.post("/admit", content=body(document)).status_code == 200
    with running.client() as fresh:
        answer = fresh.post("/admit", content=body(document))
        assert orjson.loads(answer.content)["response"]["allowed"] is True


def test_broken_rotation_keeps_the_previous_certificate(webhook: Factory, tls_dir: Path) -> None:
    running = webhook()
    old_pem = (tls_dir / "tls.crt").read_text()
    # a key that does not belong to the certificate (e.g. only half of the pair was updated yet)
    ca_cert, ca_key = (tls_dir / "ca.crt").read_bytes(), (tls_dir / "ca.key").read_bytes()
    _, other_key = issue_serving_cert(ca_cert, ca_key, ["localhost"], ["127.0.0.1"])
    (tls_dir / "tls.key").write_bytes(other_key)
    assert wait_for(lambda: running.server.reloader.failures > 0)
    assert same_cert(served_pem(running.server.port), old_pem)
    with running.client() as client:
        assert client.get("/healthz").status_code == 200
    # completing the pair is picked up
    cert, key = issue_serving_cert(ca_cert, ca_key, ["localhost"], ["127.0.0.1"])
    shutil.copy(tls_dir / "tls.crt", tls_dir / "old.crt")
    write_certs(CertBundle(ca_cert, ca_key, cert, key), tls_dir)
    assert wait_for(lambda: same_cert(served_pem(running.server.port), cert.decode()))


def test_client_without_the_ca_is_refused(webhook: Factory) -> None:
    running = webhook()
    with httpx.Client(base_url=running.url, timeout=5) as client:
        try:
            client.get("/healthz")
        except httpx.ConnectError as exc:
            assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
        else:
            raise AssertionError("a self-signed serving certificate must not verify against system CAs")
