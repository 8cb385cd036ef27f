"""The demo register: people and their documents, built once from the seed and indexed.

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


def upgrade() -> None:
    op.create_table(
        "demo_register",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("people", sa.Integer, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "demo_people",
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("cpr", sa.String(10), nullable=False, unique=True),
        sa.Column("case", sa.String(32)),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("street", sa.String(100), nullable=False),
        sa.Column("house_number", sa.String(16), nullable=False),
        sa.Column("postcode", sa.String(8), nullable=False),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("moved_in", sa.Date, nullable=False),
        sa.Column("mother_birth_year", sa.Integer),
        sa.Column("father_birth_year", sa.Integer),
        sa.Column("spouse_birth_date", sa.Date),
        sa.Column("children_birth_dates", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(48)),
        sa.Column("mobile", sa.String(16)),
        sa.Column("mobile_age_seconds", sa.BigInteger),
        sa.Column("backend_fails", sa.Boolean, nullable=False),
    )
    op.create_index("ix_demo_people_case", "demo_people", ["case"])
    op.create_table(
        "demo_documents",
        sa.Column("number", sa.String(16), primary_key=True),
        sa.Column("type", sa.String(16), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_demo_documents_position", "demo_documents", ["position"])


def downgrade() -> None:
    op.drop_table("demo_documents")
    op.drop_table("demo_people")
    op.drop_table("demo_register")
