"""The line: each Twilio webhook runs here, in one transaction, from stored state to TwiML.

This is the imperative shell around the pure engine: load the call, check the turn (a replayed
or retried webhook gets the reply it already had and changes nothing), run the engine and its
actions, record escalations and the audit trail, save, commit, then send queued SMS.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from ivr import actions
from ivr.engine import ActionNeeded, Engine, Reply, Result
from ivr.errors import without_values
from ivr.outbox import dispatch
from ivr.ports import SmsSender
from ivr.state import CallState
from ivr.store import Conflict, Store, Tx
from ivr.twiml import Renderer

log = logging.getLogger(__name__)
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


@dataclass(frozen=True)
class Line:
    engine: Engine
    services: actions.Services
    renderer: Renderer
    store: Store
    sms: SmsSender
    clock: Callable[[], dt.datetime]
    minutes_per_caller_ahead: float = 3.0

    def answer(self, call_sid: str, caller: str | None) -> str:
        """A new call: start the flow (a retried first webhook gets the same answer)."""
        try:
            with self.store.transaction(self.clock(), call_sid) as tx:
                row = tx.session(call_sid)
                if row is not None:
                    return str(row.reply)
                state = CallState(
                    call_sid=call_sid,
                    caller_key=self.services.pseudonym(f"caller:{caller or 'unknown'}"),
                    step=self.engine.flow.start,
                )
                tx.audit(call_sid, "call_started")
                twiml = self._settle(tx, self.engine.begin(state), was=None)
        except Conflict:
            return self._stored_reply(call_sid)
        self._send_sms(tx)
        return twiml

    def keys(self, call_sid: str, turn: int | None, keys: str) -> str:
        """The caller keyed something (or nothing) at the step that asked in `turn`."""
        try:
            with self.store.transaction(self.clock(), call_sid) as tx:
                row = tx.session(call_sid)
                if row is None:
                    log.warning("keys for a call the line does not know")
                    return self.renderer.apology(self.engine.languages, to_agent=False)
                state = CallState.model_validate_json(row.state)
                if state.ended or turn != row.turn:
                    tx.audit(call_sid, "stale_webhook_ignored")
                    return str(row.reply)
                twiml = self._settle(tx, self.engine.on_keys(state, keys), was=row.turn)
        except Conflict:
            return self._stored_reply(call_sid)
        self._send_sms(tx)
        return twiml

    def status(self, call_sid: str, status: str | None, duration: int | None) -> None:
        """Twilio reports the call's progress; once it is over, forget the caller's secrets."""
        if status not in ENDED_STATUSES:
            return
        with self.store.transaction(self.clock(), call_sid) as tx:
            row = tx.session(call_sid)
            if row is None:
                return
            state = CallState.model_validate_json(row.state).scrubbed()
            # The last reply may spell the document number or the user ID: keep a goodbye instead.
            reply = self.renderer.goodbye(state.language)
            tx.save_session(call_sid, state, row.turn, reply, was=row.turn)
            tx.audit(call_sid, "call_ended", status=status, duration=duration, step=state.step)

    def wait(self, call_sid: str, position: int | None) -> str:
        """What a queued caller hears: their place in the queue and an estimate."""
        language = self._language(call_sid)
        place = max(position or 1, 1)
        minutes = max(1, math.ceil(place * self.minutes_per_caller_ahead))
        return self.renderer.queue_wait(language, place, minutes)

    def queue_exit(self, call_sid: str) -> str:
        return self.renderer.goodbye(self._language(call_sid))

    def apology(self, call_sid: str | None) -> str:
        """Last resort after an unexpected error: sorry, in the caller's language, then an agent."""
        languages = self.engine.languages
        try:
            if call_sid:
                languages = self._record_failure(call_sid)
        except Exception as error:  # the store itself may be what failed
            log.error("could not record the failed call: %s", without_values(error))
        return self.renderer.apology(languages, to_agent=True)

    def _settle(self, tx: Tx, result: Result, was: int | None) -> str:
        while isinstance(result, ActionNeeded):
            done = actions.run(result.action, self.services, tx, result.state, result.keys)
            pending = ActionNeeded(done.state, result.action, result.keys, result.speech, result.slots)
            result = self.engine.on_outcome(pending, done.outcome, done.slots)
        state = result.state.model_copy(update={"turn": result.state.turn + 1})
        if result.end == "agent":
            self._escalate(tx, state)
        if result.end is not None:
            state = state.scrubbed()
            tx.audit(state.call_sid, "flow_ended", step=state.step, end=result.end)
        reply = Reply(state, result.speech, result.slots, result.listen, result.end)
        twiml = self.renderer.reply(reply)
        tx.save_session(state.call_sid, state, state.turn, twiml, was=was)
        return twiml

    def _escalate(self, tx: Tx, state: CallState) -> None:
        number = state.collected.get("document_number")
        document = None
        if number:
            document = f"{state.collected.get('document_type')} ending {number[-2:]}"
        verification = state.verification.outcome if state.verification else None
        tx.add_escalation(
            call_sid=state.call_sid,
            language=state.language,
            intent=state.collected.get("intent"),
            verification=verification or ("in_progress" if state.verification else "not_started"),
            reason=state.escalation_reason or "unspecified",
            document=document,
            step=state.step,
        )
        tx.audit(state.call_sid, "escalated", reason=state.escalation_reason)

    def _record_failure(self, call_sid: str) -> tuple[str, ...]:
        """Note the failure and hand the call to an agent with what we know; the languages to
        apologise in (every one while the caller has not chosen theirs)."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            tx.audit(call_sid, "application_error")
            row = tx.session(call_sid)
            if row is None:
                return self.engine.languages
            state = CallState.model_validate_json(row.state)
            step = self.engine.flow.steps.get(state.step)
            chosen = not getattr(step, "say_in_every_language", False)
            languages = (state.language,) if chosen else self.engine.languages
            if not state.ended:
                state = state.model_copy(update={"escalation_reason": "application_error"})
                self._escalate(tx, state)
                # A late retry of the failed webhook hears the apology again, not the old menu.
                apology = self.renderer.apology(languages, to_agent=True)
                tx.save_session(call_sid, state.scrubbed(), row.turn + 1, apology, was=row.turn)
            return languages

    def _language(self, call_sid: str) -> str:
        with self.store.transaction(self.clock(), call_sid) as tx:
            row = tx.session(call_sid)
        return CallState.model_validate_json(row.state).language if row else self.engine.languages[0]

    def _stored_reply(self, call_sid: str) -> str:
        """What the call was last told: the answer for a webhook that lost a race to its twin."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            row = tx.session(call_sid)
        return str(row.reply) if row else self.renderer.apology(self.engine.languages, to_agent=True)

    def _send_sms(self, tx: Tx) -> None:
        """After the commit: send what this webhook queued (and anything left pending)."""
        if tx.queued_sms:
            dispatch(self.store, self.sms, self.clock)
