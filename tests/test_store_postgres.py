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


def _line(url: str, data_dir: Path) -> Flask:
    settings = Settings(
        data_dir=data_dir,
        public_base_url=BASE,
        twilio_auth_token=TOKEN,
        secret_key=SECRET,
        database_url=url,
        demo_backend_database_url=url,
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
