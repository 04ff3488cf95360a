"""Another tenant's data is never shown: two tenants' agents write to one real backend (``zastava backend
serve``, ``auth: optok`` over TLS, tokens from the reference Authority), an operator of the first tenant logs
in with Chromium and browses every page, and tries the second tenant's decision by its id."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness.events import envelope, make_event, ndjson
from tests.harness.servers import ThreadedServer
from tests.integration.auth.pki import Pki, make_pki
from tests.integration.observer.publisher.real_backend import BackendProcess
from zastava.auth import backend_auth, uvicorn_tls_kwargs
from zastava.auth.authority import AuthorityConfig, ReferenceAuthority, hash_secret
from zastava.config import load_config
from zastava.contracts import AdmissionDecision, AdmissionImage, EventKind, Evidence
from zastava.contracts.envelope import AdmissionDecisionEnvelope

pytestmark = [pytest.mark.real]

EVENTS = "/api/v1/scanner/runtime/events"
DECISIONS = "/api/v1/scanner/admission/decisions"
READ = ["api:scanner.runtime.read", "api:scanner.admission.read", "api:scanner.policy.simulate"]
WRITE = ["api:scanner.runtime.write", "api:scanner.admission.write"]
CLIENTS = {
    "op-a": ("tenant-a", READ),
    "writer-a": ("tenant-a", WRITE),
    "writer-b": ("tenant-b", WRITE),
}


@dataclass
class TwoTenants:
    pki: Pki
    issuer: str
    backend: BackendProcess
    configs: dict[str, Path]


def _client_yaml(directory: Path, name: str, issuer: str, backend: str, pki: Pki) -> Path:
    tenant, scopes = CLIENTS[name]
    secret = directory / f"{name}.secret"
    secret.write_text(f"{name}-secret")
    path = directory / f"{name}.yaml"
    path.write_text(
        json.dumps(
            {
                "zastava": {
                    "backend": {"baseAddress": backend},
                    "runtime": {
                        "tenant": tenant,
                        "authority": {
                            "issuer": issuer,
                            "clientId": name,
                            "clientSecretPath": str(secret),
                            "caBundlePath": str(pki.ca),
                            "scopes": scopes,
                            "requireDpop": True,
                            "requireMutualTls": False,
                        },
                    },
                }
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoTenants]:
    directory = tmp_path_factory.mktemp("tenants")
    pki = make_pki(directory / "pki")
    tls = uvicorn_tls_kwargs(certfile=pki.server.cert, keyfile=pki.server.key)
    authority_server = ThreadedServer(None, **tls)
    issuer = f"https://127.0.0.1:{authority_server.port}"
    config = AuthorityConfig.model_validate(
        {
            "issuer": issuer,
            "tenants": ["tenant-a", "tenant-b"],
            "clients": [
                {
                    "clientId": name,
                    "tenant": tenant,
                    "secretSha256": hash_secret(f"{name}-secret"),
                    "audiences": ["scanner", "zastava"],
                    "scopes": scopes,
                }
                for name, (tenant, scopes) in CLIENTS.items()
            ],
        }
    )
    authority_server.app = ReferenceAuthority(config, config_dir=directory).app
    authority_server.start()
    backend = BackendProcess(
        directory / "backend",
        config_text=f"""\
zastava:
  runtime:
    authority: {{issuer: "{issuer}", requireDpop: true, requireMutualTls: false, caBundlePath: "{pki.ca}"}}
  backendServer:
    auth: optok
    tenants: [tenant-a, tenant-b]
    tlsCertFile: "{pki.server.cert}"
    tlsKeyFile: "{pki.server.key}"
""",
        scheme="https",
    )
    try:
        backend.start(verify=ssl.create_default_context(cafile=str(pki.ca)))
        configs = {name: _client_yaml(directory, name, issuer, backend.url, pki) for name in CLIENTS}
        yield TwoTenants(pki, issuer, backend, configs)
    finally:
        backend.stop()
        authority_server.stop()


def post(config_path: Path, path: str, body: bytes) -> dict[str, Any]:
    """POST with the client's OpTok, in a thread of its own: Playwright's sync API owns this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _post(config_path, path, body)).result()


async def _post(config_path: Path, path: str, body: bytes) -> dict[str, Any]:
    config = load_config(config_path, warn=False)
    auth = backend_auth(config, component="test")
    url = config.backend.base_address + path
    try:
        headers = await auth.headers_provider("POST", url) if auth.headers_provider else {}
        response = await auth.http_client.post(url, content=body, headers=headers)
        assert response.status_code in (200, 202), response.text
        return dict(response.json())
    finally:
        await auth.aclose()


