"""The webhook served over TLS against the stand-in backend (a real HTTP server; see ``standins.py``), kept
for what the real backend cannot be made to do on demand: injected latency and HTTP failures, malformed
answers, TTL and ``policyRevision`` changes, warn verdicts, and exact counts of policy requests (cache,
one request per Pod). Gating against the real backend and registry: ``test_real_backend.py``."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest

from tests.unit.webhook.reviews import DIGEST_A, DIGEST_B, body, pod_with, review
from zastava.contracts import ImagePolicy, canonical_id
from zastava.webhook.review import ReviewError, parse_review

from .conftest import RunningWebhook
from .standins import PolicyBackend

Factory = Callable[..., RunningWebhook]
PINNED = {"api": f"ghcr.io/acme/api@{DIGEST_A}", "worker": f"ghcr.io/acme/worker@{DIGEST_B}"}


def admit(running: RunningWebhook, document: dict, query: str = "?timeout=10s") -> dict:
    with running.client() as client:
        response = client.post(f"/admit{query}", content=body(document))
    assert response.status_code == 200, response.text
    out = orjson.loads(response.content)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == document["request"]["uid"]
    return out["response"]


def metrics_text(running: RunningWebhook) -> str:
    with running.client() as client:
        return client.get("/metrics").text


def test_plain_pod_allowed_and_decision_recorded(webhook: Factory, policy_backend: PolicyBackend) -> None:
    running = webhook()
    document = review()
    result = admit(running, document)
    assert result["allowed"] is True
    assert "status" not in result and "warnings" not in result
    assert result["auditAnnotations"]["decision"] == "allow"
    spec_digest = canonical_id(document["request"]["object"]["spec"])
    # one backend round trip for the three images of the Pod (init + 2 containers)
    assert len(policy_backend.policy_calls) == 1
    call = policy_backend.policy_calls[0]
    assert sorted(call.images) == sorted(
        [f"ghcr.io/acme/api@{DIGEST_A}", "ghcr.io/acme/migrate:1.2.3", "docker.io/library/nginx:1.25"]
    )
    assert call.namespace == "payments" and call.labels == {"app": "api", "env": "prod", "tier": "backend"}
    records = policy_backend.wait_decisions(1)
    assert len(records) == 1
    record = records[0]
    assert record.schema_version.startswith("zastava.admission.decision@v1.")
    assert record.decision.admission_id == document["request"]["uid"]
    assert record.decision.pod_spec_digest == spec_digest
    assert record.decision.decision == "Allow"
    assert [i.name for i in record.decision.images] == [
        "ghcr.io/acme/migrate:1.2.3",
        f"ghcr.io/acme/api@{DIGEST_A}",
        "nginx:1.25",
    ]


def test_warm_cache_makes_no_backend_call(webhook: Factory, policy_backend: PolicyBackend) -> None:
    running = webhook()
    for _ in range(3):
        assert admit(running, review(pod_with(PINNED)))["allowed"] is True
    assert len(policy_backend.policy_calls) == 1
    metrics = metrics_text(running)
    assert "zastava_admission_cache_hits_total 4.0" in metrics
    assert 'zastava_admission_decisions_total{decision="allow"} 3.0' in metrics
    assert 'zastava_runtime_backend_latency_ms_count{endpoint="policy"} 1.0' in metrics


def test_policy_revision_change_invalidates_cache(webhook: Factory, policy_backend: PolicyBackend) -> None:
    running = webhook(webhook={"failureTtlSeconds": 0})
    policy_backend.ttl_seconds = 0  # nothing cached: every review asks, and learns the revision
    admit(running, review(pod_with(PINNED)))
    policy_backend.ttl_seconds = 300
    admit(running, review(pod_with(PINNED)))
    admit(running, review(pod_with(PINNED)))
    assert len(policy_backend.policy_calls) == 2
    policy_backend.revision = "rev-2"
    policy_backend.overrides[DIGEST_B] = ImagePolicy(
        signed=False, has_sbom=True, policy_verdict="fail", reasons=["revoked"]
    )
    # still cached under rev-1 until a response tells us about rev-2
    assert admit(running, review(pod_with(PINNED)))["allowed"] is True
    admit(running, review(pod_with({"other": f"ghcr.io/acme/other@{DIGEST_A}"})))
    result = admit(running, review(pod_with(PINNED)))
    assert result["allowed"] is False and "revoked" in result["status"]["message"]


def test_warn_verdict_allowed_with_warning(webhook: Factory) -> None:
    result = admit(webhook(), review(pod_with({"api": f"ghcr.io/acme/warn@{DIGEST_A}"})))
    assert result["allowed"] is True
    assert any("scanner policy verdict: warn" in w and "medium CVEs" in w for w in result["warnings"])


def test_warn_verdict_denied_when_warn_not_allowed(webhook: Factory) -> None:
    result = admit(
        webhook(admission={"allowWarn": False}), review(pod_with({"api": f"ghcr.io/acme/warn@{DIGEST_A}"}))
    )
    assert result["allowed"] is False and "verdict: warn" in result["status"]["message"]


@pytest.mark.parametrize(("namespace", "allowed"), [("dev", True), ("payments", False)])
def test_backend_down_fails_open_or_closed_per_namespace(
    webhook: Factory, policy_backend: PolicyBackend, namespace: str, allowed: bool
) -> None:
    policy_backend.fail_status = 503
    result = admit(webhook(), review(pod_with(PINNED), namespace=namespace))
    assert result["allowed"] is allowed
    assert result["warnings"], "a failure is always accompanied by a warning"
    if allowed:
        assert result["auditAnnotations"]["decision"] == "fail-open"
        assert "fail-open" in result["warnings"][0] and "HTTP 503" in result["warnings"][0]
    else:
        assert result["auditAnnotations"]["decision"] == "fail-closed"
        assert "fail-closed" in result["status"]["message"] and "HTTP 503" in result["status"]["message"]


def test_backend_unreachable_fails_closed(webhook: Factory, policy_backend: PolicyBackend) -> None:
    from tests.harness.devstack import free_port

    running = webhook(backend={"baseAddress": f"http://127.0.0.1:{free_port()}"})
    result = admit(running, review(pod_with(PINNED)))
    assert result["allowed"] is False and "unreachable" in result["status"]["message"]
    metrics = metrics_text(running)
    assert 'zastava_backend_failures_total{endpoint="policy"} 1.0' in metrics


@pytest.mark.parametrize(("namespace", "allowed"), [("dev", True), ("payments", False)])
def test_slow_backend_answers_before_the_api_server_gives_up(
    webhook: Factory, policy_backend: PolicyBackend, namespace: str, allowed: bool
) -> None:
    policy_backend.delay = 3.0
    running = webhook(webhook={"deadlineMarginSeconds": 0.5})
    started = time.monotonic()
    result = admit(running, review(pod_with(PINNED), namespace=namespace), query="?timeout=1s")
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"answered after {elapsed:.2f}s, later than the API server's 1s timeout"
    assert result["allowed"] is allowed
    text = result.get("status", {}).get("message", "") + " ".join(result.get("warnings", []))
    assert "deadline" in text


def test_backend_timeout_caps_the_budget(webhook: Factory, policy_backend: PolicyBackend) -> None:
    policy_backend.delay = 3.0
    running = webhook(backend={"requestTimeoutSeconds": 0.3})
    started = time.monotonic()
    result = admit(running, review(pod_with(PINNED)), query="?timeout=30s")
    assert time.monotonic() - started < 1.5
    assert result["allowed"] is False


def test_slow_decision_endpoint_never_delays_responses(
    webhook: Factory, policy_backend: PolicyBackend
) -> None:
    policy_backend.decision_delay = 2.0
    running = webhook()
    admit(running, review(pod_with(PINNED)))  # warm the cache
    started = time.monotonic()
    for _ in range(5):
        admit(running, review(pod_with(PINNED)))
    assert time.monotonic() - started < 1.5
    # records queued while a post is in flight go together in one ND-JSON request
    records = policy_backend.wait_decisions(6)
    assert len({r.decision.admission_id for r in records}) == 6
    assert policy_backend.decision_posts < 6


def test_delete_and_other_kinds_are_allowed_without_work(
    webhook: Factory, policy_backend: PolicyBackend
) -> None:
    running = webhook()
    assert admit(running, review(operation="DELETE"))["allowed"] is True
    status = review()
    status["request"]["subResource"] = "status"
    assert admit(running, status)["allowed"] is True
    assert policy_backend.policy_calls == []


def test_http_surface(webhook: Factory) -> None:
    running = webhook(webhook={"maxBodyBytes": 4096})
    with running.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/admit").status_code == 405
        assert client.get("/nope").status_code == 404
        assert (
            client.post("/admit", content=b'{"apiVersion": "admission.k8s.io/v1", "kind": "Adm').status_code
            == 400
        )
        assert client.post("/admit", content=b"[1,2]").status_code == 400
        too_big = client.post("/admit", content=b"{" + b" " * 5000 + b"}")
        assert too_big.status_code == 413
        no_kind = review()
        del no_kind["request"]["kind"]
        answer = client.post("/admit", content=body(no_kind))
        assert answer.status_code == 200
        response = orjson.loads(answer.content)["response"]
        assert response["allowed"] is False and response["status"]["code"] == 400
        assert "kind" in response["status"]["message"]
        assert "zastava_admission_decisions_total" in client.get("/metrics").text


def test_response_parses_as_admission_review(webhook: Factory) -> None:
    """The response is exactly what the API server expects: apiVersion/kind and a response with uid."""
    running = webhook()
    with running.client() as client:
        answer = client.post("/admit", content=body(review(pod_with({"x": "nginx:latest"}))))
    document = orjson.loads(answer.content)
    assert set(document) == {"apiVersion", "kind", "response"}
    assert set(document["response"]) <= {"uid", "allowed", "status", "warnings", "auditAnnotations"}
    assert "tag :latest is banned" in document["response"]["status"]["message"]
    with pytest.raises(ReviewError):
        parse_review(answer.content)  # a response is not a request


@pytest.mark.parametrize(
    ("enforce", "namespace", "allowed", "label"),
    [
        (True, "payments", False, "fail-closed"),
        (True, "dev", True, "fail-open"),
        (False, "payments", True, "dry-run-deny"),
    ],
)
def test_internal_error_over_tls_follows_the_one_decision(
    webhook: Factory, policy_backend: PolicyBackend, enforce: bool, namespace: str, allowed: bool, label: str
) -> None:
    """A bug inside the review (injected: the evaluation step raises) is answered like an outage —
    fail-open/closed per namespace, admitted by a dry run — and recorded; never a 500."""
    running = webhook(admission={"enforce": enforce})

    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    running.components.admitter._evaluate = broken  # type: ignore[method-assign]
    document = review(pod_with(PINNED), namespace=namespace)
    result = admit(running, document)
    assert result["allowed"] is allowed and result["auditAnnotations"]["decision"] == label
    text = result.get("status", {}).get("message", "") + " ".join(result.get("warnings", []))
    assert "zastava internal error (KeyError)" in text
    (record,) = policy_backend.wait_decisions(1)
    assert record.decision.admission_id == document["request"]["uid"]
    assert record.decision.decision == ("Allow" if label == "fail-open" else "Deny")
    assert record.decision.enforced is enforce
    assert f'zastava_admission_decisions_total{{decision="{label}"}} 1.0' in metrics_text(running)


def test_dry_run_over_tls_admits_an_invalid_review(webhook: Factory) -> None:
    running = webhook(admission={"enforce": False})
    document = review(uid="u-invalid")
    del document["request"]["operation"]
    result = admit(running, document)
    assert result["allowed"] is True and result["auditAnnotations"]["decision"] == "dry-run-deny"
    assert "operation" in result["warnings"][0]
    with running.client() as client:
        assert client.post("/admit", content=b"[1, 2]").status_code == 400
