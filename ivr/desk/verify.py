"""Assisted verification: an agent verifies a queued caller under the line's own rules.

The same `Gate` as the line's (same questions, same odds, same pass mark) and the same identity
counters: a caller who failed on the line fails here too, and guesses made here count there. The
calling number is not counted (the agent is asking, not the phone). What the agent sees is
"verified" or "not verified", the same words whatever the case, like the caller hears on the line.

The progress is kept in `desk_verifications`, never in the agent's cookie: counts and the chosen
questions, never an answer; the document number only until the desk is done with the call (it
is needed to find the caller again for the PIN and the user ID) or the verification fails.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ivr.actions import Services, temporary_pin_sms
from ivr.checks import CHECKS, answer_is_well_formed
from ivr.counters import SqlCounters
from ivr.desk.queue import Queue
from ivr.errors import BackendError
from ivr.outbox import Outbox
from ivr.ports import Document, DocumentType, Person
from ivr.questions import QUESTIONS
from ivr.state import Verification
from ivr.store import Store, desk_verifications, sms_outbox

PIN_KEY = "{call_sid}:desk_temporary_pin"
LINE = "line"
"""The `agent` of a verification the line made on the call and handed to the desk."""


@dataclass(frozen=True)
class Progress:
    """Where the desk's verification of one call is (nothing about whose identity it is)."""

    outcome: str | None  # None while questions remain; then "verified" or "not_verified"
    question: str | None  # the kind of the question to ask now
    asked: int
    total: int
    document_type: str
    by_line: bool = False
    """Verified by the line on this call, before the hand-over (the agent need not ask again)."""


