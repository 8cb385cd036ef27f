"""Migrations: they make what the models say, and they upgrade stores made before migrations.

Each test runs on SQLite and on PostgreSQL; on PostgreSQL in a database of its own, made on the
`postgres_url` fixture's server for the test and dropped after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ivr import create_app, migrations
from ivr.adapters import demo_tables
from ivr.cli import main
from ivr.migrations import DEMO, LINE, History
from ivr.settings import Settings
from ivr.store import make_engine, sms_outbox
from tests.calls import Clock
from tests.conftest import BASE, OPEN_TIME, TOKEN
from tests.postgres import own_database

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)

# -- the schema as the code before migrations made it (git show 4604632:ivr/store.py) --------------

old = sa.MetaData()
sa.Table(
    "call_sessions",
    old,
    sa.Column("call_sid", sa.String(64), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("reply", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended", sa.Boolean, nullable=False, default=False),
)
sa.Table(
    "attempts",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_attempts_key_kind_at", "key", "kind", "at"),
)
sa.Table(
    "escalations",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_sid", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("intent", sa.String(32)),
    sa.Column("verification", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("document", sa.String(64)),
    sa.Column("step", sa.String(64), nullable=False),
)
sa.Table(
    "sms_outbox",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(128), nullable=False, unique=True),
    sa.Column("call_sid", sa.String(64), nullable=False),
    sa.Column("to", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("provider_id", sa.String(64)),
    sa.Column("error", sa.String(200)),
)
sa.Table(
    "audit_events",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("call_sid", sa.String(64)),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default="{}"),
)

# The demo MitID back end's table as that code made it (its own MetaData, in its constructor).
old_demo = sa.MetaData()
sa.Table(
    "demo_temporary_pins",
    old_demo,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cpr_hash", sa.String(64), nullable=False, index=True),
    sa.Column("request_key", sa.String(255), nullable=False, unique=True),
    sa.Column("code_hash", sa.LargeBinary(64), nullable=False),
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("superseded", sa.Boolean, nullable=False, default=False),
)


def _old_store(engine: sa.Engine) -> None:
    """A store as the old code left it after a call or two: a call, its attempts, an SMS."""
    old.create_all(engine)
    t = old.tables
    with engine.begin() as connection:
        connection.execute(
            sa.insert(t["call_sessions"]).values(
                call_sid="CAold1", state="{}", turn=3, reply="<Response/>", started_at=T0, updated_at=T0
            )
        )
        connection.execute(
            sa.insert(t["attempts"]),
            [{"key": "k" * 64, "kind": kind, "at": T0} for kind in ("verification", "guess")],
        )
        connection.execute(
            sa.insert(t["sms_outbox"]).values(
                key="CAold1:temporary_pin",
                call_sid="CAold1",
                to="+45 …51",
                body="temporary_pin",
                status="sent",
                created_at=T0,
                sent_at=T0,
                provider_id="SMold1",
            )
        )


def _old_demo(engine: sa.Engine) -> None:
    old_demo.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(old_demo.tables["demo_temporary_pins"]).values(
                cpr_hash="c" * 64,
                request_key="CAold1:temporary_pin",
                code_hash=b"h" * 32,
                salt=b"s" * 16,
                issued_at=T0,
                expires_at=T0 + dt.timedelta(days=1),
            )
        )


# -- a database per test ----------------------------------------------------------------------------


@pytest.fixture
def new_postgres_database(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty PostgreSQL databases on the test server; drops them after the test."""
    with contextlib.ExitStack() as made:

        def new() -> str:
            return made.enter_context(own_database(postgres_url, "ivr_migrations", "the migration tests"))

        yield new


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes empty databases (URLs) of one kind, SQLite or PostgreSQL."""
    if request.param == "postgresql":
        new_postgres: Callable[[], str] = request.getfixturevalue("new_postgres_database")
        return new_postgres
    names = iter(range(1000))
    return lambda: f"sqlite:///{tmp_path}/db{next(names)}.sqlite3"


@pytest.fixture
def engines() -> Iterator[Callable[[str], sa.Engine]]:
    """The line's engine for a URL, disposed of after the test (so its database can be dropped)."""
    made: list[sa.Engine] = []

    def engine(url: str) -> sa.Engine:
        made.append(make_engine(url))
        return made[-1]

    yield engine
    for engine_ in made:
        engine_.dispose()


