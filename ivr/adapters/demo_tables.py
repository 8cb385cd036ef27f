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

# The demo register (`ivr/adapters/demo_directory.py`): built once into this database from the
# seed (`ivr demo build`, or at the first start), then only read. One row says what was built.
register = sa.Table(
    "demo_register",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1: one register
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("people", sa.Integer, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),  # the day the people were generated for
    sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
)

people = sa.Table(
    "demo_people",
    metadata,
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),  # 0: the first case
    sa.Column("cpr", sa.String(10), nullable=False, unique=True),
    sa.Column("case", sa.String(32), index=True),  # the awkward cases' labels, else NULL
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
    sa.Column("children_birth_dates", sa.String(64), nullable=False),  # ISO dates, space-separated
    sa.Column("user_id", sa.String(48)),  # NULL: no MitID
    sa.Column("mobile", sa.String(16)),
    # How long before "now" the mobile was registered (it stays that old: the 48-hour case keeps
    # its 48 hours whenever it is asked), in seconds.
    sa.Column("mobile_age_seconds", sa.BigInteger),
    sa.Column("backend_fails", sa.Boolean, nullable=False),
)

documents = sa.Table(
    "demo_documents",
    metadata,
    sa.Column("number", sa.String(16), primary_key=True),
    sa.Column("type", sa.String(16), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False, index=True),  # whose: demo_people.position
)