class Verifier:
    def __init__(
        self, store: Store, services: Services, outbox: Outbox, queue: Queue, clock: Callable[[], dt.datetime]
    ) -> None:
        self.store = store
        self.services = services
        self.outbox = outbox
        self.queue = queue
        self.clock = clock

    @staticmethod
    def well_formed(document_type: str, number: str) -> bool:
        return document_type in set(DocumentType) and CHECKS[f"{document_type}_number"](number)

    def start(self, call_sid: str, agent: str, document_type: str, number: str) -> Progress:
        """Take a guess on the claimed identity and choose the questions (again, if the last
        verification of this call failed: the identity's guesses are counted all the same)."""
        document = Document(DocumentType(document_type), number)
        now = self.clock()
        v = self.services.gate.begin(
            SqlCounters.on(self.store), document, self._person(document), now, "desk"
        )
        row = {
            "agent": agent,
            "document_type": document_type,
            "document_number": number,
            "progress": v.model_dump_json(),
            "outcome": None,
            "started_at": now,
            "updated_at": now,
        }
        t = desk_verifications.c
        with self.store.connection() as connection:
            connection.execute(
                sa.delete(desk_verifications).where(
                    t.call_sid == call_sid, sa.or_(t.outcome.is_(None), t.outcome != "verified")
                )
            )
            connection.execute(sa.insert(desk_verifications).values(call_sid=call_sid, **row))
        self.queue.audit(call_sid, "desk_verification_started", agent=agent, guess_taken=bool(v.guesses))
        return _progress(v, document_type)

    def progress(self, call_sid: str) -> Progress | None:
        row = self._row(call_sid)
        if row is None:
            return None
        progress = _progress(Verification.model_validate_json(row["progress"]), row["document_type"])
        return dataclasses.replace(progress, by_line=row["agent"] == LINE)

    def answer(self, call_sid: str, agent: str, keys: str) -> Progress | None:
        """Note the caller's answer to the current question; after the last, decide.
        None when there is no verification waiting for an answer, or the answer is malformed."""
        row = self._row(call_sid)
        if row is None or row["outcome"] is not None or row["document_number"] is None:
            return None
        v = Verification.model_validate_json(row["progress"])
        if not answer_is_well_formed(v.current_question, keys):
            return None
        person = self._person(Document(DocumentType(row["document_type"]), row["document_number"]))
        v = self.services.gate.answer(v, person, keys)
        values: dict[str, Any] = {"updated_at": self.clock()}
        if v.asked >= len(v.questions):
            v, settled = self.services.gate.decide(SqlCounters.on(self.store), v, self.clock())
            values["outcome"] = v.outcome
            if v.outcome != "verified":
                values["document_number"] = None
            if settled == "locked":
                self.queue.audit(call_sid, "identity_locked", agent=agent)
            passed = "desk_verification_passed" if v.outcome == "verified" else "desk_verification_failed"
            self.queue.audit(call_sid, passed, agent=agent)
        values["progress"] = v.model_dump_json()
        t = desk_verifications.c
        with self.store.connection() as connection:
            connection.execute(sa.update(desk_verifications).where(t.call_sid == call_sid).values(values))
        return _progress(v, row["document_type"])

    def send_pin(self, call_sid: str, agent: str, language: str) -> str:
        """Order the temporary PIN by SMS to the registered mobile, once per call: "sent",
        "failed", "unknown", "already_sent", "no_mitid", "no_mobile", "mobile_recently_changed"
        or "not_verified"."""
        person = self._verified(call_sid)
        if person is None:
            return "not_verified"
        key = PIN_KEY.format(call_sid=call_sid)
        if self._pin_sent(call_sid):
            return "already_sent"
        now = self.clock()
        try:
            outcome, message = temporary_pin_sms(self.services, person, now, key, language)
        except BackendError:
            self.queue.audit(call_sid, "backend_failed", action="desk_send_pin", agent=agent)
            return "failed"
        if message is None:
            self.queue.audit(call_sid, "desk_pin_refused", agent=agent, why=outcome)
            return outcome
        try:
            with self.store.transaction(now, call_sid) as tx:
                tx.add_sms(message, call_sid, "temporary_pin")
                tx.audit(call_sid, "desk_pin_ordered", agent=agent)
        except sa.exc.IntegrityError:
            return "already_sent"
        status, _ = self.outbox.deliver(call_sid, message)
        self.queue.audit(call_sid, f"desk_sms_{status}", agent=agent)
        return status

    def user_id(self, call_sid: str, agent: str) -> str | None:
        """The verified caller's MitID user ID (None: they have no MitID); audited."""
        person = self._verified(call_sid)
        if person is None:
            raise PermissionError("the caller is not verified")
        account = self.services.backend.account(person.cpr)
        self.queue.audit(call_sid, "desk_user_id_shown" if account else "desk_user_id_none", agent=agent)
        return account.user_id if account else None

    def forget(self, call_sid: str) -> None:
        """The desk is done with the call: drop the document number; a verification left
        undecided is a failed one (its guess counts as a failure, as on the line)."""
        row = self._row(call_sid)
        if row is not None and row["outcome"] is None:
            v = Verification.model_validate_json(row["progress"])
            if self.services.gate.abandon(SqlCounters.on(self.store), v, self.clock()) is not None:
                self.queue.audit(call_sid, "desk_verification_abandoned", agent=row["agent"])
        t = desk_verifications.c
        with self.store.connection() as connection:
            connection.execute(
                sa.update(desk_verifications)
                .where(t.call_sid == call_sid)
                .values(document_number=None, outcome=sa.func.coalesce(t.outcome, "not_verified"))
            )

    def _verified(self, call_sid: str) -> Person | None:
        row = self._row(call_sid)
        if row is None or row["outcome"] != "verified" or row["document_number"] is None:
            return None
        person = self._person(Document(DocumentType(row["document_type"]), row["document_number"]))
        if person is None:
            raise BackendError("the register no longer knows the verified document")
        return person

    def _pin_sent(self, call_sid: str) -> bool:
        """Whether this call already has a PIN SMS that did not surely fail (the line's or ours)."""
        o = sms_outbox.c
        query = sa.select(o.id).where(o.call_sid == call_sid, o.body == "temporary_pin", o.status != "failed")
        with self.store.connection() as connection:
            return connection.execute(query.limit(1)).first() is not None

    def _person(self, document: Document) -> Person | None:
        return self.services.register.person_by_document(document)

    def _row(self, call_sid: str) -> dict[str, Any] | None:
        query = sa.select(desk_verifications).where(desk_verifications.c.call_sid == call_sid)
        with self.store.connection() as connection:
            row = connection.execute(query).first()
        return dict(row._mapping) if row else None


def _progress(v: Verification, document_type: str) -> Progress:
    done = v.asked >= len(v.questions) or v.outcome is not None
    return Progress(
        outcome=v.outcome,
        question=None if done else v.current_question,
        asked=v.asked,
        total=len(v.questions),
        document_type=document_type,
    )


def question_digits(kind: str) -> int | None:
    return QUESTIONS[kind].digits
