"""A PostgreSQL to test against, for every test that wants one (fixture `postgres_url`).

The database is `IVR_TEST_POSTGRES_URL` when set (e.g.
`postgresql+psycopg://ivr:ivr@127.0.0.1:5432/ivr_test`); otherwise a throwaway cluster is made
with the installed `initdb`/`pg_ctl` in a temporary directory on a free port, and removed after.
When neither is possible the tests are skipped, with the reason in pytest's summary, so a plain
clone passes `make test` without PostgreSQL; with `IVR_TEST_REQUIRE_POSTGRES=1` (as `.ci/run` sets) they
fail instead: there a skipped database test would hide what it should catch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import sqlalchemy as sa

# One secret per run: pseudonyms (callers, identities) are fresh even in a database kept between
# runs, so no lockout or velocity limit left by an earlier run can change what these tests see.
SECRET = secrets.token_hex(16)
# Read at import: the autouse fixture in conftest.py hides IVR_* variables from each test.
REQUIRED = os.environ.get("IVR_TEST_REQUIRE_POSTGRES", "") not in ("", "0")


# -- a PostgreSQL to test against -------------------------------------------------------------------


def _unavailable(reason: str) -> NoReturn:
    """No PostgreSQL here: skip, unless this run requires the database tests (CI)."""
    if REQUIRED:
        pytest.fail(f"{reason} (and IVR_TEST_REQUIRE_POSTGRES is set)")
    pytest.skip(reason)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    candidates = [Path(found[-1]).parent] if found else []
    initdb = shutil.which("initdb")
    candidates += [Path(initdb).parent] if initdb else []
    for bin_dir in candidates:
        if (bin_dir / "pg_ctl").is_file():
            return bin_dir
    _unavailable(
        "no PostgreSQL to test against: set IVR_TEST_POSTGRES_URL to a database URL "
        "(postgresql+psycopg://user:password@host:port/db) or install PostgreSQL (initdb, pg_ctl)"
    )


def _as_cluster_owner(args: list[str]) -> list[str]:
    """`initdb` and `postgres` refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return args
    if shutil.which("runuser") is None:
        _unavailable("running as root and no `runuser` to start PostgreSQL as the postgres user")
    return ["runuser", "-u", "postgres", "--", *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"could not {what} (set IVR_TEST_POSTGRES_URL instead?):\n{done.stdout}{done.stderr}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database URL: the configured one, or a throwaway cluster's."""
    configured = os.environ.get("IVR_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    bin_dir = _postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
    data = home / "data"
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    user = "postgres" if os.geteuid() == 0 else getpass.getuser()
    port = _free_port()
    try:
        _run(
            _as_cluster_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    user,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            "initialise a PostgreSQL cluster",
        )
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        _run(
            _as_cluster_owner(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(home / "log"),
                    "-w",
                    "start",
                ]
            ),
            "start PostgreSQL",
        )
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user=user, dbname="postgres", autocommit=True
            ) as connection:
                connection.execute("CREATE DATABASE ivr_test")
            yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/ivr_test"
        finally:
            subprocess.run(
                _as_cluster_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def own_database(
    postgres_url: str, prefix: str, needed_by: str, template: str | None = None
) -> Iterator[str]:
    """A new database on the test server (its URL), empty or a copy of `template`'s; dropped after."""
    server = sa.engine.make_url(postgres_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    copy = f' TEMPLATE "{template}"' if template else ""

    def admin() -> psycopg.Connection:
        return psycopg.connect(
            host=server.host,
            port=server.port,
            user=server.username,
            password=server.password,
            dbname=server.database,
            autocommit=True,
        )

    try:
        with admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"{copy}')
    except psycopg.errors.InsufficientPrivilege:
        _unavailable(f"the PostgreSQL user may not CREATE DATABASE, which {needed_by} need")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def demo_database(
    request: pytest.FixtureRequest, tmp_path: Path, people: int, now: dt.datetime
) -> Iterator[sa.Engine]:
    """The demo outside systems' database, on SQLite or on PostgreSQL (`request.param`, a fresh
    database of its own), migrated and holding a register of `people` built as of `now`."""
    from ivr import migrations
    from ivr.adapters import demo_directory
    from ivr.store import make_engine

    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path}/demo.db"
        if request.param == "postgresql":
            postgres_url = request.getfixturevalue("postgres_url")
            url = stack.enter_context(own_database(postgres_url, "ivr_demo", "the demo register tests"))
        engine = make_engine(url)
        migrations.upgrade(engine, migrations.DEMO)
        demo_directory.build(engine, 2026, people, now)
        yield engine
        engine.dispose()


# -- the line's own tests on PostgreSQL -------------------------------------------------------------

STORES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def line_template(postgres_url: str) -> Iterator[str]:
    """The name of a database holding what a new line makes at its first start (the store and the
    demo systems migrated, the demo register built as of the tests' fixed day), copied for each
    test that runs on PostgreSQL: a copy is much quicker than migrating and building again."""
    from ivr import build_core
    from ivr.settings import Settings
    from tests.conftest import OPEN_TIME

    with (
        own_database(postgres_url, "ivr_template", "the tests on PostgreSQL") as url,
        tempfile.TemporaryDirectory() as data,
    ):
        settings = Settings(data_dir=Path(data), database_url=url, secret_key=SECRET)
        core = build_core(settings, clock=lambda: OPEN_TIME)
        core.store.engine.dispose()
        core.people._engine.dispose()
        yield sa.engine.make_url(url).database or ""


@pytest.fixture(params=STORES)
def either_store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The line's store for a test that runs on both: None (SQLite in the data directory), or the
    URL of a fresh PostgreSQL database of the test's own, as production has."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_url")
    template = request.getfixturevalue("line_template")
    with own_database(server, "ivr_test", "the tests on PostgreSQL", template=template) as url:
        yield url
