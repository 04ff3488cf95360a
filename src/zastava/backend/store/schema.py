"""Tables of the reference backend (SQLAlchemy Core). Times are integer microseconds since the epoch (UTC).

The alembic migrations in ``zastava.backend.migrations`` create exactly these tables; a test compares them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "admission_decisions",
    "build_ids",
    "catalog_images",
    "component_usage",
    "console_login_links",
    "console_sessions",
    "containers",
    "decision_minutes",
    "delta_scans",
    "drift_events",
    "event_minutes",
    "event_templates",
    "metadata",
    "nodes",
    "runtime_events",
]

metadata = MetaData()

#: An auto-incrementing 64-bit key that is SQLite's rowid alias on SQLite.
RowId = BigInteger().with_variant(Integer(), "sqlite")

runtime_events = Table(
    "runtime_events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("tenant", String(253), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("when_us", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("node", String(253), nullable=False),
    Column("namespace", String(253)),
    Column("pod", String(253)),
    Column("container_id", String(512)),
    Column("image", String(1024), doc="digest when the reference is pinned, else the reference"),
    Column("image_digest", String(71)),
    Column("build_id", String(128)),
    Column("schema_version", String(64), nullable=False),
    Column(
        "body",
        Text,
        nullable=False,
        doc="the envelope as received (JSON); with template_ref, only this event's own values (templates.py)",
    ),
    Column("correlation", Text, doc="JSON: catalog facts and used components at ingest time"),
    Column("template_ref", String(64), doc="event_templates.id of the shared rest of the envelope"),
    UniqueConstraint("tenant", "event_id", name="uq_runtime_events_tenant_event"),
    Index("ix_runtime_events_tenant_id", "tenant", "id"),
    Index("ix_runtime_events_tenant_node", "tenant", "node", "id"),
    Index("ix_runtime_events_tenant_image", "tenant", "image_digest", "id"),
    Index("ix_runtime_events_received", "received_us"),
)

event_templates = Table(
    "event_templates",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("id", String(64), primary_key=True, doc="canonical id of body"),
    Column("body", Text, nullable=False, doc="canonical JSON: an envelope without its instance values"),
    Column("last_used_us", BigInteger, nullable=False, doc="received_us of the last event referencing it"),
    Index("ix_event_templates_last_used", "last_used_us"),
)

catalog_images = Table(
    "catalog_images",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("digest", String(71), primary_key=True),
    Column("signed", Boolean, nullable=False),
    Column("has_sbom", Boolean, nullable=False),
    Column("rekor", Text, doc="JSON RekorRef"),
    Column("base_digest", String(71)),
    Column("updated_us", BigInteger, nullable=False),
    Column("components", Text, nullable=False, doc="JSON list of catalog components (no usage)"),
    Column("vulnerabilities", Text, nullable=False, doc="JSON list"),
)

build_ids = Table(
    "build_ids",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("digest", String(71), primary_key=True),
    Column("build_id", String(128), primary_key=True),
    Column("last_seen_us", BigInteger, nullable=False),
)

component_usage = Table(
    "component_usage",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("digest", String(71), primary_key=True),
    Column("bom_ref", String(1024), primary_key=True),
    Column("matched_by", String(16), nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
    Column("last_event_id", String(128), nullable=False),
)

delta_scans = Table(
    "delta_scans",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("tenant", String(253), nullable=False),
    Column("image", String(1024), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_us", BigInteger, nullable=False),
    Column("last_requested_us", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("last_event_id", String(128)),
    UniqueConstraint("tenant", "image", name="uq_delta_scans_tenant_image"),
    Index("ix_delta_scans_tenant_id", "tenant", "id"),
)

admission_decisions = Table(
    "admission_decisions",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("tenant", String(253), nullable=False),
    Column("admission_id", String(253), nullable=False),
    Column("namespace", String(253), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("pod_spec_digest", String(128), nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("schema_version", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("outcome", String(16), doc="allow, deny, fail-open, fail-closed, dry-run-deny (decision v1.1)"),
    Column("pod", String(253), doc="the Pod's name or generateName (decision v1.1)"),
    UniqueConstraint("tenant", "admission_id", name="uq_admission_decisions_tenant_admission"),
    Index("ix_admission_decisions_tenant_id", "tenant", "id"),
    Index("ix_admission_decisions_received", "received_us"),
    Index("ix_admission_decisions_tenant_outcome", "tenant", "outcome", "id"),
    Index("ix_admission_decisions_tenant_namespace", "tenant", "namespace", "id"),
)

# ------------------------------------------------------------------------- console views (migration 0002)
# The console reads these instead of scanning runtime_events: each is maintained by the ingest transaction
# from the events it actually inserted (so at-least-once resends never count twice), and purged by retention.

# The drift timeline reads drift_events (below): narrow rows, so a filter by node or namespace walks a few
# megabytes of index instead of fetching multi-kilobyte event rows; page bodies come by (tenant, event_id).
drift_events = Table(
    "drift_events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("tenant", String(253), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("node", String(253), nullable=False),
    Column("namespace", String(253)),
    Column("image_digest", String(71)),
    Column("image", String(1024)),
    Column("when_us", BigInteger, nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Index("ix_drift_events_kind", "tenant", "kind", "id", "namespace", "node"),
    Index("ix_drift_events_received", "received_us"),
)

containers = Table(
    "containers",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("container_id", String(512), primary_key=True),
    Column("node", String(253), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("namespace", String(253)),
    Column("pod", String(253)),
    Column("container", String(253)),
    Column("workload", String(600), doc="owner 'Kind/name', else the pod, else the container name"),
    Column("image", String(1024), doc="the image reference the container runs"),
    Column("image_name", String(4096), doc="the image as the workload names it (tag form), event v1.2"),
    Column("image_digest", String(71)),
    Column("labels", Text, doc="JSON: pod labels (Kubernetes) or container labels, as the gates read them"),
    Column("terminal", Text, doc="EntryTrace terminal program(s), space-separated"),
    Column("build_id", String(128)),
    Column("libs", Integer, doc="number of loaded shared libraries at start"),
    Column("posture", Text, doc="JSON: the event's posture (signed, SBOM referrer, attestation)"),
    Column("started_us", BigInteger, doc="event time of the newest CONTAINER_START"),
    Column("stopped_us", BigInteger, doc="event time of the newest CONTAINER_STOP"),
    Column("last_seen_us", BigInteger, nullable=False, doc="event time of the newest event"),
    Column("last_drift_us", BigInteger),
    Column("running", Boolean, nullable=False),
    Column("sort_key", Text, nullable=False, doc="namespace, workload, pod, container, id (keyset pages)"),
    # one index for every inventory page: filters (node, namespace, workload, image) are applied while walking
    # the running containers in page order — a few thousand index entries at most for 10,000 running
    # containers — and each extra index measurably slowed ingest (every batch upserts its containers)
    Index("ix_containers_running", "tenant", "running", "sort_key"),
    Index("ix_containers_last_seen", "last_seen_us"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("node", String(253), primary_key=True),
    Column("engine", String(32)),
    Column("last_event_us", BigInteger, nullable=False, doc="event time of the newest event"),
    Column("last_received_us", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("drops", BigInteger, nullable=False, doc="events the agent dropped from its buffer (buffer.drop)"),
    Column("gaps", Integer, nullable=False, doc="buffer.drop warnings: gaps in the event stream"),
    Column("warnings", Integer, nullable=False, doc="other AGENT_WARNING events"),
    Column("last_warning_us", BigInteger),
    Column("last_warning_code", String(128)),
    Column("last_warning_message", Text),
    Index("ix_nodes_last_received", "last_received_us"),
)

event_minutes = Table(
    "event_minutes",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("minute", BigInteger, primary_key=True, doc="receive time // 60 s"),
    Column("node", String(253), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("events", BigInteger, nullable=False),
    Index("ix_event_minutes_minute", "minute"),
)

decision_minutes = Table(
    "decision_minutes",
    metadata,
    Column("tenant", String(253), primary_key=True),
    Column("minute", BigInteger, primary_key=True, doc="receive time // 60 s"),
    Column("outcome", String(16), primary_key=True),
    Column("decisions", BigInteger, nullable=False),
    Index("ix_decision_minutes_minute", "minute"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True, doc="sha256 hex of the cookie value (never stored)"),
    Column("tenant", String(253), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("scopes", Text, nullable=False, doc="space-separated"),
    Column("csrf", String(64), nullable=False),
    Column("method", String(16), nullable=False, doc="how the operator logged in: token, link, static"),
    Column("created_us", BigInteger, nullable=False),
    Column("last_used_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Index("ix_console_sessions_expires", "expires_us"),
)

console_login_links = Table(
    "console_login_links",
    metadata,
    Column("code_hash", String(64), primary_key=True, doc="sha256 hex of the one-time code"),
    Column("tenant", String(253), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Index("ix_console_login_links_expires", "expires_us"),
)
