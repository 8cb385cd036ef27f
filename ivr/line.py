"""The line: each Twilio webhook runs here, in one transaction, from stored state to TwiML.

This is the imperative shell around the pure engine: load the call, check that the request
comes from the call's own number and is for the turn the call is at (a replayed or retried
webhook gets the reply it already had and changes nothing), run the engine and its actions,
record escalations and the audit trail, save, commit. An action that waits on the outside world
after the commit (sending the SMS) runs then, and the call goes on with its outcome in a second
short transaction, so the caller hears "sent" only when the SMS was taken.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from ivr import actions, handover, hours, logs
from ivr.counters import SqlCounters
from ivr.engine import ActionNeeded, Engine, Reply, Result
from ivr.errors import IvrError, without_values
from ivr.outbox import Outbox
from ivr.ports import OutgoingSms
from ivr.prompts import Spelled
from ivr.state import CallState, Verification
from ivr.store import (
    Conflict,
    SessionRow,
    Store,
    Tx,
    audit_events,
    call_sessions,
    desk_verifications,
    escalations,
    when_reachable,
)
from ivr.twiml import Renderer

log = logging.getLogger(__name__)
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# Twilio's `QueueResult`s for a caller whom Twilio itself dropped from the queue.
QUEUE_DROPPED = frozenset({"error", "system-shutdown"})


class CallerMismatch(IvrError):
    """A request for a known call came from another number than the call's own."""


@functools.lru_cache(maxsize=128)
def parsed(text: str) -> CallState:
    """A stored call state, parsed once per webhook however often it is asked for (a state is
    never changed in place: every change is a copy)."""
    return CallState.model_validate_json(text)


HOME_PREFIXES = ("+45", "+299")  # Denmark and Greenland: Danish first
GREENLAND = "+299"  # ... and Greenlandic offered next


def first_language(caller: str | None, languages: tuple[str, ...]) -> str:
    """The language a new call hears first: Danish from a Danish or Greenlandic number (or a
    withheld one), else English; the caller is offered every language all the same."""
    home = caller is None or caller.startswith(HOME_PREFIXES)
    wanted = "da" if home else "en"
    return wanted if wanted in languages else languages[0]


def offered_order(caller: str | None, languages: tuple[str, ...]) -> list[str]:
    """The language menu's order: the first language, then Greenlandic for a Greenlandic number,
    then the others as the prompt files come."""
    first = [first_language(caller, languages)]
    if caller is not None and caller.startswith(GREENLAND) and "kl" in languages:
        first.append("kl")
    return list(dict.fromkeys(first + list(languages)))


