"""The flow's named actions: where the engine's decisions meet the register, the MitID back end,
the counters and the outbox. Each action returns an outcome the flow branches on.

Every action in ACTIONS runs inside the webhook's transaction, so what it records (the SMS in
the outbox, the audit trail) is committed together with the call's new state, or not at all.
Counters and locks are the exception: they are decided at once, atomically, in the store (see
`ivr.counters`), because a limit that waits for the commit does not hold. The actions in
AFTER_COMMIT (delivering the SMS) run after the commit, in the line itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ivr.counters import SqlCounters
from ivr.errors import BackendError, IvrError
from ivr.hours import OpeningHours, describe, is_open
from ivr.ports import CprRegister, Document, DocumentType, MitIdBackend, OutgoingSms, Person
from ivr.prompts import Catalog, OpeningTimes, Slot, Spelled
from ivr.state import CallState, Verification
from ivr.store import Tx
from ivr.verification import Gate


@dataclass(frozen=True)
class Services:
    register: CprRegister
    backend: MitIdBackend
    catalog: Catalog
    gate: Gate
    opening_hours: OpeningHours
    mobile_quarantine: dt.timedelta

    def pseudonym(self, value: str) -> str:
        """A keyed hash that stands for an identity or a number in the store, never the value."""
        return self.gate.pseudonym(value)


@dataclass(frozen=True)
class Done:
    outcome: str
    state: CallState
    slots: Mapping[str, Slot] = field(default_factory=dict)


Action = Callable[[Services, Tx, CallState, str], Done]


def check_opening_hours(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    if is_open(s.opening_hours, tx.now):
        return Done("open", state)
    return Done("closed", state, {"hours": OpeningTimes(tuple(describe(s.opening_hours)))})


def start_verification(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    counters = SqlCounters.of(tx)
    admission = s.gate.admit(counters, state.caller_key, state.caller_withheld, tx.now)
    if admission != "admitted":
        tx.audit(state.call_sid, "verification_refused", reason=admission)
        return Done(admission, state)
    verification = s.gate.begin(counters, _document(state), _person(s, state), tx.now)
    tx.audit(state.call_sid, "verification_started", guess_taken=bool(verification.guesses))
    return Done("ask", state.model_copy(update={"verification": verification}))


def check_answer(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    # The register is asked on every answer, whatever the case, so no case answers faster.
    v = s.gate.answer(_verification(state), _person(s, state), keys)
    outcome = "next_question" if v.asked < len(v.questions) else "complete"
    return Done(outcome, state.model_copy(update={"verification": v}))


def finish_verification(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    v, settled = s.gate.decide(SqlCounters.of(tx), _verification(state), tx.now)
    if settled == "locked":
        tx.audit(state.call_sid, "identity_locked")
    tx.audit(state.call_sid, "verification_passed" if settled == "passed" else "verification_failed")
    return Done(str(v.outcome), state.model_copy(update={"verification": v}))


USER_ID_GROUP = 4  # characters said together, then a short pause


def look_up_user_id(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    account = s.backend.account(_verified_person(s, state).cpr)
    if account is None:
        return Done("no_mitid", state)
    tx.audit(state.call_sid, "user_id_told")
    words = state.collected.get("spelling") == "words"
    return Done("found", state, {"user_id": Spelled(account.user_id, group=USER_ID_GROUP, words=words)})


def send_temporary_pin(s: Services, tx: Tx, state: CallState, keys: str) -> Done:
    person = _verified_person(s, state)
    if state.pin_issued:
        return Done("already_issued", state)
    key = f"{state.call_sid}:temporary_pin"
    outcome, message = temporary_pin_sms(s, person, tx.now, key, state.language)
    if outcome == "mobile_recently_changed":
        tx.audit(state.call_sid, "pin_refused_recent_mobile")
        days = str(round(s.mobile_quarantine / dt.timedelta(days=1)))
        return Done(outcome, state, {"quarantine_days": days})
    if message is None:
        return Done(outcome, state)
    tx.add_sms(message, state.call_sid, "temporary_pin")
    tx.audit(state.call_sid, "pin_ordered")  # the last digits are told once it is sent (line.py)
    return Done("issued", state.model_copy(update={"pin_issued": True}))


PinOutcome = Literal["issued", "no_mitid", "no_mobile", "mobile_recently_changed"]


def temporary_pin_sms(
    s: Services, person: Person, now: dt.datetime, key: str, language: str
) -> tuple[PinOutcome, OutgoingSms | None]:
    """The SMS with a temporary PIN for a verified person, to the mobile registered with their
    MitID, unless they have none or it changed within the quarantine (the line and the desk
    both send it this way). `key` makes it one SMS, and one PIN, however often it is asked for."""
    account = s.backend.account(person.cpr)
    if account is None:
        return "no_mitid", None
    if account.mobile is None or account.mobile_registered_at is None:
        return "no_mobile", None
    if account.mobile_registered_at > now - s.mobile_quarantine:
        return "mobile_recently_changed", None
    mobile, texts = account.mobile, s.catalog[language]

    def compose() -> str | None:
        """Issue the PIN, once the SMS has been saved as ordered: no PIN that was never sent
        can stand in the way of a retry, and none is issued twice (the key guards it)."""
        pin = s.backend.issue_temporary_pin(person.cpr, request_key=key)
        if pin is None:
            return None
        expires = texts.moment(pin.expires_at, zone_of(mobile))
        return texts.sms_text("temporary_pin", code=pin.code, expires=expires)

    return "issued", OutgoingSms(key, mobile, compose)


def zone_of(mobile: str) -> str:
    """The time zone a mobile's owner most likely reads the clock in (Greenland or Denmark)."""
    return "America/Nuuk" if mobile.startswith("+299") else "Europe/Copenhagen"


def _document(state: CallState) -> Document:
    return Document(DocumentType(state.collected["document_type"]), state.collected["document_number"])


def _person(s: Services, state: CallState) -> Person | None:
    return s.register.person_by_document(_document(state))


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
    "start_verification": (
        frozenset({"ask", "phone_limited", "hidden_number_limited", "failed"}),
        start_verification,
    ),
    "check_answer": (frozenset({"next_question", "complete", "failed"}), check_answer),
    "finish_verification": (frozenset({"verified", "not_verified"}), finish_verification),
    "look_up_user_id": (frozenset({"found", "no_mitid", "failed"}), look_up_user_id),
    "send_temporary_pin": (
        frozenset({"issued", "no_mitid", "no_mobile", "mobile_recently_changed", "already_issued", "failed"}),
        send_temporary_pin,
    ),
}


# Actions the line runs after the webhook's commit, outside any transaction (they wait on the
# outside world, and what they record must survive a crash): name -> outcomes.
AFTER_COMMIT: dict[str, frozenset[str]] = {"deliver_sms": frozenset({"sent", "failed"})}


def outcomes() -> dict[str, frozenset[str]]:
    """Every action a flow may name, with its outcomes."""
    return {**{name: declared for name, (declared, _) in ACTIONS.items()}, **AFTER_COMMIT}


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
