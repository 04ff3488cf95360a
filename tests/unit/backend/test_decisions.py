"""Admission-decision ingest as a module (``zastava.backend.decisions``), beside event ingest: what
``POST /api/v1/scanner/admission/decisions`` stores and answers (the route itself is exercised in
tests/integration/backend/test_api.py)."""

from __future__ import annotations

import orjson
import pytest

from zastava.backend.decisions import prepare_decisions
from zastava.backend.ingest import BodyError
from zastava.contracts import AdmissionDecision, AdmissionDecisionEnvelope

V1_1 = "zastava.admission.decision@v1.1"


def envelope(uid: str, *, namespace: str = "payments", deny: bool = False) -> bytes:
    record = AdmissionDecision(
        admission_id=uid,
        namespace=namespace,
        pod_spec_digest="sha256-" + "q" * 43,
        decision="Deny" if deny else "Allow",
        ttl_seconds=300,
        enforced=True,
        operation="CREATE",
        pod=f"pod-{uid}",
    )
    return orjson.dumps(AdmissionDecisionEnvelope(schema_version=V1_1, decision=record).wire())


def test_rows_keep_the_canonical_form_and_the_answer_counts_every_envelope() -> None:
    bad_namespace = envelope("d3", namespace="n\x00s")
    body = b"\n".join(
        [envelope("d1"), envelope("d2", deny=True), envelope("d1"), bad_namespace, b'{"not": "a decision"}']
    )
    prepared = prepare_decisions("tenant-01", body, 42, max_items=10)

    assert prepared.received == 5 and prepared.duplicates == 1
    assert [(r.admission_id, r.decision, r.outcome, r.received_us) for r in prepared.rows] == [
        ("d1", "Allow", "allow", 42),
        ("d2", "Deny", "deny", 42),
    ]
    assert orjson.loads(prepared.rows[0].body) == orjson.loads(envelope("d1"))
    assert {r.index: r.error for r in prepared.rejected}.keys() == {3, 4}
    assert prepared.rejected[0].error == "decision.namespace contains a NUL character"

    # the store already had d2: it counts as a duplicate, not as accepted
    response = prepared.response(inserted=1)
    assert (response.received, response.accepted, response.duplicates, len(response.rejected)) == (5, 1, 2, 2)


def test_a_body_over_the_cap_is_refused_whole() -> None:
    with pytest.raises(BodyError) as refused:
        prepare_decisions("tenant-01", b"\n".join([envelope(f"d{i}") for i in range(3)]), 1, max_items=2)
    assert refused.value.status == 413
