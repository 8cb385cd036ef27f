"""The demo outside systems' tables: their database's schema (`IVR_DEMO_BACKEND_DATABASE_URL`).

One `MetaData` for the demo MitID back end's PINs and the demo SMS network's inboxes, which share
that database. The tables are made and changed by the migrations in `ivr/migrations/demo`
(`ivr db upgrade`, and at every start), never by the adapters; a test compares the two.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

temporary_pins = sa.Table(
    "demo_temporary_pins",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cpr_hash", sa.String(64), nullable=False, index=True),
    sa.Column("request_key", sa.String(255), nullable=False, unique=True),
    sa.Column("code_hash", sa.LargeBinary(64), nullable=False),
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("superseded", sa.Boolean, nullable=False, default=False),
)

sms_inbox = sa.Table(
    "demo_sms_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False, unique=True),
    sa.Column("to", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)
