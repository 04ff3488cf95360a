"""Admission-decision ingest, beside event ingest (:mod:`.ingest`).

Flow of ``POST /api/v1/admission/decisions``: :func:`~.ingest.read_body` (the same size caps as events) →
:func:`prepare_decisions` (:func:`~.ingest.split_envelopes`, each envelope validated strictly with the
contracts' version negotiation — duplicate keys refused —, column lengths checked, duplicates within the batch
counted once; rows keep the canonical form) → :meth:`Store.insert_decisions` (idempotent by
``(tenant, admissionId)``) → :meth:`PreparedDecisions.response`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from ..contracts import (
    ADMISSION_DECISION,
    AdmissionDecisionEnvelope,
    EnvelopeError,
    IngestRejection,
    IngestResponse,
    parse_admission_envelope,
    versions,
)
from .ingest import split_envelopes
from .inventory import decision_outcome
from .store import DecisionRow

__all__ = ["PreparedDecisions", "decision_problem", "prepare_decisions"]

_MAX_ERROR = 1000


@dataclass
class PreparedDecisions:
    """One request's decisions: the rows to insert and what the answer says about the rest."""

    received: int
    rows: list[DecisionRow] = field(default_factory=list)
    rejected: list[IngestRejection] = field(default_factory=list)
    duplicates: int = 0

    def response(self, inserted: int) -> IngestResponse:
        """The answer once ``inserted`` of :attr:`rows` were new to the store (the rest: duplicates)."""
        return IngestResponse(
            received=self.received,
            accepted=inserted,
            duplicates=self.duplicates + len(self.rows) - inserted,
            rejected=self.rejected,
            schema_version=str(versions.current(ADMISSION_DECISION)),
        )


def prepare_decisions(tenant: str, body: bytes, now_us: int, *, max_items: int) -> PreparedDecisions:
    """Validate the decision envelopes of ``body`` (a JSON array, one object or ND-JSON, at most
    ``max_items``); :class:`~.ingest.BodyError` when the body as a whole cannot be read."""
    items = split_envelopes(body, max_items)
    out = PreparedDecisions(received=len(items))
    seen: set[str] = set()
    for item in items:
        if item.error is not None:
            out.rejected.append(IngestRejection(index=item.index, error=item.error))
            continue
        try:
            version, decision = parse_admission_envelope(item.data)
        except (EnvelopeError, OverflowError, ValueError) as exc:
            out.rejected.append(IngestRejection(index=item.index, error=str(exc)[:_MAX_ERROR]))
            continue
        problem = decision_problem(decision.admission_id, decision.namespace, decision.pod_spec_digest)
        if problem:
            out.rejected.append(IngestRejection(index=item.index, error=problem))
            continue
        if decision.admission_id in seen:
            out.duplicates += 1
            continue
        seen.add(decision.admission_id)
        canonical = AdmissionDecisionEnvelope(schema_version=str(version), decision=decision).wire()
        out.rows.append(
            DecisionRow(
                tenant=tenant,
                admission_id=decision.admission_id,
                namespace=decision.namespace,
                decision=decision.decision,
                pod_spec_digest=decision.pod_spec_digest,
                received_us=now_us,
                schema_version=str(version),
                body=orjson.dumps(canonical).decode(),
                outcome=decision_outcome(decision),
                pod=decision.pod,
            )
        )
    return out


def decision_problem(admission_id: str, namespace: str, pod_spec_digest: str) -> str | None:
    """The longest value the store indexes, per decision field: longer values are refused, never
    truncated; NUL is refused (PostgreSQL text cannot hold it)."""
    for name, value, limit in (
        ("admissionId", admission_id, 253),
        ("namespace", namespace, 253),
        ("podSpecDigest", pod_spec_digest, 128),
    ):
        if len(value) > limit:
            return f"decision.{name} is longer than {limit} characters"
        if "\x00" in value:
            return f"decision.{name} contains a NUL character"
    return None
