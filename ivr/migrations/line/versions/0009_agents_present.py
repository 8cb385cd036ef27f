"""When the desk last heard from each agent (a page, or the live parts a page fetches).

An agent set "available" whose browser was closed, or whose session ran out, is not on duty: the
wait a caller is told counts only agents the desk heard from lately.

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


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("present_at")
