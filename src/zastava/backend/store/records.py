"""Plain records passed between the backend's logic and its store (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..inventory import EventFacts

__all__ = [
    "EVENT_COLUMNS",
    "BuildIdSeen",
    "CatalogHead",
    "CatalogRecord",
    "ComponentUse",
    "DecisionRow",
    "DeltaScanRequest",
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


class BuildIdSeen(NamedTuple):
    """A build-id seen running from an image (``build_ids``: newest sighting kept)."""

    digest: str
    build_id: str
    last_seen_us: int


class ComponentUse(NamedTuple):
    """A catalog component matched by a running container's files (``component_usage``)."""

    digest: str
    bom_ref: str
    matched_by: str
    last_seen_us: int
    event_id: str


class DeltaScanRequest(NamedTuple):
    """An image the backend wants (re)scanned, and why (``delta_scans``)."""

    image: str
    reason: str
    requested_us: int
    event_id: str


@dataclass
class IngestWrite:
    """Everything one ingest request writes, in one transaction."""

    tenant: str
    events: list[EventRow] = field(default_factory=list)
    build_ids: list[BuildIdSeen] = field(default_factory=list)
    usage: list[ComponentUse] = field(default_factory=list)
    delta_scans: list[DeltaScanRequest] = field(default_factory=list)
    #: per event, what the console's views need (inventory, node health, rollups)
    views: list[EventFacts] = field(default_factory=list)


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
