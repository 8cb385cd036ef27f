"""The embedded SMS network: the demo phones' inboxes, which a person reads with `ivr outbox`.

It stands where Twilio and the mobile network stand on a real line, so it holds what a phone
would hold: the text, PIN included, in the table `demo_sms_inbox` of the demo back end's
database (never in the line's own store; `ivr/adapters/demo_tables.py`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from ivr.adapters import demo_tables
from ivr.store import write_once


class EmbeddedSms:
    """An `SmsSender` that delivers at once into the demo phones' inboxes."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], dt.datetime]) -> None:
        self._engine = engine
        self._clock = clock
        self.inbox = demo_tables.sms_inbox  # made by the demo database's migrations

    def send(self, to: str, body: str) -> str:
        message_id = f"SM{uuid.uuid4().hex}"  # shaped like Twilio's message SIDs
        write_once(
            self._engine,
            'INSERT INTO demo_sms_inbox (message_id, "to", body, received_at) VALUES (?, ?, ?, ?)',
            (message_id, to, body, self._clock()),
        )
        return message_id

    def received(self) -> dict[str, tuple[str, str]]:
        """Every message the demo phones received: message id -> (number, text)."""
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(self.inbox.c.message_id, self.inbox.c.to, self.inbox.c.body))
            return {message_id: (to, body) for message_id, to, body in rows}
