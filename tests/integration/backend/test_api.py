"""Policy, catalog, admission decisions, OpenAPI and migrations on SQLite and real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.harness.events import LIBS, digest_of, envelope, make_event, ndjson, sbom
from tests.integration.backend.conftest import AppFactory, Clock, client_for
from zastava.backend.auth import SCOPE_RUNTIME_READ, AuthError, Principal
from zastava.backend.store import Store
from zastava.backend.store.schema import metadata
from zastava.contracts import (
    SCHEMA_VERSIONS_HEADER,
    CatalogEntry,
    RuntimePolicyResponse,
    versions,
)
from zastava.contracts.examples import CONTRACTS

POLICY = "/api/v1/scanner/policy/runtime"
CATALOG = "/api/v1/scanner/catalog/images/"
DECISIONS = "/api/v1/scanner/admission/decisions"
EVENTS = "/api/v1/scanner/runtime/events"
API = digest_of("api")
NGINX = digest_of("nginx")
BASE_OK = digest_of("base-ok")


def test_migrations_match_the_tables(store: Store) -> None:
    assert store.current_revision() == store.head_revision() == "0003"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    # migrating again is a no-op
    assert store.migrate() == "0003"


async def test_policy_default_matches_spec_example(client) -> None:  # type: ignore[no-untyped-def]
    """Without a verifier nothing is verified, so nothing is signed: the catalog's ``signed: true`` is an
    operator's assertion, shown as evidence (signatures verified for real: test_verification.py)."""
    r = await client.put(CATALOG + API, json={"sbom": sbom(), "signed": True, "rekor": {"uuid": "24296fb2"}})
    assert r.status_code == 200
    await client.post(EVENTS, content=ndjson([envelope(make_event(1))]))
    images = [f"ghcr.io/acme/api@{API}", f"ghcr.io/acme/nginx@{NGINX}"]
    r = await client.post(POLICY, json={"namespace": "payments", "labels": {"app": "api"}, "images": images})
    assert r.status_code == 200 and r.headers[SCHEMA_VERSIONS_HEADER]
    body = RuntimePolicyResponse.model_validate(r.json())
    assert body.ttl_seconds == 300 and body.policy_revision
    ok, bad = body.results[images[0]], body.results[images[1]]
    assert (ok.signed, ok.has_sbom, ok.policy_verdict) == (False, True, "fail")
    assert ok.reasons == ["unsigned", "catalog asserts signed: not verified (evidence only)"]
    assert ok.rekor is not None and ok.rekor.uuid == "24296fb2" and ok.rekor.verified is False
    assert ok.build_ids == ["9f3a1cd4c0b7adfe91c0e3b51d2f45fb0f76a4c1"]
    assert (bad.signed, bad.has_sbom, bad.policy_verdict) == (False, False, "fail")
    assert bad.reasons == ["unsigned", "missing SBOM"]


async def test_build_ids_most_recent_first(client) -> None:  # type: ignore[no-untyped-def]
    events = [make_event(i, build_id=f"{i:02x}" * 20) for i in range(3)]
    await client.post(EVENTS, content=ndjson([envelope(e) for e in events]))
    r = await client.post(POLICY, json={"images": [API]})
    assert r.json()["results"][API]["buildIds"] == [f"{i:02x}" * 20 for i in (2, 1, 0)]


POLICY_YAML = f"""
ttlSeconds: 120
rules:
  - name: prod-vulns
    check: vulnerabilities
    minSeverity: high
    maxCount: 0
    action: fail
    labels: {{env: prod}}
  - check: vulnerabilities
    minSeverity: medium
    action: warn
    excludeNamespaces: [dev*]
  - check: baseImage
    allow: ["{BASE_OK}"]
    action: warn
    namespaces: [payments]
"""


