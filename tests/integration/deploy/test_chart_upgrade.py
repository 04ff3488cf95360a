"""`helm upgrade` keeps what the chart generated at install: the CA, the certificates and the Authority client
secrets are read back with `lookup` (issue 16).

No kube-apiserver can run here: the API server `lookup` talks to is ``kmock``'s KubernetesEmulator, a *fake*
Kubernetes API server (discovery, get/list/create of objects). The real ``helm`` renders twice with
``--dry-run=server`` (which enables `lookup`): first against an empty API server, then against one holding the
Secrets of the first render — as on `helm upgrade` after `helm install`.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from tests.harness.devstack.helm import ensure_helm
from tests.harness.real import start_real

CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "zastava"


async def _render(helm: Path, kubeconfig: Path) -> dict[str, dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        str(helm),
        "template",
        "zastava",
        str(CHART),
        "--namespace",
        "stellaops",
        "--dry-run=server",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}


async def test_upgrade_keeps_the_generated_ca_certificates_and_client_secrets(
    kmock: Any, tmp_path: Path
) -> None:
    helm = start_real(ensure_helm)
    # discovery as a real API server answers it: `lookup` finds the resource by kind and scope
    kmock.resources["v1/secrets"] = kmock.ResourceInfo(
        kind="Secret", singular="secret", namespaced=True, verbs={"get", "list", "create"}
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url)}}],
                "users": [{"name": "helm", "user": {"token": "test"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "helm"}}],
                "current-context": "kmock",
            }
        )
    )
    kubeconfig.chmod(0o600)
    installed = await _render(helm, kubeconfig)
    assert {"zastava-ca", "zastava-clients", "zastava-backend-tls"} <= set(installed)
    again = await _render(helm, kubeconfig)  # nothing stored yet: new material each time, as `helm template`
    assert again["zastava-ca"]["data"] != installed["zastava-ca"]["data"]
    for secret in installed.values():
        if secret["metadata"]["name"] != "zastava-backend-tls":  # deleted by an operator, to rotate it
            await kmock.post("/api/v1/namespaces/stellaops/secrets", json=secret)
    upgraded = await _render(helm, kubeconfig)
    assert set(upgraded) == set(installed)
    for name, secret in installed.items():
        if name != "zastava-backend-tls":
            assert upgraded[name]["data"] == secret["data"], name
    # the missing certificate is made anew, by the CA that was kept
    rotated = upgraded["zastava-backend-tls"]["data"]
    assert rotated["tls.crt"] != installed["zastava-backend-tls"]["data"]["tls.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(installed["zastava-ca"]["data"]["tls.crt"]))
    x509.load_pem_x509_certificate(base64.b64decode(rotated["tls.crt"])).verify_directly_issued_by(ca)
