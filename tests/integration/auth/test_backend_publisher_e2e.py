"""Issue 10 end to end with every real part: the reference Authority (``auth_stack``, HTTPS + test PKI), the
real backend (``zastava backend serve`` subprocess with ``backendServer.auth: optok``, TLS and a client CA)
and the observer's :class:`EventPublisher` using ``backend_auth(cfg)`` (client credentials, DPoP over mTLS).
Stored events are read from the backend's SQLite store (read-only)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness.events import make_event
from tests.integration.auth.conftest import SECRETS, AuthStack
from tests.integration.observer.publisher.real_backend import EVENTS_PATH, BackendProcess
from zastava.auth import (
    SCOPE_POLICY_READ,
    SCOPE_RUNTIME_WRITE,
    TokenProvider,
    backend_auth,
    build_http_client,
)
from zastava.config import ZastavaConfig
from zastava.contracts import dump_runtime_envelope
from zastava.observer.publisher import EventPublisher
from zastava.telemetry.metrics import ZastavaMetrics


def _backend_yaml(stack: AuthStack) -> str:
    pki = stack.pki
    return f"""\
zastava:
  runtime:
    tenant: tenant-01
    authority:
      issuer: {stack.issuer}
      requireDpop: true
      requireMutualTls: true
      caBundlePath: {pki.ca}
  backendServer:
    auth: optok
    tenants: [tenant-01, tenant-02]
    tlsCertFile: {pki.server.cert}
    tlsKeyFile: {pki.server.key}
    clientCaFile: {pki.ca}
    tenantRate: {{eventsPerSecond: 1000000, burst: 10000000}}
    nodeRate: {{eventsPerSecond: 1000000, burst: 10000000}}
