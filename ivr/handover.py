"""The hand-over of a call from the line to an agent: its states and transitions, declared once.

`escalations.status` changes only here, through `move` (at once, on a connection) or `move_in`
(at the commit of a webhook's transaction): the line, the desk, the agent line, the call control
and the sweep name an event, and the table below says from which states it moves a hand-over and
to which. A hand-over in any other state is left as it is, so a late or repeated event (a
retried webhook, a second click) changes nothing. `check` proves at start-up that every state
can be reached and every state can end; `diagram` draws it (docs/handover.md).

An agent holds a hand-over from taking it until wrapping it up, whatever the caller does
meanwhile: a caller who hangs up moves it to `ended`, never away from the agent, so the agent
can always wrap up, and is busy exactly while holding one (`HELD`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ivr.errors import DefinitionError
from ivr.prompts import Slot, Spelled
from ivr.store import Tx, agents, escalations, utc


class Status(StrEnum):
    WAITING = "waiting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDED = "ended"
    WRAPPED_UP = "wrapped_up"
    ABANDONED = "abandoned"


MEANING = {
    Status.WAITING: "In the agents' queue.",
    Status.CONNECTING: "An agent took it at the desk; the caller is being put through to them.",
    Status.CONNECTED: "The agent's phone was dialled, or the agent took the caller by phone.",
    Status.ENDED: "The caller's call is over (or they hung up) after an agent took it: the wrap-up remains.",
    Status.WRAPPED_UP: "The agent wrapped the call up with an outcome.",
    Status.ABANDONED: "The caller left before any agent spoke to them.",
}


@dataclass(frozen=True)
class Transition:
    event: str
    source: Status
    target: Status
    by: str
    """Who makes it happen."""


S = Status
TRANSITIONS: tuple[Transition, ...] = (
    Transition("taken", S.WAITING, S.CONNECTING, "an agent at the desk"),
    Transition("taken_by_phone", S.WAITING, S.CONNECTED, "an agent phoning in (the agent line)"),
    Transition("taken_by_phone", S.CONNECTING, S.CONNECTED, "an agent phoning in, first to the caller"),
    Transition("put_through", S.CONNECTING, S.CONNECTED, "the line, dialling the agent"),
    Transition("back_to_queue", S.CONNECTING, S.WAITING, "the desk or the line: no agent to reach"),
    Transition("back_to_queue", S.CONNECTED, S.WAITING, "the line: the agent did not answer"),
    Transition("caller_left", S.WAITING, S.ABANDONED, "the line or the sweep: the call ended"),
    Transition("caller_left", S.CONNECTING, S.ENDED, "the line or the sweep: the call ended"),
    Transition("caller_left", S.CONNECTED, S.ENDED, "the line or the sweep: the call ended"),
    Transition("caller_not_in_queue", S.CONNECTING, S.ABANDONED, "the call control: the caller had gone"),
    Transition("caller_not_in_queue", S.ENDED, S.ABANDONED, "the call control: the caller had gone"),
    Transition("wrapped_up", S.CONNECTING, S.WRAPPED_UP, "the agent"),
    Transition("wrapped_up", S.CONNECTED, S.WRAPPED_UP, "the agent"),
    Transition("wrapped_up", S.ENDED, S.WRAPPED_UP, "the agent"),
    Transition("agent_disabled", S.CONNECTING, S.WAITING, "a supervisor, disabling the agent"),
    Transition("agent_disabled", S.CONNECTED, S.WRAPPED_UP, "a supervisor, disabling the agent"),
    Transition("agent_disabled", S.ENDED, S.WRAPPED_UP, "a supervisor, disabling the agent"),
)
START = Status.WAITING
HELD = tuple(t.source for t in TRANSITIONS if t.event == "wrapped_up")
"""The states in which an agent holds the hand-over (and is busy)."""
TAKEN = (Status.CONNECTING, Status.CONNECTED)
"""The states in which an agent is on the way to the caller, or with them."""


def sources(event: str) -> dict[Status, list[Status]]:
    """For `event`: each target state, and the states it moves a hand-over from to get there."""
    found: dict[Status, list[Status]] = {}
    for t in TRANSITIONS:
        if t.event == event:
            found.setdefault(t.target, []).append(t.source)
    if not found:
        raise KeyError(f"no hand-over event {event!r}")
    return found


def check(transitions: Iterable[Transition] = TRANSITIONS) -> None:
    """Refuse a hand-over definition with a state that cannot be reached or cannot end, an event
    that says two things in one state, or an event whose moves could chain."""
    table = list(transitions)
    seen: set[tuple[str, Status]] = set()
    for t in table:
        if (t.event, t.source) in seen:
            raise DefinitionError(f"hand-over: {t.event!r} leaves {t.source} twice")
        seen.add((t.event, t.source))
    for event in {t.event for t in table}:
        targets = {t.target for t in table if t.event == event}
        if targets & {t.source for t in table if t.event == event}:
            raise DefinitionError(f"hand-over: {event!r} moves into a state it also moves from")
    reached = _closure({START}, {(t.source, t.target) for t in table})
    if missing := set(Status) - reached:
        raise DefinitionError(f"hand-over: {', '.join(sorted(missing))} cannot be reached")
    ends = set(Status) - {t.source for t in table}
    backwards = {(t.target, t.source) for t in table}
    if stuck := set(Status) - _closure(ends, backwards):
        raise DefinitionError(f"hand-over: {', '.join(sorted(stuck))} can never end")


def _closure(start: set[Status], edges: set[tuple[Status, Status]]) -> set[Status]:
    found, frontier = set(start), list(start)
    while frontier:
        here = frontier.pop()
        for source, target in edges:
            if source == here and target not in found:
                found.add(target)
                frontier.append(target)
    return found


def diagram() -> str:
    """The hand-over's states as a Markdown page with a Mermaid diagram (docs/handover.md)."""
    lines = [
        "# The hand-over to an agent",
        "",
        "Generated from `ivr/handover.py` by `ivr flows handover > docs/handover.md`;",
        "a test keeps it current.",
        "",
        "```mermaid",
        "stateDiagram-v2",
        f"    [*] --> {START}",
        *(f"    {t.source} --> {t.target}: {t.event}" for t in TRANSITIONS),
        *(f"    {end} --> [*]" for end in Status if end not in {t.source for t in TRANSITIONS}),
        "```",
        "",
        "| state | meaning |",
        "|---|---|",
        *(f"| `{s}` | {MEANING[s]} |" for s in Status),
        "",
        "| event | from | to | by |",
        "|---|---|---|---|",
        *(f"| `{t.event}` | `{t.source}` | `{t.target}` | {t.by} |" for t in TRANSITIONS),
        "",
    ]
    return "\n".join(lines)


