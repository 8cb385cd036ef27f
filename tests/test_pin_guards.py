"""When the line must not send a temporary PIN, even to a caller who passed verification.

A mobile the back end cannot say when it was registered is treated as no registered mobile (an
agent takes over); and a call that was already given its PIN gets no second one, even from a
back end that would issue one for every request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ivr import actions
from ivr.ports import MitIdAccount
from ivr.state import CallState, Verification
from tests.calls import Records


class Backend:
    """The demo MitID back end, changed in one respect by a subclass."""

    def __init__(self, demo: Any) -> None:
        self.demo = demo

    def __getattr__(self, name: str) -> Any:  # what Records reads (the PIN table) comes from the demo
        return getattr(self.demo, name)

    def account(self, cpr: str) -> MitIdAccount | None:
        return self.demo.account(cpr)

    def issue_temporary_pin(self, cpr: str, request_key: str):
        return self.demo.issue_temporary_pin(cpr, request_key)


class UndatedMobile(Backend):
    """Knows every mobile, but not when any of them was registered."""

    def account(self, cpr: str) -> MitIdAccount | None:
        account = self.demo.account(cpr)
        return account and dataclasses.replace(account, mobile_registered_at=None)


class IssuesEveryTime(Backend):
    """Issues a new PIN for every request, whatever its key (no idempotency of its own)."""

    requests = 0

    def issue_temporary_pin(self, cpr: str, request_key: str):
        self.requests += 1
        return self.demo.issue_temporary_pin(cpr, f"{request_key}#{self.requests}")


def use_backend(app, kind: type[Backend]) -> None:
    line = app.extensions["ivr"]
    services = dataclasses.replace(line.services, backend=kind(line.services.backend))
    app.extensions["ivr"] = dataclasses.replace(line, services=services)


def test_a_mobile_with_no_registration_date_gets_no_pin_and_goes_to_an_agent(app, dial, cases, records):
    use_backend(app, UndatedMobile)
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "temporary_pin").answer_questions(person)

    assert call.said == ["no_registered_mobile", "transfer", "context_kept"]
    assert call.queued
    assert records.escalation(call)["reason"] == "no_registered_mobile"
    assert records.sms(call) == []
    assert records.texts_to() == []
    assert records.rows("demo_temporary_pins") == []


def verified_state(person, call_sid: str, **update: Any) -> CallState:
    document = person.person.documents[0]
    verification = Verification(identity_keys=[], questions=[], can_pass=True, outcome="verified")
    collected = {"intent": "temporary_pin", "document_type": document.type.value}
    collected["document_number"] = document.number
    state = CallState(call_sid=call_sid, caller_key="k", step="send_temporary_pin", language="en")
    return state.model_copy(update={"collected": collected, "verification": verification, **update})


def send_pin(app, state: CallState) -> str:
    """Run the action as a webhook would; its outcome (the call's state goes on unchanged unless
    a PIN was issued)."""
    line = app.extensions["ivr"]
    with line.store.transaction(line.clock(), state.call_sid) as tx:
        done = actions.run("send_temporary_pin", line.services, tx, state, "")
    assert done.state == (
        state.model_copy(update={"pin_issued": True}) if done.outcome == "issued" else state
    )
    return done.outcome


def test_a_call_that_was_given_its_pin_is_not_given_another(app, cases):
    use_backend(app, IssuesEveryTime)
    records, person = Records(app), cases["ordinary"]

    assert send_pin(app, verified_state(person, "CA-first")) == "issued"
    # The PIN itself is issued only when its SMS goes, after the call is saved as ordering it.
    assert records.rows("demo_temporary_pins") == []

    again = verified_state(person, "CA-first", pin_issued=True)
    assert send_pin(app, again) == "already_issued"
    assert records.rows("demo_temporary_pins") == []
    assert len(records.rows("sms_outbox")) == 1
    assert len(records.rows("audit_events", event="pin_ordered")) == 1


def test_even_while_the_back_end_is_down_a_second_pin_is_refused_plainly(app, cases):
    """The call's own record that it was given a PIN decides, before the back end is asked."""
    use_backend(app, IssuesEveryTime)
    person = cases["backend_fails"]
    assert send_pin(app, verified_state(person, "CA-down", pin_issued=True)) == "already_issued"
    assert send_pin(app, verified_state(person, "CA-down-2")) == "failed"


# A webhook that dies after the back end issued a PIN cannot happen: the PIN is issued only after
# the call is saved (tests/test_outbox.py: test_a_webhook_that_dies_before_its_commit_...).


def test_the_call_records_that_it_was_given_a_pin(dial, cases, records):
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.said == ["pin_sent", "goodbye"]
    assert call.state.pin_issued
    other = dial("en").choose_language().identify(cases["passport_and_licence"], "user_id")
    assert not other.answer_questions(cases["passport_and_licence"]).state.pin_issued


class RegisteredExactlyAtTheQuarantine(Backend):
    """Every mobile was registered exactly the quarantine (120 hours) before now."""

    def account(self, cpr: str) -> MitIdAccount | None:
        account = self.demo.account(cpr)
        registered = self.demo._clock() - dt.timedelta(hours=120)
        return account and dataclasses.replace(account, mobile_registered_at=registered)


def test_a_mobile_registered_the_whole_quarantine_ago_gets_the_pin(app, dial, cases, records):
    use_backend(app, RegisteredExactlyAtTheQuarantine)
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.said == ["pin_sent", "goodbye"]
    assert len(records.texts_to(person.account.mobile)) == 1