def _at(engine: sa.Engine, history: History) -> str | None:
    with engine.connect() as connection:
        return migrations.current(connection, history)


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def _indexes(engine: sa.Engine, table: str) -> set[str | None]:
    return {index["name"] for index in sa.inspect(engine).get_indexes(table)}


# -- the migrations make what the models say --------------------------------------------------------


def test_every_model_change_has_its_migration(new_database, engines) -> None:
    """Both histories upgraded on one database (as on a shared PostgreSQL), then each compared
    with its models: a column, table or index added to the models without a revision fails here."""
    engine = engines(new_database())
    for history in (LINE, DEMO):
        assert migrations.upgrade(engine, history) == migrations.head(history)
    for history in (LINE, DEMO):
        with engine.connect() as connection:
            options = migrations.options(history)
            context = MigrationContext.configure(
                connection,
                opts={key: options[key] for key in ("version_table", "include_name", "compare_type")},
            )
            assert compare_metadata(context, history.metadata()) == [], history.name


def test_the_models_cover_every_table_of_both_databases(new_database, engines) -> None:
    engine = engines(new_database())
    for history in (LINE, DEMO):
        migrations.upgrade(engine, history)
    expected = {*LINE.metadata().tables, *DEMO.metadata().tables, LINE.version_table, DEMO.version_table}
    assert set(sa.inspect(engine).get_table_names()) == expected


def test_a_second_upgrade_changes_nothing(new_database, engines) -> None:
    engine = engines(new_database())
    migrations.upgrade(engine, LINE)
    with engine.connect() as connection:
        before = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert migrations.upgrade(engine, LINE) == migrations.head(LINE)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).all() == before


def test_every_revision_goes_down_and_up_again(new_database, engines) -> None:
    """The downgrades work, and so does env.py (Alembic's own commands run it)."""
    engine = engines(new_database())
    for history in (LINE, DEMO):
        migrations.upgrade(engine, history)
        with engine.begin() as connection:
            command.downgrade(migrations.config(history, connection), "base")
        assert not set(history.metadata().tables) & set(sa.inspect(engine).get_table_names())
        with engine.begin() as connection:
            command.upgrade(migrations.config(history, connection), "head")
        assert _at(engine, history) == migrations.head(history)


