"""Plain records passed between the backend's logic and its store (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..inventory import EventFacts

__all__ = [
    "EVENT_COLUMNS",
    "CatalogHead",
    "CatalogRecord",
    "DecisionRow",
    "EventRow",
    "IngestWrite",
    "Page",
]


class EventRow(NamedTuple):
    tenant: str
    event_id: str
    received_us: int
    when_us: int
    kind: str
    node: str
    namespace: str | None
    pod: str | None
    container_id: str | None
    image: str | None
    image_digest: str | None
    build_id: str | None
    schema_version: str
    body: str
    correlation: str | None
    template_ref: str | None = None


EVENT_COLUMNS: tuple[str, ...] = EventRow._fields


class DecisionRow(NamedTuple):
    tenant: str
    admission_id: str
    namespace: str
    decision: str
    pod_spec_digest: str
    received_us: int
    schema_version: str
    body: str
    outcome: str | None = None
    pod: str | None = None


@dataclass
class IngestWrite:
    """Everything one ingest request writes, in one transaction."""

    tenant: str
    events: list[EventRow] = field(default_factory=list)
    #: (digest, build_id, seen_us)
    build_ids: list[tuple[str, str, int]] = field(default_factory=list)
    #: (digest, bom_ref, matched_by, seen_us, event_id)
    usage: list[tuple[str, str, str, int, str]] = field(default_factory=list)
    #: (image, reason, seen_us, event_id)
    delta_scans: list[tuple[str, str, int, str]] = field(default_factory=list)
    #: per event, what the console's views need (inventory, node health, rollups)
    views: list[EventFacts] = field(default_factory=list)
    #: template id → canonical JSON of the templates the events reference (``templates.py``)
    templates: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogHead:
    digest: str
    signed: bool
    has_sbom: bool
    base_digest: str | None
    rekor: dict[str, Any] | None
    updated_us: int
    #: severity → number of vulnerabilities carried in the SBOM
    severities: dict[str, int] = field(default_factory=dict)


@dataclass
class CatalogRecord:
    digest: str
    signed: bool
    has_sbom: bool
    rekor: dict[str, Any] | None
    base_digest: str | None
    updated_us: int
    components: list[dict[str, Any]]
    vulnerabilities: list[dict[str, Any]]


@dataclass
class Page:
    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None
