"""A queued caller put through to the agent who took the call, through the app, as Twilio would."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from ivr.call_control_adapters import EmbeddedCallControl
from ivr.store import Store, agents, escalations
from tests.calls import Call, Clock, Records
from tests.conftest import BASE, OPEN_TIME, TOKEN
from tests.postgres import either_store
from tests.test_audit_trail import assert_in_order

database_url = either_store  # every test here on SQLite and on PostgreSQL

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
    assert records.escalation(call)["status"] == "waiting"
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
    assert (row["status"], row["agent"], row["caller_left_at"]) == ("ended", "anna", clock.now)  # to wrap up


def test_until_put_through_the_caller_hears_their_place(app: Flask, queued: Call, records: Records) -> None:
    add_agent(app)
    take(app, queued)
    queued.wait_in_queue(2)
    assert queued.said == ["queue_position"] and queued.queued


def test_a_caller_who_hangs_up_in_the_queue_abandons_the_hand_over(queued: Call, records: Records) -> None:
    queued.hang_up()
    assert records.escalation(queued)["status"] == "abandoned"
    assert records.escalation(queued)["caller_left_at"] == OPEN_TIME


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
    assert records.escalation(queued)["status"] == "waiting"


def test_a_whisper_for_a_call_nobody_is_taking_hangs_up_the_agents_leg(app: Flask, queued: Call) -> None:
    add_agent(app)
    queued.send(queued.request(f"{BASE}/voice/whisper?call={queued.sid}", CallSid="CA" + "9" * 32))
    assert queued.status == 200 and queued.twiml is not None
    assert [verb.tag for verb in queued.twiml] == ["Say", "Hangup"]


# -- what each hand-over webhook writes down, and in which language it answers -------------------


def put_through(app: Flask, call: Call, clock: Clock, username: str = "anna") -> None:
    """An agent takes the call at the desk, is put through, and the caller leaves the queue."""
    add_agent(app, username)
    take(app, call, username)
    EmbeddedCallControl(app.extensions["ivr"].store, clock).put_through(call.sid)
    call.wait_in_queue(1)
    assert call.said == ["connecting"]


def test_a_caller_an_agents_phone_takes_from_the_queue_hears_it_in_their_language(
    queued: Call, records: Records, clock: Clock
) -> None:
    clock.advance(seconds=20)
    queued.post(f"{BASE}/voice/agent/dequeued?agent=anna")
    assert queued.hears("connecting", "en")
    row = records.escalation(queued)
    assert (row["status"], row["agent"], row["connected_at"]) == ("connected", "anna", clock.now)
    assert_in_order(records, queued, ("put_through", {"agent": "anna", "by": "phone"}))


def test_connect_writes_down_whether_the_call_was_taken_and_by_whom(
    app: Flask, queued: Call, records: Records, clock: Clock
) -> None:
    queued.post(f"{BASE}/voice/connect")  # nobody took it
    assert queued.hears("agent_unavailable", "en")
    put_through(app, queued, clock)
    assert_in_order(
        records, queued, ("agent_unreachable", {"taken": False}), ("put_through", {"agent": "anna"})
    )


def test_connect_for_a_call_taken_by_an_agent_without_a_phone_writes_down_it_was_taken(
    app: Flask, queued: Call, records: Records
) -> None:
    add_agent(app, phone=None)
    take(app, queued)
    queued.post(f"{BASE}/voice/connect")
    assert queued.hears("agent_unavailable", "en") and queued.queued
    assert_in_order(records, queued, ("agent_unreachable", {"taken": True}))


def test_a_connect_retried_after_the_caller_was_put_through_dials_nobody_again(
    app: Flask, queued: Call, records: Records, clock: Clock
) -> None:
    put_through(app, queued, clock)
    dialled = queued.twilio.bridged
    queued.post(f"{BASE}/voice/connect")
    assert queued.hears("agent_unavailable", "en") and queued.queued
    assert queued.twilio.bridged == dialled
    assert_in_order(
        records, queued, ("put_through", {"agent": "anna"}), ("agent_unreachable", {"taken": False})
    )


def test_after_a_conversation_the_caller_hears_goodbye_in_their_language(
    app: Flask, queued: Call, records: Records, clock: Clock
) -> None:
    put_through(app, queued, clock)
    queued.post(f"{BASE}/voice/dial-ended", DialCallStatus="completed")
    assert queued.hears("goodbye", "en") and queued.hung_up
    assert records.escalation(queued)["status"] == "connected"


def test_an_agent_who_does_not_answer_sends_the_caller_back_to_the_queue_unassigned(
    app: Flask, queued: Call, records: Records, clock: Clock
) -> None:
    put_through(app, queued, clock)
    queued.post(f"{BASE}/voice/dial-ended", DialCallStatus="no-answer")
    assert queued.hears("agent_unavailable", "en") and queued.queued
    row = records.escalation(queued)
    assert (row["status"], row["agent"], row["put_through_at"]) == ("waiting", None, None)
    assert_in_order(records, queued, ("agent_did_not_answer", {"dial_status": "no-answer"}))


def test_the_whisper_is_in_the_agents_language(
    app: Flask, queued: Call, records: Records, clock: Clock
) -> None:
    add_agent(app)
    with app.extensions["ivr"].store.connection() as connection:
        connection.execute(sa.update(agents).values(language="en"))
    take(app, queued)
    queued.send(queued.request(f"{BASE}/voice/whisper?call={queued.sid}", CallSid="CA" + "9" * 32))
    assert queued.twiml is not None
    [say] = list(queued.twiml)
    assert (say.attrib["language"], say.text) == (
        "en-GB",
        "English-speaking caller, no subject chosen, not verified.",
    )


def whisper(app: Flask, call: Call) -> ET.Element:
    """The agent's leg asks what to tell the agent about `call`."""
    agents_leg = Call(app, TOKEN, BASE, language="da", caller=AGENT_PHONE, sid="CA" + "9" * 32)
    agents_leg.post(f"{BASE}/voice/whisper?call={call.sid}")
    assert agents_leg.status == 200 and agents_leg.twiml is not None
    return agents_leg.twiml


def test_a_whisper_for_a_call_taken_by_no_known_agent_or_already_over_hangs_up(
    app: Flask, queued: Call, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    take(app, queued, "ghost")  # no such agent
    goodbye = Call(app, TOKEN, BASE, language="da").text("goodbye")
    assert [(verb.tag, verb.text) for verb in whisper(app, queued)] == [("Say", goodbye), ("Hangup", None)]
    assert "refused a whisper for a call no agent is taking" in [r.getMessage() for r in caplog.records]
    put_through(app, queued, clock)
    queued.hang_up()  # the hand-over is finished, though it names its agent
    assert [verb.tag for verb in whisper(app, queued)] == ["Say", "Hangup"]


def test_a_caller_who_hangs_up_in_the_queue_is_abandoned_by_the_queues_own_report(
    queued: Call, records: Records
) -> None:
    queued.post(f"{BASE}/voice/queue-exit", QueueResult="hangup")
    assert records.escalation(queued)["status"] == "abandoned"


def test_a_put_through_caller_who_hangs_up_on_leaving_the_queue_is_not_connected(
    app: Flask, queued: Call, clock: Clock
) -> None:
    add_agent(app)
    take(app, queued)
    EmbeddedCallControl(app.extensions["ivr"].store, clock).put_through(queued.sid)
    queued.post(f"{BASE}/voice/queue-exit", QueueResult="hangup")
    assert queued.hears("goodbye", "en") and queued.hung_up
