"""The hand-over's states as `ivr/handover.py` declares them, and when the caller left.

A queued hand-over was NULL or "waiting": now always "waiting". A "finished" one was either
wrapped up by its agent (it has an outcome) or ended by the call with the wrap-up still to do,
which left the agent stuck: now "wrapped_up" and "ended". An agent is busy while holding a
hand-over, which the hand-overs say; a stored "busy" is now "available".

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("escalations", sa.Column("caller_left_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE escalations SET status = 'waiting' WHERE status IS NULL")
    op.execute(
        "UPDATE escalations SET status = 'wrapped_up' WHERE status = 'finished' AND outcome IS NOT NULL"
    )
    op.execute("UPDATE escalations SET status = 'ended' WHERE status = 'finished'")
    op.execute("UPDATE agents SET status = 'available' WHERE status = 'busy'")


def downgrade() -> None:
    op.execute("UPDATE escalations SET status = 'finished' WHERE status IN ('ended', 'wrapped_up')")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("caller_left_at")
