"""The backend posture client against the TEMPORARY Starlette stand-in of ``/policy/runtime``
(in-process ASGI)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from zastava.observer.posture_client import BackendPosture, component_paths, digest_of
from zastava.telemetry.metrics import ZastavaMetrics

from .standins import policy_app

REF = "127.0.0.1:5000/demo/api@sha256:" + "a" * 64
OTHER = "127.0.0.1:5000/demo/api@sha256:" + "b" * 64
PASS = {"signed": True, "hasSbom": True, "policyVerdict": "pass", "reasons": []}


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


def test_digest_of() -> None:
    assert digest_of(REF) == "sha256:" + "a" * 64
    assert digest_of("sha256:" + "c" * 64) == "sha256:" + "c" * 64
    assert digest_of("nginx:1") is None and digest_of("x@sha256:short") is None
    assert digest_of("x@sha256:" + "A" * 64) is None  # not a digest: upper-case hex


async def test_lookup_caches_per_digest_and_drops_cache_on_new_revision() -> None:
    app = policy_app({REF: PASS, OTHER: {**PASS, "policyVerdict": "warn"}})
    metrics = ZastavaMetrics(CollectorRegistry())
    posture = BackendPosture("http://backend", client=client_for(app), metrics=metrics)
    first = await posture.lookup(REF, namespace="payments", labels={"app": "api"})
    assert first is not None and first.policy.policy_verdict == "pass" and first.policy_revision == "rev-1"
    assert (await posture.lookup(REF, namespace="payments", labels={"app": "api"})) is first  # cached
    assert app.state.policy_state["calls"] == 1
    # the backend's rules read namespace and labels: another workload's context is another lookup
    assert (await posture.lookup(REF, namespace="dev", labels={"app": "api"})) is not first
    assert (await posture.lookup(REF, namespace="payments", labels={"app": "web"})) is not first
    assert app.state.policy_state["calls"] == 3
    assert (await posture.lookup(OTHER)) is not None
    assert app.state.policy_state["calls"] == 4
    app.state.policy_state["revision"] = "rev-2"
    posture.invalidate(OTHER)
    assert (await posture.lookup(OTHER)) is not None  # new revision seen: every cached digest is dropped
    assert posture.cached(REF, "payments", {"app": "api"}) is None
    assert (
        metrics.registry.get_sample_value("zastava_runtime_backend_latency_ms_count", {"endpoint": "policy"})
        == 5
    )


async def test_ttl_zero_is_not_cached() -> None:
    app = policy_app({REF: PASS}, ttl=0)
    posture = BackendPosture("http://backend", client=client_for(app))
    await posture.lookup(REF)
    await posture.lookup(REF)
    assert app.state.policy_state["calls"] == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b"boom"),
        (200, b"not json"),
        (200, b'{"ttlSeconds": 5}'),
        (200, b'{"ttlSeconds": -1, "results": {}}'),
        (200, b'{"ttlSeconds": 5, "results": {"a": {"signed": "x"}}}'),
        (200, b'{"ttlSeconds": 5, "results": {}}'),
        (200, b"[" * 100_000),
    ],
)
async def test_bad_backend_answers_are_none_and_counted(status: int, body: bytes) -> None:
    async def handler(request: object) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    app = Starlette(routes=[Route("/api/v1/scanner/policy/runtime", handler, methods=["POST"])])
    metrics = ZastavaMetrics(CollectorRegistry())
    posture = BackendPosture("http://backend", client=client_for(app), metrics=metrics)
    assert await posture.lookup(REF) is None
    assert posture.last_error
    assert metrics.registry.get_sample_value("zastava_backend_failures_total", {"endpoint": "policy"}) == 1


async def test_backend_down_is_none() -> None:
    posture = BackendPosture("http://127.0.0.1:9", timeout=1)
    try:
        assert await posture.lookup(REF) is None
        assert await posture.usage_paths("sha256:" + "a" * 64) is None
    finally:
        await posture.aclose()


def test_component_paths_read_the_catalog_contract() -> None:
    digest = "sha256:" + "a" * 64
    entry = {
        "digest": digest,
        "signed": True,
        "hasSbom": True,
        "updatedAt": "2025-10-17T12:00:00Z",
        "components": [
            {"bomRef": "libc", "name": "libc", "paths": ["/lib/libc.so.6", "/lib/ld.so"]},
            {"bomRef": "app", "name": "app", "paths": ["/app/server", "relative/ignored"]},
        ],
    }
    assert component_paths(entry) == {"/lib/libc.so.6", "/lib/ld.so", "/app/server"}
    assert component_paths([]) is None
    assert component_paths({"components": [{"path": "/x"}]}) is None  # not a catalog entry
