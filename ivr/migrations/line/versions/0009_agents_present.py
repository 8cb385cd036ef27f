"""Signs of life: when the desk last heard from each agent, and each queued caller's line.

An agent set "available" whose browser was closed, or whose session ran out, is not on duty: the
wait a caller is told counts only agents the desk heard from lately. A caller in the queue makes
Twilio ask the wait URL every half minute or so: one it has not asked for in minutes has gone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("present_at", sa.DateTime(timezone=True)))
    op.add_column("escalations", sa.Column("waited_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("waited_at")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("present_at")
