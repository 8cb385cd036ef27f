"""Twin webhooks: Twilio retries a request, or two machines get the same one at once.

A retried first webhook gets the answer the call already has and starts nothing twice; a webhook
that loses the race to its twin (on the same SQLite file, from another process) answers what the
winner saved and writes nothing of its own; and the status callback is answered 204 whatever it
reports.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ivr import create_app
from ivr.engine import Engine
from ivr.store import Tx, call_sessions
from tests.calls import Call, Records
from tests.conftest import BASE, TOKEN


def twin_of(call: Call, app) -> Call:
    """The same call (sid, number) as another process of the line would see it."""
    return Call(app, TOKEN, BASE, language=call.language, caller=call.caller, sid=call.sid)


# -- a retried first webhook -------------------------------------------------------------------------------


def test_a_retried_first_webhook_gets_the_same_answer_and_starts_nothing_twice(dial, records):
    call = dial("en")
    first, answer, session = call.requests[0], call.body, records.session(call)

    call.send(first)
    assert call.status == 200
    assert call.body == answer
    assert records.session(call) == session
    assert records.audit(call) == ["call_started"]
    assert call.choose_language().said == ["main_menu"]


def test_a_first_webhook_retried_later_changes_nothing_and_the_call_goes_on(dial, records):
    call = dial("en").choose_language()
    first, session = call.requests[0], records.session(call)

    call.send(first)
    assert call.body == session["reply"]  # what the call was last told: the main menu
    assert records.session(call) == session
    assert records.audit(call) == ["call_started"]
    assert call.press("0").queued  # the main menu is still listening


def test_a_first_webhook_for_a_known_call_from_another_number_is_refused(dial, records):
    call = dial("en").choose_language()
    session = records.session(call)
    forged = Call(call.app, TOKEN, BASE, caller="+4599999998", sid=call.sid)
    forged.send(forged.request(f"{BASE}/voice"))
    assert forged.status == 403
    assert forged.body == ""
    assert records.session(call) == session
    assert records.audit(call) == ["call_started", "caller_mismatch"]


def test_keys_for_a_call_the_line_never_saw_hear_an_apology_in_every_language_and_an_agent(app, records):
    stranger = Call(app, TOKEN, BASE, caller="+4574000009")
    stranger.post(f"{BASE}/voice/keys?turn=1", Digits="1")
    assert stranger.status == 200
    assert stranger.said == ["apology", "transfer"] * 3
    assert stranger.queued
    assert [row["reason"] for row in records.rows("escalations")] == ["call_not_found"]
    assert records.audit(stranger) == ["call_not_found", "escalated"]
    assert records.rows("call_sessions") == []


def test_a_call_whose_record_is_wiped_while_a_webhook_runs_hears_an_apology_and_an_agent(
    app, dial, records, monkeypatch
):
    """The webhook loses its race to the wipe (the row it would update is gone), and there is no
    stored reply to fall back on: sorry, and an agent."""
    call = dial("en").choose_language()
    save, store = Tx.save_session, app.extensions["ivr"].store

    def wiped_meanwhile(self, *args, **kwargs):
        save(self, *args, **kwargs)
        with store.connection() as other:  # before this webhook commits
            other.execute(sa.delete(call_sessions))

    monkeypatch.setattr(Tx, "save_session", wiped_meanwhile)
    call.press("1")
    assert call.status == 200
    assert call.said == ["apology", "transfer"] * 3  # in every language
    assert call.queued
    assert records.escalation(call)["reason"] == "call_not_found"  # the agent is told why


def test_a_first_webhook_that_failed_still_reaches_an_agent_with_what_is_known(app, records, monkeypatch):
    def broken(self, state):
        raise RuntimeError("the flow broke")

    monkeypatch.setattr(Engine, "begin", broken)
    call = Call(app, TOKEN, BASE, caller="+4574000010")
    call.send(call.request(f"{BASE}/voice"))
    assert call.status == 200
    assert call.said == ["apology", "transfer"] * 3
    escalation = records.escalation(call)
    assert (escalation["language"], escalation["step"], escalation["reason"]) == (
        "da",
        "unknown",
        "application_error",
    )
    assert records.audit(call) == ["application_error", "escalated"]


# -- a twin that wins the race -----------------------------------------------------------------------------


@pytest.fixture
def twin_app(settings, clock):
    """A second process of the line on the same settings and SQLite file."""
    return create_app(settings, clock=clock)


def test_a_keys_webhook_that_loses_the_race_answers_what_its_twin_saved(dial, records, twin_app, monkeypatch):
    call = dial("en")
    request = call.pressing("2")
    plain_on_keys, winner = Engine.on_keys, []

    def twin_goes_first(self, state, keys):
        if not winner:  # while this webhook works, its twin runs start to end in the other process
            winner.append(twin := twin_of(call, twin_app))
            twin.send(request)
        return plain_on_keys(self, state, keys)

    monkeypatch.setattr(Engine, "on_keys", twin_goes_first)
    call.send(request)
    monkeypatch.undo()

    assert call.status == 200
    assert call.body == winner[0].body == records.session(call)["reply"]
    assert call.said == ["main_menu"]
    assert records.session(call)["turn"] == 2  # one step, not two
    assert call.press("0").queued


def test_a_first_webhook_that_loses_the_race_answers_what_its_twin_saved(app, records, twin_app, monkeypatch):
    call = Call(app, TOKEN, BASE, language="en", caller="+4574000001")
    plain_begin, winner = Engine.begin, []

    def twin_goes_first(self, state):
        if not winner:
            winner.append(twin := twin_of(call, twin_app))
            twin.dial()
        return plain_begin(self, state)

    monkeypatch.setattr(Engine, "begin", twin_goes_first)
    call.dial()
    monkeypatch.undo()

    assert call.status == 200
    assert call.body == winner[0].body
    assert call.said == ["welcome", "choose_language", "choose_language", "choose_language"]
    assert records.audit(call) == ["call_started"]  # the loser's writes were dropped
    assert len(records.rows("call_sessions")) == 1
    assert call.choose_language().said == ["main_menu"]


# -- the status callback ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["initiated", "ringing", "in-progress"])
def test_a_status_callback_for_a_call_still_going_is_204_and_changes_nothing(dial, records, status):
    call = dial("en").choose_language().press("2").press("1")
    session = records.session(call)
    call.post(f"{BASE}/voice/status", CallStatus=status, CallDuration="5")
    assert (call.status, call.body) == (204, "")
    assert records.session(call) == session
    assert "call_ended" not in records.audit(call)


@pytest.mark.parametrize("status", ["completed", "busy", "failed", "no-answer", "canceled"])
def test_a_status_callback_for_a_call_that_ended_is_204_and_scrubs_it(dial, records, status):
    call = dial("en").choose_language().press("2").press("100000001#")
    assert call.state.collected["document_number"] == "100000001"
    call.post(f"{BASE}/voice/status", CallStatus=status, CallDuration="42")
    assert (call.status, call.body) == (204, "")
    state = Records(call.app).session(call)
    assert "100000001" not in state["state"] + state["reply"]
    (ended,) = [r for r in records.rows("audit_events", call_sid=call.sid) if r["event"] == "call_ended"]
    assert ended["detail"] == f'{{"duration": 42, "status": "{status}", "step": "confirm_document"}}'


def test_a_status_callback_that_breaks_is_still_204(dial, monkeypatch):
    call = dial("en")

    def broken(*args, **kwargs):
        raise RuntimeError("the store is gone")

    monkeypatch.setattr(type(call.app.extensions["ivr"]), "status", broken)
    call.post(f"{BASE}/voice/status", CallStatus="completed", CallDuration="3")
    assert (call.status, call.body) == (204, "")
