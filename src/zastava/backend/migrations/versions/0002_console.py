"""Console views: the container inventory, per-node health, per-minute rollups, admission outcomes, sessions.

The inventory and the rollups are maintained by ingest from then on; an existing store starts with them empty
(the console fills up as agents send events — observers re-send CONTAINER_START for every running container
when they restart). Decisions stored before this revision have no ``outcome``: the console derives it from
the record (``Allow``/``Deny``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "drift_events",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(253), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253)),
        sa.Column("image_digest", sa.String(71)),
        sa.Column("image", sa.String(1024)),
        sa.Column("when_us", sa.BigInteger, nullable=False),
        sa.Column("received_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_drift_events_kind", "drift_events", ["tenant", "kind", "id", "namespace", "node"])
    op.create_index("ix_drift_events_received", "drift_events", ["received_us"])
    with op.batch_alter_table("admission_decisions") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16)))
        batch.add_column(sa.Column("pod", sa.String(253)))
    op.create_index(
        "ix_admission_decisions_tenant_outcome", "admission_decisions", ["tenant", "outcome", "id"]
    )
    op.create_index(
        "ix_admission_decisions_tenant_namespace", "admission_decisions", ["tenant", "namespace", "id"]
    )

    op.create_table(
        "containers",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("container_id", sa.String(512), primary_key=True),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("namespace", sa.String(253)),
        sa.Column("pod", sa.String(253)),
        sa.Column("container", sa.String(253)),
        sa.Column("workload", sa.String(600)),
        sa.Column("image", sa.String(1024)),
        sa.Column("image_name", sa.String(4096)),
        sa.Column("image_digest", sa.String(71)),
        sa.Column("labels", sa.Text),
        sa.Column("terminal", sa.Text),
        sa.Column("build_id", sa.String(128)),
        sa.Column("libs", sa.Integer),
        sa.Column("posture", sa.Text),
        sa.Column("started_us", sa.BigInteger),
        sa.Column("stopped_us", sa.BigInteger),
        sa.Column("last_seen_us", sa.BigInteger, nullable=False),
        sa.Column("last_drift_us", sa.BigInteger),
        sa.Column("running", sa.Boolean, nullable=False),
        sa.Column("sort_key", sa.Text, nullable=False),
    )
    op.create_index("ix_containers_running", "containers", ["tenant", "running", "sort_key"])
    op.create_index("ix_containers_last_seen", "containers", ["last_seen_us"])

    op.create_table(
        "nodes",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("node", sa.String(253), primary_key=True),
        sa.Column("engine", sa.String(32)),
        sa.Column("last_event_us", sa.BigInteger, nullable=False),
        sa.Column("last_received_us", sa.BigInteger, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("drops", sa.BigInteger, nullable=False),
        sa.Column("gaps", sa.Integer, nullable=False),
        sa.Column("warnings", sa.Integer, nullable=False),
        sa.Column("last_warning_us", sa.BigInteger),
        sa.Column("last_warning_code", sa.String(128)),
        sa.Column("last_warning_message", sa.Text),
    )
    op.create_index("ix_nodes_last_received", "nodes", ["last_received_us"])

    op.create_table(
        "event_minutes",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("node", sa.String(253), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("events", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_event_minutes_minute", "event_minutes", ["minute"])

    op.create_table(
        "decision_minutes",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("decisions", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_decision_minutes_minute", "decision_minutes", ["minute"])

    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(253), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("last_used_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_us"])
    op.create_table(
        "console_login_links",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(253), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_login_links_expires", "console_login_links", ["expires_us"])


def downgrade() -> None:
    for table in (
        "drift_events",
        "console_login_links",
        "console_sessions",
        "decision_minutes",
        "event_minutes",
        "nodes",
        "containers",
    ):
        op.drop_table(table)
    for index, table in (
        ("ix_admission_decisions_tenant_namespace", "admission_decisions"),
        ("ix_admission_decisions_tenant_outcome", "admission_decisions"),
    ):
        op.drop_index(index, table_name=table)
    with op.batch_alter_table("admission_decisions") as batch:
        batch.drop_column("pod")
        batch.drop_column("outcome")
