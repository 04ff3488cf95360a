"""The console over the backend's ASGI app, on SQLite and PostgreSQL: sessions, CSRF, tenant scoping, views
maintained by ingest (inventory, node health, rollups), pages and the simulation API.

The browser-level tests (real Chromium) are in ``tests/integration/console``; these pin down the HTTP
behaviour and the store's views with exact assertions.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from tests.harness.events import envelope, make_event, ndjson
from tests.integration.backend.conftest import AppFactory, Clock, client_for
from zastava.backend.auth import (
    SCOPE_ADMISSION_READ,
    SCOPE_POLICY_SIMULATE,
    SCOPE_RUNTIME_READ,
    SCOPE_RUNTIME_WRITE,
    AuthError,
    Principal,
)
from zastava.contracts import AdmissionDecision, AdmissionImage, EventKind, Evidence
from zastava.contracts.envelope import AdmissionDecisionEnvelope
from zastava.contracts.runtime_event import AgentWarning, NewBinary, RuntimeDelta

EVENTS = "/api/v1/scanner/runtime/events"
DECISIONS = "/api/v1/scanner/admission/decisions"
SIMULATIONS = "/api/v1/scanner/policy/simulations"
ORIGIN = {"origin": "http://backend"}


def header_auth(tokens: dict[str, Principal]) -> Any:
    """A test authenticator: ``Authorization: Test <name>`` is the principal ``tokens[name]`` (the OpTok
    verifier behind the same seam is tested with the real Authority in the browser suite)."""

    async def authenticate(request: Any) -> Principal:
        value = request.headers.get("authorization", "")
        scheme, _, name = value.partition(" ")
        if scheme != "Test" or name not in tokens:
            raise AuthError(401, "no valid credentials")
        return tokens[name]

    return authenticate


READER = frozenset(
    {
        SCOPE_RUNTIME_READ,
        SCOPE_ADMISSION_READ,
        SCOPE_POLICY_SIMULATE,
        SCOPE_RUNTIME_WRITE,
        "api:scanner.admission.write",
        "api:scanner.policy.read",
    }
)
TOKENS = {
    "alice": Principal("tenant-01", "alice", READER),
    "bob": Principal("tenant-02", "bob", READER),
    "agent": Principal("tenant-01", "agent", frozenset({SCOPE_RUNTIME_WRITE})),
}


@pytest.fixture
def app(make_app: AppFactory, store: Any, clock: Clock) -> Any:
    from zastava.backend.app import create_app
    from zastava.config import BackendServer

    return create_app(
        BackendServer.model_validate({"store": "sqlite:///unused.db", "auth": "optok"}),
        store=store,
        authenticator=header_auth(TOKENS),
        clock=clock.time,
        monotonic=clock.monotonic,
        purge=False,
    )


def auth(name: str) -> dict[str, str]:
    return {"authorization": f"Test {name}"}


async def login(c: httpx.AsyncClient, name: str) -> None:
    page = await c.get("/ui/login")
    assert page.status_code == 200
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce
    r = await c.post(
        "/ui/login",
        data={"nonce": nonce.group(1), "credentials": f"Authorization: Test {name}", "next": "/ui/drift"},
        headers=ORIGIN,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/drift"


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def decision(
    uid: str, *, namespace: str, image: str, deny: bool, labels: dict[str, str] | None = None
) -> bytes:
    record = AdmissionDecision(
        admission_id=uid,
        namespace=namespace,
        pod_spec_digest="sha256-" + "q" * 43,
        images=[
            AdmissionImage(
                name=image,
                resolved=f"docker.io/library/{image.split(':')[0]}@sha256:{'ab' * 32}",
                policy_verdict="fail" if deny else "pass",
                reasons=["tag :latest is banned (pin a version or a digest)"] if deny else [],
                container="app",
                container_field="containers",
            )
        ],
        decision="Deny" if deny else "Allow",
        ttl_seconds=300,
        enforced=True,
        outcome="deny" if deny else "allow",
        operation="CREATE",
        pod=f"pod-{uid}",
        labels=labels or {"app": "web"},
    )
    return orjson.dumps(
        AdmissionDecisionEnvelope(schema_version="zastava.admission.decision@v1.1", decision=record).wire()
    )


async def test_no_session_redirects_to_login_and_pages_send_security_headers(app: Any) -> None:
    async with client_for(app) as c:
        r = await c.get("/ui/inventory?namespace=payments")
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=%2Fui%2Finventory%3Fnamespace%3Dpayments"
        page = await c.get("/ui/login")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "same-origin"
        # a write without a session is refused, never redirected into a login that would replay it
        r = await c.post("/ui/simulate", data={"config": "zastava: {}"})
        assert r.status_code == 401


async def test_login_sets_a_hardened_cookie_and_bad_credentials_are_refused(app: Any) -> None:
    async with client_for(app) as c:
        page = await c.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        bad = await c.post(
            "/ui/login", data={"nonce": nonce, "credentials": "Authorization: Test mallory"}, headers=ORIGIN
        )
        assert bad.status_code == 401 and "not logged in: no valid credentials" in bad.text
        page = await c.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        cross = await c.post(
            "/ui/login",
            data={"nonce": nonce, "credentials": "Authorization: Test alice"},
            headers={"origin": "http://evil.example"},
        )
        assert cross.status_code == 403 and "cross-site" in cross.text
        no_nonce = await c.post(
            "/ui/login", data={"credentials": "Authorization: Test alice"}, headers=ORIGIN
        )
        assert no_nonce.status_code == 403
        page = await c.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        ok = await c.post(
            "/ui/login", data={"nonce": nonce, "credentials": "Authorization: Test alice"}, headers=ORIGIN
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/inventory"
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("zastava-console=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/" in cookie
        assert (await c.get("/ui/inventory")).status_code == 200


async def test_secure_cookie_over_tls_has_the_host_prefix(app: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://backend") as c:
        page = await c.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        ok = await c.post(
            "/ui/login",
            data={"nonce": nonce, "credentials": "Authorization: Test alice"},
            headers={"origin": "https://backend"},
        )
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("__Host-zastava-console=") and "Secure" in cookie and "HttpOnly" in cookie


async def test_inventory_health_and_drift_from_ingested_events_are_tenant_scoped(
    app: Any, clock: Clock
) -> None:
    start = [make_event(i, namespace="payments", node=f"node-{i % 2}") for i in range(3)]
    stop = make_event(2, kind=EventKind.CONTAINER_STOP, node="node-0")
    drift = (
        make_event(1, kind=EventKind.DRIFT, node="node-1")
        .model_copy(
            update={
                "evidence": [Evidence(signal="filesystem.newExecutable", value="/usr/local/bin/evil")],
                "delta": RuntimeDelta(new_binaries=[NewBinary(path="/usr/local/bin/evil")]),
            }
        )
        .with_computed_id()
    )
    warning = (
        make_event(9, node="node-0")
        .model_copy(
            update={
                "kind": EventKind.AGENT_WARNING,
                "warning": AgentWarning(code="buffer.drop", message="disk buffer full", count=7),
                "process": None,
                "loaded_libs": None,
            }
        )
        .with_computed_id()
    )
    other = make_event(50, tenant="tenant-02", namespace="secret-ns", node="node-9")
    async with client_for(app) as api:
        r = await api.post(
            EVENTS,
            content=ndjson([envelope(e) for e in [*start, stop, drift, warning]]),
            headers=auth("alice"),
        )
        assert r.json()["accepted"] == 6
        # a resend of the whole batch inserts nothing and must count nothing
        r = await api.post(
            EVENTS,
            content=ndjson([envelope(e) for e in [*start, stop, drift, warning]]),
            headers=auth("alice"),
        )
        assert r.json()["duplicates"] == 6
        r = await api.post(EVENTS, content=ndjson([envelope(other)]), headers=auth("bob"))
        assert r.json()["accepted"] == 1

    async with client_for(app) as c:
        await login(c, "alice")
        inventory = (await c.get("/ui/inventory")).text
        assert inventory.count('class="container-row"') == 2  # api-2 was stopped
        assert "api-0" in inventory and "api-1" in inventory and "secret-ns" not in inventory
        stopped = (await c.get("/ui/inventory?state=stopped")).text
        assert stopped.count('class="container-row"') == 1 and "api-2" in stopped
        filtered = (await c.get("/ui/inventory?node=node-1")).text
        assert filtered.count('class="container-row"') == 1 and "api-1" in filtered
        drift_page = (await c.get("/ui/drift")).text
        assert "/usr/local/bin/evil" in drift_page and "filesystem.newExecutable" in drift_page
        assert (await c.get("/ui/drift?kind=POLICY_VIOLATION")).text.count('class="drift-event') == 0
        assert (await c.get("/ui/drift?kind=NOPE")).status_code == 400
        health = (await c.get("/ui/health")).text
        rows = re.findall(r'<tr class="node-row">(.*?)</tr>', health, re.S)
        assert len(rows) == 2 and "node-9" not in health
        node0 = next(r for r in rows if "node-0" in r)
        assert ">7<" in node0 and "buffer.drop" in node0  # drops counted once despite the resend

    async with client_for(app) as c:
        await login(c, "bob")
        inventory = (await c.get("/ui/inventory")).text
        assert (
            inventory.count('class="container-row"') == 1
            and "secret-ns" in inventory
            and "payments" not in inventory
        )
        assert "/usr/local/bin/evil" not in (await c.get("/ui/drift")).text


async def test_admission_pages_and_another_tenants_decision_is_not_found(app: Any) -> None:
    async with client_for(app) as api:
        body = (
            decision("d1", namespace="prod", image="nginx:latest", deny=True)
            + b"\n"
            + decision("d2", namespace="prod", image="nginx:1.25", deny=False)
        )
        assert (await api.post(DECISIONS, content=body, headers=auth("alice"))).json()["accepted"] == 2
        assert (
            await api.post(
                DECISIONS, content=decision("d3", namespace="b", image="x:1", deny=True), headers=auth("bob")
            )
        ).json()["accepted"] == 1
    async with client_for(app) as c:
        await login(c, "alice")
        page = (await c.get("/ui/admission")).text
        assert page.count('class="decision-row') == 2
        assert "decisions per minute" in page and "<svg" in page
        denied = (await c.get("/ui/admission?outcome=deny")).text
        assert denied.count('class="decision-row') == 1
        link = re.search(r'href="/ui/admission/(\d+)"', denied)
        assert link
        detail = (await c.get(f"/ui/admission/{link.group(1)}")).text
        assert "tag :latest is banned" in detail and 'id="outcome">deny<' in detail
        # bob's decision id exists, but not for alice
        ids = sorted(int(i) for i in re.findall(r'/ui/admission/(\d+)"', page))
        assert (await c.get(f"/ui/admission/{max(ids) + 1}")).status_code == 404


async def test_scopes_gate_pages_and_csrf_guards_the_simulation(app: Any) -> None:
    async with client_for(app) as c:
        await login(c, "agent")  # may write events, may not read
        r = await c.get("/ui/inventory")
        assert r.status_code == 403 and "api:scanner.runtime.read" in r.text
    async with client_for(app) as c:
        await login(c, "alice")
        form = (await c.get("/ui/simulate")).text
        token = csrf(form)
        r = await c.post("/ui/simulate", data={"config": "zastava: {}", "days": "7"}, headers=ORIGIN)
        assert r.status_code == 403 and "CSRF" in r.text
        r = await c.post(
            "/ui/simulate",
            data={"config": "zastava: {}", "days": "7", "csrf": token},
            headers={"origin": "http://evil.example"},
        )
        assert r.status_code == 403
        r = await c.post(
            "/ui/simulate",
            data={"config": "zastava: {admission: {enforce: maybe}}", "days": "7", "csrf": token},
            headers=ORIGIN,
        )
        assert r.status_code == 400 and "zastava.admission.enforce" in r.text
        r = await c.post(
            "/ui/simulate", data={"config": "zastava: {}", "days": "7", "csrf": token}, headers=ORIGIN
        )
        assert r.status_code == 200 and 'id="simulation-report"' in r.text
        # logout needs the token too, then the session is gone
        assert (await c.post("/ui/logout", data={}, headers=ORIGIN)).status_code == 403
        assert (await c.post("/ui/logout", data={"csrf": token}, headers=ORIGIN)).status_code == 303
        assert (await c.get("/ui/inventory")).status_code == 303


async def test_sessions_expire_when_idle(app: Any, clock: Clock) -> None:
    async with client_for(app) as c:
        await login(c, "alice")
        assert (await c.get("/ui/health")).status_code == 200
        clock.advance(3601)
        assert (await c.get("/ui/health")).status_code == 303


async def test_login_links_work_once(app: Any, clock: Clock) -> None:
    async with client_for(app) as api:
        r = await api.post("/api/v1/scanner/console/login-links", headers=auth("alice"))
        assert r.status_code == 200
        url = r.json()["url"]
        assert r.json()["tenant"] == "tenant-01"
        assert (await api.post("/api/v1/scanner/console/login-links")).status_code == 401
    code_path = url.removeprefix("http://backend")
    async with client_for(app) as c:
        page = await c.get(code_path)
        assert page.status_code == 200 and "Log in as alice" in page.text
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        code = re.search(r'name="code" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = await c.post("/ui/login/link", data={"nonce": nonce, "code": code}, headers=ORIGIN)
        assert r.status_code == 303
        assert (await c.get("/ui/inventory")).status_code == 200
    async with client_for(app) as c:
        page = await c.get(code_path)
        assert page.status_code == 404  # used


async def test_simulation_api_reports_running_workloads_and_recorded_requests(app: Any) -> None:
    running = make_event(1, namespace="payments")
    async with client_for(app) as api:
        await api.post(EVENTS, content=ndjson([envelope(running)]), headers=auth("alice"))
        body = (
            decision("r1", namespace="prod", image="nginx:latest", deny=True)
            + b"\n"
            + decision("r2", namespace="prod", image="nginx:1.25", deny=False)
        )
        await api.post(DECISIONS, content=body, headers=auth("alice"))
        candidate = """
