"""Ingest response (backend → durable publisher), the answer to ``POST /api/v1/scanner/runtime/events``.

The publisher drops from its buffer every line that was ``accepted``, a ``duplicate`` or ``rejected`` (a
rejection is permanent: resending the same bytes fails again); it keeps and resends the whole batch only on
``429`` (honouring ``Retry-After``), ``413`` for a body it must split, or a 5xx / transport error.

Status codes: ``200`` all good lines stored; ``202`` stored, and at least one image had no catalog entry or no
SBOM so a delta scan was requested (``deltaScansRequested``); ``400`` not one line could be read (body
unreadable, or every line rejected) — the response still lists every rejection by index.
"""

from __future__ import annotations

from pydantic import Field

from .base import ContractModel, OptionalField

__all__ = ["IngestRejection", "IngestResponse"]


class IngestRejection(ContractModel):
    index: int = Field(
        ge=0, description="0-based position of the envelope in the request (array item or line)"
    )
    error: str = Field(description="why the envelope was refused; fit for logs")
    event_id: str | None = OptionalField(description="the eventId when it could be read")


class IngestResponse(ContractModel):
    received: int = Field(ge=0, description="envelopes in the request (array items or non-blank lines)")
    accepted: int = Field(ge=0, description="envelopes stored by this request")
    duplicates: int = Field(
        ge=0, description="envelopes whose id was already stored (or repeated in the batch)"
    )
    rejected: list[IngestRejection] = Field(default_factory=list)
    delta_scans_requested: list[str] = Field(
        default_factory=list,
        description="images (digest, or reference when not pinned) with no catalog entry or no SBOM",
    )
    schema_version: str | None = OptionalField(
        description="highest version of the payload schema the backend speaks, for the client's negotiation"
    )
