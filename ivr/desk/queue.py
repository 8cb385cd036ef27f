"""The queue of callers handed over to agents, over the store's `escalations`.

A hand-over waits until an agent takes it. Taking is one conditional UPDATE (`ivr.handover`), so
of two agents taking the same call at once exactly one gets it; the taker holds it, and is busy,
until they wrap the call up with an outcome, whether or not the caller is still there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ivr import handover
from ivr.handover import HELD, Status, held_by
from ivr.store import Store, agents, audit_events, escalations, utc

OUTCOMES = ("pin_sent", "user_id_given", "citizen_service", "caller_left", "other")
"""How an agent may end a call; each is offered only when it fits what happened (`offered`)."""
WAITING = handover.IS_WAITING
# What the desk did on a call, by its audit trail, that an outcome says.
DONE_BY = {"pin_sent": ("desk_sms_sent", "sms_sent"), "user_id_given": ("desk_user_id_shown",)}


@dataclass(frozen=True)
class Call:
    """A hand-over as the desk shows it: the line's context, never a secret."""

    id: int
    call_sid: str
    created_at: dt.datetime
    language: str
    intent: str | None
    verification: str
    reason: str
    document: str | None  # masked by the line: "passport ending 01"
    status: str
    agent: str | None
    outcome: str | None
    note: str | None
    waited: dt.timedelta
    caller_left_at: dt.datetime | None = None
    position: int | None = None

    @property
    def gone(self) -> bool:
        """The caller's call has ended: nothing more can be done for them on this call."""
        return self.status in (Status.ENDED, Status.ABANDONED) or self.caller_left_at is not None


