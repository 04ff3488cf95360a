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
    "delta_scans",
    "metadata",
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
    Column("body", Text, nullable=False, doc="the envelope as received (JSON)"),
    Column("correlation", Text, doc="JSON: catalog facts and used components at ingest time"),
    UniqueConstraint("tenant", "event_id", name="uq_runtime_events_tenant_event"),
    Index("ix_runtime_events_tenant_id", "tenant", "id"),
    Index("ix_runtime_events_tenant_node", "tenant", "node", "id"),
    Index("ix_runtime_events_tenant_image", "tenant", "image_digest", "id"),
    Index("ix_runtime_events_received", "received_us"),
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
    UniqueConstraint("tenant", "admission_id", name="uq_admission_decisions_tenant_admission"),
    Index("ix_admission_decisions_tenant_id", "tenant", "id"),
    Index("ix_admission_decisions_received", "received_us"),
)
