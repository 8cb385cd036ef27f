"""The flow's named actions: where the engine's decisions meet the register, the MitID back end,
the counters and the outbox. Each action returns an outcome the flow branches on.

Every action runs inside the webhook's transaction, so what it records (attempts, the SMS in the
outbox, the audit trail) is committed together with the call's new state, or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ivr import questions
from ivr.errors import BackendError, IvrError
from ivr.hours import OpeningHours, describe, is_open
from ivr.ports import CprRegister, Document, DocumentType, MitIdBackend, Person
from ivr.prompts import Catalog, OpeningTimes, Slot, Spelled
from ivr.state import CallState, Verification
from ivr.store import Tx


@dataclass(frozen=True)
class Policy:
    """The numbers an operator may tune (from `Settings`)."""

    questions_asked: int
    questions_pass_mark: int
    identity_max_failures: int
    identity_failure_window: dt.timedelta
    identity_lockout: dt.timedelta
    caller_verifications_per_hour: int
    mobile_quarantine: dt.timedelta
    opening_hours: OpeningHours


@dataclass(frozen=True)
class Services:
    register: CprRegister
    backend: MitIdBackend
    catalog: Catalog
    policy: Policy
    secret_key: bytes
    rng: random.Random = field(default_factory=random.SystemRandom)

    def pseudonym(self, value: str) -> str:
        """A keyed hash that stands for an identity or a number in the store, never the value."""
        return hmac.new(self.secret_key, value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Done:
    outcome: str
    state: CallState
    slots: Mapping[str, Slot] = field(default_factory=dict)


Action = Callable[[Services, Tx, CallState, str], Done]


def check_opening_hours(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    if is_open(s.policy.opening_hours, tx.now):
        return Done("open", state)
    return Done("closed", state, {"hours": OpeningTimes(tuple(describe(s.policy.opening_hours)))})


def start_verification(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    p = s.policy
    person = _person(s, state)
    document = f"{state.collected['document_type']}:{state.collected['document_number']}"
    identity_keys = [s.pseudonym(document)] + ([s.pseudonym(f"cpr:{person.cpr}")] if person else [])
    since = tx.now - p.identity_lockout
    locked = any(tx.count_attempts(key, "lock", since) for key in identity_keys)
    hour_ago = tx.now - dt.timedelta(hours=1)
    busy_caller = (
        tx.count_attempts(state.caller_key, "verification", hour_ago) >= p.caller_verifications_per_hour
    )
    tx.add_attempt(state.caller_key, "verification")
    kinds, answerable = questions.choose(person, p.questions_asked, s.rng)
    tx.audit(state.call_sid, "verification_started", identity_locked=locked, caller_limited=busy_caller)
    verification = Verification(
        identity_keys=identity_keys, questions=kinds, can_pass=answerable and not locked and not busy_caller
    )
    return Done("ask", state.model_copy(update={"verification": verification}))


def check_answer(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    v = _verification(state)
    right = False
    if v.can_pass:
        person = _person(s, state)
        right = person is not None and questions.is_right(v.current_question, person, keys)
    v = v.model_copy(update={"asked": v.asked + 1, "correct": v.correct + right})
    outcome = "next_question" if v.asked < len(v.questions) else "complete"
    return Done(outcome, state.model_copy(update={"verification": v}))


def finish_verification(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    v = _verification(state)
    p = s.policy
    if v.can_pass and v.correct >= p.questions_pass_mark:
        tx.audit(state.call_sid, "verification_passed")
        return Done(
            "verified",
            state.model_copy(update={"verification": v.model_copy(update={"outcome": "verified"})}),
        )
    for key in v.identity_keys:
        tx.add_attempt(key, "failure")
        failures = tx.count_attempts(key, "failure", tx.now - p.identity_failure_window)
        if failures >= p.identity_max_failures:
            tx.add_attempt(key, "lock")
            tx.audit(state.call_sid, "identity_locked")
    tx.audit(state.call_sid, "verification_failed")
    failed = v.model_copy(update={"outcome": "not_verified"})
    return Done("not_verified", state.model_copy(update={"verification": failed}))


def look_up_user_id(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    account = s.backend.account(_verified_person(s, state).cpr)
    if account is None:
        return Done("no_mitid", state)
    tx.audit(state.call_sid, "user_id_told")
    return Done("found", state, {"user_id": Spelled(account.user_id)})


def send_temporary_pin(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    person = _verified_person(s, state)
    if state.pin_issued:
        return Done("already_issued", state)
    account = s.backend.account(person.cpr)
    if account is None:
        return Done("no_mitid", state)
    if account.mobile is None or account.mobile_registered_at is None:
        return Done("no_mobile", state)
    if account.mobile_registered_at > tx.now - s.policy.mobile_quarantine:
        tx.audit(state.call_sid, "pin_refused_recent_mobile")
        days = str(round(s.policy.mobile_quarantine / dt.timedelta(days=1)))
        return Done("mobile_recently_changed", state, {"quarantine_days": days})
    pin = s.backend.issue_temporary_pin(person.cpr, request_key=f"{state.call_sid}:temporary_pin")
    if pin is None:
        return Done("already_issued", state)
    zone = ZoneInfo(s.policy.opening_hours.timezone)
    expires = pin.expires_at.astimezone(zone).strftime("%d.%m.%Y %H:%M")
    body = s.catalog[state.language].sms_text("temporary_pin", code=pin.code, expires=expires)
    tx.add_sms(f"{state.call_sid}:temporary_pin", state.call_sid, account.mobile, body)
    tx.audit(state.call_sid, "pin_issued")
    slots = {"mobile_last_digits": Spelled(account.mobile[-2:])}
    return Done("sent", state.model_copy(update={"pin_issued": True}), slots)


def _person(s: Services, state: CallState) -> Person | None:
    document = Document(DocumentType(state.collected["document_type"]), state.collected["document_number"])
    return s.register.person_by_document(document)


def _verification(state: CallState) -> Verification:
    if state.verification is None:
        raise IvrError(f"step {state.step!r} needs a verification in progress")
    return state.verification


def _verified_person(s: Services, state: CallState) -> Person:
    """The caller's register entry; only ever after they passed verification."""
    if _verification(state).outcome != "verified":
        raise IvrError(f"step {state.step!r} reached without verification")
    person = _person(s, state)
    if person is None:
        raise BackendError("the register no longer knows the verified document")
    return person


ACTIONS: dict[str, tuple[frozenset[str], Action]] = {
    "check_opening_hours": (frozenset({"open", "closed"}), check_opening_hours),
    "start_verification": (frozenset({"ask", "failed"}), start_verification),
    "check_answer": (frozenset({"next_question", "complete", "failed"}), check_answer),
    "finish_verification": (frozenset({"verified", "not_verified"}), finish_verification),
    "look_up_user_id": (frozenset({"found", "no_mitid", "failed"}), look_up_user_id),
    "send_temporary_pin": (
        frozenset({"sent", "no_mitid", "no_mobile", "mobile_recently_changed", "already_issued", "failed"}),
        send_temporary_pin,
    ),
}


def run(name: str, s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    """Run one named action; an outside system's failure is the outcome `failed`."""
    outcomes, action = ACTIONS[name]
    try:
        return action(s, tx, state, keys)
    except BackendError:
        if "failed" not in outcomes:
            raise
        tx.audit(state.call_sid, "backend_failed", action=name)
        return Done("failed", state)
