"""BackendClient against the stand-in backend (a real HTTP server; see ``standins.py``)."""

from __future__ import annotations

import pytest

from zastava.contracts import AdmissionDecision, RuntimePolicyRequest
from zastava.telemetry import ZastavaMetrics
from zastava.webhook.backend import MAX_RESPONSE_BYTES, BackendClient, BackendError, DecisionRecorder

from .standins import PolicyBackend

REQUEST = RuntimePolicyRequest(namespace="payments", images=["ghcr.io/acme/a@sha256:" + "a" * 64])


async def test_headers_provider_is_asked_per_call(policy_backend: PolicyBackend) -> None:
    asked: list[tuple[str, str]] = []

    async def provider(method: str, url: str) -> dict[str, str]:
        asked.append((method, url))
        return {"Authorization": "DPoP token-1", "DPoP": "proof"}

    client = BackendClient(policy_backend.url, headers_provider=provider)
    try:
        response = await client.policy(REQUEST)
    finally:
        await client.aclose()
    assert response.policy_revision == "rev-1" and response.results[REQUEST.images[0]].signed is True
    assert asked == [("POST", f"{policy_backend.url}/api/v1/scanner/policy/runtime")]
    assert policy_backend.headers_seen[0]["authorization"] == "DPoP token-1"
    assert policy_backend.headers_seen[0]["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "is not a RuntimePolicyResponse"),
        (b'{"ttlSeconds": 5}', "is not a RuntimePolicyResponse"),
        (b'{"ttlSeconds": 5, "results": {}, "surprise": 1}', "is not a RuntimePolicyResponse"),
        (b'{"pad": "' + b"x" * (MAX_RESPONSE_BYTES + 10) + b'"}', "exceeds"),
    ],
)
async def test_bad_answers_are_backend_errors(
    policy_backend: PolicyBackend, body: bytes, message: str
) -> None:
    policy_backend.raw_policy_body = body
    metrics = ZastavaMetrics()
    client = BackendClient(policy_backend.url, metrics=metrics)
    try:
        with pytest.raises(BackendError, match=message):
            await client.policy(REQUEST)
    finally:
        await client.aclose()
    assert 'zastava_backend_failures_total{endpoint="policy"} 1.0' in metrics.render().decode()


async def test_recorder_batches_and_survives_failures(policy_backend: PolicyBackend) -> None:
    client = BackendClient(policy_backend.url)
    recorder = DecisionRecorder(client, max_queue=5, batch_max=3)
    decisions = [
        AdmissionDecision(
            admission_id=f"uid-{i}",
            namespace="ns",
            pod_spec_digest="sha256-x",
            decision="Allow",
            ttl_seconds=1,
        )
        for i in range(7)
    ]
    for decision in decisions:
        recorder.submit(decision)  # the worker is not running yet: the queue bounds what is kept
    assert recorder.dropped == 2
    recorder.start()
    await recorder.flush(10)
    assert [d.decision.admission_id for d in policy_backend.decisions] == [f"uid-{i}" for i in range(5)]
    assert policy_backend.decision_posts == 2 and recorder.posted == 5
    await recorder.stop()
    await client.aclose()


async def test_recorder_counts_undelivered(policy_backend: PolicyBackend) -> None:
    from zastava.devstack import free_port

    client = BackendClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    recorder = DecisionRecorder(client)
    recorder.start()
    recorder.submit(
        AdmissionDecision(
            admission_id="u", namespace="ns", pod_spec_digest="d", decision="Deny", ttl_seconds=1
        )
    )
    await recorder.flush(10)
    assert recorder.failed == 1 and recorder.posted == 0
    await recorder.stop()
    await client.aclose()


async def test_a_given_http_client_is_shared_not_closed(policy_backend: PolicyBackend) -> None:
    """``backend_auth``'s client (client certificate) is used for the calls and left open for its owner."""
    import httpx

    shared = httpx.AsyncClient(headers={"x-shared-client": "1"})
    client = BackendClient(policy_backend.url, http_client=shared)
    try:
        await client.policy(REQUEST)
    finally:
        await client.aclose()
    assert policy_backend.headers_seen[0]["x-shared-client"] == "1"
    assert not shared.is_closed
    await shared.aclose()


async def test_credentials_failure_is_a_backend_error(policy_backend: PolicyBackend) -> None:
    from zastava.auth import AuthorityError

    async def provider(method: str, url: str) -> dict[str, str]:
        raise AuthorityError("token endpoint answered 503")

    metrics = ZastavaMetrics()
    client = BackendClient(policy_backend.url, headers_provider=provider, metrics=metrics)
    try:
        with pytest.raises(BackendError, match=r"no credentials \(token endpoint answered 503\)"):
            await client.policy(REQUEST)
    finally:
        await client.aclose()
    assert policy_backend.policy_calls == []
    assert 'zastava_backend_failures_total{endpoint="policy"} 1.0' in metrics.render().decode()
