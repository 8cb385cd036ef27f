"""Locks by identity: each counted guess, failure and lock names its identity and its channel.

A claimed identity is counted under two keys (its document's and its holder's). With the holder's
key on every row, a supervisor sees one lock per identity and lifts it whole; the channel says
whether the line or the desk took the guess. Rows from before have neither (each key stands for
itself).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("identity", sa.String(64)))
    op.add_column("attempts", sa.Column("channel", sa.String(8)))
    op.create_index("ix_attempts_identity", "attempts", ["identity"])


def downgrade() -> None:
    op.drop_index("ix_attempts_identity", table_name="attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("channel")
        batch.drop_column("identity")