class Queue:
    def __init__(self, store: Store, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.clock = clock

    def waiting(self) -> list[Call]:
        """Every waiting caller, longest waiting first, with their place in the queue."""
        query = sa.select(escalations).where(WAITING).order_by(escalations.c.created_at, escalations.c.id)
        with self.store.connection() as connection:
            rows = list(connection.execute(query))
        now = self.clock()
        return [_call(row._mapping, now, position) for position, row in enumerate(rows, start=1)]

    def get(self, call_id: int) -> Call | None:
        with self.store.connection() as connection:
            row = connection.execute(sa.select(escalations).where(escalations.c.id == call_id)).first()
        return _call(row._mapping, self.clock()) if row else None

    def current(self, agent: str) -> Call | None:
        """The call this agent has taken and not wrapped up yet."""
        c = escalations.c
        query = sa.select(escalations).where(c.agent == agent, c.status.in_(HELD)).order_by(c.id)
        with self.store.connection() as connection:
            row = connection.execute(query).first()
        return _call(row._mapping, self.clock()) if row else None

    def take(self, agent: str, call_id: int | None = None) -> Call | None:
        """Take the chosen waiting call, or the longest waiting one: None when it was taken
        first by someone else (or there is none). The agent is busy from then on."""
        for _ in range(10):  # "the next one" may be taken under us; then the one after it
            chosen = call_id if call_id is not None else self._next()
            if chosen is None:
                return None
            if self._claim(agent, chosen):
                return self.get(chosen)
            if call_id is not None:
                return None
        return None

    def release(self, call_id: int, agent: str, why: str) -> None:
        """Put a taken call back in the queue (it could not be put through); the agent is free."""
        back = {"agent": None, "put_through_at": None}
        self._move(call_id, agent, "back_to_queue", back, "desk_put_through_failed", why=why)

    def caller_gone(self, call_id: int, agent: str) -> None:
        """The telephony has no such caller in the queue any more: they left before the agent
        reached them. The hand-over is abandoned and the agent free."""
        self._move(call_id, agent, "caller_not_in_queue", {"finished_at": self.clock()}, "desk_caller_gone")

    def agent_disabled(self, agent: str, by: str) -> int:
        """The agent can no longer work: a call they were being put through to waits again for
        another agent; one they had is wrapped up for them (outcome "other"), audited as the
        supervisor's. How many hand-overs they held."""
        e = escalations.c
        values = {"agent": None, "put_through_at": None}
        with self.store.connection() as connection:
            held = list(
                connection.execute(sa.select(e.id, e.status).where(e.agent == agent, e.status.in_(HELD)))
            )
            for call_id, status in held:
                changes = (
                    values
                    if status == Status.CONNECTING
                    else {
                        "finished_at": self.clock(),
                        "outcome": "other",
                        "note": "Wrapped up when the agent was disabled.",
                    }
                )
                if handover.move(connection, "agent_disabled", held_by(call_id, agent), **changes):
                    sid = self._sid(connection, call_id)
                    _audit(connection, self.clock(), sid, "desk_agent_disabled_call", agent=agent, by=by)
        return len(held)

    def offered(self, call: Call) -> list[str]:
        """The outcomes that fit what happened on the call: a PIN or a user ID only once given."""
        events = {row["event"] for row in self.trail(call.call_sid)}
        fits = {
            "pin_sent": bool(events & set(DONE_BY["pin_sent"])),
            "user_id_given": bool(events & set(DONE_BY["user_id_given"])),
            "caller_left": call.gone,
        }
        return [outcome for outcome in OUTCOMES if fits.get(outcome, True)]

    def wrap_up(self, call_id: int, agent: str, outcome: str, note: str) -> bool:
        """Finish the agent's call with an outcome and a note; the agent is available again."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}")
        values = {"finished_at": self.clock(), "outcome": outcome, "note": note or None}
        return self._move(call_id, agent, "wrapped_up", values, "desk_wrapped_up", outcome=outcome)

    def _move(
        self, call_id: int, agent: str, event: str, changes: dict[str, Any], audited: str, **detail: object
    ) -> bool:
        """Make `event` happen to the agent's hand-over with `changes`, and audit it; whether
        it moved (not when the agent does not hold it, or it is past that event)."""
        with self.store.connection() as connection:
            if not handover.move(connection, event, held_by(call_id, agent), **changes):
                return False
            _audit(connection, self.clock(), self._sid(connection, call_id), audited, agent=agent, **detail)
        return True

    def audit(self, call_sid: str | None, event: str, **detail: object) -> None:
        with self.store.connection() as connection:
            _audit(connection, self.clock(), call_sid, event, **detail)

    def trail(self, call_sid: str) -> list[dict[str, Any]]:
        """The call's audit trail, oldest first."""
        return self.store.rows(audit_events, audit_events.c.call_sid == call_sid)

    def _next(self) -> int | None:
        query = (
            sa.select(escalations.c.id).where(WAITING).order_by(escalations.c.created_at, escalations.c.id)
        )
        with self.store.connection() as connection:
            found = connection.execute(query.limit(1)).scalar()
        return int(found) if found is not None else None

    def _claim(self, agent: str, call_id: int) -> bool:
        """Take the call if it still waits; an agent who takes a call is at work (available once
        it is wrapped up, busy meanwhile)."""
        with self.store.connection() as connection:
            if not handover.move(connection, "taken", escalations.c.id == call_id, agent=agent):
                return False
            working = sa.update(agents).where(agents.c.username == agent, agents.c.status != "available")
            connection.execute(working.values(status="available", updated_at=self.clock()))
            _audit(connection, self.clock(), self._sid(connection, call_id), "desk_call_taken", agent=agent)
        return True

    @staticmethod
    def _sid(connection: sa.Connection, call_id: int) -> str | None:
        return connection.execute(
            sa.select(escalations.c.call_sid).where(escalations.c.id == call_id)
        ).scalar()


def _audit(
    connection: sa.Connection, now: dt.datetime, call_sid: str | None, event: str, **detail: object
) -> None:
    text = json.dumps(detail, sort_keys=True)
    connection.execute(sa.insert(audit_events).values(at=now, call_sid=call_sid, event=event, detail=text))


def _call(row: Any, now: dt.datetime, position: int | None = None) -> Call:
    created = utc(row["created_at"])
    return Call(
        id=row["id"],
        call_sid=row["call_sid"],
        created_at=created,
        language=row["language"],
        intent=row["intent"],
        verification=row["verification"],
        reason=row["reason"],
        document=row["document"],
        status=row["status"],
        agent=row["agent"],
        outcome=row["outcome"],
        note=row["note"],
        waited=max(now - created, dt.timedelta(0)),
        caller_left_at=utc(row["caller_left_at"]) if row["caller_left_at"] else None,
        position=position,
    )