"""


@pytest.fixture(scope="module")
def secured_backend(
    auth_stack: AuthStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackendProcess]:
    directory = tmp_path_factory.mktemp("optok-backend")
    backend = BackendProcess(directory, config_text=_backend_yaml(auth_stack), scheme="https")
    backend.start(verify=ssl.create_default_context(cafile=str(auth_stack.pki.ca)))
    try:
        yield backend
    finally:
        backend.stop()


def observer_config(stack: AuthStack, backend: BackendProcess, tmp: Path, client_id: str = "observer") -> Any:
    secret = tmp / f"{client_id}.secret"
    secret.write_text(SECRETS[client_id])
    return ZastavaConfig(
        runtime={
            "tenant": "tenant-01",
            "authority": {
                "issuer": stack.issuer,
                "clientId": client_id,
                "clientSecretPath": str(secret),
                "audience": ["scanner", "zastava"],
                "scopes": [SCOPE_RUNTIME_WRITE],
                "refreshSkewSeconds": 1,
                "clientCertPath": str(stack.pki.client.cert),
                "clientKeyPath": str(stack.pki.client.key),
                "caBundlePath": str(stack.pki.ca),
            },
        },
        backend={"baseAddress": backend.url, "requestTimeoutSeconds": 5},
        publisher={"batchMaxEvents": 20, "flushIntervalSeconds": 0.05},
        limits={"eventsPerSecond": 100000, "burst": 100000, "perNodeQueue": 10000},
    )


def sample(metrics: ZastavaMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def stored(backend: BackendProcess) -> dict[str, str]:
    """eventId -> tenant of every stored event (read-only store access)."""
    import sqlite3

    db = sqlite3.connect(f"file:{backend.db_path}?mode=ro", uri=True, timeout=10)
    try:
        return dict(db.execute("SELECT event_id, tenant FROM runtime_events"))
    finally:
        db.close()


class Raw:
    """A TokenProvider + mTLS client for hand-made requests (refusal cases)."""

    def __init__(self, stack: AuthStack, client_id: str, *, cert: bool = True, scopes: list[str]) -> None:
        issued = stack.pki.client if cert else None
        self.http = build_http_client(
            ca_bundle_path=stack.pki.ca,
            client_cert_path=issued.cert if issued else None,
            client_key_path=issued.key if issued else None,
        )
        self.provider = TokenProvider(
            issuer=stack.issuer,
            client_id=client_id,
            audience=["scanner", "zastava"],
            scopes=scopes,
            client_secret=SECRETS[client_id],
            http_client=self.http,
        )

    async def post(self, url: str, body: bytes, *, auth: bool = True) -> httpx.Response:
        headers = {"Content-Type": "application/x-ndjson"}
        if auth:
            headers.update(await self.provider.headers("POST", url))
        return await self.http.post(url, content=body, headers=headers)

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def raw_factory(auth_stack: AuthStack) -> AsyncIterator[Any]:
    made: list[Raw] = []

    def make(client_id: str = "observer", **kwargs: Any) -> Raw:
        kwargs.setdefault("scopes", [SCOPE_RUNTIME_WRITE])
        raw = Raw(auth_stack, client_id, **kwargs)
        made.append(raw)
        return raw

    yield make
    for raw in made:
        await raw.aclose()


def assert_challenge(response: httpx.Response, status: int, error: str | None) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    www = response.headers.get("www-authenticate", "")
    assert www.startswith("DPoP"), www
    if error is None:
        assert "error=" not in www, www
    else:
        assert f'error="{error}"' in www, www


# ------------------------------------------------------------------------------------------------ tests


async def test_publisher_with_backend_auth_stores_events_under_the_token_tenant(
    auth_stack: AuthStack, secured_backend: BackendProcess, tmp_path: Path
) -> None:
    config = observer_config(auth_stack, secured_backend, tmp_path)
    auth = backend_auth(config, component="observer")
    metrics = ZastavaMetrics()
    events = [make_event(i, node="auth-node") for i in range(50)]
    try:
        async with EventPublisher(
            config,
            buffer_dir=tmp_path / "buf",
            metrics=metrics,
            http_client=auth.http_client,
            headers_provider=auth.headers_provider,
        ) as publisher:
            for event in events:
                await publisher.publish(event)
            assert await publisher.flush(30)
    finally:
        await auth.aclose()
    rows = stored(secured_backend)
    assert {rows[e.event_id] for e in events} == {"tenant-01"}
    assert sample(metrics, "zastava_backend_failures_total", endpoint="events") == 0


async def test_refusals_carry_www_authenticate_and_store_nothing(
    auth_stack: AuthStack, secured_backend: BackendProcess, raw_factory: Any
) -> None:
    url = secured_backend.url + EVENTS_PATH
    body = dump_runtime_envelope(make_event(9001, node="refused")) + b"\n"
    before = stored(secured_backend)

    observer = raw_factory()
    assert_challenge(await observer.post(url, body, auth=False), 401, None)  # no token

    reader = raw_factory("webhook", scopes=[SCOPE_POLICY_READ])  # token without api:scanner.runtime.write
    response = await reader.post(url, body)
    assert_challenge(response, 403, "insufficient_scope")
    assert SCOPE_RUNTIME_WRITE in response.headers["www-authenticate"]

    no_cert = raw_factory(cert=False)  # a token obtained without a certificate, sent without one
    assert_challenge(await no_cert.post(url, body), 401, "invalid_token")

    assert stored(secured_backend) == before


async def test_events_naming_another_tenant_are_refused_line_by_line(
    auth_stack: AuthStack, secured_backend: BackendProcess, raw_factory: Any
) -> None:
    """The tenant comes from the token: a tenant-02 token cannot store tenant-01 events (and the reverse).
    The backend refuses those lines by index (``rejected``) and stores the others; a batch of only foreign
    lines gets 400 and nothing is stored."""
    url = secured_backend.url + EVENTS_PATH
    tenant2 = raw_factory("tenant2")
    mine = make_event(7001, node="t2").model_copy(update={"tenant": "tenant-02"}).with_computed_id()
    foreign = [make_event(7002 + i, node="t2") for i in range(2)]  # tenant-01 events
    body = b"\n".join(dump_runtime_envelope(e) for e in (foreign[0], mine, foreign[1])) + b"\n"
    response = await tenant2.post(url, body)
    assert response.status_code in (200, 202), response.text
    answer = orjson.loads(response.content)
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0, 2]
    assert all("tenant" in r["error"] for r in answer["rejected"])
    only_foreign = dump_runtime_envelope(make_event(7010, node="t2")) + b"\n"
    response = await tenant2.post(url, only_foreign)
    assert response.status_code == 400, response.text
    rows = stored(secured_backend)
    assert rows[mine.event_id] == "tenant-02"
    assert not {foreign[0].event_id, foreign[1].event_id, make_event(7010, node="t2").event_id} & set(rows)


async def test_token_refresh_under_steady_publishing_without_a_failed_call(
    auth_stack: AuthStack, secured_backend: BackendProcess, tmp_path: Path
) -> None:
    """The ``short`` client's tokens live 3 s; publishing for ~8 s needs several refreshes (skew 1 s), and
    no POST may fail because of an expired token."""
    config = observer_config(auth_stack, secured_backend, tmp_path, client_id="short")
    auth = backend_auth(config, component="observer")
    assert auth.provider is not None
    metrics = ZastavaMetrics()
    events = [make_event(20_000 + i, node="refresh") for i in range(160)]
    try:
        async with EventPublisher(
            config,
            buffer_dir=tmp_path / "buf",
            metrics=metrics,
            http_client=auth.http_client,
            headers_provider=auth.headers_provider,
        ) as publisher:
            for event in events:
                await publisher.publish(event)
                await asyncio.sleep(0.05)
            assert await publisher.flush(30)
        assert auth.provider.tokens_fetched >= 3
    finally:
        await auth.aclose()
    rows = stored(secured_backend)
    assert all(rows.get(e.event_id) == "tenant-01" for e in events)
    assert sample(metrics, "zastava_backend_failures_total", endpoint="events") == 0
    assert publisher.rejected_total == 0