def test_two_processes_starting_at_once_upgrade_one_after_the_other(new_database, engines) -> None:
    url = new_database()
    pair = [engines(url), engines(url)]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def start(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            results.append(migrations.upgrade(engine, LINE))
        except Exception as error:  # reported by the assertion below
            results.append(error)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [migrations.head(LINE)] * 2


# -- stores made before migrations ------------------------------------------------------------------


def test_a_store_made_before_migrations_is_upgraded_and_keeps_its_rows(new_database, engines) -> None:
    engine = engines(new_database())
    _old_store(engine)
    assert "claimed_at" not in _columns(engine, "sms_outbox")
    assert _at(engine, LINE) is None

    assert migrations.upgrade(engine, LINE) == migrations.head(LINE)

    assert _at(engine, LINE) == migrations.head(LINE)
    assert {"claimed_at", "delivery", "delivery_at"} <= _columns(engine, "sms_outbox")
    assert "ix_sms_outbox_provider_id" in _indexes(engine, "sms_outbox")
    with engine.connect() as connection:
        (row,) = connection.execute(sa.select(sms_outbox)).mappings()
        assert (row["call_sid"], row["status"], row["provider_id"]) == ("CAold1", "sent", "SMold1")
        assert (row["claimed_at"], row["delivery"], row["delivery_at"]) == (None, None, None)
        assert connection.execute(sa.text("SELECT call_sid, turn FROM call_sessions")).all() == [
            ("CAold1", 3)
        ]
        kinds = connection.execute(sa.text("SELECT kind FROM attempts ORDER BY id")).scalars().all()
        assert kinds == ["verification", "guess"]


def test_a_store_the_old_code_had_patched_is_upgraded(new_database, engines) -> None:
    """The code before migrations added missing nullable columns at start, never the index."""
    engine = engines(new_database())
    _old_store(engine)
    with engine.begin() as connection:
        for name, kind in (("claimed_at", sa.DateTime(timezone=True)), ("delivery", sa.String(16))):
            connection.exec_driver_sql(
                f'ALTER TABLE sms_outbox ADD COLUMN "{name}" {kind.compile(engine.dialect)}'
            )
    migrations.upgrade(engine, LINE)
    assert {"claimed_at", "delivery", "delivery_at"} <= _columns(engine, "sms_outbox")
    assert "ix_sms_outbox_provider_id" in _indexes(engine, "sms_outbox")
    assert _at(engine, LINE) == migrations.head(LINE)


@pytest.mark.parametrize("with_inbox", [False, True])
def test_a_demo_database_made_before_migrations_is_upgraded(new_database, engines, with_inbox) -> None:
    engine = engines(new_database())
    _old_demo(engine)
    if with_inbox:  # the code just before migrations made the SMS inbox too
        demo_tables.sms_inbox.create(engine)
    migrations.upgrade(engine, DEMO)
    assert _at(engine, DEMO) == migrations.head(DEMO)
    assert {"demo_temporary_pins", "demo_sms_inbox"} <= set(sa.inspect(engine).get_table_names())
    with engine.connect() as connection:
        keys = connection.execute(sa.select(demo_tables.temporary_pins.c.request_key)).scalars().all()
    assert keys == ["CAold1:temporary_pin"]


def test_the_line_starts_on_a_data_dir_made_by_an_older_version(tmp_path, engines) -> None:
    """`make run` on a `var/` the old code made: both databases upgraded at start, rows kept."""
    data = tmp_path / "var"
    data.mkdir(mode=0o700)
    _old_store(engines(f"sqlite:///{data / 'ivr.sqlite3'}"))
    _old_demo(engines(f"sqlite:///{data / 'mitid-demo.sqlite3'}"))
    settings = Settings(data_dir=data, public_base_url=BASE, twilio_auth_token=TOKEN, secret_key="k" * 32)
    line = create_app(settings, clock=Clock(OPEN_TIME)).extensions["ivr"]
    assert [row["provider_id"] for row in line.store.rows(sms_outbox)] == ["SMold1"]
    assert line.outbox.sender.received() == {}  # the demo SMS inbox exists now
    assert _at(line.store.engine, LINE) == migrations.head(LINE)
    assert _at(line.services.backend._engine, DEMO) == migrations.head(DEMO)


# -- ivr db -----------------------------------------------------------------------------------------


def test_ivr_db_current_and_upgrade_on_a_data_dir_made_by_an_older_version(
    tmp_path, engines, monkeypatch, capsys
) -> None:
    data = tmp_path / "var"
    monkeypatch.setenv("IVR_DATA_DIR", str(data))
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.count("no database yet") == 2
    assert not data.exists()  # looking makes nothing

    data.mkdir(mode=0o700)
    _old_store(engines(f"sqlite:///{data / 'ivr.sqlite3'}"))
    assert main(["db", "current"]) == 0
    line, demo = capsys.readouterr().out.splitlines()
    assert line.startswith("the line's store (IVR_DATABASE_URL): made before migrations")
    assert demo.endswith("no database yet (the line makes it at start, or `ivr db upgrade`)")

    head = migrations.head(LINE)
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"the line's store (IVR_DATABASE_URL): revision {head} (head), upgraded from the schema "
        "before migrations (revision 0001)",
        f"the demo outside systems (IVR_DEMO_BACKEND_DATABASE_URL): revision {migrations.head(DEMO)} "
        "(head), made new",
    ]
    assert main(["db", "current"]) == 0
    assert (
        capsys.readouterr().out.splitlines()[0]
        == f"the line's store (IVR_DATABASE_URL): revision {head} (head)"
    )
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.count("(head), as it was") == 2
