"""The webhook calling the real backend with OpToks end to end (issues 9 + 10 + 5).

The reference Authority (``auth_stack``: HTTPS, test PKI) issues DPoP- and certificate-bound tokens; the real
backend runs as ``zastava backend serve`` (subprocess, stopped by PID) with ``backendServer.auth: optok`` and
its TLS options (``tlsCertFile``/``tlsKeyFile``/``clientCaFile``); the webhook is wired as ``zastava webhook
serve`` wires it (:func:`build_configured_webhook` → ``backend_auth``: the client certificate on the backend
connection, a DPoP proof and the OpTok on every call).
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.harness.devstack import free_port
from tests.integration.auth.conftest import SECRETS, AuthStack
from tests.unit.webhook.reviews import body, pod_with, review
from zastava.backend.catalog import CatalogPut, build_record
from zastava.backend.store import Store
from zastava.config import ZastavaConfig
from zastava.webhook.server import build_configured_webhook

DIGEST = "sha256:" + "5" * 64
IMAGE = f"ghcr.io/acme/api@{DIGEST}"
SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"type": "library", "name": "x"}]}


@pytest.fixture(scope="module")
def optok_backend(auth_stack: AuthStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``zastava backend serve`` over HTTPS with optok auth; the catalog holds one image with an SBOM
    (seeded through the store: no test client holds ``api:scanner.catalog.write``)."""
    directory = tmp_path_factory.mktemp("optok-backend")
    store_url = f"sqlite:///{directory / 'backend.db'}"
    store = Store(store_url)
    try:
        record = build_record(DIGEST, CatalogPut(signed=True, sbom=SBOM), int(time.time() * 1e6))
        store.catalog_put("tenant-01", record)
    finally:
        store.close()
    port = free_port()
    pki = auth_stack.pki
    config = {
        "zastava": {
            "runtime": {
                "authority": {
                    "issuer": auth_stack.issuer,
                    "requireDpop": True,
                    "requireMutualTls": True,
                    "caBundlePath": str(pki.ca),
                }
            },
            "backendServer": {
                # this suite is about tokens: no trust is configured, so nothing is signed (signature
                # verification end to end: tests/integration/webhook/test_real_backend.py); SBOM rule only
                "policyFile": str(directory / "policy.yaml"),
                "listen": f"127.0.0.1:{port}",
                "store": store_url,
                "auth": "optok",
                "tenants": ["tenant-01"],
                "tlsCertFile": str(pki.server.cert),
                "tlsKeyFile": str(pki.server.key),
                "clientCaFile": str(pki.ca),
            },
        }
    }
    (directory / "policy.yaml").write_text("rules: [{check: sbom, action: fail}]\n")
    (directory / "backend.yaml").write_text(yaml.safe_dump(config))
    log = (directory / "backend.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "zastava", "backend", "serve", "--config", str(directory / "backend.yaml")],
        stdout=log,
        stderr=log,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (directory / "backend.log").read_text()
            assert time.monotonic() < deadline, (directory / "backend.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", verify=context, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()


def webhook_config(
    stack: AuthStack, backend_url: str, tmp_path: Path, client_id: str, scopes: list[str]
) -> ZastavaConfig:
    secret = tmp_path / f"{client_id}.secret"
    secret.write_text(SECRETS[client_id])
    pki = stack.pki
    data: dict[str, Any] = {
        "backend": {"baseAddress": backend_url, "requestTimeoutSeconds": 5},
        "runtime": {
            "tenant": "tenant-01",
            "authority": {
                "issuer": stack.issuer,
                "clientId": client_id,
                "clientSecretPath": str(secret),
                "audience": ["scanner"],
                "scopes": scopes,
                "requireDpop": True,
                "requireMutualTls": True,
                "clientCertPath": str(pki.client.cert),
                "clientKeyPath": str(pki.client.key),
                "caBundlePath": str(pki.ca),
            },
        },
        "admission": {
            "failOpenNamespaces": ["dev"],
            "resolveTags": False,
            "verify": {"imageSignature": False},
        },
        "webhook": {"decisionLingerSeconds": 0},
    }
    return ZastavaConfig(**data)


async def admit(config: ZastavaConfig, namespace: str) -> tuple[dict[str, Any], int, int]:
    """One review through the configured webhook; (response, decision records posted, records failed)."""
    components = build_configured_webhook(config)
    for hook in components.app.on_startup:
        await hook()
    try:
        status, data = await components.app.admit(
            body(review(pod_with({"api": IMAGE}), namespace=namespace, uid=str(uuid.uuid4()))), "10s"
        )
        assert status == 200
        assert components.recorder is not None
        await components.recorder.flush(10)
        return orjson.loads(data)["response"], components.recorder.posted, components.recorder.failed
    finally:
        for hook in components.app.on_shutdown:
            await hook()


async def test_webhook_with_dpop_over_mtls_is_allowed_and_records_its_decision(
    auth_stack: AuthStack, optok_backend: str, tmp_path: Path
) -> None:
    config = webhook_config(
        auth_stack,
        optok_backend,
        tmp_path,
        "webhook",
        ["api:scanner.policy.read", "api:scanner.admission.write"],
    )
    response, posted, failed = await admit(config, "payments")
    assert response["allowed"] is True, response
    assert response["auditAnnotations"]["decision"] == "allow"
    assert (posted, failed) == (1, 0)  # POST /admission/decisions accepted with the same token binding


@pytest.mark.parametrize(("namespace", "allowed"), [("payments", False), ("dev", True)])
async def test_token_without_policy_scope_fails_closed_or_open(
    auth_stack: AuthStack, optok_backend: str, tmp_path: Path, namespace: str, allowed: bool
) -> None:
    """The observer's client: a valid, bound token, but without ``api:scanner.policy.read``: 403."""
    config = webhook_config(auth_stack, optok_backend, tmp_path, "observer", ["api:scanner.runtime.write"])
    response, _posted, _failed = await admit(config, namespace)
    assert response["allowed"] is allowed
    text = response.get("status", {}).get("message", "") + " ".join(response.get("warnings", []))
    assert "HTTP 403" in text
    assert response["auditAnnotations"]["decision"] == ("fail-open" if allowed else "fail-closed")


async def test_webhook_without_client_certificate_is_refused(
    auth_stack: AuthStack, optok_backend: str, tmp_path: Path
) -> None:
    """requireMutualTls: a webhook configured without its certificate does not start (clear error)."""
    from zastava.webhook.server import ConfigurationError

    config = webhook_config(auth_stack, optok_backend, tmp_path, "webhook", ["api:scanner.policy.read"])
    authority = config.runtime.authority.model_copy(
        update={"client_cert_path": None, "client_key_path": None}
    )
    broken = config.model_copy(update={"runtime": config.runtime.model_copy(update={"authority": authority})})
    with pytest.raises(ConfigurationError, match=r"zastava\.runtime\.authority: requireMutualTls"):
        build_configured_webhook(broken)


async def test_refused_token_is_renewed_and_the_review_retried_once(
    auth_stack: AuthStack, optok_backend: str, tmp_path: Path
) -> None:
    """A cached token the backend refuses (``invalid_token``, e.g. the Authority's keys were lost in a
    restart) is dropped and the call retried once with a fresh one, within the same review."""
    import dataclasses

    from zastava.auth import TokenProvider

    config = webhook_config(auth_stack, optok_backend, tmp_path, "webhook", ["api:scanner.policy.read"])
    components = build_configured_webhook(config, use_backend=True)
    assert components.backend is not None and components.backend.response_observer is not None
    provider = components.backend.response_observer.__self__  # type: ignore[attr-defined]
    assert isinstance(provider, TokenProvider)
    try:
        token = await provider.token()
        forged = token.value[:-6] + ("AAAAAA" if not token.value.endswith("AAAAAA") else "BBBBBB")
        provider._token = dataclasses.replace(token, value=forged)
        status, data = await components.app.admit(body(review(pod_with({"api": IMAGE}))), "10s")
        response = orjson.loads(data)["response"]
        assert status == 200 and response["allowed"] is True, response
        assert provider.tokens_fetched == 2
    finally:
        await components.close_clients()
        await components.admitter.cache.close()
