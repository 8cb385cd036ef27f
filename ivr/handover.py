"""The hand-over's lifecycle in the store: a queued caller, taken by an agent, put through.

`escalations.status`: NULL or "waiting" (in the queue) -> "connecting" (the agents' desk took it)
-> "connected" (`/voice/connect` dialled the agent) -> "finished" (the call ended). A caller who
hangs up before an agent speaks to them is "abandoned"; a taken call whose agent cannot be dialled
goes back to "waiting". `put_through_at` is set by the call control once the caller is on their
way to `/voice/connect` (the embedded call control's signal to the wait URL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from ivr.prompts import Slot, Spelled
from ivr.store import Tx, agents, escalations

WAITING = ("waiting", None)
TAKEN = ("connecting", "connected")


def escalation(tx: Tx, call_sid: str) -> sa.Row[Any] | None:
    """The call's escalation, as the store has it now."""
    return tx.reader.execute(sa.select(escalations).where(escalations.c.call_sid == call_sid)).first()


def agent(tx: Tx | sa.Connection, username: str | None) -> sa.Row[Any] | None:
    """The agent with this username, unless unknown or disabled."""
    if not username:
        return None
    reader = tx.reader if isinstance(tx, Tx) else tx
    query = sa.select(agents).where(agents.c.username == username, agents.c.disabled.is_(False))
    return reader.execute(query).first()


def is_put_through(row: sa.Row[Any] | None) -> bool:
    """Whether an agent took the call and the call control sent the caller their way."""
    return row is not None and row.status == "connecting" and row.put_through_at is not None


def context(row: sa.Row[Any] | dict[str, Any]) -> list[tuple[str, dict[str, Slot]]]:
    """The whisper's prompt keys for an escalation: the caller's language, what they called
    about, whether they were verified, and the masked document (its type, two digits spelled)."""
    values = row if isinstance(row, dict) else dict(row._mapping)
    parts: list[tuple[str, dict[str, Slot]]] = [
        (f"whisper_language_{values['language']}", {}),
        (f"whisper_intent_{values['intent'] or 'none'}", {}),
        ("whisper_verified" if values["verification"] == "verified" else "whisper_not_verified", {}),
    ]
    kind, _, digits = (values["document"] or "").partition(" ending ")
    if kind and digits:
        parts.append((f"whisper_document_{kind}", {"digits": Spelled(digits[-2:])}))
    return parts


def _where(call_sid: str, statuses: Collection[str | None]) -> sa.ColumnElement[bool]:
    c = escalations.c
    named = [s for s in statuses if s is not None]
    status = sa.or_(c.status.in_(named), c.status.is_(None)) if None in statuses else c.status.in_(named)
    return sa.and_(c.call_sid == call_sid, status)


def change(tx: Tx, call_sid: str, statuses: Collection[str | None], **values: Any) -> None:
    """At commit, change the call's escalation, provided its status is still one of `statuses`."""
    tx.writes.append(sa.update(escalations).where(_where(call_sid, statuses)).values(**values))


def record_queue(tx: Tx, call_sid: str, queue_sid: str) -> None:
    """Keep the queue the call waits in (Twilio's wait URL names it), the first time."""
    c = escalations.c
    query = sa.update(escalations).where(c.call_sid == call_sid, c.queue_sid.is_(None))
    tx.writes.append(query.values(queue_sid=queue_sid))


def connected(tx: Tx, call_sid: str) -> None:
    change(tx, call_sid, ("connecting",), status="connected", connected_at=tx.now)


def back_to_queue(tx: Tx, call_sid: str) -> None:
    """The agent cannot be reached: the call waits again for whoever takes it next."""
    change(tx, call_sid, ("connecting",), status="waiting", agent=None, put_through_at=None)


def abandoned(tx: Tx, call_sid: str) -> None:
    """The caller hung up before an agent spoke to them."""
    change(tx, call_sid, (*WAITING, "connecting"), status="abandoned", finished_at=tx.now)


def finished(tx: Tx, call_sid: str) -> None:
    """The call is over: a connected hand-over is finished, a waiting one abandoned."""
    change(tx, call_sid, ("connected",), status="finished", finished_at=tx.now)
    abandoned(tx, call_sid)


def mark_put_through(connection: sa.Connection, call_sid: str, now: dt.datetime) -> bool:
    """Note that the caller is being put through; False unless the call is "connecting"."""
    c = escalations.c
    query = sa.update(escalations).where(c.call_sid == call_sid, c.status == "connecting")
    return connection.execute(query.values(put_through_at=now)).rowcount == 1
