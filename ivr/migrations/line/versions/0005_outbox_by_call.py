"""The outbox by call: the SMS a call queued last is found by an index, not by a scan of every
SMS ever sent while the store's write lock is held.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sms_outbox_call_sid", "sms_outbox", ["call_sid"])


def downgrade() -> None:
    op.drop_index("ix_sms_outbox_call_sid", table_name="sms_outbox")