async def test_policy_file_rules_and_revision(make_app: AppFactory, clock: Clock, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_YAML)
    app = make_app(policy_file=str(path), policy_reload_seconds=1)
    vulns = [("CVE-1", "high", "pkg:deb/debian/libssl3"), ("CVE-2", "medium", "pkg:deb/debian/libc6")]
    async with client_for(app) as c:
        await c.put(
            CATALOG + API, json={"sbom": sbom(vulns=vulns), "signed": True, "baseImageDigest": BASE_OK}
        )

        async def verdict(namespace: str, labels: dict[str, str]) -> tuple[str, list[str], str]:
            r = await c.post(POLICY, json={"namespace": namespace, "labels": labels, "images": [API]})
            data = r.json()
            assert data["ttlSeconds"] == 120
            result = data["results"][API]
            return result["policyVerdict"], result["reasons"], data["policyRevision"]

        v, reasons, rev1 = await verdict("payments", {"env": "prod"})
        assert v == "fail" and reasons == [
            "1 vulnerabilities at or above high (allowed 0)",
            "2 vulnerabilities at or above medium (allowed 0)",
        ]
        v, reasons, _ = await verdict("payments", {"env": "test"})
        assert v == "warn" and reasons == ["2 vulnerabilities at or above medium (allowed 0)"]
        v, reasons, _ = await verdict("dev-1", {})
        assert (v, reasons) == ("pass", [])
        await c.put(
            CATALOG + API, json={"sbom": sbom(), "signed": True, "baseImageDigest": digest_of("other")}
        )
        v, reasons, _ = await verdict("payments", {})
        assert v == "warn" and reasons == [f"base image {digest_of('other')} not in allowlist"]

        # editing the file changes the verdicts and the revision
        path.write_text(POLICY_YAML.replace("action: warn\n    namespaces: [payments]", "action: fail"))
        app.service.policy.refresh()
        v, _, rev2 = await verdict("payments", {})
        assert v == "fail" and rev2 != rev1
        # an invalid edit keeps the last good policy
        path.write_text("rules:\n  - check: nonsense\n")
        assert app.service.policy.refresh() is False
        assert "check" in (app.service.policy.last_error or "")
        v, _, rev3 = await verdict("payments", {})
        assert (v, rev3) == ("fail", rev2)


async def test_policy_bad_requests(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.post(POLICY, content=b"{")).status_code == 400
    r = await client.post(POLICY, json={"images": []})
    assert r.status_code == 400 and "images" in r.json()["error"]
    assert (await client.post(POLICY, json={"images": ["a"], "extra": 1})).status_code == 400


async def test_policy_reads_references_with_the_one_model(client) -> None:  # type: ignore[no-untyped-def]
    """Every spelling of a pinned reference is the catalogued digest; an invalid reference is a ``fail``
    verdict naming the problem (never a pass under a permissive policy, never another image)."""
    r = await client.put(CATALOG + API, json={"sbom": sbom(), "signed": True})
    assert r.status_code == 200
    spellings = [
        API,
        f"ghcr.io/acme/api@{API}",
        f"GHCR.io:443/acme/api:1.2@{API}",
        f"nginx@{API}",
        f"index.docker.io/library/nginx:1.25@{API}",
    ]
    invalid = [f"ghcr.io/acme/api@{API.upper().replace('SHA256', 'sha256')}", f"ghcr.io/Acme/api@{API}"]
    r = await client.post(POLICY, json={"namespace": "payments", "images": spellings + invalid})
    assert r.status_code == 200, r.text
    results = RuntimePolicyResponse.model_validate(r.json()).results
    for image in spellings:
        # the catalogued digest is found under every spelling: its SBOM counts, its signed flag is evidence
        result = results[image]
        assert result.has_sbom and "catalog asserts signed: not verified (evidence only)" in result.reasons, (
            image
        )
    for image in invalid:
        assert results[image].policy_verdict == "fail" and not results[image].signed
        assert results[image].reasons[0].startswith("invalid image reference"), results[image].reasons


async def test_catalog_put_get_and_errors(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get(CATALOG + API)).status_code == 404
    nested = sbom()
    nested["components"][0]["components"] = [
        {"name": "inner", "type": "file", "hashes": [{"alg": "SHA-256", "content": "AB" * 32}]}
    ]
    r = await client.put(
        CATALOG + API, json={"sbom": nested, "signed": False, "rekor": {"uuid": "u", "logIndex": 7}}
    )
    assert r.status_code == 200
    entry = CatalogEntry.model_validate((await client.get(CATALOG + API)).json())
    assert entry.has_sbom and not entry.signed and entry.rekor and entry.rekor.log_index == 7
    names = {c.name: c for c in entry.components}
    assert set(names) == {name for _, name in LIBS} | {"inner"}
    assert names["inner"].sha256 == ["ab" * 32] and names["inner"].paths == ["/inner"]
    assert names["libc6"].paths == ["/lib/x86_64-linux-gnu/libc.so.6"]
    assert (await client.put(CATALOG + "sha256:xyz", json={})).status_code == 400
    assert (await client.get(CATALOG + "latest")).status_code == 400
    r = await client.put(CATALOG + API, json={"sbom": {"bomFormat": "SPDX"}})
    assert r.status_code == 400 and "CycloneDX" in r.json()["error"]
    r = await client.put(CATALOG + API, json={"sbom": {"bomFormat": "CycloneDX", "components": [{"x": 1}]}})
    assert r.status_code == 400 and "no name" in r.json()["error"]
    # the failed puts did not damage the entry
    assert len((await client.get(CATALOG + API)).json()["components"]) == 5


