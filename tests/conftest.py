"""Fixtures: a line on a temporary data directory, a fixed clock, and callers who dial it."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask

from ivr import create_app
from ivr.adapters.demo_people import DemoPerson
from ivr.settings import Settings
from tests.calls import Call, Clock, Records
from tests.postgres import either_store, line_template, postgres_url  # noqa: F401  (one cluster a run)
from tests.shells import line, made, shell  # noqa: F401  (`ivr` in a shell, `ivr serve` behind it)

TOKEN = "test-auth-token"
BASE = "https://ivr.example.test"
# A Tuesday morning in Copenhagen: the line is open.
OPEN_TIME = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # a real argon2id, cheap


RENAMED = ("IVR_REQUIRE_POSTGRES", "IVR_REQUIRE_BROWSER", "IVR_REQUIRE_PROXY", "IVR_UPDATE_SCREENSHOT")


def pytest_configure(config: pytest.Config) -> None:
    """A switch under its old name would be ignored, and the tests it requires silently skipped."""
    if old := [name for name in RENAMED if name in os.environ]:
        new = ", ".join(name.replace("IVR_", "IVR_TEST_", 1) for name in old)
        raise pytest.UsageError(f"{', '.join(old)} renamed: set {new} instead")


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN_TIME)


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see neither the developer's IVR_* variables nor a `.env` file."""
    for name in [n for n in os.environ if n.startswith("IVR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setitem(Settings.model_config, "env_file", None)


@pytest.fixture
def database_url() -> str | None:
    """The store: SQLite in the data directory. A module that runs on both stores says
    `database_url = either_store` (tests/postgres.py), and runs on PostgreSQL too."""
    return None


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        public_base_url=BASE,
        twilio_auth_token=TOKEN,
        secret_key="test-secret-key-for-the-pseudonyms-0123456789",
        database_url=database_url,
        demo_backend_database_url=database_url,
    )


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[Flask]:
    app = create_app(settings, clock=clock)
    yield app
    app.extensions["ivr.core"].close()  # before a PostgreSQL database of the test's own is dropped


@pytest.fixture
def people(app: Flask) -> list[DemoPerson]:
    people: list[DemoPerson] = app.extensions["ivr.people"]
    return people


@pytest.fixture
def cases(people: list[DemoPerson]) -> dict[str, DemoPerson]:
    """The fixed awkward demo people by their case label (see ivr/adapters/demo_people.py)."""
    return {p.case: p for p in people if p.case}


@pytest.fixture
def records(app: Flask) -> Records:
    return Records(app)


@pytest.fixture
def dial(app: Flask) -> Callable[..., Call]:
    """Place a call: `dial()` or `dial(language="en", caller="+4520000002")`. Each call comes
    from a number of its own unless `caller` is given (one number may verify 5 times an hour)."""
    numbers = itertools.count(1)

    def _dial(language: str = "da", caller: str | None = None) -> Call:
        caller = caller or f"+452{next(numbers):07d}"
        return Call(app, TOKEN, BASE, language=language, caller=caller).dial()

    return _dial


@pytest.fixture
def on_duty(app: Flask) -> str:
    """An agent on duty (available, the desk open), so a queued caller hears an estimate."""
    from ivr.desk.accounts import Accounts

    accounts = Accounts(app.extensions["ivr"].store, lambda: OPEN_TIME, hasher=FAST_HASHER)
    accounts.add("duty", "agent", "a long enough password")
    accounts.set_status("duty", "available")
    accounts.mark_present("duty", OPEN_TIME)  # the desk open in their browser
    return "duty"
