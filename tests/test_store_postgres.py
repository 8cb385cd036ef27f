"""The store on PostgreSQL, through the same code as SQLite: a whole PIN call, and a replay race.

The database comes from the `postgres_url` fixture (tests/postgres.py): a throwaway cluster, or
`IVR_TEST_POSTGRES_URL`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from ivr import create_app
from ivr.adapters.demo_people import DemoPerson
from ivr.prompts import Spelled
from ivr.questions import QUESTIONS
from ivr.settings import Settings
from ivr.store import audit_events, call_sessions, sms_outbox
from tests.calls import Call, Clock, at_once
from tests.conftest import BASE, OPEN_TIME, TOKEN
from tests.postgres import SECRET

# -- the line on it ---------------------------------------------------------------------------------


def _line(url: str, data_dir: Path, demo_url: str | None = None) -> Flask:
    """The line on the database at `url`; the demo outside systems there too, or at `demo_url`."""
    settings = Settings(
        data_dir=data_dir,
        public_base_url=BASE,
        twilio_auth_token=TOKEN,
        secret_key=SECRET,
        database_url=url,
        demo_backend_database_url=demo_url or url,
    )
    return create_app(settings, clock=Clock(OPEN_TIME))


def _close(app: Flask) -> None:
    line = app.extensions["ivr"]
    line.store.engine.dispose()
    line.services.backend._engine.dispose()


@pytest.fixture
def apps(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    """Two instances of the line on one database, as on two machines."""
    pair = (_line(postgres_url, tmp_path / "a"), _line(postgres_url, tmp_path / "b"))
    yield pair
    for app in pair:
        _close(app)


def _dial(app: Flask) -> Call:
    caller = f"+4520{secrets.randbelow(10**6):06d}"
    return Call(app, TOKEN, BASE, language="en", caller=caller, sid=f"CA{secrets.token_hex(16)}").dial()


def _mette(app: Flask) -> DemoPerson:
    person: DemoPerson = app.extensions["ivr.people"][0]
    assert person.case == "ordinary"
    return person


def _rows(app: Flask, table: sa.Table, sid: str) -> list[dict[str, object]]:
    order = "id" if "id" in table.c else "call_sid"
    store = app.extensions["ivr"].store
    rows: list[dict[str, object]] = store.rows(table, table.c.call_sid == sid, order=order)
    return rows


def _answer(call: Call, person: DemoPerson) -> str:
    """The Digits Twilio would send for a right answer to the question being asked."""
    fact = QUESTIONS[call.current_question()].fact(person.person)
    assert fact is not None
    return fact


def test_the_store_really_is_postgresql(apps: tuple[Flask, Flask]) -> None:
    assert apps[0].extensions["ivr"].store.engine.dialect.name == "postgresql"


def test_a_whole_pin_call_on_postgresql(apps: tuple[Flask, Flask]) -> None:
    app = apps[0]
    person = _mette(app)
    call = _dial(app).choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51"))
    assert call.hung_up
    call.hang_up()

    [sms] = _rows(app, sms_outbox, call.sid)
    assert (sms["to"], sms["body"], sms["status"]) == ("+45 …51", "temporary_pin", "sent")
    to, text = app.extensions["ivr"].outbox.sender.received()[sms["provider_id"]]
    code = re.search(r"(?<!\d)\d{8}(?!\d)", text)
    assert to == "+4520123451" and code is not None

    events = [row["event"] for row in _rows(app, audit_events, call.sid)]
    for event in (
        "call_started",
        "verification_started",
        "verification_passed",
        "pin_ordered",
        "sms_sent",
        "flow_ended",
        "call_ended",
    ):
        assert event in events
    assert events[0] == "call_started"
    assert events.count("pin_ordered") == events.count("sms_sent") == 1
    details = json.dumps([row["detail"] for row in _rows(app, audit_events, call.sid)])
    [session] = _rows(app, call_sessions, call.sid)
    for secret in (code.group(0), "100000001", person.person.cpr):
        assert secret not in details
        assert secret not in str(session["state"])
    assert session["ended"] is True


def _twins(call: Call, apps: tuple[Flask, Flask], machines: int) -> list[Call]:
    """Two copies of the caller's phone line: the same call, Twilio's retry and the original."""
    return [
        dataclasses.replace(call, app=apps[i % machines])  # a fresh fake Twilio for the same call
        for i in range(2)
    ]


MACHINES = pytest.mark.parametrize("machines", [1, 2], ids=["one machine", "two machines"])


@MACHINES
@pytest.mark.parametrize("round_", range(3))
def test_a_replayed_pin_request_racing_itself_sends_one_sms(
    apps: tuple[Flask, Flask], machines: int, round_: int
) -> None:
    """Twilio retries a webhook that was slow: both copies arrive at once; one SMS, one PIN."""
    app = apps[0]
    person = _mette(app)
    call = _dial(app).choose_language().identify(person, "temporary_pin")
    asked = app.extensions["ivr.settings"].questions_asked
    for _ in range(asked - 1):
        call.press(_answer(call, person) + "#")
    last_answer = call.pressing(_answer(call, person) + "#")  # the request that sends the PIN

    twins = _twins(call, apps, machines)
    at_once(twins, lambda twin: twin.send(last_answer))

    for twin in twins:
        assert twin.status == 200
        assert twin.hears("pin_sent", mobile_last_digits=Spelled("51")), twin.heard
    assert len(_rows(app, sms_outbox, call.sid)) == 1
    events = [row["event"] for row in _rows(app, audit_events, call.sid)]
    assert events.count("pin_ordered") == events.count("sms_sent") == 1
    backend = app.extensions["ivr"].services.backend
    with backend._engine.connect() as connection:
        pins = connection.execute(
            sa.select(sa.func.count()).where(backend.pins.c.request_key == f"{call.sid}:temporary_pin")
        ).scalar_one()
    assert pins == 1


@MACHINES
def test_a_retried_first_webhook_racing_itself_starts_one_call(
    apps: tuple[Flask, Flask], machines: int
) -> None:
    call = Call(apps[0], TOKEN, BASE, language="en", sid=f"CA{secrets.token_hex(16)}")
    twins = _twins(call, apps, machines)
    at_once(twins, lambda twin: twin.dial())

    for twin in twins:
        assert twin.status == 200
        assert twin.hears("choose_language", "en"), twin.heard
        assert twin.listening
    assert len(_rows(apps[0], call_sessions, call.sid)) == 1
    events = [row["event"] for row in _rows(apps[0], audit_events, call.sid)]
    assert events.count("call_started") == 1
    assert "application_error" not in events


def _kill_connections(url: str) -> int:
    """Every other session of the line's database ended, as a restart of the server ends them."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as admin:
        killed = admin.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    engine.dispose()
    return int(killed)


