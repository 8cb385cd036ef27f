"""An agent phoning in: from their registered phone, with their agent code, to the next caller.

A call to the line from a number an agent registered (`ivr agents add --phone`, with a code set
by `ivr agents code`) is asked for the agent code instead of the callers' menus. The right code
puts the agent through to the next caller in the agents' queue (`<Dial><Queue>`); that caller
first hears that they are being put through, and their hand-over is marked connected to the
agent. Wrong codes are counted per agent (5 an hour), like every other guess the line counts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr.counters import SqlCounters
from ivr.store import Store, audit_events, sql
from ivr.twiml import Renderer

CODE_TRIES, CODE_WINDOW = 5, dt.timedelta(hours=1)


class PhoningAgent(NamedTuple):
    """An agent with an agent code, as a call from their registered phone finds them."""

    id: int
    username: str
    language: str
    agent_code_hash: str


@dataclass(frozen=True)
class AgentLine:
    store: Store
    renderer: Renderer
    pseudonym: Callable[[str], str]
    clock: Callable[[], dt.datetime]
    hasher: PasswordHasher = field(default_factory=PasswordHasher)

    def agent_for(self, caller: str | None) -> PhoningAgent | None:
        """The agent whose registered phone this is and who has an agent code, if any."""
        if not caller:
            return None
        query = (
            "SELECT id, username, language, agent_code_hash FROM agents"
            " WHERE phone = ? AND disabled = ? AND agent_code_hash IS NOT NULL"
        )
        with self.store.reading() as connection:  # every new call asks: no write lock for it
            row = sql(connection, query, (caller, False)).fetchone()
        return PhoningAgent(*row) if row else None

    def answer(self, agent: Any) -> str:
        """Ask for the agent code, in the agent's language."""
        return self.renderer.agent_code(agent.language, wrong=False)

    def code(self, call_sid: str, caller: str | None, digits: str) -> str:
        """Check the agent code: the next caller, the question again, or goodbye after too many."""
        agent = self.agent_for(caller)
        if agent is None:
            return self.renderer.goodbye("da")
        now = self.clock()
        key = self.pseudonym(f"agent-code:{agent.username}")
        if not SqlCounters.on(self.store).take(key, "agent_code", CODE_TRIES, now - CODE_WINDOW, now):
            self._audit(call_sid, "agent_code_refused", agent.username)
            return self.renderer.agent_blocked(agent.language)
        if not digits or not self._right(agent.agent_code_hash, digits):
            self._audit(call_sid, "agent_code_wrong", agent.username)
            return self.renderer.agent_code(agent.language, wrong=True)
        self._audit(call_sid, "agent_phoned_in", agent.username)
        return self.renderer.agent_next_caller(agent.language, agent.username)

    def _right(self, stored: str, digits: str) -> bool:
        try:
            return bool(self.hasher.verify(stored, digits))
        except (VerificationError, InvalidHashError):
            return False

    def _audit(self, call_sid: str, event: str, username: str) -> None:
        detail = json.dumps({"agent": username})
        with self.store.connection() as connection:
            connection.execute(
                sa.insert(audit_events).values(at=self.clock(), call_sid=call_sid, event=event, detail=detail)
            )