zastava:
  admission:
    verify: {imageSignature: false, sbomReferrer: false, scannerPolicyPass: false}
    registryDenylist: [ghcr.io/acme]
    bannedTags: []
"""
        r = await api.post(SIMULATIONS, json={"config": candidate, "days": 7}, headers=auth("alice"))
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["summary"]["workloads"] == {
            "total": 1,
            "denied": 1,
            "allowedToDenied": 1,
            "deniedToAllowed": 0,
        }
        changes = {c["key"]: c for c in report["changes"]}
        workload = next(c for c in report["changes"] if c["kind"] == "workload")
        assert (workload["namespace"], workload["pod"]) == ("payments", "api-1")
        assert workload["change"] == "allowed→denied"
        assert "registry ghcr.io / repository acme/api is denied" in workload["images"][0]["reasons"]
        # the denied request for nginx:latest is allowed now that no tag is banned
        assert (
            changes["r1"]["change"] == "denied→allowed" and changes["r1"]["candidate"]["outcome"] == "allow"
        )
        assert "r2" not in changes
        # scope and input errors
        r = await api.post(SIMULATIONS, json={"config": candidate}, headers=auth("agent"))
        assert r.status_code == 403
        r = await api.post(
            SIMULATIONS, json={"config": "zastava: {admission: {nope: 1}}"}, headers=auth("alice")
        )
        assert r.status_code == 400 and r.json()["errors"][0]["path"] == "zastava.admission.nope"
        r = await api.post(SIMULATIONS, json={"config": candidate, "days": 400}, headers=auth("alice"))
        assert r.status_code == 400


async def test_simulation_refuses_a_bad_trust_policy_by_its_key_path(app: Any) -> None:
    candidate = """
zastava:
  admission:
    trustPolicies:
      - name: team-a
        images: ["ghcr.io/acme/**"]
        authorities:
          - key: {pem: "not a key"}
"""
    async with client_for(app) as api:
        r = await api.post(SIMULATIONS, json={"config": candidate}, headers=auth("alice"))
        assert r.status_code == 400
        assert "trustPolicies" in r.json()["error"]


def test_the_cli_sends_trust_policy_keys_inline(tmp_path: Any) -> None:
    import yaml

    from zastava.backend.console.cli import inline_keys

    key = tmp_path / "alice.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n")
    text = f"""
zastava:
  admission:
    trustPolicies:
      - name: team-a
        images: ["ghcr.io/acme/**"]
        authorities:
          - key: {{path: {key}}}
"""
    out = yaml.safe_load(inline_keys(text, tmp_path / "candidate.yaml"))
    [authority] = out["zastava"]["admission"]["trustPolicies"][0]["authorities"]
    assert authority["key"] == {"pem": key.read_text()}
    assert inline_keys("zastava: {}\n", tmp_path / "c.yaml") == "zastava: {}\n"