# -- moving a hand-over -----------------------------------------------------------------------------


IS_WAITING = escalations.c.status == Status.WAITING
"""The hand-overs in the queue now (for a query)."""


def of_call(call_sid: str) -> sa.ColumnElement[bool]:
    return escalations.c.call_sid == call_sid


def held_by(call_id: int, agent: str) -> sa.ColumnElement[bool]:
    return sa.and_(escalations.c.id == call_id, escalations.c.agent == agent)


def _updates(event: str, where: sa.ColumnElement[bool], values: dict[str, Any]) -> list[sa.Update]:
    return [
        sa.update(escalations).where(where, escalations.c.status.in_(froms)).values(status=target, **values)
        for target, froms in sources(event).items()
    ]


def move(connection: sa.Connection, event: str, where: sa.ColumnElement[bool], **values: Any) -> bool:
    """Make `event` happen now to the hand-over(s) `where` selects; whether one moved."""
    return sum(connection.execute(u).rowcount for u in _updates(event, where, values)) > 0


def move_in(tx: Tx, event: str, call_sid: str, **values: Any) -> None:
    """Make `event` happen to the call's hand-over at the commit of the webhook's transaction."""
    tx.writes.extend(_updates(event, of_call(call_sid), values))


# -- reading one ------------------------------------------------------------------------------------


