"""The embedded MitID back end: synthetic accounts and temporary PINs kept as salted hashes.

Codes live in the table `demo_temporary_pins` (`ivr/adapters/demo_tables.py`, made by the demo
database's migrations) on any SQLAlchemy engine (SQLite or PostgreSQL). A row holds a keyed hash
(HMAC-SHA-256) of the CPR number, never the number; the code only as a salted keyed hash. The
UNIQUE `request_key` is the guard that keeps a retried request from issuing a second code, even
when two calls race.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ivr.adapters import demo_tables
from ivr.adapters.demo_directory import DemoDirectory
from ivr.errors import BackendError
from ivr.ports import IssuedPin, MitIdAccount
from ivr.store import write_together

PIN_DIGITS = 8


def _code_hash(key: bytes, code: str, salt: bytes) -> bytes:
    """The stored form of a PIN code: HMAC-SHA-256 under the back end's key, over salt and code.

    Keyed, not slow. A slow hash (scrypt, argon2) guards a low-entropy secret against whoever
    holds the table; here the table alone is no help, since the key lives outside it (derived
    from the line's secret key), and with neither a copy of the key an 8-digit code is 10^8
    HMACs, worth nothing after the code expires or is superseded. That is as sound as this
    demo needs, at microseconds inside the webhook where scrypt took 6 ms of one core per PIN.
    How MitID itself stores temporary codes (a real back end's work factor, an HSM) is that back
    end's business, not the line's: the line only asks the port to issue one.
    """
    return hmac.new(key, salt + code.encode(), hashlib.sha256).digest()


def _utc(moment: dt.datetime) -> dt.datetime:
    """`moment` in UTC; a naive value (as SQLite returns) is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


class DemoMitIdBackend:
    """A `MitIdBackend` over synthetic people, issuing real (hashed, expiring) PIN codes."""

    def __init__(
        self,
        people: DemoDirectory,
        engine: sa.Engine,
        clock: Callable[[], dt.datetime],
        pin_validity: dt.timedelta,
        key: bytes,
    ) -> None:
        """The people of the demo register (looked up by CPR number); the PIN table is the
        migrations' (`ivr db upgrade`)."""
        if pin_validity <= dt.timedelta(0):
            raise ValueError("pin_validity must be positive")
        self._people = people
        self._engine = engine
        self._clock = clock
        self._validity = pin_validity
        self._key = key
        self.pins = demo_tables.temporary_pins

    def cpr_hash(self, cpr: str) -> str:
        """The keyed hash of a CPR number, the only form of it the PIN table stores (a plain
        hash of a 10-digit number is reversed by trying them all)."""
        return hmac.new(self._key, cpr.encode(), hashlib.sha256).hexdigest()

    def account(self, cpr: str) -> MitIdAccount | None:
        """The person's MitID, or None; raises BackendError for the demo's failing person."""
        demo = self._people.by_cpr(cpr)
        if demo is None:
            return None
        if demo.backend_fails:
            raise BackendError("demo MitID back end failure (the backend_fails demo person)")
        return demo.account

    def issue_temporary_pin(self, cpr: str, request_key: str) -> IssuedPin | None:
        """A new 8-digit code superseding earlier ones; None when `request_key` was used."""
        if self.account(cpr) is None:
            raise BackendError("no MitID account to issue a temporary PIN for")
        code = f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"
        salt = secrets.token_bytes(16)
        now = _utc(self._clock())
        expires_at = now + self._validity
        cpr_hash = self.cpr_hash(cpr)
        code_hash = _code_hash(self._key, code, salt)
        try:
            write_together(
                self._engine,
                [
                    (  # UNIQUE request_key: the guard
                        "INSERT INTO demo_temporary_pins (cpr_hash, request_key, code_hash, salt, issued_at,"
                        " expires_at, superseded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (cpr_hash, request_key, code_hash, salt, now, expires_at, False),
                    ),
                    (
                        "UPDATE demo_temporary_pins SET superseded = ?"
                        " WHERE cpr_hash = ? AND request_key != ?",
                        (True, cpr_hash, request_key),
                    ),
                ],
            )
        except IntegrityError:
            return None
        return IssuedPin(code=code, expires_at=expires_at)

    def verify_temporary_pin(self, cpr: str, code: str) -> bool:
        """True only for the person's newest non-superseded code, while it is unexpired."""
        query = (
            sa.select(self.pins.c.code_hash, self.pins.c.salt, self.pins.c.expires_at)
            .where(self.pins.c.cpr_hash == self.cpr_hash(cpr), self.pins.c.superseded.is_(False))
            .order_by(self.pins.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            newest = conn.execute(query).first()
        if newest is None or _utc(newest.expires_at) <= _utc(self._clock()):
            return False
        return hmac.compare_digest(_code_hash(self._key, code, newest.salt), newest.code_hash)