async def test_admission_decisions_stored_and_queryable(client) -> None:  # type: ignore[no-untyped-def]
    example = CONTRACTS["zastava.admission.decision"].example()
    deny = orjson.loads(orjson.dumps(example))
    deny["decision"].update(admissionId="uid-2", decision="Deny", namespace="dev")
    r = await client.post(DECISIONS, json=example)  # one envelope
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = await client.post(
        DECISIONS, content=ndjson([example, deny, {"schemaVersion": "zastava.admission.decision@v9.0"}])
    )
    data = r.json()
    assert (data["accepted"], data["duplicates"]) == (1, 1)
    assert data["rejected"][0]["index"] == 2 and "unsupported major" in data["rejected"][0]["error"]
    page = (await client.get(DECISIONS)).json()
    assert page["total"] == 2
    assert [i["envelope"]["decision"]["admissionId"] for i in page["items"]] == [
        "uid-2",
        example["decision"]["admissionId"],
    ]
    assert (await client.get(DECISIONS, params={"decision": "Deny"})).json()["total"] == 1
    assert (await client.get(DECISIONS, params={"namespace": "payments"})).json()["total"] == 1
    assert (await client.get(DECISIONS, params={"decision": "Maybe"})).status_code == 400
    r = await client.post(DECISIONS, content=b"[1, 2]")
    assert r.status_code == 400 and len(r.json()["rejected"]) == 2


async def test_auth_seam_scopes_tenant_and_refusal(make_app: AppFactory, store: Store) -> None:
    async def reader_of_tenant_02(request) -> Principal:  # type: ignore[no-untyped-def]
        if request.headers.get("authorization") != "Bearer good":
            raise AuthError(401, "missing or invalid token", challenge="Bearer")
        return Principal(tenant="tenant-02", subject="reader", scopes=frozenset({SCOPE_RUNTIME_READ}))

    writer = make_app()
    async with client_for(writer) as c:
        await c.post(EVENTS, content=ndjson([envelope(make_event(1))]))
    app = make_app()
    app.service.authenticate = reader_of_tenant_02
    async with client_for(app) as c:
        r = await c.get(EVENTS)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.headers[SCHEMA_VERSIONS_HEADER] == versions.header_value()
        headers = {"authorization": "Bearer good"}
        r = await c.get(EVENTS, headers=headers)
        assert r.status_code == 200 and r.json()["total"] == 0  # tenant-01's event is invisible
        r = await c.post(
            EVENTS, content=ndjson([envelope(make_event(2, tenant="tenant-02"))]), headers=headers
        )
        assert r.status_code == 403 and "api:scanner.runtime.write" in r.json()["error"]
    assert store.count_events() == 1


async def test_health_ready_metrics_openapi(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.post(EVENTS, content=ndjson([envelope(make_event(1))]))
    metrics = (await client.get("/metrics")).text
    assert 'zastava_backend_ingest_events_total{result="accepted"} 1.0' in metrics
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) >= {
        EVENTS,
        POLICY,
        CATALOG + "{digest}",
        DECISIONS,
        "/api/v1/scanner/delta-scans",
    }
    for path in ("/healthz", "/openapi.json", "/nope"):
        assert (await client.get(path)).headers[SCHEMA_VERSIONS_HEADER] == versions.header_value()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite:///:memory:"])
def test_bad_store_urls(url: str) -> None:
    from zastava.backend.store import StoreError

    with pytest.raises(StoreError):
        Store(url)


async def test_store_down_is_503_and_readyz_says_so() -> None:
    """A PostgreSQL URL where nothing listens stands in for a database that went down after start."""
    from tests.harness.devstack import free_port
    from zastava.backend.app import create_app
    from zastava.config import BackendServer

    down = Store(f"postgresql://postgres@127.0.0.1:{free_port()}/none", migrate=False)
    app = create_app(BackendServer(), store=down, purge=False)
    try:
        async with client_for(app) as c:
            r = await c.post(EVENTS, content=ndjson([envelope(make_event(1))]))
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert r.json()["error"] == "store unavailable; retry later"
            assert (await c.post(POLICY, json={"images": [API]})).status_code == 503
            assert (await c.get("/readyz")).status_code == 503
            assert (await c.get("/healthz")).status_code == 200
    finally:
        down.close()