@dataclass(frozen=True)
class Line:
    engine: Engine
    services: actions.Services
    renderer: Renderer
    store: Store
    outbox: Outbox
    clock: Callable[[], dt.datetime]
    minutes_per_caller_ahead: float = 3.0
    stale_after: dt.timedelta = dt.timedelta(hours=2)

    def caller_key(self, caller: str | None) -> str:
        """The pseudonym a call is bound to: its number's, or one shared by withheld numbers."""
        return self.services.pseudonym(f"caller:{caller or 'withheld'}")

    def answer(self, call_sid: str, caller: str | None) -> str:
        """A new call: start the flow (a retried first webhook gets the same answer)."""

        def work(tx: Tx) -> str | ActionNeeded:
            row = self._own_session(tx, call_sid, caller)
            if row is not None:
                return str(row.reply)
            state = CallState(
                call_sid=call_sid,
                caller_key=self.caller_key(caller),
                caller_withheld=caller is None,
                step=self.engine.flow.start,
                language=first_language(caller, self.engine.languages),
                offered=offered_order(caller, self.engine.languages),
            )
            tx.audit(call_sid, "call_started", withheld=caller is None)
            return self._settle(tx, self.engine.begin(state), was=None)

        return self._webhook(call_sid, work)

    def keys(self, call_sid: str, turn: int | None, keys: str, caller: str | None) -> str:
        """The caller keyed something (or nothing) at the step that asked in `turn`."""

        def work(tx: Tx) -> str | ActionNeeded:
            row = self._own_session(tx, call_sid, caller)
            if row is None:
                log.warning("keys for a call the line does not know")
                return self._unknown_call(tx, call_sid)
            state = parsed(row.state)
            if state.ended or turn != row.turn:
                tx.audit(call_sid, "stale_webhook_ignored")
                return str(row.reply)
            return self._settle(tx, self.engine.on_keys(state, keys), was=row.turn)

        return self._webhook(call_sid, work)

    def status(self, call_sid: str, status: str | None, duration: int | None, caller: str | None) -> None:
        """Twilio reports the call's progress; once it is over, forget the caller's secrets."""
        if status not in ENDED_STATUSES:
            return

        def ended() -> None:
            with self.store.transaction(self.clock(), call_sid) as tx:
                row = self._own_session(tx, call_sid, caller)
                if row is not None:
                    self._scrub(tx, row, "call_ended", status=status, duration=duration)
                handover.move_in(tx, "caller_left", call_sid, caller_left_at=tx.now)

        when_reachable(ended)  # a store restarting now must not lose that the caller left

    def wait(
        self,
        call_sid: str,
        position: int | None,
        caller: str | None,
        queue_sid: str | None,
        unrecorded: bool = False,
    ) -> str:
        """What a queued caller hears: their place in the queue and an estimate; or, once an
        agent has taken the call and it is put through, the way out of the queue. A caller
        queued while the store could not record the hand-over (`unrecorded`) gets it recorded."""
        place = max(position or 1, 1)
        if unrecorded:
            with self.store.transaction(self.clock(), call_sid) as tx:
                known = handover.escalation(tx, call_sid) is not None
            if not known:
                self._record_failure(call_sid, caller, "handover_recorded_late")
        with self.store.transaction(self.clock(), call_sid) as tx:
            language = self._language_in(tx, call_sid, caller)
            escalation = handover.escalation(tx, call_sid)
            if escalation is not None:
                handover.record_wait(tx, call_sid, queue_sid, first=escalation.queue_sid is None)
            if handover.is_put_through(escalation):
                return self.renderer.leave_queue()
            today = hours.day_start(self.services.opening_hours, tx.now)
            usual = self.minutes_per_caller_ahead
            minutes = handover.wait_minutes(tx.reader, place, tx.now, today, usual)
        return self.renderer.queue_wait(language, place, minutes)

    def queue_exit(self, call_sid: str, caller: str | None, result: str | None) -> str:
        """The caller left the queue (Twilio's `QueueResult`): on to the agent who took the call;
        hung up; back into the queue when Twilio dropped them from it (an error, a restart);
        goodbye after an agent who phoned in was bridged to them, or when the queue is full."""

        def left() -> tuple[str, Any]:
            with self.store.transaction(self.clock(), call_sid) as tx:
                language = self._language_in(tx, call_sid, caller)
                escalation = handover.escalation(tx, call_sid)
                if result == "hangup":
                    handover.move_in(tx, "caller_left", call_sid, caller_left_at=tx.now)
                elif result in QUEUE_DROPPED:
                    tx.audit(call_sid, "queue_dropped", result=result)
            return language, escalation

        language, escalation = when_reachable(left)  # a store restarting now must not cut them off
        if result in ("leave", *QUEUE_DROPPED) and handover.is_put_through(escalation):
            return self.renderer.to_connect()  # the agent who took the call is waiting for them
        open_ = (handover.Status.WAITING, *handover.TAKEN)
        if result in QUEUE_DROPPED and escalation is not None and escalation.status in open_:
            return self.renderer.requeue(language)
        return self.renderer.goodbye(language)

    def connect(self, call_sid: str, caller: str | None) -> str:
        """Dial the agent who took the call; if they cannot be dialled, back to the queue."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            language = self._language_in(tx, call_sid, caller)
            escalation = handover.escalation(tx, call_sid)
            taken = escalation is not None and escalation.status == handover.Status.CONNECTING
            agent = handover.agent(tx, escalation.agent) if taken and escalation else None
            if agent is None or not agent.phone:
                handover.move_in(tx, "back_to_queue", call_sid, agent=None, put_through_at=None)
                tx.audit(call_sid, "agent_unreachable", taken=taken)
                return self.renderer.requeue(language)
            handover.move_in(tx, "put_through", call_sid, connected_at=tx.now)
            tx.audit(call_sid, "put_through", agent=agent.username)
        return self.renderer.connect(language, agent.phone, call_sid)

    def dial_ended(self, call_sid: str, caller: str | None, dial_status: str | None) -> str:
        """The agent's leg ended (Twilio's `DialCallStatus`): after a conversation ("completed",
        or "answered"), goodbye; if the agent never answered, back to the queue for the next
        agent (the call is not lost)."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            language = self._language_in(tx, call_sid, caller)
            if dial_status in ("completed", "answered"):
                return self.renderer.goodbye(language)
            handover.move_in(tx, "back_to_queue", call_sid, agent=None, put_through_at=None)
            tx.audit(call_sid, "agent_did_not_answer", dial_status=dial_status)
        return self.renderer.requeue(language)

    def dequeued(self, call_sid: str, caller: str | None, agent: str) -> str:
        """An agent who phoned in took this caller out of the queue: mark it, and tell them.
        Twilio has bridged them already, so the phone wins over a desk agent who took the
        call a moment before (that agent is free again)."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            language = self._language_in(tx, call_sid, caller)
            handover.move_in(tx, "taken_by_phone", call_sid, agent=agent, connected_at=tx.now)
            tx.audit(call_sid, "put_through", agent=agent, by="phone")
        return self.renderer.dequeued(language)

    def whisper(self, call_sid: str) -> str:
        """What the agent hears before the caller is put through, in the agent's language
        (the request is the agent's leg: `call_sid` names the caller's call)."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            escalation = handover.escalation(tx, call_sid)
            agent = handover.agent(tx, escalation.agent) if escalation is not None else None
        if escalation is None or agent is None or escalation.status not in handover.TAKEN:
            log.warning("refused a whisper for a call no agent is taking")
            return self.renderer.goodbye(self.engine.languages[0])
        return self.renderer.whisper(agent.language, handover.context(escalation))

    def apology(self, call_sid: str | None, caller: str | None, reason: str) -> str:
        """Last resort after an unexpected error: sorry, in the caller's language, then an agent
        who gets the call's context (whatever the store can still take)."""
        languages, recorded = self.engine.languages, True
        try:
            if call_sid:
                languages = when_reachable(lambda: self._record_failure(call_sid, caller, reason))
        except CallerMismatch:
            raise
        except Exception as error:  # the store itself may be what failed
            log.error("could not record the failed call: %s", without_values(error))
            recorded = False
        return self.renderer.apology(languages, to_agent=True, recorded=recorded)

    def note(self, call_sid: str | None, event: str, **detail: object) -> None:
        """Write one event into the audit trail, if the store can take it."""
        try:
            with self.store.transaction(self.clock(), call_sid or "") as tx:
                tx.audit(call_sid, event, **detail)
        except Exception as error:
            log.error("could not audit %s: %s", event, without_values(error))

    def sweep(self) -> int:
        """Scrub calls that never got their end-of-call status in time, settle SMS left behind by
        a crash, and fold the write-ahead log, so cleared values are gone from the files."""
        before = self.clock() - self.stale_after
        c = call_sessions.c
        with self.store.connection() as connection:
            stale = connection.execute(
                sa.select(c.call_sid).where(c.ended.is_(False), c.updated_at < before)
            ).scalars()
            call_sids = list(stale)
        for call_sid in call_sids:
            with self.store.transaction(self.clock(), call_sid) as tx:
                row = tx.session(call_sid)
                if row is not None and not row.ended:
                    self._scrub(tx, row, "call_swept")
                    handover.move_in(tx, "caller_left", call_sid, caller_left_at=tx.now)
        self._sweep_handovers()
        with self.store.connection() as connection:  # the desk's verifications left unfinished
            d = desk_verifications.c
            forgotten = sa.update(desk_verifications).where(
                d.document_number.isnot(None), d.updated_at < before
            )
            connection.execute(forgotten.values(document_number=None))
        self.outbox.resolve_stale()
        if not self.store.checkpoint():
            log.warning("the write-ahead log was busy; the next sweep folds it")
        return len(call_sids)

    def _sweep_handovers(self) -> None:
        """Callers in the queue whose wait URL Twilio has not asked for in minutes (their
        end-of-call status lost, say in a database outage): they have left, so no agent is to
        take them. (One an agent holds stays: the agent wraps it up as ever.)"""
        e = escalations.c
        silent_since = self.clock() - handover.QUEUE_SILENCE
        last_heard = sa.func.coalesce(e.waited_at, e.created_at)
        query = sa.select(e.call_sid).where(e.status == handover.Status.WAITING, last_heard < silent_since)
        with self.store.connection() as connection:
            for call_sid in list(connection.execute(query).scalars()):
                now = self.clock()
                if handover.move(connection, "caller_left", handover.of_call(call_sid), caller_left_at=now):
                    _audit_now(connection, now, call_sid, "handover_swept")

    # -- one webhook ---------------------------------------------------------------------------

    def _webhook(self, call_sid: str, work: Callable[[Tx], str | ActionNeeded]) -> str:
        """Run `work` in the call's transaction, then any action it left for after the commit."""
        try:
            done, tx = self._in_transaction(call_sid, work)
        except Conflict:
            return self._stored_reply(call_sid)
        message = next(iter(tx.outgoing), None)
        while isinstance(done, ActionNeeded):
            done = self._after_commit(done, message)
            message = None
        return done

    def _in_transaction(
        self, call_sid: str, work: Callable[[Tx], str | ActionNeeded]
    ) -> tuple[str | ActionNeeded, Tx]:
        """`work` in the call's transaction, and the transaction. Should the database drop the
        connection (a restart, a failover; the pool has dropped the rest), the work runs once
        more on a new one, unless the COMMIT had been carried out all the same."""
        finished: str | ActionNeeded | None = None
        try:
            with self.store.transaction(self.clock(), call_sid) as tx:
                finished = work(tx)
            return finished, tx
        except sa.exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            if finished is not None and self._committed(tx):
                # The answer to the COMMIT was lost, not the COMMIT: a rerun would find its own
                # turn taken (and drop the SMS this webhook queued).
                log.warning("the database connection was lost after the commit")
                return finished, tx
        log.warning("the database connection was lost; the webhook runs again")
        with self.store.transaction(self.clock(), call_sid) as tx:
            finished = work(tx)
        return finished, tx

    def _committed(self, tx: Tx) -> bool:
        """Whether the writes of a webhook that lost its connection at the commit were committed
        all the same: the call's row holds what it saved (read once the row's lock is free)."""
        if tx.session_write is None:
            return False
        call_sid, _, saved = tx.session_write
        with self.store.transaction(self.clock(), call_sid) as check:
            row = check.session(call_sid)
        return row is not None and (row.turn, row.state, row.reply) == (
            saved["turn"],
            saved["state"],
            saved["reply"],
        )

    def _after_commit(self, pending: ActionNeeded, message: OutgoingSms | None) -> str | ActionNeeded:
        """Deliver the SMS (the one after-commit action), then go on with the call."""
        call_sid = pending.state.call_sid
        status, last_digits = self.outbox.deliver(call_sid, message)

        def outcome(tx: Tx) -> str | ActionNeeded:
            row = tx.session(call_sid)
            if row is None:
                return ""  # the call's record was wiped meanwhile: answered below
            if row.turn != pending.state.turn:
                return str(row.reply)
            tx.audit(call_sid, f"sms_{status}")
            slots = {"mobile_last_digits": Spelled(last_digits)}
            result = self.engine.on_outcome(pending, "sent" if status == "sent" else "failed", slots)
            return self._settle(tx, result, was=row.turn)

        try:
            done, _ = self._in_transaction(call_sid, outcome)
        except Conflict:
            done = ""  # a twin moved the call on first
        # Answered outside the transaction, which holds the call's lock.
        return done if done != "" else self._stored_reply(call_sid)

    def _settle(self, tx: Tx, result: Result, was: int | None) -> str | ActionNeeded:
        """Run the actions the engine asks for, save the call, and give its TwiML; or, at an
        action for after the commit, save the call there and hand the action back."""
        while isinstance(result, ActionNeeded) and result.action not in actions.AFTER_COMMIT:
            done = actions.run(result.action, self.services, tx, result.state, result.keys)
            pending = ActionNeeded(done.state, result.action, result.keys, result.speech, result.slots)
            result = self.engine.on_outcome(pending, done.outcome, done.slots)
        state = result.state.model_copy(update={"turn": result.state.turn + 1})
        if isinstance(result, ActionNeeded):
            # Should this webhook die before it finishes, a retry resumes the call right here.
            tx.save_session(state.call_sid, state, state.turn, self.renderer.resume(state.turn), was=was)
            return dataclasses.replace(result, state=state)
        if result.end == "agent":
            self._escalate(tx, state)
        if result.end is not None:
            state = state.scrubbed()
            tx.audit(state.call_sid, "flow_ended", step=state.step, end=result.end)
        reply = Reply(state, result.speech, result.slots, result.listen, result.end)
        twiml = self.renderer.reply(reply)
        tx.save_session(state.call_sid, state, state.turn, twiml, was=was)
        return twiml

    def _own_session(self, tx: Tx, call_sid: str, caller: str | None) -> SessionRow | None:
        """The call's stored row, provided the request comes from the number the call came from."""
        row = tx.session(call_sid)
        logs.bind(call_sid=call_sid)
        if row is not None:
            state = parsed(row.state)
            logs.bind(step=state.step)
            if state.caller_key != self.caller_key(caller):
                raise CallerMismatch(call_sid)
        return row

    def _scrub(self, tx: Tx, row: SessionRow, event: str, **detail: object) -> None:
        """The call is over: drop its secrets, and keep a goodbye as its last reply (the last
        reply may spell the document number or the user ID)."""
        # A turn of its own: a webhook that read the call before (another process's, on SQLite)
        # then loses its race, rather than writing the secrets back.
        was = parsed(row.state)
        if was.verification is not None:
            abandoned = self.services.gate.abandon(SqlCounters.of(tx), was.verification, tx.now)
            if abandoned is not None:
                tx.audit(was.call_sid, "verification_abandoned", locked=abandoned == "locked")
        state = was.scrubbed().model_copy(update={"turn": row.turn + 1})
        tx.save_session(
            state.call_sid, state, state.turn, self.renderer.goodbye(state.language), was=row.turn
        )
        self._abandon_desk_verification(tx, state.call_sid)
        tx.forget_desk_document(state.call_sid)  # the agent on the call cannot go on with it either
        tx.audit(state.call_sid, event, step=state.step, **detail)

    def _abandon_desk_verification(self, tx: Tx, call_sid: str) -> None:
        """An agent was verifying the caller at the desk when the call ended: that guess is a
        failure, as a hang-up on the line's own questions is."""
        d = desk_verifications.c
        query = sa.select(d.progress, d.agent).where(d.call_sid == call_sid, d.outcome.is_(None))
        found = tx.reader.execute(query).first()
        if found is None:
            return
        try:
            v = Verification.model_validate_json(found.progress)
        except ValidationError:  # not a verification the desk got as far as starting
            return
        if self.services.gate.abandon(SqlCounters.of(tx), v, tx.now) is not None:
            tx.audit(call_sid, "desk_verification_abandoned", agent=found.agent)
        tx.writes.append(
            sa.update(desk_verifications)
            .where(d.call_sid == call_sid, d.outcome.is_(None))
            .values(outcome="not_verified")
        )

    def _unknown_call(self, tx: Tx, call_sid: str) -> str:
        """Keys for a call the line has no record of (its store was lost or wiped): sorry, and
        an agent, who gets what little there is to know."""
        tx.audit(call_sid, "call_not_found")
        self._escalate_unknown(tx, call_sid, "call_not_found")
        return self.renderer.apology(self.engine.languages, to_agent=True)

    def _escalate_unknown(self, tx: Tx, call_sid: str, reason: str) -> None:
        """Hand over a call the line knows nothing about (its first webhook failed, or its
        record is gone)."""
        state = CallState(call_sid=call_sid, caller_key="", step="unknown", escalation_reason=reason)
        self._escalate(tx, state.model_copy(update={"language": self.engine.languages[0]}))

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
        if verification == "verified" and number and state.verification is not None:
            kind = str(state.collected.get("document_type"))
            tx.hand_verification_to_desk(state.call_sid, kind, number, state.verification.model_dump_json())

    def _record_failure(self, call_sid: str, caller: str | None, reason: str) -> tuple[str, ...]:
        """Note the failure and hand the call to an agent with what we know; the languages to
        apologise in (every one while the caller has not chosen theirs)."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            row = self._own_session(tx, call_sid, caller)
            tx.audit(call_sid, reason)
            if row is None:  # the very first webhook failed: an agent still gets the call
                self._escalate_unknown(tx, call_sid, reason)
                return self.engine.languages
            state = parsed(row.state)
            step = self.engine.flow.steps.get(state.step)
            chosen = not getattr(step, "say_in_every_language", False)
            languages = (state.language,) if chosen else self.engine.languages
            self._escalate(tx, state.model_copy(update={"escalation_reason": reason}))
            # A late retry of the failed webhook hears the apology again, not the old menu.
            apology = self.renderer.apology(languages, to_agent=True)
            tx.save_session(call_sid, state.scrubbed(), row.turn + 1, apology, was=row.turn)
            return languages

    def _language_in(self, tx: Tx, call_sid: str, caller: str | None) -> str:
        row = self._own_session(tx, call_sid, caller)
        return parsed(row.state).language if row else self.engine.languages[0]

    def _stored_reply(self, call_sid: str) -> str:
        """What the call was last told: the answer for a webhook that lost a race to its twin (or,
        its record wiped meanwhile, an apology and an agent, as for keys of an unknown call)."""
        with self.store.transaction(self.clock(), call_sid) as tx:
            row = tx.session(call_sid)
            return str(row.reply) if row else self._unknown_call(tx, call_sid)


def _audit_now(connection: sa.Connection, now: dt.datetime, call_sid: str, event: str) -> None:
    connection.execute(sa.insert(audit_events).values(at=now, call_sid=call_sid, event=event, detail="{}"))
