"""The agents' desk: agent accounts, and where each hand-over to an agent is.

`escalations` gains the hand-over's lifecycle (status, the agent who took it, Twilio's queue,
when it was put through, connected and finished, the agent's outcome and note); `agents` holds
the desk's accounts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIFECYCLE = (
    ("status", sa.String(16)),
    ("agent", sa.String(64)),
    ("queue_sid", sa.String(64)),
    ("put_through_at", sa.DateTime(timezone=True)),
    ("connected_at", sa.DateTime(timezone=True)),
    ("finished_at", sa.DateTime(timezone=True)),
    ("outcome", sa.String(32)),
    ("note", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        for name, kind in LIFECYCLE:
            batch.add_column(sa.Column(name, kind))
    op.create_index("ix_escalations_status", "escalations", ["status"])
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(32)),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("agent_code_hash", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agents")
    op.drop_index("ix_escalations_status", table_name="escalations")
    with op.batch_alter_table("escalations") as batch:
        for name, _ in reversed(LIFECYCLE):
            batch.drop_column(name)
