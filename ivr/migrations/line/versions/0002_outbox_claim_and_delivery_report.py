"""The outbox: when a send was claimed, Twilio's delivery report, and an index to find it by.

`sms_outbox` gains `claimed_at`, `delivery` and `delivery_at`, and the index
`ix_sms_outbox_provider_id` (a delivery report names the message by Twilio's SID).

A store made before migrations may have some of this already: the code of that time added missing
nullable columns at start (never the index), and a store it made new had everything. So each
change is made only where it is missing; revisions after this one are plain.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_sms_outbox_provider_id"


def columns() -> list[sa.Column[object]]:
    return [
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
        sa.Column("delivery", sa.String(32)),
        sa.Column("delivery_at", sa.DateTime(timezone=True)),
    ]


def upgrade() -> None:
    present: set[str | None] = set()
    if not op.get_context().as_sql:  # `upgrade --sql` writes every change, for a store of 0001
        inspector = sa.inspect(op.get_bind())
        present |= {column["name"] for column in inspector.get_columns("sms_outbox")}
        present |= {index["name"] for index in inspector.get_indexes("sms_outbox")}
    missing = [column for column in columns() if column.name not in present]
    if missing:
        with op.batch_alter_table("sms_outbox") as batch:
            for column in missing:
                batch.add_column(column)
    if INDEX not in present:
        op.create_index(INDEX, "sms_outbox", ["provider_id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="sms_outbox")
    with op.batch_alter_table("sms_outbox") as batch:
        for column in reversed(columns()):
            batch.drop_column(column.name)
