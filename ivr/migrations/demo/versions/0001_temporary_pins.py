"""The demo MitID back end's temporary PINs, as it made them before migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "demo_temporary_pins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("cpr_hash", sa.String(64), nullable=False),
        sa.Column("request_key", sa.String(255), nullable=False, unique=True),
        sa.Column("code_hash", sa.LargeBinary(64), nullable=False),
        sa.Column("salt", sa.LargeBinary(32), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded", sa.Boolean, nullable=False),
    )
    op.create_index("ix_demo_temporary_pins_cpr_hash", "demo_temporary_pins", ["cpr_hash"])


def downgrade() -> None:
    op.drop_table("demo_temporary_pins")