def escalation(tx: Tx, call_sid: str) -> sa.Row[Any] | None:
    """The call's escalation, as the store has it now."""
    return tx.reader.execute(sa.select(escalations).where(of_call(call_sid))).first()


def agent(tx: Tx | sa.Connection, username: str | None) -> sa.Row[Any] | None:
    """The agent with this username, unless unknown or disabled."""
    if not username:
        return None
    reader = tx.reader if isinstance(tx, Tx) else tx
    query = sa.select(agents).where(agents.c.username == username, agents.c.disabled.is_(False))
    return reader.execute(query).first()


def busy(connection: sa.Connection, agent: str | None = None) -> set[str]:
    """The agents who hold a hand-over now (of `agent` alone, when named)."""
    e = escalations.c
    held = e.status.in_(HELD) & (e.agent == agent if agent else e.agent.is_not(None))
    return set(connection.execute(sa.select(e.agent).where(held)).scalars())


PRESENT_WITHIN = dt.timedelta(minutes=2)
"""An agent the desk heard from within this (its open pages poll every few seconds) is present."""


def wait_minutes(
    reader: sa.Connection, place: int, now: dt.datetime, since: dt.datetime, usual: float
) -> int | None:
    """An honest estimate of the wait for the caller at `place`: the minutes an agent spent on a
    call today (wrapped-up calls since `since`; `usual` before the first), times the callers up
    to and including this one, shared among the agents on duty: available at a desk they have
    open, or busy with a call. None when no agent is on duty: nobody can say."""
    a = agents.c
    present = sa.and_(a.status == "available", a.present_at >= now - PRESENT_WITHIN)
    holding = a.username.in_(sa.select(escalations.c.agent).where(escalations.c.status.in_(HELD)))
    on_duty = reader.execute(
        sa.select(sa.func.count()).where(a.disabled.is_(False), sa.or_(present, holding))
    ).scalar_one()
    if not on_duty:
        return None
    e = escalations.c
    spans = reader.execute(
        sa.select(e.connected_at, e.finished_at).where(
            e.status == Status.WRAPPED_UP, e.finished_at >= since, e.connected_at.is_not(None)
        )
    ).all()
    lengths = [(utc(end) - utc(start)).total_seconds() / 60 for start, end in spans]
    per_call = sum(lengths) / len(lengths) if lengths else usual
    return max(1, math.ceil(place * per_call / on_duty))


def is_put_through(row: sa.Row[Any] | None) -> bool:
    """Whether an agent took the call and the call control sent the caller their way."""
    return row is not None and row.status == Status.CONNECTING and row.put_through_at is not None


def record_wait(tx: Tx, call_sid: str, queue_sid: str | None, first: bool) -> None:
    """Twilio asked the wait URL for the call: it is alive in the queue. Keep the queue it waits
    in (the wait URL names it) the `first` time."""
    values: dict[str, Any] = {"waited_at": tx.now}
    if first and queue_sid:
        values["queue_sid"] = queue_sid
    tx.writes.append(sa.update(escalations).where(of_call(call_sid)).values(**values))


QUEUE_SILENCE = dt.timedelta(minutes=5)
"""Twilio asks the wait URL for a queued caller every half minute or so: a caller it has not
asked for in this long has left the queue (its end-of-call status lost)."""


def mark_put_through(connection: sa.Connection, call_sid: str, now: dt.datetime) -> bool:
    """Note that the caller is on their way to the agent (not a change of state: the embedded
    call control's signal to the wait URL); False unless the call is connecting."""
    query = sa.update(escalations).where(of_call(call_sid), escalations.c.status == Status.CONNECTING)
    return connection.execute(query.values(put_through_at=now)).rowcount == 1


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
