"""The SMS outbox: a row per SMS, written in the webhook's transaction and sent right after it
commits, within the same webhook, so the caller hears whether it went.

The row records that the SMS exists, to whom (masked) and how it fared; never its text, which
holds a PIN and lives in memory only until the provider has it. A row is claimed (pending →
sending) before the provider is called, so no two webhooks or machines send it twice; a row
whose text was lost (a crash between the commit and the send) is never sent, and one left in
`sending` by a crash, or whose provider did not answer in time, is `unknown`: unresolved.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from ivr.errors import BackendError, DeliveryUnknown, without_values
from ivr.ports import OutgoingSms, SmsSender
from ivr.store import Store, moment, short_write, sms_outbox, sql, when_reachable, write_once

log = logging.getLogger(__name__)
UNRESOLVED_AFTER = dt.timedelta(minutes=5)
"""A row still `sending` this long after its claim was left by a crash."""


@dataclass(frozen=True)
class Outbox:
    store: Store
    sender: SmsSender
    clock: Callable[[], dt.datetime]
    patience: float = 7.0
    """Seconds to wait for a twin webhook's send: longer than the SMS provider's timeout."""
    grace: float = 1.0
    """Seconds a webhook without the text leaves a pending SMS to the one that has it."""

    def deliver(self, call_sid: str, message: OutgoingSms | None) -> tuple[str, str]:
        """Send the SMS the call queued last (its text in `message`; None once lost with a
        crashed process) unless it was handled already. Its status then (sent, failed, unknown),
        and the last two digits of the number it is for."""
        if message is not None and write_once(self.store.engine, _CLAIM, (self.clock(), message.key)) == 1:
            return self._send(message.key, message), message.to[-2:]  # the row this webhook queued
        # Without the text (a twin of the webhook that queued it), a pending row is left a
        # moment to the webhook that has the text: it claims it right after its commit, but
        # under load a twin that came back through Twilio can get here first.
        grace = time.monotonic() + (self.grace if message is None else 0)
        while True:
            with short_write(self.store.engine) as connection:
                found = sql(connection, _NEWEST, (call_sid,)).fetchone()  # by the index on call_sid
                if found is None:
                    return "failed", ""
                key, status, to = found
                claimed = (
                    status == "pending"
                    and time.monotonic() >= grace
                    and sql(connection, _CLAIM, (moment(connection, self.clock()), key)).rowcount == 1
                )
            if claimed or status != "pending":
                break
            time.sleep(0.02)
        if not claimed:  # handled already, or being handled by a twin of this webhook right now
            return self._outcome(key), to[-2:]
        return self._send(key, message), to[-2:]

    def _outcome(self, key: str) -> str:
        """How the SMS under `key` fared, waiting (a little longer than a send may take) while
        another webhook is sending it; still sending after that: unknown."""
        deadline = time.monotonic() + self.patience
        while True:
            with self.store.reading() as connection:
                found = sql(connection, 'SELECT status FROM sms_outbox WHERE "key" = ?', (key,)).fetchone()
                status = found[0] if found else None
            if status not in ("pending", "sending"):
                return str(status)
            if time.monotonic() > deadline:
                return "unknown"
            time.sleep(0.05)

    def _send(self, key: str, message: OutgoingSms | None) -> str:
        if message is None or message.key != key:
            return self._finish(key, status="failed", error="its text was lost unsent")
        try:
            body = _composed(key, message)
            if body is None:
                return self._finish(
                    key, status="failed", error="an attempt that did not finish issued its PIN"
                )
            provider_id = self.sender.send(message.to, body)
        except DeliveryUnknown as error:
            log.warning("SMS %s: %s", key, error)
            return self._finish(key, status="unknown", error=str(error)[:200])
        except BackendError as error:
            log.warning("SMS %s was not sent: %s", key, error)
            return self._finish(key, status="failed", error=str(error)[:200])
        log.info("SMS %s sent", key)
        return self._finish(key, status="sent", provider_id=provider_id, sent_at=self.clock())

    def record_delivery(self, provider_id: str, status: str) -> bool:
        """The provider's delivery report for one of our SMS; False when no row has that id."""
        values = {"delivery": status, "delivery_at": self.clock()}
        with self.store.connection() as connection:
            query = sa.update(sms_outbox).where(sms_outbox.c.provider_id == provider_id).values(values)
            return bool(connection.execute(query).rowcount)

    def resolve_stale(self) -> int:
        """Settle rows a crash left behind: `sending` becomes unknown, `pending` (its text is
        gone with the process) failed. How many there were."""
        row = sms_outbox.c
        before = self.clock() - UNRESOLVED_AFTER
        left = (
            (row.status == "sending", row.claimed_at < before, "unknown", "left sending by a crash"),
            (
                row.status == "pending",
                row.created_at < before,
                "failed",
                "its text was lost before it was sent",
            ),
        )
        with self.store.connection() as connection:
            return sum(
                int(connection.execute(sa.update(sms_outbox).where(a, b).values(status=s, error=e)).rowcount)
                for a, b, s, e in left
            )

    def _finish(self, key: str, **values: object) -> str:
        """Record how the SMS fared, as the provider said: waiting a little for a database that
        is restarting, rather than leaving a sent PIN `sending` and the caller told it failed."""
        names = ", ".join(f"{name} = ?" for name in values)
        update = f'UPDATE sms_outbox SET {names} WHERE "key" = ?'
        when_reachable(lambda: write_once(self.store.engine, update, (*values.values(), key)))
        return str(values["status"])


def _composed(key: str, message: OutgoingSms) -> str | None:
    """The SMS's text (None: it cannot be made any more). Should making it fail unexpectedly
    (the MitID back end's database lost as it issues the PIN), it is a BackendError: nothing
    went to the provider, so the SMS failed, rather than being left `sending` as if it might."""
    try:
        return message.compose()
    except BackendError:
        raise
    except Exception as error:
        log.error("SMS %s: its text could not be made: %s", key, without_values(error))
        raise BackendError("its text could not be made") from None


_NEWEST = 'SELECT "key", status, "to" FROM sms_outbox WHERE call_sid = ? ORDER BY id DESC LIMIT 1'
_CLAIM = "UPDATE sms_outbox SET status = 'sending', claimed_at = ? WHERE \"key\" = ? AND status = 'pending'"
