"""Event templates: what repeats for every container of an image is stored once (``store/templates.py``).

Rows written before this revision keep their whole envelope (``template_ref`` NULL) and read as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_templates",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("last_used_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_event_templates_last_used", "event_templates", ["last_used_us"])
    with op.batch_alter_table("runtime_events") as batch:
        batch.add_column(sa.Column("template_ref", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("runtime_events") as batch:
        batch.drop_column("template_ref")
    op.drop_index("ix_event_templates_last_used", table_name="event_templates")
    op.drop_table("event_templates")
