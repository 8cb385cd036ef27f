"""The identity gate's limits, end to end: how many failures lock an identity, how long failures
count and a lock lasts, and how many verifications a calling number (or the shared bucket of
withheld numbers) may start in an hour.

Every call here is a whole call; what is checked is what the caller hears and what the line
wrote down (the audit trail, the escalation).
"""

from __future__ import annotations

import itertools
import json

import pytest

from ivr import create_app
from tests.calls import Call, Records
from tests.conftest import BASE, TOKEN

_numbers = itertools.count(1)


def verify(app, person, *, right: bool, caller: str | None = None, language: str = "en") -> Call:
    """One whole user-ID call from a number of its own: answers all right, or all wrong."""
    caller = caller or f"+4571{next(_numbers):06d}"
    call = Call(app, TOKEN, BASE, language=language, caller=caller).dial().choose_language()
    return call.identify(person, "user_id").answer_questions(person, right=99 if right else 0)


def passed(call: Call) -> bool:
    if call.said == ["user_id_is", "user_id_again"]:
        return True
    assert call.said == ["cannot_verify", "goodbye"], call.heard
    return False


def refusal(records: Records, call: Call) -> dict[str, str]:
    """The detail of the call's one `verification_refused` audit event."""
    (row,) = records.rows("audit_events", call_sid=call.sid, event="verification_refused")
    return dict(json.loads(row["detail"]))


def line(settings, clock, **tuning):
    return create_app(settings.model_copy(update=tuning), clock=clock)


# -- failures and locks -------------------------------------------------------------------------------


@pytest.mark.parametrize("failures", [0, 1, 2])
def test_fewer_failures_than_the_limit_still_let_the_right_answers_pass(app, cases, failures):
    person = cases["ordinary"]
    for _ in range(failures):
        call = verify(app, person, right=False)
        assert "identity_locked" not in Records(app).audit(call)
    assert passed(verify(app, person, right=True))


def test_the_failure_that_reaches_the_limit_locks_the_identity(app, cases, records):
    person = cases["ordinary"]
    calls = [verify(app, person, right=False) for _ in range(3)]
    assert ["identity_locked" in records.audit(call) for call in calls] == [False, False, True]
    assert not passed(verify(app, person, right=True))


def test_a_lower_limit_locks_sooner(settings, clock, cases):
    app = line(settings, clock, identity_max_failures=1)
    person = cases["ordinary"]
    first = verify(app, person, right=False)
    assert "identity_locked" in Records(app).audit(first)
    assert not passed(verify(app, person, right=True))


def test_a_pass_does_not_count_as_a_failure(app, cases, records):
    person = cases["ordinary"]
    for _ in range(4):
        assert passed(verify(app, person, right=True))
    failures = [verify(app, person, right=False) for _ in range(2)]
    assert not any("identity_locked" in records.audit(call) for call in failures)
    assert passed(verify(app, person, right=True))


def test_failures_on_one_identity_do_not_lock_another(app, cases):
    for _ in range(3):
        verify(app, cases["ordinary"], right=False)
    assert passed(verify(app, cases["passport_and_licence"], right=True))


@pytest.mark.parametrize(("hours", "locked"), [(23.9, True), (24.1, False)])
def test_failures_count_for_the_failure_window(settings, clock, cases, hours, locked):
    """Failures older than the window (24 h) no longer count towards the limit."""
    app = line(settings, clock, identity_lockout_hours=48)
    person = cases["ordinary"]
    verify(app, person, right=False)
    verify(app, person, right=False)
    clock.advance(hours=hours)
    third = verify(app, person, right=False)
    assert ("identity_locked" in Records(app).audit(third)) is locked
    assert passed(verify(app, person, right=True)) is not locked


@pytest.mark.parametrize(("hours", "locked"), [(24.5, True), (47.9, True), (48.1, False)])
def test_a_lock_lasts_for_the_lockout_even_once_the_failures_are_old(settings, clock, cases, hours, locked):
    app = line(settings, clock, identity_lockout_hours=48)
    person = cases["ordinary"]
    for _ in range(3):
        verify(app, person, right=False)
    clock.advance(hours=hours)
    assert passed(verify(app, person, right=True)) is not locked


@pytest.mark.parametrize(("hours", "locked"), [(23.9, True), (24.1, False)])
def test_the_default_lock_lasts_a_day(app, clock, cases, hours, locked):
    person = cases["ordinary"]
    for _ in range(3):
        verify(app, person, right=False)
    clock.advance(hours=hours)
    assert passed(verify(app, person, right=True)) is not locked


def test_a_call_that_hung_up_during_the_questions_keeps_counting_as_a_try(app, cases):
    """A guess never decided (the caller hung up) counts like a failure while it is in the window."""
    person = cases["ordinary"]
    for _ in range(3):
        call = Call(app, TOKEN, BASE, language="en", caller=f"+4572{next(_numbers):06d}").dial()
        call.choose_language().identify(person, "user_id").hang_up()
    assert not passed(verify(app, person, right=True))


# -- calling numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("minutes", "admitted"), [(59, False), (61, True)])
def test_a_number_gets_its_verifications_back_after_an_hour(app, clock, cases, records, minutes, admitted):
    busy, person = "+4573000001", cases["ordinary"]
    for _ in range(5):
        assert passed(verify(app, person, right=True, caller=busy))
    clock.advance(minutes=minutes)
    call = Call(app, TOKEN, BASE, language="en", caller=busy).dial().choose_language()
    call.identify(person, "user_id")
    if admitted:
        assert passed(call.answer_questions(person))
    else:
        assert call.said == ["phone_limited", "goodbye"]
        assert "verification_refused" in records.audit(call)


def test_withheld_numbers_share_a_bucket_of_their_own_size(settings, clock, cases):
    app = line(settings, clock, caller_verifications_per_hour=1, withheld_verifications_per_hour=2)
    records, person = Records(app), cases["ordinary"]
    for _ in range(2):
        assert passed(verify(app, person, right=True, caller="anonymous"))
    refused = Call(app, TOKEN, BASE, language="en", caller="Restricted").dial().choose_language()
    refused.identify(person, "user_id")
    assert refused.said == ["hidden_number_limited", "transfer"]
    assert refused.queued
    assert records.escalation(refused)["reason"] == "hidden_number_limited"
    assert refusal(records, refused) == {"reason": "hidden_number_limited"}
    # A number of its own still has its own (smaller) allowance, and then hears it is blocked.
    assert passed(verify(app, person, right=True, caller="+4573000002"))
    blocked = Call(app, TOKEN, BASE, language="en", caller="+4573000002").dial().choose_language()
    assert blocked.identify(person, "user_id").said == ["phone_limited", "goodbye"]
    assert refusal(records, blocked) == {"reason": "phone_limited"}


def test_a_call_still_answering_is_not_failed_by_other_calls_failing(app, cases, records):
    """Other calls' failures on the same identity neither decide this call's try nor lock the
    identity before the limit: it passes with the right answers."""
    person = cases["ordinary"]
    answering = Call(app, TOKEN, BASE, language="en", caller="+4578000001").dial().choose_language()
    answering.identify(person, "user_id")
    assert answering.asked
    others = [verify(app, person, right=False) for _ in range(2)]
    assert not any("identity_locked" in records.audit(call) for call in others)
    assert passed(answering.answer_questions(person))
