"""The operator CLIs against a backend that checks tokens, every part real and started through the CLI:
``zastava authority init`` + ``authority serve`` (HTTPS, client CA), ``zastava backend serve`` with
``backendServer.auth: optok`` over TLS, then ``catalog import``, ``runtime policy test``, ``events send`` and
``events tail`` with ``--config`` naming Authority credentials, the CA bundle and a client certificate, as
the agents' configs do (the OpTok is DPoP-bound and bound to that certificate)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness.devstack import free_port
from tests.harness.events import make_event
from tests.integration.auth.pki import Pki, make_pki
from tests.integration.observer.publisher.real_backend import BackendProcess
from zastava.contracts import dump_runtime_envelope

ZASTAVA = [sys.executable, "-m", "zastava"]
DIGEST = "sha256:" + "ab" * 32
SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "components": [{"type": "library", "name": "busybox", "version": "1.36.1"}],
}


@dataclass
class Stack:
    pki: Pki
    directory: Path
    issuer: str
    backend: BackendProcess

    def client_config(self, name: str, client_id: str, *, credentials: bool = True) -> Path:
        """A config as an operator writes it: the Authority client of ``authority init``, its scopes, the
        CA bundle and a client certificate; the backend from ``zastava.backend``."""
        clients = yaml.safe_load((self.directory / "authority" / "authority.yaml").read_text())
        client = next(c for c in clients["authority"]["clients"] if c["clientId"] == client_id)
        authority: dict[str, object] = {
            "issuer": self.issuer,
            "clientId": client_id,
            "scopes": client["scopes"],
            "caBundlePath": str(self.pki.ca),
            "clientCertPath": str(self.pki.client.cert),
            "clientKeyPath": str(self.pki.client.key),
        }
        if credentials:
            authority["clientSecretPath"] = str(self.directory / "authority" / client["secretFile"])
        path = self.directory / f"{name}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "zastava": {
                        "backend": {"baseAddress": self.backend.url},
                        "runtime": {"tenant": "tenant-01", "authority": authority},
                    }
                }
            )
        )
        return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("operator")
    pki = make_pki(directory / "pki")
    verify = ssl.create_default_context(cafile=str(pki.ca))
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    init = subprocess.run(
        [*ZASTAVA, "authority", "init", str(directory / "authority"), "--issuer", issuer],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    log = (directory / "authority.log").open("wb")
    authority = subprocess.Popen(
        [
            *ZASTAVA,
            "authority",
            "serve",
            "-c",
            str(directory / "authority" / "authority.yaml"),
            "--port",
            str(port),
            "--tls-cert",
            str(pki.server.cert),
            "--tls-key",
            str(pki.server.key),
            "--client-ca",
            str(pki.ca),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    backend = BackendProcess(
        directory / "backend",
        scheme="https",
        config_text=f"""\
zastava:
  runtime:
    tenant: tenant-01
    authority: {{issuer: "{issuer}", caBundlePath: "{pki.ca}", requireDpop: true, requireMutualTls: true}}
  backendServer:
    auth: optok
    tenants: [tenant-01]
    tlsCertFile: {pki.server.cert}
    tlsKeyFile: {pki.server.key}
    clientCaFile: {pki.ca}
""",
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert authority.poll() is None, (directory / "authority.log").read_text()
            assert time.monotonic() < deadline, "the Authority did not start"
            time.sleep(0.1)
        backend.start(verify=verify)
        yield Stack(pki, directory, issuer, backend)
    finally:
        backend.stop()
        _stop(authority)
        log.close()


def zastava(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZASTAVA_")}
    return subprocess.run(
        [*ZASTAVA, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_without_credentials_the_backend_refuses_and_the_cli_says_what_to_pass(stack: Stack) -> None:
    anonymous = stack.client_config("anonymous", "zastava-operator", credentials=False)
    out = zastava("catalog", "import", "--config", str(anonymous), "--image", DIGEST, "--signed")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "(401)" in out.stderr and "--config with zastava.runtime.authority credentials" in out.stderr
    out = zastava("runtime", "policy", "test", "--config", str(anonymous), "--image", DIGEST)
    assert out.returncode == 1 and "(401)" in out.stderr
    out = zastava("events", "tail", "--config", str(anonymous), "--once")
    assert out.returncode == 3 and "HTTP 401" in out.stderr and "credentials" in out.stderr


def test_catalog_import_and_policy_test_with_the_operators_optok(stack: Stack, tmp_path: Path) -> None:
    operator = stack.client_config("operator", "zastava-operator")
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps(SBOM))
    out = zastava(
        "catalog", "import", "--config", str(operator), "--image", DIGEST, "--sbom", str(sbom), "--signed"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{DIGEST}: signed=true hasSbom=true components=1 vulnerabilities=0"
    out = zastava("runtime", "policy", "test", "--config", str(operator), "--image", DIGEST, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["results"][DIGEST]
    # the catalog flag is an operator assertion shown as evidence; only a verified signature signs
    assert result["signed"] is False and result["hasSbom"] is True and result["policyVerdict"] == "fail"
    assert "catalog asserts signed: not verified (evidence only)" in result["reasons"]


def test_a_client_without_the_catalog_write_scope_is_refused(stack: Stack) -> None:
    observer = stack.client_config("observer", "zastava-observer")
    out = zastava("catalog", "import", "--config", str(observer), "--image", DIGEST, "--signed")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "(403)" in out.stderr and "the token's scopes: api:scanner.runtime.write" in out.stderr


def test_events_send_as_the_observer_and_tail_as_the_operator(stack: Stack, tmp_path: Path) -> None:
    events = [make_event(i) for i in range(3)]
    source = tmp_path / "events.ndjson"
    source.write_bytes(b"".join(dump_runtime_envelope(e) + b"\n" for e in events))
    observer = stack.client_config("observer", "zastava-observer")
    out = zastava("events", "send", "--config", str(observer), str(source))
    assert out.returncode == 0, out.stderr
    assert "3 read, 3 delivered" in out.stderr
    operator = stack.client_config("operator", "zastava-operator")
    out = zastava("events", "tail", "--config", str(operator), "--once")
    assert out.returncode == 0, out.stderr
    printed = {json.loads(line)["event"]["eventId"] for line in out.stdout.splitlines()}
    assert {e.event_id for e in events} <= printed


def test_unusable_credentials_exit_2_naming_the_key(stack: Stack, tmp_path: Path) -> None:
    operator = stack.client_config("operator", "zastava-operator")
    broken = tmp_path / "broken.yaml"
    broken.write_text(operator.read_text().replace(str(stack.pki.client.cert), str(tmp_path / "missing.crt")))
    out = zastava("catalog", "import", "--config", str(broken), "--image", DIGEST)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "zastava.runtime.authority" in out.stderr and "Traceback" not in out.stderr
