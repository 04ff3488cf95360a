"""Initial schema: runtime events, catalog, build-ids, component usage, delta scans, admission decisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runtime_events",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(253), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("when_us", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253)),
        sa.Column("pod", sa.String(253)),
        sa.Column("container_id", sa.String(512)),
        sa.Column("image", sa.String(1024)),
        sa.Column("image_digest", sa.String(71)),
        sa.Column("build_id", sa.String(128)),
        sa.Column("schema_version", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("correlation", sa.Text),
        sa.UniqueConstraint("tenant", "event_id", name="uq_runtime_events_tenant_event"),
    )
    op.create_index("ix_runtime_events_tenant_id", "runtime_events", ["tenant", "id"])
    op.create_index("ix_runtime_events_tenant_node", "runtime_events", ["tenant", "node", "id"])
    op.create_index("ix_runtime_events_tenant_image", "runtime_events", ["tenant", "image_digest", "id"])
    op.create_index("ix_runtime_events_received", "runtime_events", ["received_us"])

    op.create_table(
        "catalog_images",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("signed", sa.Boolean, nullable=False),
        sa.Column("has_sbom", sa.Boolean, nullable=False),
        sa.Column("rekor", sa.Text),
        sa.Column("base_digest", sa.String(71)),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("components", sa.Text, nullable=False),
        sa.Column("vulnerabilities", sa.Text, nullable=False),
    )
    op.create_table(
        "build_ids",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("build_id", sa.String(128), primary_key=True),
        sa.Column("last_seen_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "component_usage",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("bom_ref", sa.String(1024), primary_key=True),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("last_seen_us", sa.BigInteger, nullable=False),
        sa.Column("last_event_id", sa.String(128), nullable=False),
    )
    op.create_table(
        "delta_scans",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(253), nullable=False),
        sa.Column("image", sa.String(1024), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_us", sa.BigInteger, nullable=False),
        sa.Column("last_requested_us", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("last_event_id", sa.String(128)),
        sa.UniqueConstraint("tenant", "image", name="uq_delta_scans_tenant_image"),
    )
    op.create_index("ix_delta_scans_tenant_id", "delta_scans", ["tenant", "id"])

    op.create_table(
        "admission_decisions",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(253), nullable=False),
        sa.Column("admission_id", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("pod_spec_digest", sa.String(128), nullable=False),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("schema_version", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.UniqueConstraint("tenant", "admission_id", name="uq_admission_decisions_tenant_admission"),
    )
    op.create_index("ix_admission_decisions_tenant_id", "admission_decisions", ["tenant", "id"])
    op.create_index("ix_admission_decisions_received", "admission_decisions", ["received_us"])


def downgrade() -> None:
    for table in (
        "admission_decisions",
        "delta_scans",
        "component_usage",
        "build_ids",
        "catalog_images",
        "runtime_events",
    ):
        op.drop_table(table)
