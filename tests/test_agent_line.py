"""An agent phoning in from their registered phone, with their agent code, to the next caller."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from ivr.desk.accounts import Accounts
from tests.calls import Call, sign
from tests.conftest import BASE, TOKEN
from tests.postgres import either_store

database_url = either_store  # every test here on SQLite and on PostgreSQL

AGENT_PHONE = "+4520998877"
XML = '<?xml version="1.0" encoding="UTF-8"?>'
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # a real argon2id, cheap for tests


@pytest.fixture
def anna(app, clock):
    accounts = Accounts(app.extensions["ivr"].store, clock, hasher=FAST)
    accounts.add("anna", "agent", "a long enough password", phone=AGENT_PHONE, name="Anna")
    accounts.set_language("anna", "en")
    accounts.set_agent_code("anna", "4711")
    return accounts


def agent_call(app) -> Call:
    return Call(app, TOKEN, BASE, language="en", caller=AGENT_PHONE).dial()


def code(call: Call, digits: str) -> Call:
    return call.post(f"{BASE}/voice/agent/code", Digits=digits)


def test_an_agents_phone_is_asked_for_the_agent_code_not_the_callers_menu(app, anna, records):
    call = agent_call(app)
    assert call.body == (
        f"{XML}<Response>"
        f'<Gather action="{BASE}/voice/agent/code" finishOnKey="#" input="dtmf" method="POST" timeout="10">'
        '<Say language="en-GB" voice="Polly.Amy">MitID Support agent line. Key your agent code, then press '
        "hash.</Say></Gather>"
        f'<Redirect method="POST">{BASE}/voice/agent/code</Redirect>'
        "</Response>"
    )
    assert records.rows("call_sessions") == []  # not a caller's call


def test_the_right_code_puts_the_agent_through_to_the_next_caller(app, anna, records):
    call = agent_call(app)
    form = {"CallSid": call.sid, "From": AGENT_PHONE, "Digits": "4711"}
    url = f"{BASE}/voice/agent/code"
    answer = app.test_client().post(
        "/voice/agent/code", data=form, headers={"X-Twilio-Signature": sign(TOKEN, url, form)}
    )
    assert answer.get_data(as_text=True) == (
        f"{XML}<Response>"
        '<Say language="en-GB" voice="Polly.Amy">Putting you through to the next caller.</Say>'
        f'<Dial><Queue url="{BASE}/voice/agent/dequeued?agent=anna">'
        "mitid-support</Queue></Dial>"
        "</Response>"
    )
    assert anna.get("anna").status == "away"  # busy only once holding a caller (the next test)
    assert "agent_phoned_in" in [row["event"] for row in records.rows("audit_events")]


def test_the_caller_taken_from_the_queue_is_told_and_marked_connected_to_the_agent(app, anna, dial, records):
    caller = dial("en").choose_language().press("0")
    assert caller.queued
    caller.post(f"{BASE}/voice/agent/dequeued?agent=anna")
    assert caller.said == ["connecting"]
    escalation = records.escalation(caller)
    assert (escalation["status"], escalation["agent"]) == ("connected", "anna")
    assert anna.get("anna").status == "busy"


def test_a_caller_who_hangs_up_on_an_agent_who_phoned_in_leaves_the_agent_a_wrap_up_not_stuck(
    app, anna, dial, records, clock
):
    from ivr.desk.queue import Queue

    caller = dial("en").choose_language().press("0")
    caller.post(f"{BASE}/voice/agent/dequeued?agent=anna")
    caller.hang_up()
    escalation = records.escalation(caller)
    assert (escalation["status"], escalation["agent"]) == ("ended", "anna")
    queue = Queue(app.extensions["ivr"].store, clock)
    held = queue.current("anna")
    assert held is not None and held.gone and anna.get("anna").status == "busy"
    assert "caller_left" in queue.offered(held) and "user_id_given" not in queue.offered(held)
    assert queue.wrap_up(held.id, "anna", "caller_left", "")
    assert anna.get("anna").status == "away" and queue.current("anna") is None
    assert records.escalation(caller)["status"] == "wrapped_up"


def test_a_wrong_code_asks_again_and_five_wrong_codes_hang_up(app, anna, records):
    call = agent_call(app)
    for _ in range(5):
        code(call, "1234")
        assert call.said == ["agent_code_wrong", "agent_code"]
    code(call, "4711")  # even the right code, now: too many tries this hour
    assert call.said == ["agent_code_blocked"]
    assert call.hung_up
    events = [row["event"] for row in records.rows("audit_events")]
    assert events.count("agent_code_wrong") == 5 and "agent_code_refused" in events
    for row in records.rows("audit_events"):
        assert "4711" not in row["detail"] and "1234" not in row["detail"]


def test_a_number_that_is_no_agents_is_a_caller(app, anna):
    call = Call(app, TOKEN, BASE, language="en", caller="+4520998878").dial()
    assert call.said == ["welcome", "choose_language", "choose_language", "choose_language"]
    anna.disable("anna")
    assert agent_call(app).said == ["welcome", "choose_language", "choose_language", "choose_language"]


def test_what_an_agent_keys_is_audited_on_the_agents_own_call(app, anna, records):
    call = code(agent_call(app), "1234")
    assert call.said == ["agent_code_wrong", "agent_code"]
    assert records.audit(call) == ["agent_code_wrong"]
