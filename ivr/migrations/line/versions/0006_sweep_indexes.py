"""Indexes for the sweep: it finds live calls and unresolved SMS without reading every call.

With a million calls stored, the sweep's two scans (calls not ended, SMS left pending or
sending) took a second under SQLite's write lock, holding every webhook up meanwhile.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_call_sessions_ended_updated_at", "call_sessions", ["ended", "updated_at"])
    op.create_index("ix_sms_outbox_status", "sms_outbox", ["status"])


def downgrade() -> None:
    op.drop_index("ix_sms_outbox_status", table_name="sms_outbox")
    op.drop_index("ix_call_sessions_ended_updated_at", table_name="call_sessions")
