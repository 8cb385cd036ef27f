"""The store: call sessions, attempt counters, escalations, the SMS outbox and the audit trail.

SQLAlchemy Core, so the same code runs on the embedded SQLite default and on PostgreSQL.
A webhook runs in one `Store.transaction()`: the call is locked for its length, so a
retried or concurrent webhook of the same call waits and then sees the turn already taken.
The tables below are made and changed by the migrations in `ivr/migrations/line`
(`Store.upgrade()`, at every start); a test checks that the two agree.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import phonenumbers
import sqlalchemy as sa
from sqlalchemy import event

from ivr.ports import OutgoingSms
from ivr.state import CallState

metadata = sa.MetaData()
UTC = dt.UTC

call_sessions = sa.Table(
    "call_sessions",
    metadata,
    sa.Column("call_sid", sa.String(64), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("reply", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended", sa.Boolean, nullable=False, default=False),  # the flow is over (as in `state`)
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_attempts_key_kind_at", "key", "kind", "at"),
)

escalations = sa.Table(
    "escalations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_sid", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("intent", sa.String(32)),
    sa.Column("verification", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("document", sa.String(64)),
    sa.Column("step", sa.String(64), nullable=False),
    # The agents' desk: where the hand-over is. NULL or "waiting" (in the queue), "connecting"
    # (an agent took it; the caller is being put through), "connected", "finished", "abandoned".
    sa.Column("status", sa.String(16)),
    sa.Column("agent", sa.String(64)),  # the username of the agent who took it
    sa.Column("queue_sid", sa.String(64)),  # Twilio's queue, as its wait URL requests name it
    sa.Column("put_through_at", sa.DateTime(timezone=True)),
    sa.Column("connected_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("outcome", sa.String(32)),  # user_id_given, pin_sent, citizen_service, other
    sa.Column("note", sa.Text),
    sa.Index("ix_escalations_status", "status"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # agent, supervisor
    sa.Column("phone", sa.String(32)),  # E.164: where a taken call is put through
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id
    sa.Column("agent_code_hash", sa.Text),  # argon2id of the code an agent keys when phoning in
    sa.Column("status", sa.String(16), nullable=False),  # available, away, busy
    sa.Column("language", sa.String(8), nullable=False),  # the desk's language for this agent
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

desk_verifications = sa.Table(
    "desk_verifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_sid", sa.String(64), nullable=False, unique=True),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("document_type", sa.String(32), nullable=False),
    sa.Column("document_number", sa.String(32)),  # only until the desk is done with the call
    sa.Column("progress", sa.Text, nullable=False),  # a `Verification`: counts, never answers
    sa.Column("outcome", sa.String(16)),  # verified, not_verified
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

sms_outbox = sa.Table(
    "sms_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(128), nullable=False, unique=True),
    sa.Column("call_sid", sa.String(64), nullable=False),
    sa.Column("to", sa.String(32), nullable=False),  # masked: "+45 …51"
    sa.Column("body", sa.Text, nullable=False),  # what kind of message, never its text (a PIN)
    sa.Column("status", sa.String(16), nullable=False),  # pending, sending, sent, failed, unknown
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("provider_id", sa.String(64)),
    sa.Column("error", sa.String(200)),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("delivery", sa.String(32)),  # the provider's last word: delivered, undelivered, ...
    sa.Column("delivery_at", sa.DateTime(timezone=True)),
    sa.Index("ix_sms_outbox_provider_id", "provider_id"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("call_sid", sa.String(64)),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default="{}"),
)


def make_engine(url: str) -> sa.Engine:
    """An engine for the URL, with SQLite set up for many threads and locked transactions.

    A SQLite file is made readable by its owner only, and deleted values are overwritten
    (`secure_delete`), so a scrubbed document number is not left in a free page.
    """
    if not url.startswith("sqlite"):
        return sa.create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=20)
    # A webhook holds a reader and, for a moment, a writer: enough connections for every thread.
    engine = sa.create_engine(
        url, hide_parameters=True, connect_args={"timeout": 30}, pool_size=32, max_overflow=32
    )
    private_file(engine.url.database)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA secure_delete=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        reading = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


def private_file(path: str | None) -> None:
    """Create the SQLite file (and its journal files, which take its mode) for the owner only."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o600)


def masked(mobile: str) -> str:
    """A mobile number as the store may keep it: country code and last two digits."""
    try:
        country = f"+{phonenumbers.parse(mobile).country_code} "
    except phonenumbers.NumberParseException:
        country = ""
    return f"{country}…{mobile[-2:]}"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Conflict(Exception):
    """Another webhook of the same call committed first; this one's writes were dropped."""