def test_a_call_goes_on_after_the_database_dropped_every_connection(
    apps: tuple[Flask, Flask], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pooled connections the server closed (a restart, a failover) are found out before a
    webhook uses them: the caller hears the next menu, not an apology."""
    monkeypatch.setattr("ivr.store.PING_AFTER_IDLE", 0.0)  # the pool's connections count as idle
    app = apps[0]
    call = _dial(app).choose_language()
    at = call.step
    assert _kill_connections(postgres_url) >= 1
    call.press("2")
    assert call.status == 200 and call.listening
    assert call.step not in (at, "unknown")
    assert not [e for e in _rows(app, audit_events, call.sid) if e["event"] == "escalated"]


def test_a_webhook_whose_connection_the_database_dropped_in_use_runs_again(
    apps: tuple[Flask, Flask], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lost under a webhook (no ping: it was in use a moment ago) costs the caller
    nothing: nothing was written, so the webhook runs again on a new connection."""
    monkeypatch.setattr("ivr.store.PING_AFTER_IDLE", 1e9)
    app = apps[0]
    person = _mette(app)
    call = _dial(app).choose_language().identify(person, "temporary_pin")
    asked = call.current_question()
    assert _kill_connections(postgres_url) >= 1
    call.press(_answer(call, person))
    assert call.status == 200 and call.listening and call.current_question() != asked
    events = [e["event"] for e in _rows(app, audit_events, call.sid)]
    assert "escalated" not in events and events.count("verification_started") == 1


def test_a_connection_in_steady_use_is_not_pinged(apps: tuple[Flask, Flask], postgres_url: str) -> None:
    """A webhook on a connection used a moment ago goes straight to its statements (a ping per
    webhook was a round trip each)."""
    app = apps[0]
    engine = app.extensions["ivr"].store.engine
    pings: list[object] = []
    original = engine.dialect.do_ping
    engine.dialect.do_ping = lambda connection: pings.append(connection) or original(connection)  # type: ignore[method-assign]
    try:
        call = _dial(app).choose_language()
        at = call.step
        assert call.press("2").step != at
    finally:
        del engine.dialect.do_ping
    assert pings == []
