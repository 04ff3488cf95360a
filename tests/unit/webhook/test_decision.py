"""One fail-open/closed and dry-run decision, through the ASGI app (:class:`WebhookApp`, what ``serve`` runs).

With ``enforce: false`` nothing is denied — not a gate's denial, not an internal error, not a malformed Pod,
an empty ``image`` or a Pod over the container cap — each is admitted with the dry-run warning and
``auditAnnotations.decision: dry-run-deny``, counted and recorded (§2.2, ``decision: Deny``, ``enforced:
false``). Only a body that is not an AdmissionReview at all is still an HTTP 400. No backend is configured
(``policy=None``): the reviews below never reach one. The same over TLS:
tests/integration/webhook/test_serve.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from zastava.config import ZastavaConfig
from zastava.contracts import AdmissionDecision
from zastava.telemetry import ZastavaMetrics
from zastava.webhook.admitter import Admitter
from zastava.webhook.app import WebhookApp
from zastava.webhook.images import MAX_CONTAINERS

from .reviews import DIGEST_A, body, pod_with, review
from .test_app import call

PINNED = f"ghcr.io/acme/api@{DIGEST_A}"


def make(enforce: bool) -> tuple[WebhookApp, list[AdmissionDecision]]:
    records: list[AdmissionDecision] = []
    admission = {"enforce": enforce, "failOpenNamespaces": ["dev"], "resolveTags": False}
    config = ZastavaConfig(admission=admission)
    metrics = ZastavaMetrics()
    admitter = Admitter(config, policy=None, metrics=metrics, record=records.append)
    return WebhookApp(admitter, metrics=metrics), records


def _malformed() -> dict[str, Any]:
    document = review(uid="u-malformed")
    document["request"]["object"]["spec"]["containers"] = "nope"
    return document


def _over_cap() -> dict[str, Any]:
    images = {f"c{i}": PINNED for i in range(MAX_CONTAINERS + 1)}
    return review(pod_with(images), uid="u-cap")


def _invalid_review() -> dict[str, Any]:
    document = review(uid="u-invalid")
    del document["request"]["operation"]
    return document


CASES: dict[str, tuple[dict[str, Any], str]] = {
    "malformed Pod": (_malformed(), "spec.containers is not a list"),
    "empty image": (review(pod_with({"app": ""}), uid="u-empty"), "containers[app].image is missing"),
    "over the container cap": (_over_cap(), f"more than {MAX_CONTAINERS} containers"),
    "invalid AdmissionReview": (_invalid_review(), "operation"),
    "gate denies": (review(pod_with({"app": "nginx:latest"}), uid="u-gate"), "tag :latest is banned"),
    "backend unavailable": (review(pod_with({"app": PINNED}), uid="u-unavailable"), "no policy backend"),
}


async def admit(app: WebhookApp, document: dict[str, Any]) -> dict[str, Any]:
    status, out = await call(app, "POST", "/admit", [body(document)])
    assert status == 200, out
    response = dict(orjson.loads(out)["response"])
    assert response["uid"] == document["request"]["uid"]
    await asyncio.sleep(0)  # the decision record is built right after the response
    return response


def count(app: WebhookApp, label: str) -> float:
    assert app.metrics is not None
    for line in app.metrics.render().decode().splitlines():
        if line.startswith(f'zastava_admission_decisions_total{{decision="{label}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("case", list(CASES))
async def test_dry_run_admits_what_enforcement_denies(case: str) -> None:
    document, why = CASES[case]
    enforcing, _ = make(enforce=True)
    denied = await admit(enforcing, document)
    assert denied["allowed"] is False and why in denied["status"]["message"]
    dry, records = make(enforce=False)
    response = await admit(dry, document)
    assert response["allowed"] is True and "status" not in response
    assert response["warnings"][0].startswith("zastava dry-run (enforce: false) would deny: ")
    assert why in response["warnings"][0]
    assert response["auditAnnotations"]["decision"] == "dry-run-deny"
    assert why in response["auditAnnotations"]["reasons"]
    assert count(dry, "dry-run-deny") == 1
    if case == "invalid AdmissionReview":
        assert records == []  # not a Pod: nothing to record
    else:
        (record,) = records
        assert record.admission_id == document["request"]["uid"]
        assert record.decision == "Deny" and record.enforced is False


async def test_enforced_malformed_requests_are_400_in_every_namespace() -> None:
    app, records = make(enforce=True)
    for namespace in ("dev", "payments"):
        document = _malformed()
        document["request"]["namespace"] = namespace
        response = await admit(app, document)
        assert response["allowed"] is False and response["status"]["code"] == 400
        assert response["auditAnnotations"]["decision"] == "invalid"
    assert count(app, "invalid") == 2
    assert [r.decision for r in records] == ["Deny", "Deny"] and all(r.enforced for r in records)


@pytest.mark.parametrize(
    ("enforce", "namespace", "allowed", "label"),
    [
        (True, "payments", False, "fail-closed"),
        (True, "dev", True, "fail-open"),
        (False, "payments", True, "dry-run-deny"),
        (False, "dev", True, "fail-open"),
    ],
)
async def test_internal_error_is_settled_like_an_outage(
    enforce: bool, namespace: str, allowed: bool, label: str
) -> None:
    app, records = make(enforce=enforce)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("bug")

    app.admitter._evaluate = broken  # type: ignore[method-assign]
    response = await admit(app, review(pod_with({"app": PINNED}), namespace=namespace, uid="u-bug"))
    assert response["allowed"] is allowed and response["auditAnnotations"]["decision"] == label
    text = response.get("status", {}).get("message", "") + " ".join(response.get("warnings", []))
    assert "zastava internal error (KeyError)" in text
    assert count(app, label) == 1
    (record,) = records
    assert record.decision == ("Allow" if label == "fail-open" else "Deny")
    assert record.enforced is enforce


@pytest.mark.parametrize("payload", [b"", b"{", b"null", b'{"kind": "AdmissionReview"}', b"\xff\xfe"])
async def test_a_body_that_is_not_an_admission_review_is_400_even_in_dry_run(payload: bytes) -> None:
    app, records = make(enforce=False)
    status, out = await call(app, "POST", "/admit", [payload])
    assert status == 400 and "error" in orjson.loads(out) and records == []


async def test_records_of_repeated_pods_and_their_lines() -> None:
    """Replicas of one Pod (same spec, other uid) give records equal but for the admission id, each with
    the canonical id of the spec; the ND-JSON line posted is the envelope model's wire form, byte for byte."""
    from zastava.contracts import ADMISSION_DECISION, AdmissionDecisionEnvelope, canonical_id, versions
    from zastava.webhook.policy_client import decision_line

    app, records = make(enforce=False)
    documents = [review(pod_with({"app": "nginx:latest", "side": PINNED}), uid=f"u-{i}") for i in range(3)]
    documents.append(CASES["backend unavailable"][0])
    for document in documents:
        await admit(app, document)
    assert [r.admission_id for r in records] == [d["request"]["uid"] for d in documents]
    for record, document in zip(records, documents, strict=True):
        assert record.pod_spec_digest == canonical_id(document["request"]["object"]["spec"])
        envelope = AdmissionDecisionEnvelope(
            schema_version=str(versions.current(ADMISSION_DECISION)), decision=record
        )
        assert decision_line(record) == orjson.dumps(envelope.wire())
    first, *replicas = (r.model_dump(exclude={"admission_id"}) for r in records[:3])
    assert all(r == first for r in replicas)
    assert records[3].pod_spec_digest != records[0].pod_spec_digest
