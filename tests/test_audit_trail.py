"""The audit trail: every decision a call leads to is written down, in order, with its detail.

Each journey below is a whole call; what is checked is that the events it must leave are in the
call's audit trail in this order (other events may come between: the trail may grow) and what
their detail says. No event holds a value the caller keyed (see test_security.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.calls import Call, Records
from tests.conftest import BASE


def trail(records: Records, call: Call) -> list[tuple[str, dict[str, Any]]]:
    return [(r["event"], json.loads(r["detail"])) for r in records.rows("audit_events", call_sid=call.sid)]


def assert_in_order(records: Records, call: Call, *expected: tuple[str, dict[str, Any]] | str) -> None:
    """Each expected event (a name, or a name with its exact detail) occurs, in this order."""
    events, at = trail(records, call), 0
    for want in expected:
        name, detail = (want, None) if isinstance(want, str) else want
        for n in range(at, len(events)):
            if events[n][0] == name and detail in (None, events[n][1]):
                at = n + 1
                break
        else:
            raise AssertionError(f"{want} missing (after position {at}) in {events}")


def test_a_user_id_call(dial, cases, records):
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "user_id").answer_questions(person)
    call.press("1").press("2").hang_up(duration=75)
    assert_in_order(
        records,
        call,
        ("call_started", {"withheld": False}),
        ("verification_started", {"guess_taken": True}),
        "verification_passed",
        "user_id_told",
        "user_id_told",
        ("flow_ended", {"end": "hangup", "step": "goodbye"}),
        ("call_ended", {"duration": 75, "status": "completed", "step": "goodbye"}),
    )
    assert "verification_failed" not in records.audit(call)


def test_a_temporary_pin_call(dial, cases, records):
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert_in_order(
        records,
        call,
        "call_started",
        "verification_started",
        "verification_passed",
        "pin_ordered",
        "sms_sent",
        ("flow_ended", {"end": "hangup", "step": "pin_sent"}),
    )


def test_a_withheld_number_is_noted_as_such(app, cases, records):
    call = Call(app, "test-auth-token", BASE, language="en", caller="anonymous").dial()
    assert_in_order(records, call, ("call_started", {"withheld": True}))


def test_wrong_answers_then_the_lock(dial, cases, records):
    person = cases["ordinary"]
    calls = [
        dial("en").choose_language().identify(person, "user_id").answer_questions(person, right=0)
        for _ in range(3)
    ]
    for call in calls[:2]:
        assert_in_order(
            records,
            call,
            ("verification_started", {"guess_taken": True}),
            "verification_failed",
            ("flow_ended", {"end": "hangup", "step": "cannot_verify"}),
        )
    assert_in_order(records, calls[2], "identity_locked", "verification_failed")
    locked = dial("en").choose_language().identify(person, "user_id").answer_questions(person)
    assert_in_order(records, locked, ("verification_started", {"guess_taken": False}), "verification_failed")
    assert "verification_passed" not in records.audit(locked)


def test_a_refused_verification(dial, cases, records):
    person = cases["ordinary"]
    for _ in range(5):
        dial("en", caller="+4575000001").choose_language().identify(person, "user_id").hang_up()
    sixth = dial("en", caller="+4575000001").choose_language().identify(person, "user_id")
    assert_in_order(records, sixth, ("verification_refused", {"reason": "phone_limited"}), "flow_ended")
    assert "verification_started" not in records.audit(sixth)


def test_a_recently_changed_mobile(dial, cases, records):
    person = cases["mobile_changed_48h"]
    call = dial("en").choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert_in_order(
        records,
        call,
        "verification_passed",
        "pin_refused_recent_mobile",
        ("escalated", {"reason": "mobile_recently_changed"}),
        ("flow_ended", {"end": "agent", "step": "mobile_recently_changed"}),
    )
    assert "pin_ordered" not in records.audit(call)


@pytest.mark.parametrize("intent", ["user_id", "temporary_pin"])
def test_a_back_end_failure(dial, cases, records, intent):
    person = cases["backend_fails"]
    call = dial("en").choose_language().identify(person, intent).answer_questions(person)
    action = {"user_id": "look_up_user_id", "temporary_pin": "send_temporary_pin"}[intent]
    assert_in_order(
        records,
        call,
        "verification_passed",
        ("backend_failed", {"action": action}),
        ("escalated", {"reason": "backend_failure"}),
        ("flow_ended", {"end": "agent", "step": "backend_failure"}),
    )


def test_a_stale_webhook(dial, records):
    call = dial("en").choose_language()
    old = call.requests[-1]
    call.press("1")
    call.send(old)
    assert_in_order(records, call, "call_started", "stale_webhook_ignored")


def test_a_request_from_another_number(dial, records):
    call = dial("en")
    request = call.pressing("1")
    forged = Call(call.app, "test-auth-token", BASE, caller="+4599999999", sid=call.sid)
    forged.send(forged.request(request.url, Digits="1"))
    assert forged.status == 403
    assert_in_order(records, call, "call_started", ("caller_mismatch", {"route": "/voice/keys"}))
    assert call.step == "choose_language"


def test_a_call_swept_after_it_went_quiet(app, dial, clock, records):
    call = dial("en").choose_language().press("2").press("100000001#")
    clock.advance(hours=3)
    assert app.extensions["ivr"].sweep() == 1
    assert_in_order(records, call, ("call_swept", {"step": "confirm_document"}))
    assert "100000001" not in records.session(call)["state"]
