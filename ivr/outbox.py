"""The SMS outbox: rows written in the webhook's transaction, sent after it commits.

A row is claimed (pending → sending) before the provider is called, so two workers never send
the same SMS; a row left in `sending` by a crash is not sent again by itself (an operator looks).
Once a real provider has taken it or refused it, the body (which holds the PIN) is not kept.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa

from ivr.errors import BackendError
from ivr.ports import SmsSender
from ivr.store import Store, sms_outbox

log = logging.getLogger(__name__)
REDACTED = "[not kept]"


class EmbeddedSms:
    """The embedded default: the outbox itself is the inbox a person reads (`ivr outbox`)."""

    keeps_body = True

    def __init__(self) -> None:
        self._count = 0

    def send(self, to: str, body: str) -> str:
        self._count += 1
        return f"embedded-{self._count}"


def dispatch(store: Store, sender: SmsSender, clock: Callable[[], dt.datetime]) -> int:
    """Send every pending SMS; return how many were sent."""
    with store.connection() as connection:
        query = sa.select(sms_outbox.c.id).where(sms_outbox.c.status == "pending").order_by(sms_outbox.c.id)
        pending = connection.execute(query).scalars().all()
    return sum(_send_one(store, sender, clock, row_id) for row_id in pending)


def _send_one(store: Store, sender: SmsSender, clock: Callable[[], dt.datetime], row_id: int) -> bool:
    row = sms_outbox.c
    with store.connection() as connection:
        claimed = connection.execute(
            sa.update(sms_outbox).where(row.id == row_id, row.status == "pending").values(status="sending")
        )
        if claimed.rowcount != 1:
            return False
        to, body = connection.execute(sa.select(row.to, row.body).where(row.id == row_id)).one()
    try:
        provider_id = sender.send(to, body)
    except BackendError as error:
        log.warning("SMS %s was not sent: %s", row_id, error)
        _finish(store, row_id, status="failed", error=str(error)[:200], body=_kept(sender, body))
        return False
    _finish(store, row_id, status="sent", provider_id=provider_id, sent_at=clock(), body=_kept(sender, body))
    log.info("SMS %s sent", row_id)
    return True


def _kept(sender: SmsSender, body: str) -> str:
    """A body holds a PIN: once it has been sent or has failed, only the embedded outbox keeps it."""
    return body if sender.keeps_body else REDACTED


def _finish(store: Store, row_id: int, **values: object) -> None:
    with store.connection() as connection:
        connection.execute(sa.update(sms_outbox).where(sms_outbox.c.id == row_id).values(**values))
