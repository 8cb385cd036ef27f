"""The store: call sessions, attempt counters, escalations, the SMS outbox and the audit trail.

SQLAlchemy Core, so the same code runs on the embedded SQLite default and on PostgreSQL.
A webhook runs in one `Store.transaction()`: the call is locked for its length, so a
retried or concurrent webhook of the same call waits and then sees the turn already taken.
It holds one connection, reads outside a transaction (SQLite) or in its one transaction
(PostgreSQL), and writes everything in one short transaction at the end. Its few statements
(`sql`) go straight to the driver: SQLAlchemy's statement layer cost a webhook ten times what
the database did; the rest of the store (the desk, the operator's commands) keeps Core.
The tables below are made and changed by the migrations in `ivr/migrations/line`
(`Store.upgrade()`, at every start); a test checks that the two agree.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import select
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any, NamedTuple, TypeVar

import phonenumbers
import sqlalchemy as sa
from sqlalchemy import event

from ivr.ports import OutgoingSms
from ivr.state import CallState

T = TypeVar("T")

metadata = sa.MetaData()
PING_AFTER_IDLE = 5.0
"""Seconds a pooled PostgreSQL connection may sit unused before it is checked at its next use."""
UTC = dt.UTC
IDLE_IN_TRANSACTION = dt.timedelta(seconds=15)
"""On PostgreSQL, a transaction whose client has sent nothing for this long is ended by the
server, with its locks: a machine frozen or cut off inside a webhook would otherwise hold the
call (and identities' advisory locks) until TCP noticed, hours later. No webhook is idle for so
long inside its transaction (Twilio gives up on a webhook after 15 s)."""

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
    sa.Index("ix_call_sessions_ended_updated_at", "ended", "updated_at"),  # the sweep's live calls
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("identity", sa.String(64)),  # a guess's, failure's or lock's identity: its holder's key
    sa.Column("channel", sa.String(8)),  # line or desk: who took the guess
    sa.Index("ix_attempts_key_kind_at", "key", "kind", "at"),
    sa.Index("ix_attempts_identity", "identity"),
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
    # The agents' desk: where the hand-over is, one of `ivr.handover.Status` (only that module
    # changes it): waiting, connecting, connected, ended, wrapped_up, abandoned.
    sa.Column("status", sa.String(16)),
    sa.Column("agent", sa.String(64)),  # the username of the agent who took it
    sa.Column("queue_sid", sa.String(64)),  # Twilio's queue, as its wait URL requests name it
    sa.Column("put_through_at", sa.DateTime(timezone=True)),
    sa.Column("connected_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),  # wrapped up, or abandoned
    sa.Column("outcome", sa.String(32)),  # `ivr.desk.queue.OUTCOMES`
    sa.Column("note", sa.Text),
    sa.Column("caller_left_at", sa.DateTime(timezone=True)),  # the caller's call ended
    sa.Column("waited_at", sa.DateTime(timezone=True)),  # Twilio last asked the wait URL for it
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
    sa.Column("present_at", sa.DateTime(timezone=True)),  # the desk last heard from the agent
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
    sa.Index("ix_sms_outbox_call_sid", "call_sid"),
    sa.Index("ix_sms_outbox_status", "status"),  # the sweep's SMS left unresolved
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


_WRITE_LOCKS: weakref.WeakKeyDictionary[sa.Engine, threading.Lock] = weakref.WeakKeyDictionary()


def make_engine(url: str) -> sa.Engine:
    """An engine for the URL, with SQLite set up for many threads and locked transactions.

    A SQLite file is made readable by its owner only, and deleted values are overwritten
    (`secure_delete`), so a scrubbed document number is not left in a free page.
    """
    if not url.startswith("sqlite"):
        engine = sa.create_engine(
            url, hide_parameters=True, pool_size=10, max_overflow=20, connect_args=_server_session(url)
        )
        _ping_when_idle(engine)
        return engine
    # A webhook holds one connection: enough for every thread, and the desk and sweep beside.
    engine = sa.create_engine(
        url, hide_parameters=True, connect_args={"timeout": 30}, pool_size=32, max_overflow=32
    )
    private_file(engine.url.database)
    # SQLite has one writer at a time: this process's threads queue on a lock rather than on
    # SQLite's sleep-and-retry (which sleeps up to 100 ms a try under contention).
    _WRITE_LOCKS[engine] = threading.Lock()

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        _write_ahead_log(dbapi_connection)
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA secure_delete=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        reading = connection.get_execution_options().get("read_only", False)
        connection.connection.driver_connection.execute("BEGIN" if reading else "BEGIN IMMEDIATE")  # type: ignore[union-attr]

    return engine


def _ping_when_idle(engine: sa.Engine) -> None:
    """Check a pooled connection is alive before use when it sat unused for PING_AFTER_IDLE, or
    when the server sent it something while it sat in the pool (a restart's farewell and the
    socket's end, seen without a round trip): a database restarted meanwhile then costs no
    webhook, flow or not. Otherwise a connection in steady use is not pinged (SQLAlchemy's
    `pool_pre_ping` pings at every checkout: a round trip per webhook); should the server go
    away under one unseen (a cut network), the pool drops all its connections at the first error."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")  # None: connected just now
        if since is None:
            return
        if time.monotonic() - since < PING_AFTER_IDLE and not _spoken_to(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error:
            alive = False
        if not alive:
            raise sa.exc.DisconnectionError("a pooled connection was closed")  # the pool reconnects


def _spoken_to(dbapi_connection: Any) -> bool:
    """Whether an idle connection has something to read: the server ended it (or, rarely, sent
    a notice); one system call, no round trip."""
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # closed, or no poll here: ping
        return True


def _write_ahead_log(dbapi_connection: sqlite3.Connection) -> None:
    """Put the database in WAL mode (kept in the file, so set once). Two processes opening a
    new file at once (`make run` starts the line and the desk together) can find it being
    switched by the other: SQLite then answers "database is locked" at once, without its busy
    wait, so look again a moment later."""
    for _ in range(200):  # two seconds at most
        try:
            mode = dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode == "wal":
                return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
        time.sleep(0.01)
    dbapi_connection.execute("PRAGMA journal_mode=WAL")  # still locked: its error, as before


def write_lock(engine: sa.Engine) -> AbstractContextManager[Any]:
    """The lock this process's writers to a SQLite engine queue on (none for PostgreSQL)."""
    return _WRITE_LOCKS.get(engine) or nullcontext()


@functools.lru_cache(maxsize=256)
def _paramstyle(text: str, dialect: str) -> str:
    return text if dialect == "sqlite" else text.replace("?", "%s")


class Db(NamedTuple):
    """A pooled SQLite connection used without SQLAlchemy's Connection (a webhook's own)."""

    driver: sqlite3.Connection


Conn = sa.Connection | Db
"""What `sql` runs statements on."""


def sql(connection: Conn, text: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement (`?` placeholders) on the connection's driver, in its transaction, and
    give the driver's cursor. A constraint violation is SQLAlchemy's IntegrityError, as with Core."""
    integrity: Any
    if isinstance(connection, Db):
        driver: Any = connection.driver
        dialect, integrity = "sqlite", sqlite3.IntegrityError
    else:
        driver = connection.connection.driver_connection
        dialect, integrity = connection.dialect.name, connection.dialect.loaded_dbapi.IntegrityError
    cursor = driver.cursor()
    try:
        cursor.execute(_paramstyle(text, dialect), params)
    except integrity as error:
        raise sa.exc.IntegrityError(text, None, error) from None
    return cursor


def moment(connection: Conn, value: dt.datetime | None) -> Any:
    """A datetime as a statement run by `sql` takes it: on SQLite, the text SQLAlchemy stores
    (UTC, naive, microseconds), so stored values compare as before."""
    if value is None or not (isinstance(connection, Db) or connection.dialect.name == "sqlite"):
        return value
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _stamped(connection: Conn, params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(moment(connection, v) if isinstance(v, dt.datetime) else v for v in params)


@contextmanager
def short_write(engine: sa.Engine) -> Iterator[Conn]:
    """One short write transaction for `sql`'s statements: on SQLite on a pooled connection
    with SQLAlchemy's Connection skipped (`BEGIN IMMEDIATE`, under the process's write lock)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            yield connection
        return
    with write_lock(engine):
        pooled = engine.raw_connection()
        try:
            with _written(Db(pooled.driver_connection)) as db:  # type: ignore[arg-type]
                yield db
        finally:
            pooled.close()


@contextmanager
def short_read(engine: sa.Engine) -> Iterator[Conn]:
    """A connection for `sql`'s reads, in no transaction: each statement reads a snapshot of its
    own (on SQLite a pooled driver connection; on PostgreSQL an autocommit one, so a read is one
    round trip, with no BEGIN before it or ROLLBACK after). A driver's error there is SQLAlchemy's,
    as from Core: a connection lost under the read is invalidated and says so (a webhook then
    runs again on a new one, as after any connection the database dropped)."""
    if engine.dialect.name != "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            try:
                yield connection
            except engine.dialect.loaded_dbapi.Error as error:
                raise _as_sqlalchemy(connection, error) from error
        return
    pooled = engine.raw_connection()
    try:
        yield Db(pooled.driver_connection)  # type: ignore[arg-type]
    finally:
        pooled.close()


def _as_sqlalchemy(connection: sa.Connection, error: Any) -> sa.exc.StatementError:
    """A driver's error on `connection` as SQLAlchemy's statement layer would raise it."""
    dialect = connection.dialect
    lost = bool(dialect.is_disconnect(error, connection.connection.dbapi_connection, None))
    if lost:
        connection.invalidate(error)  # the pool opens a new connection in its place
    return sa.exc.DBAPIError.instance(
        None, None, error, dialect.loaded_dbapi.Error, hide_parameters=True, connection_invalidated=lost
    )


UNREACHABLE_BUDGET = 4.0
"""Seconds a webhook waits, at most, for a database it cannot reach (restarting, failing over):
well inside Twilio's 15 s, with the SMS provider's 5 s beside it."""


def when_reachable(work: Callable[[], T], budget: float | None = None) -> T:
    """`work`, run again with short pauses while the database cannot be reached (its connection
    refused or lost), until `budget` seconds have passed: then its last error. `work` must be
    safe to run again (a transaction of its own, or statements made for a rerun)."""
    deadline = time.monotonic() + (UNREACHABLE_BUDGET if budget is None else budget)
    pause = 0.1
    while True:
        try:
            return work()
        except sa.exc.DBAPIError as error:
            unreachable = isinstance(error, sa.exc.OperationalError) or error.connection_invalidated
            if not unreachable or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def write_once(engine: sa.Engine, text: str, params: Sequence[Any]) -> int:
    """One statement (`?` placeholders) in a transaction of its own; the rows it changed. On
    PostgreSQL in one round trip (no BEGIN or COMMIT of ours: the database commits it as it runs).

    On PostgreSQL a pooled connection in steady use is not pinged (`_ping_when_idle`), so one the
    server dropped (a restart, a failover) is found out here: the pool then drops every
    connection as old, as SQLAlchemy does at such an error, and the statement runs once more on
    a new one. Should the first have run after all (its answer lost with the connection), the
    second finds nothing left to change: the statements given are made for that."""
    if engine.dialect.name == "sqlite":  # no round trips to save: the usual short write
        with short_write(engine) as db:
            return int(sql(db, text, _stamped(db, params)).rowcount)
    try:
        return _autocommitted(engine, text, params)
    except sa.exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
        return _autocommitted(engine, text, params)


def write_together(engine: sa.Engine, statements: Sequence[Text]) -> None:
    """Statements (`?` placeholders) in one transaction of their own: on PostgreSQL sent with
    the COMMIT in one round trip, not one each. A constraint violation is IntegrityError."""
    if engine.dialect.name == "sqlite":
        with short_write(engine) as db:
            for text, params in statements:
                sql(db, text, _stamped(db, params))
        return
    with engine.begin() as connection:
        _pipelined(connection, list(statements), commit=True)


def first_rows(connection: Conn, statements: Sequence[Text]) -> list[Any]:
    """Each statement's first row (None when it has none), run in order in the connection's
    transaction: on PostgreSQL all in one round trip (psycopg's pipeline mode). Datetimes among
    the parameters are passed as `moment` gives them."""
    if isinstance(connection, Db) or connection.dialect.name != "postgresql":
        return [sql(connection, text, _stamped(connection, params)).fetchone() for text, params in statements]
    driver: Any = connection.connection.driver_connection
    with ExitStack() as closing:
        cursors = [closing.enter_context(driver.cursor()) for _ in statements]
        with driver.pipeline():
            for cursor, (text, params) in zip(cursors, statements, strict=True):
                cursor.execute(_paramstyle(text, "postgresql"), params)
        return [cursor.fetchone() for cursor in cursors]


def _autocommitted(engine: sa.Engine, text: str, params: Sequence[Any]) -> int:
    """`write_once` on PostgreSQL: SQLAlchemy's autocommit connection (no BEGIN, no COMMIT), which
    drops the pool's connections itself when it finds one dropped."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return int(connection.exec_driver_sql(_paramstyle(text, "postgresql"), tuple(params)).rowcount)


@contextmanager
def _written(db: Db) -> Iterator[Db]:
    db.driver.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.driver.execute("ROLLBACK")
        raise
    db.driver.execute("COMMIT")


def _server_session(url: str) -> dict[str, Any]:
    """libpq options for a PostgreSQL session: the server ends a transaction its client left
    idle longer than IDLE_IN_TRANSACTION, and notices a dead peer within about half a minute."""
    if sa.engine.make_url(url).get_driver_name() not in ("psycopg", "psycopg2"):
        return {}
    idle = round(IDLE_IN_TRANSACTION.total_seconds() * 1000)
    keepalives = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
    return {"options": f"-c idle_in_transaction_session_timeout={idle}", **keepalives}


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


def utc(value: dt.datetime) -> dt.datetime:
    """A datetime read back from the store, in UTC: SQLite hands them back naive (stored in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else utc(value)


class Conflict(Exception):
    """Another webhook of the same call committed first; this one's writes were dropped."""


class SessionRow(NamedTuple):
    """A call's stored row, as `Tx.session` reads it."""

    call_sid: str
    state: str
    turn: int
    reply: str
    ended: bool


Text = tuple[str, tuple[Any, ...]]
"""A statement for `sql`: its text and parameters."""
Write = sa.Executable | Text
"""A statement for the commit: Core, or `sql`'s."""


class Tx:
    """One webhook's unit of work: reads go to the store at once, writes wait for the commit.

    Holding writes until the end keeps SQLite's single write lock short, even while an action
    waits for the register or the MitID back end.
    """

    def __init__(
        self,
        db: Conn,
        now: dt.datetime,
        decision: Callable[[], AbstractContextManager[Conn]],
        core: Callable[[], sa.Connection] | None = None,
    ) -> None:
        self.db = db
        """The webhook's connection, for `sql`'s statements."""
        self.now = now
        self.decision = decision
        """A connection for a decision that must be atomic at once (a limit, a lock): on SQLite a
        short write transaction on the webhook's connection; on PostgreSQL its own transaction."""
        self.postgres = not isinstance(db, Db) and db.dialect.name == "postgresql"
        self._core = core
        self._reader = db if isinstance(db, sa.Connection) else None
        self.writes: list[Write] = []
        self.session_write: tuple[str, int | None, dict[str, Any]] | None = None
        self._locked: dict[str, int] = {}
        """PostgreSQL: the calls whose row this transaction holds locked, at the turn it read."""
        self.outgoing: list[OutgoingSms] = []
        """The SMS this webhook queued, with their text: kept in memory only, sent after the commit."""
        self._stamp = moment(db, now)

    @property
    def reader(self) -> sa.Connection:
        """A Core connection for reads (the hand-over's): on SQLite opened when first asked for."""
        if self._reader is None:
            assert self._core is not None
            self._reader = self._core()
        return self._reader

    def close(self) -> None:
        if self._reader is not None and self._core is not None:
            self._reader.close()

    @property
    def core_writes(self) -> bool:
        return any(not isinstance(statement, tuple) for statement in self.writes)

    def session(self, call_sid: str) -> SessionRow | None:
        query = "SELECT call_sid, state, turn, reply, ended FROM call_sessions WHERE call_sid = ?"
        if not self.postgres:
            row = sql(self.db, query, (call_sid,)).fetchone()
        else:
            # Other machines' webhooks of this call wait for us; the row's turn cannot move
            # until our commit. Sent in one round trip with the transaction's BEGIN.
            assert isinstance(self.db, sa.Connection)
            driver: Any = self.db.connection.driver_connection
            with driver.pipeline(), driver.cursor() as cursor:
                cursor.execute(_paramstyle(query + " FOR UPDATE", "postgresql"), (call_sid,))
                row = cursor.fetchone()
            if row:
                self._locked[call_sid] = row[2]
        return SessionRow(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    def save_session(
        self, call_sid: str, state: CallState, turn: int, reply: str, *, was: int | None
    ) -> None:
        """Save the call, provided it is still at turn `was` (None: a new call) at commit."""
        values = {"state": state.model_dump_json(), "turn": turn, "reply": reply, "ended": state.ended}
        self.session_write = (call_sid, was, values)

    def add_escalation(self, **values: Any) -> None:
        """Hand the call to an agent with this context (a call is handed over once: a second
        escalation of the call is skipped)."""
        names = ("call_sid", "language", "intent", "verification", "reason", "document", "step")
        self.writes.append(
            (
                "INSERT INTO escalations (created_at, call_sid, language, intent, verification, reason,"
                " document, step, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting')"
                " ON CONFLICT (call_sid) DO NOTHING",
                (self._stamp, *(values.get(name) for name in names)),
            )
        )

    def add_sms(self, message: OutgoingSms, call_sid: str, kind: str) -> None:
        """Queue an SMS: the outbox keeps that it exists, to whom (masked), and how it fares."""
        self.outgoing.append(message)
        self.writes.append(
            (
                'INSERT INTO sms_outbox ("key", call_sid, "to", body, status, created_at)'
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                (message.key, call_sid, masked(message.to), kind, self._stamp),
            )
        )

    def hand_verification_to_desk(
        self, call_sid: str, document_type: str, number: str, progress: str
    ) -> None:
        """The line verified the caller on this call: the desk takes that verification as its own
        (agent "line"), so the agent can act without asking again; the document number only until
        the call ends, as for a verification made at the desk."""
        self.writes.append(
            (
                "INSERT INTO desk_verifications (call_sid, agent, document_type, document_number, progress,"
                " outcome, started_at, updated_at) VALUES (?, 'line', ?, ?, ?, 'verified', ?, ?)"
                " ON CONFLICT (call_sid) DO NOTHING",
                (call_sid, document_type, number, progress, self._stamp, self._stamp),
            )
        )

    def forget_desk_document(self, call_sid: str) -> None:
        """The call is over: the desk's verification of it keeps no document number."""
        self.writes.append(
            ("UPDATE desk_verifications SET document_number = NULL WHERE call_sid = ?", (call_sid,))
        )

    def audit(self, call_sid: str | None, name: str, **detail: object) -> None:
        text = json.dumps(detail, sort_keys=True)
        self.writes.append(
            (
                "INSERT INTO audit_events (at, call_sid, event, detail) VALUES (?, ?, ?, ?)",
                (self._stamp, call_sid, name, text),
            )
        )

    @property
    def writing(self) -> bool:
        return self.session_write is not None or bool(self.writes)

    def commit(self, writer: Conn) -> None:
        """Apply the writes; raise Conflict if the call moved on meanwhile."""
        saved = self._session_statement()
        texts = [statement for statement in self.writes if isinstance(statement, tuple)]
        pipelined = self.postgres and len(texts) == len(self.writes)  # no Core statement among them
        if pipelined and self._saved_from_locked_turn():
            # The call's row is held at the turn it is saved from, so the update cannot miss:
            # the writes and the COMMIT go in one round trip.
            assert isinstance(writer, sa.Connection)
            _pipelined(writer, [saved, *texts] if saved else texts, commit=True)
            return
        if self.session_write is not None and saved is not None and sql(writer, *saved).rowcount != 1:
            raise Conflict(self.session_write[0])
        if pipelined and len(texts) > 1:
            assert isinstance(writer, sa.Connection)
            _pipelined(writer, texts)
            return
        for statement in self.writes:
            if isinstance(statement, tuple):
                sql(writer, *statement)
            else:
                assert isinstance(writer, sa.Connection)
                writer.execute(statement)

    def _session_statement(self) -> tuple[str, tuple[Any, ...]] | None:
        """The statement saving the call: a new call's row, or its row at turn `was` moved on."""
        if self.session_write is None:
            return None
        call_sid, was, v = self.session_write
        if was is None:
            return (
                "INSERT INTO call_sessions (call_sid, state, turn, reply, started_at, updated_at, ended)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_sid) DO NOTHING",
                (call_sid, v["state"], v["turn"], v["reply"], self._stamp, self._stamp, v["ended"]),
            )
        return (
            "UPDATE call_sessions SET state = ?, turn = ?, reply = ?, updated_at = ?, ended = ?"
            " WHERE call_sid = ? AND turn = ?",
            (v["state"], v["turn"], v["reply"], self._stamp, v["ended"], call_sid, was),
        )

    def _saved_from_locked_turn(self) -> bool:
        if self.session_write is None:
            return True
        call_sid, was, _ = self.session_write
        return was is not None and self._locked.get(call_sid) == was


def _pipelined(
    writer: sa.Connection, writes: list[tuple[str, tuple[Any, ...]]], commit: bool = False
) -> None:
    """The writes sent to PostgreSQL in one round trip (psycopg's pipeline mode), not one each;
    with `commit`, the COMMIT too (SQLAlchemy's own commit then finds nothing left to do)."""
    driver: Any = writer.connection.driver_connection
    integrity = writer.dialect.loaded_dbapi.IntegrityError
    try:
        with driver.pipeline(), driver.cursor() as cursor:
            for text, params in writes:
                cursor.execute(_paramstyle(text, "postgresql"), params)
            if commit:
                driver.commit()
    except integrity as error:
        raise sa.exc.IntegrityError("the webhook's writes", None, error) from None


class Store:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer at a time: this process's threads queue on a lock rather than
        # on SQLite's sleep-and-retry. Webhooks of one call queue on one of the call locks.
        self._write_lock = write_lock(engine)
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
        with self._write_lock, self.engine.connect() as connection:
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
        with self._write_lock, self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads only (on SQLite a plain `BEGIN`: no write lock), rolled back."""
        with self.engine.connect() as connection:
            reads = connection.execution_options(read_only=True).begin()  # ended even for `sql`'s reads
            try:
                yield connection
            finally:
                reads.rollback()

    @contextmanager
    def transaction(self, now: dt.datetime, call_sid: str) -> Iterator[Tx]:
        """A webhook of one call: reads, then all its writes at once (or none, on an error).

        One connection throughout. On SQLite its reads run outside a transaction (the turn
        check at the commit stands for a snapshot), a decision is a short write transaction of
        its own, and the writes one more, under this process's write lock; SQLAlchemy's
        Connection is skipped unless a Core statement needs it (the hand-over's). On PostgreSQL
        it is all one transaction, the call's row locked from the first read."""
        with self._call_locks[hash(call_sid) % len(self._call_locks)]:
            if not self.sqlite:
                with self.engine.begin() as connection:
                    tx = Tx(connection, now, lambda: nullcontext(connection))
                    yield tx
                    tx.commit(connection)
                return
            pooled = self.engine.raw_connection()
            try:
                db = Db(pooled.driver_connection)  # type: ignore[arg-type]
                tx = Tx(db, now, lambda: self._decision(db), self.reading_connection)
                try:
                    yield tx
                finally:
                    tx.close()
                if tx.core_writes:
                    with self.connection() as writer:
                        tx.commit(writer)
                elif tx.writing:
                    with self._decision(db) as writer:
                        tx.commit(writer)
            finally:
                pooled.close()

    @contextmanager
    def _decision(self, db: Db) -> Iterator[Conn]:
        """A write transaction on a webhook's SQLite connection."""
        with self._write_lock, _written(db):
            yield db

    def reading_connection(self) -> sa.Connection:
        return self.engine.connect().execution_options(read_only=True)

    def rows(self, table: sa.Table, *where: Any, order: str = "id") -> list[dict[str, Any]]:
        """Every row of a table as dicts (for the console commands and tests)."""
        with self.connection() as connection:
            result = connection.execute(sa.select(table).where(*where).order_by(table.c[order]))
            return [
                {k: _aware(v) if isinstance(v, dt.datetime) else v for k, v in row._mapping.items()}
                for row in result
            ]
