"""BackendClient against the stand-in backend (a real HTTP server; see ``standins.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zastava.contracts import AdmissionDecision, RuntimePolicyRequest
from zastava.telemetry import ZastavaMetrics
from zastava.webhook.policy_client import MAX_RESPONSE_BYTES, BackendClient, BackendError, DecisionRecorder

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


def _decisions(count: int) -> list[AdmissionDecision]:
    return [
        AdmissionDecision(
            admission_id=f"uid-{i}",
            namespace="ns",
            pod_spec_digest="sha256-x",
            decision="Allow",
            ttl_seconds=1,
        )
        for i in range(count)
    ]


async def test_recorder_spools_and_batches_what_waits(policy_backend: PolicyBackend, tmp_path: Path) -> None:
    client = BackendClient(policy_backend.url)
    recorder = DecisionRecorder(client, batch_max=3, spool_dir=tmp_path / "spool")
    for decision in _decisions(7):
        recorder.submit(decision)  # the sender is not running yet: the spool keeps them all
    assert recorder.dropped == 0 and recorder.pending == 7
    recorder.start()
    assert await recorder.flush(10)
    assert [d.decision.admission_id for d in policy_backend.decisions] == [f"uid-{i}" for i in range(7)]
    assert policy_backend.decision_posts == 1 and recorder.posted == 7  # one request carries the backlog
    await recorder.stop()
    await client.aclose()


async def test_recorder_without_a_writable_spool_bounds_memory(
    policy_backend: PolicyBackend, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a directory")
    client = BackendClient(policy_backend.url)
    recorder = DecisionRecorder(client, max_queue=5, spool_dir=tmp_path / "file" / "spool")
    assert recorder.spool is None
    for decision in _decisions(7):
        recorder.submit(decision)
    assert recorder.dropped == 2
    recorder.start()
    assert await recorder.flush(10)
    assert recorder.posted == 5
    await recorder.stop()
    await client.aclose()


async def test_recorder_keeps_records_while_the_backend_is_down(tmp_path: Path) -> None:
    from tests.harness.devstack import free_port

    client = BackendClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    recorder = DecisionRecorder(client, spool_dir=tmp_path / "spool")
    recorder.start()
    recorder.submit(_decisions(1)[0])
    assert not await recorder.flush(2)
    assert recorder.failed >= 1 and recorder.posted == 0 and recorder.pending == 1 and recorder.dropped == 0
    await recorder.stop()
    await client.aclose()
    reopened = DecisionRecorder(client, spool_dir=tmp_path / "spool")
    assert reopened.pending == 1  # kept on disk for the next start
    await reopened.stop()


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