class Tx:
    """One webhook's unit of work: reads go to the store at once, writes wait for the commit.

    Holding writes until the end keeps SQLite's single write lock short, even while an action
    waits for the register or the MitID back end.
    """

    def __init__(
        self,
        reader: sa.Connection,
        now: dt.datetime,
        decision: Callable[[], AbstractContextManager[sa.Connection]],
    ) -> None:
        self.reader = reader
        self.now = now
        self.decision = decision
        """A connection for a decision that must be atomic at once (a limit, a lock): on SQLite a
        short write transaction of its own; on PostgreSQL the webhook's own transaction."""
        self.writes: list[sa.Executable] = []
        self.once: list[sa.Executable] = []
        """Inserts that may already have been made (a second escalation of a call): skipped then."""
        self.session_write: tuple[str, int | None, dict[str, Any]] | None = None
        self.outgoing: list[OutgoingSms] = []
        """The SMS this webhook queued, with their text: kept in memory only, sent after the commit."""

    def session(self, call_sid: str) -> sa.Row[Any] | None:
        query = sa.select(call_sessions).where(call_sessions.c.call_sid == call_sid)
        if self.reader.dialect.name != "sqlite":
            query = query.with_for_update()  # other machines' webhooks of this call wait for us
        return self.reader.execute(query).first()

    def save_session(
        self, call_sid: str, state: CallState, turn: int, reply: str, *, was: int | None
    ) -> None:
        """Save the call, provided it is still at turn `was` (None: a new call) at commit."""
        values = {
            "state": state.model_dump_json(),
            "turn": turn,
            "reply": reply,
            "updated_at": self.now,
            "ended": state.ended,
        }
        self.session_write = (call_sid, was, values)

    def add_escalation(self, **values: Any) -> None:
        """Hand the call to an agent with this context (a call is handed over once)."""
        self.once.append(sa.insert(escalations).values(created_at=self.now, **values))

    def add_sms(self, message: OutgoingSms, call_sid: str, kind: str) -> None:
        """Queue an SMS: the outbox keeps that it exists, to whom (masked), and how it fares."""
        self.outgoing.append(message)
        row = {"key": message.key, "call_sid": call_sid, "to": masked(message.to), "body": kind}
        self.writes.append(sa.insert(sms_outbox).values(created_at=self.now, status="pending", **row))

    def forget_desk_document(self, call_sid: str) -> None:
        """The call is over: the desk's verification of it keeps no document number."""
        d = desk_verifications.c
        self.writes.append(
            sa.update(desk_verifications).where(d.call_sid == call_sid).values(document_number=None)
        )

    def audit(self, call_sid: str | None, name: str, **detail: object) -> None:
        text = json.dumps(detail, sort_keys=True)
        self.writes.append(
            sa.insert(audit_events).values(at=self.now, call_sid=call_sid, event=name, detail=text)
        )

    def commit(self, writer: sa.Connection) -> None:
        """Apply the writes; raise Conflict if the call moved on meanwhile."""
        if self.session_write is not None:
            call_sid, was, values = self.session_write
            if was is None:
                try:
                    with writer.begin_nested():
                        writer.execute(
                            sa.insert(call_sessions).values(call_sid=call_sid, started_at=self.now, **values)
                        )
                except sa.exc.IntegrityError:
                    raise Conflict(call_sid) from None
            else:
                c = call_sessions.c
                query = sa.update(call_sessions).where(c.call_sid == call_sid, c.turn == was).values(values)
                if writer.execute(query).rowcount != 1:
                    raise Conflict(call_sid)
        for statement in self.writes:
            writer.execute(statement)
        for statement in self.once:
            try:
                with writer.begin_nested():
                    writer.execute(statement)
            except sa.exc.IntegrityError:
                pass  # made already, by an earlier webhook of this call


class Store:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer at a time: this process's threads queue on a lock rather than
        # on SQLite's sleep-and-retry. Webhooks of one call queue on one of the call locks.
        self._write_lock = threading.Lock() if self.sqlite else None
        self._call_locks = [threading.Lock() for _ in range(64)]

    def upgrade(self) -> str:
        """Bring the store's schema to the newest migration (ivr/migrations/line); its revision."""
        from ivr import migrations

        return migrations.upgrade(self.engine, migrations.LINE)

    def checkpoint(self) -> bool:
        """Fold SQLite's write-ahead log into the database and empty it (values cleared in the
        database are then gone from the log too). False when a reader kept it from finishing
        within a second: webhooks are not held up for it, and the next sweep tries again."""
        if not self.sqlite:
            return True
        with self._write_lock or nullcontext(), self.engine.connect() as connection:
            # On the driver's own connection: outside any transaction, as SQLite requires.
            driver: Any = connection.connection.driver_connection
            driver.execute("PRAGMA busy_timeout = 1000")
            try:
                busy, _, _ = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                driver.execute("PRAGMA busy_timeout = 30000")
        return not busy

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """One short transaction, committed when the block ends without an error."""
        with self._write_lock or nullcontext(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def transaction(self, now: dt.datetime, call_sid: str) -> Iterator[Tx]:
        """A webhook of one call: reads, then all its writes at once (or none, on an error)."""
        with self._call_locks[hash(call_sid) % len(self._call_locks)]:
            if self.sqlite:
                with self.engine.connect().execution_options(read_only=True) as reader:
                    tx = Tx(reader, now, self.connection)
                    yield tx
                    reader.rollback()
                with self.connection() as writer:
                    tx.commit(writer)
            else:
                with self.engine.begin() as connection:
                    tx = Tx(connection, now, lambda: nullcontext(connection))
                    yield tx
                    tx.commit(connection)

    def rows(self, table: sa.Table, *where: Any, order: str = "id") -> list[dict[str, Any]]:
        """Every row of a table as dicts (for the console commands and tests)."""
        with self.connection() as connection:
            result = connection.execute(sa.select(table).where(*where).order_by(table.c[order]))
            return [
                {k: _aware(v) if isinstance(v, dt.datetime) else v for k, v in row._mapping.items()}
                for row in result
            ]
