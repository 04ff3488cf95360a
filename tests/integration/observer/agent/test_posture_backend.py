"""The observer's posture client against the real reference backend (in-process ASGI, SQLite store)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.harness import devstack
from tests.harness.devstack import signing
from tests.harness.signed import push_synthetic, trust_config, unique_repo
from zastava.backend.app import create_app
from zastava.config import BackendServer
from zastava.observer.posture_client import BackendPosture
from zastava.registry.settings import image_verifier

SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "components": [
        {
            "bom-ref": "pkg:deb/debian/libc6@2.36",
            "type": "library",
            "name": "libc6",
            "version": "2.36",
            "evidence": {"occurrences": [{"location": "/usr/lib/x86_64-linux-gnu/libc.so.6"}]},
        },
        {"bom-ref": "file:/app/server", "type": "file", "name": "/app/server"},
    ],
}


async def test_posture_and_usage_view_from_the_reference_backend(
    tmp_path: Path, registry: devstack.RegistryServer
) -> None:
    """The observer's posture is the backend's verification: a signed image in the real loopback registry is
    signed; an unsigned one whose catalog entry asserts ``signed: true`` is not."""
    pusher = signing.OciPusher(registry.url)
    key = signing.KeyPair.generate()
    repo = unique_repo("observer")
    signed = push_synthetic(pusher, registry.host, repo, b"signed\n", "1")
    unsigned = push_synthetic(pusher, registry.host, repo, b"unsigned\n", "2")
    signing.sign_legacy(pusher, repo, signed.digest, key=key)
    pusher.close()
    policies = [{"name": "demo", "images": [f"{registry.host}/observer/**"], "authorities": [{"key": "ci"}]}]
    config, _ = trust_config(tmp_path, policies, {"ci": key})
    app = create_app(
        BackendServer(store=f"sqlite:///{tmp_path / 'b.db'}", static_tenant="t1"),
        purge=False,
        verifier=image_verifier(config),
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backend")
    for image in (signed, unsigned):
        put = await client.put(
            f"/api/v1/scanner/catalog/images/{image.digest}", json={"sbom": SBOM, "signed": True}
        )
        assert put.status_code == 200, put.text
    posture = BackendPosture("http://backend", client=client)
    answer = await posture.lookup(signed.pinned, namespace="payments", labels={"app": "api"})
    assert answer is not None
    assert answer.policy.signed and answer.policy.has_sbom and answer.policy.policy_verdict == "pass"
    assert answer.policy_revision
    forged = await posture.lookup(unsigned.pinned, namespace="payments")
    assert forged is not None and not forged.policy.signed and forged.policy.policy_verdict == "fail"
    assert (
        "trust policy demo: 0 of 1 required signature(s) verified (no signature found)"
        in forged.policy.reasons
    )
    assert "catalog asserts signed: not verified (evidence only)" in forged.policy.reasons
    paths = await posture.usage_paths(signed.digest)
    assert paths is not None and {"/usr/lib/x86_64-linux-gnu/libc.so.6", "/app/server"} <= paths
    assert await posture.usage_paths("sha256:" + "e" * 64) is None  # unknown to the catalog
    unknown = await posture.lookup(f"{registry.host}/observer/other@sha256:" + "e" * 64)
    assert unknown is not None and unknown.policy.policy_verdict == "fail"
    await client.aclose()
    await app.service.verifier.client.close()  # type: ignore[union-attr]
