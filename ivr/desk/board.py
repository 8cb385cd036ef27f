"""What a supervisor sees at a glance: the queue, the agents, and how today's calls ended."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from ivr import handover
from ivr.desk.queue import Queue
from ivr.store import Store, agents, audit_events, escalations

LOCAL = zoneinfo.ZoneInfo("Europe/Copenhagen")


@dataclass(frozen=True)
class Board:
    waiting: int
    longest_wait: dt.timedelta | None
    agents: dict[str, int]  # available, busy, away: how many agents (enabled) are each
    finished_by_machine: int
    handed_over: dict[str, int]  # by the reason the line handed the call over
    abandoned: int


def board(store: Store, queue: Queue, now: dt.datetime) -> Board:
    """The board as of `now`; "today" is the day in Copenhagen."""
    waiting = queue.waiting()
    since = dt.datetime.combine(now.astimezone(LOCAL).date(), dt.time(), tzinfo=LOCAL).astimezone(dt.UTC)
    e, a = escalations.c, audit_events.c
    with store.connection() as connection:
        busy = handover.busy(connection)
        enabled = connection.execute(
            sa.select(agents.c.username, agents.c.status).where(agents.c.disabled.is_(False))
        )
        statuses = Counter("busy" if username in busy else status for username, status in enabled)
        reasons = Counter(connection.execute(sa.select(e.reason).where(e.created_at >= since)).scalars())
        abandoned = connection.execute(
            sa.select(sa.func.count()).where(e.created_at >= since, e.status == handover.Status.ABANDONED)
        ).scalar_one()
        ends = connection.execute(sa.select(a.detail).where(a.event == "flow_ended", a.at >= since)).scalars()
        by_machine = sum(json.loads(detail).get("end") != "agent" for detail in ends)
    return Board(
        waiting=len(waiting),
        longest_wait=waiting[0].waited if waiting else None,
        agents={status: statuses.get(status, 0) for status in ("available", "busy", "away")},
        finished_by_machine=by_machine,
        handed_over=dict(sorted(reasons.items())),
        abandoned=int(abandoned),
    )
