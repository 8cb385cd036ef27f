"""A queued caller put through to the agent who took the call, through the app, as Twilio would."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from ivr.call_control_adapters import EmbeddedCallControl
from ivr.store import Store, agents, escalations
from tests.calls import Call, Clock, Records
from tests.conftest import BASE, OPEN_TIME

AGENT_PHONE = "+4571112233"


def add_agent(
    app: Flask, username: str = "anna", phone: str | None = AGENT_PHONE, language: str = "da"
) -> None:
    store: Store = app.extensions["ivr"].store
    values = {"username": username, "display_name": username.title(), "role": "agent", "phone": phone}
    values |= {"password_hash": "-", "status": "available", "language": "da", "disabled": False}
    with store.connection() as connection:
        connection.execute(sa.insert(agents).values(created_at=OPEN_TIME, updated_at=OPEN_TIME, **values))


def take(app: Flask, call: Call, username: str = "anna") -> None:
    """What the agents' desk does when an agent takes the call."""
    store: Store = app.extensions["ivr"].store
    with store.connection() as connection:
        query = sa.update(escalations).where(escalations.c.call_sid == call.sid)
        connection.execute(query.values(status="connecting", agent=username))


@pytest.fixture
def queued(dial: Callable[..., Call], records: Records) -> Call:
    call = dial("en").choose_language().press("0")
    assert call.queued, call.heard
    call.wait_in_queue(1)
    assert records.escalation(call)["status"] is None
    return call


def test_a_taken_call_is_put_through_to_the_agent_who_hears_the_context_first(
    app: Flask, queued: Call, records: Records, clock: Clock
) -> None:
    add_agent(app)
    take(app, queued)
    assert records.escalation(queued)["queue_sid"] == queued.twilio.queue_sid  # from the wait URL
    clock.advance(seconds=30)
    EmbeddedCallControl(app.extensions["ivr"].store, clock).put_through(queued.sid)
    assert records.escalation(queued)["put_through_at"] == clock.now

    queued.wait_in_queue(1)  # the caller's next turn of waiting takes them out of the queue

    paths = [r.url.removeprefix(BASE) for r in queued.requests[-4:]]
    assert paths == [
        "/voice/wait",
        "/voice/queue-exit",
        "/voice/connect",
        f"/voice/whisper?call={queued.sid}",
    ]
    assert queued.said == ["connecting"]
    assert queued.twilio.bridged == AGENT_PHONE
    whisper = [e.text for e in queued.twilio.events if e.kind == "whisper"]
    assert whisper == ["Engelsktalende opkald, intet emne valgt, ikke bekræftet."]
    row = records.escalation(queued)
    assert (row["status"], row["connected_at"]) == ("connected", clock.now)
    assert "put_through" in records.audit(queued)

    clock.advance(minutes=5)
    queued.hang_up()
    row = records.escalation(queued)
    assert (row["status"], row["finished_at"]) == ("finished", clock.now)


def test_until_put_through_the_caller_hears_their_place(app: Flask, queued: Call, records: Records) -> None:
    add_agent(app)
    take(app, queued)
    queued.wait_in_queue(2)
    assert queued.said == ["queue_position"] and queued.queued


def test_a_caller_who_hangs_up_in_the_queue_abandons_the_hand_over(queued: Call, records: Records) -> None:
    queued.hang_up()
    assert records.escalation(queued)["status"] == "abandoned"
    assert records.escalation(queued)["finished_at"] == OPEN_TIME


def test_an_agent_without_a_phone_sends_the_caller_back_to_wait_for_another(
    app: Flask, queued: Call, records: Records
) -> None:
    add_agent(app, phone=None)
    take(app, queued)
    EmbeddedCallControl(app.extensions["ivr"].store).put_through(queued.sid)
    queued.wait_in_queue(1)
    assert queued.said == ["agent_unavailable"] and queued.queued
    row = records.escalation(queued)
    assert (row["status"], row["agent"], row["put_through_at"]) == ("waiting", None, None)
    assert "agent_unreachable" in records.audit(queued)


def test_connect_answers_only_the_calls_own_number(app: Flask, queued: Call, records: Records) -> None:
    add_agent(app)
    take(app, queued)
    queued.send(queued.request(f"{BASE}/voice/connect", From="+4529999999"))
    assert queued.status == 403
    assert records.escalation(queued)["status"] == "connecting"


def test_connect_for_a_call_nobody_took_goes_back_to_the_queue(queued: Call, records: Records) -> None:
    queued.post(f"{BASE}/voice/connect")
    assert queued.said == ["agent_unavailable"] and queued.queued
    assert records.escalation(queued)["status"] is None


def test_a_whisper_for_a_call_nobody_is_taking_hangs_up_the_agents_leg(app: Flask, queued: Call) -> None:
    add_agent(app)
    queued.send(queued.request(f"{BASE}/voice/whisper?call={queued.sid}", CallSid="CA" + "9" * 32))
    assert queued.status == 200 and queued.twiml is not None
    assert [verb.tag for verb in queued.twiml] == ["Say", "Hangup"]