def _decision(uid: str, namespace: str) -> bytes:
    record = AdmissionDecision(
        admission_id=uid,
        namespace=namespace,
        pod_spec_digest="sha256-" + "q" * 43,
        images=[
            AdmissionImage(
                name="nginx:latest", policy_verdict="fail", reasons=[f"secret reason of {namespace}"]
            )
        ],
        decision="Deny",
        ttl_seconds=300,
        outcome="deny",
        pod=f"pod-of-{namespace}",
    )
    return orjson.dumps(
        AdmissionDecisionEnvelope(schema_version="zastava.admission.decision@v1.1", decision=record).wire()
    )


def test_another_tenants_data_is_never_shown(two_tenants: TwoTenants, browser: Any, artifacts: Path) -> None:
    t = two_tenants
    for writer, tenant, namespace in (
        ("writer-a", "tenant-a", "alpha-ns"),
        ("writer-b", "tenant-b", "beta-ns"),
    ):
        events = [
            make_event(i, tenant=tenant, namespace=namespace, node=f"{namespace}-node") for i in range(3)
        ]
        drift = make_event(
            1, tenant=tenant, namespace=namespace, kind=EventKind.DRIFT, node=f"{namespace}-node"
        )
        drift = drift.model_copy(
            update={"evidence": [Evidence(signal="process.drift", value=f"/tmp/miner-{namespace}")]}
        ).with_computed_id()
        out = post(t.configs[writer], EVENTS, ndjson([envelope(e) for e in [*events, drift]]))
        assert out["accepted"] == 4
        out = post(t.configs[writer], DECISIONS, _decision(f"{namespace}-1", namespace))
        assert out["accepted"] == 1
    db = sqlite3.connect(f"file:{t.backend.db_path}?mode=ro", uri=True)
    [(b_decision,)] = db.execute("SELECT id FROM admission_decisions WHERE tenant = 'tenant-b'").fetchall()
    db.close()

    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    base = t.backend.url
    try:
        page.goto(f"{base}/ui/drift")
        assert "/ui/login" in page.url
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "zastava",
                "authority",
                "token",
                "--config",
                str(t.configs["op-a"]),
                "--method",
                "POST",
                "--url",
                f"{base}/ui/login",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        # a proof made for another URL is refused (DPoP htu), and the page says why
        wrong = subprocess.run(
            [
                sys.executable,
                "-m",
                "zastava",
                "authority",
                "token",
                "--config",
                str(t.configs["op-a"]),
                "--method",
                "POST",
                "--url",
                f"{base}/ui/elsewhere",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        page.fill("#credentials", wrong.stdout)
        page.click("#login-form button[type=submit]")
        assert "htu" in page.locator(".error").inner_text()
        page.fill("#credentials", made.stdout)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/ui/drift*")
        assert page.locator(".tenant").inner_text() == "tenant-a"

        pages = {
            "inventory": "/ui/inventory",
            "drift": "/ui/drift",
            "admission": "/ui/admission",
            "health": "/ui/health",
            "stopped": "/ui/inventory?state=stopped",
            "search-b": "/ui/inventory?namespace=beta-ns",
            "drift-b": "/ui/drift?namespace=beta-ns",
            "admission-b": "/ui/admission?namespace=beta-ns",
        }
        for name, path in pages.items():
            page.goto(base + path)
            text = page.content()
            assert "beta-ns" not in text.replace('value="beta-ns"', "") or name.endswith("-b")
            assert (
                "miner-beta-ns" not in text
                and "secret reason of beta-ns" not in text
                and "pod-of-beta-ns" not in text
            )
        page.goto(base + "/ui/inventory")
        assert page.locator("tr.container-row").count() == 3
        assert "alpha-ns" in page.locator("#inventory").inner_text()
        page.goto(base + "/ui/drift")
        assert "/tmp/miner-alpha-ns" in page.locator("#drift").inner_text()
        page.screenshot(path=str(artifacts / "10-tenant-a-drift.png"), full_page=True)
        for path in ("/ui/inventory?namespace=beta-ns", "/ui/drift?namespace=beta-ns"):
            page.goto(base + path)
            assert "No " in page.locator("main").inner_text()
        response = page.goto(f"{base}/ui/admission/{b_decision}")
        assert response is not None and response.status == 404
        assert "secret reason" not in page.content()
        page.goto(base + "/ui/simulate")
        page.fill("#config", "zastava:\n  admission:\n    registryDenylist: [ghcr.io]\n")
        page.click("#simulate-form button[type=submit]")
        page.wait_for_selector("#simulation-report", timeout=120_000)
        report = json.loads(page.locator("#simulation-json").text_content() or "{}")
        assert {r["namespace"] for r in report["results"]} == {"alpha-ns"}
        page.screenshot(path=str(artifacts / "11-tenant-a-simulation.png"), full_page=True)
    finally:
        context.close()
