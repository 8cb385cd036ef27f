"""The queue of callers handed over to agents, over the store's `escalations`.

A hand-over waits (status NULL or "waiting") until an agent takes it. Taking is one conditional
UPDATE, so of two agents taking the same call at once exactly one gets it; the taker is then
busy until they wrap the call up with an outcome.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ivr.store import Store, agents, audit_events, escalations

OUTCOMES = ("user_id_given", "pin_sent", "citizen_service", "other")
WAITING = sa.or_(escalations.c.status.is_(None), escalations.c.status == "waiting")
WITH_AGENT = ("connecting", "connected")


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
    position: int | None = None


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
        query = sa.select(escalations).where(c.agent == agent, c.status.in_(WITH_AGENT)).order_by(c.id)
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
        c = escalations.c
        now = self.clock()
        with self.store.connection() as connection:
            mine = sa.update(escalations).where(c.id == call_id, c.agent == agent, c.status == "connecting")
            connection.execute(mine.values(status="waiting", agent=None))
            connection.execute(
                sa.update(agents).where(agents.c.username == agent).values(status="available", updated_at=now)
            )
            _audit(
                connection,
                now,
                self._sid(connection, call_id),
                "desk_put_through_failed",
                agent=agent,
                why=why,
            )

    def wrap_up(self, call_id: int, agent: str, outcome: str, note: str) -> bool:
        """Finish the agent's call with an outcome and a note; the agent is available again."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}")
        c = escalations.c
        now = self.clock()
        with self.store.connection() as connection:
            mine = sa.update(escalations).where(c.id == call_id, c.agent == agent, c.status.in_(WITH_AGENT))
            values = {"status": "finished", "finished_at": now, "outcome": outcome, "note": note or None}
            if connection.execute(mine.values(values)).rowcount != 1:
                return False
            connection.execute(
                sa.update(agents).where(agents.c.username == agent).values(status="available", updated_at=now)
            )
            _audit(
                connection,
                now,
                self._sid(connection, call_id),
                "desk_wrapped_up",
                agent=agent,
                outcome=outcome,
            )
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
        now = self.clock()
        claim = sa.update(escalations).where(escalations.c.id == call_id, WAITING)
        with self.store.connection() as connection:
            if connection.execute(claim.values(status="connecting", agent=agent)).rowcount != 1:
                return False
            connection.execute(
                sa.update(agents).where(agents.c.username == agent).values(status="busy", updated_at=now)
            )
            _audit(connection, now, self._sid(connection, call_id), "desk_call_taken", agent=agent)
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


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _call(row: Any, now: dt.datetime, position: int | None = None) -> Call:
    created = _aware(row["created_at"])
    return Call(
        id=row["id"],
        call_sid=row["call_sid"],
        created_at=created,
        language=row["language"],
        intent=row["intent"],
        verification=row["verification"],
        reason=row["reason"],
        document=row["document"],
        status=row["status"] or "waiting",
        agent=row["agent"],
        outcome=row["outcome"],
        note=row["note"],
        waited=max(now - created, dt.timedelta(0)),
        position=position,
    )
