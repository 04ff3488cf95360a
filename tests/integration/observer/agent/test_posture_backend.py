"""The observer's posture client against the real reference backend (in-process ASGI, SQLite store)."""

from __future__ import annotations

from pathlib import Path

import httpx

from zastava.backend.app import create_app
from zastava.config import BackendServer
from zastava.observer.posture import BackendPosture

DIGEST = "sha256:" + "d" * 64
REF = f"127.0.0.1:5000/demo/api@{DIGEST}"
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


async def test_posture_and_usage_view_from_the_reference_backend(tmp_path: Path) -> None:
    app = create_app(BackendServer(store=f"sqlite:///{tmp_path / 'b.db'}", static_tenant="t1"), purge=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backend")
    put = await client.put(f"/api/v1/scanner/catalog/images/{DIGEST}", json={"sbom": SBOM, "signed": True})
    assert put.status_code == 200, put.text
    posture = BackendPosture("http://backend", client=client)
    answer = await posture.lookup(REF, namespace="payments", labels={"app": "api"})
    assert answer is not None
    assert answer.policy.signed and answer.policy.has_sbom and answer.policy.policy_verdict == "pass"
    assert answer.policy_revision
    paths = await posture.usage_paths(DIGEST)
    assert paths is not None and {"/usr/lib/x86_64-linux-gnu/libc.so.6", "/app/server"} <= paths
    assert await posture.usage_paths("sha256:" + "e" * 64) is None  # unknown to the catalog
    unknown = await posture.lookup("127.0.0.1:5000/demo/other@sha256:" + "e" * 64)
    assert unknown is not None and unknown.policy.policy_verdict == "fail"
    await client.aclose()
