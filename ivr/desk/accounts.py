"""Agent accounts in the store: who may use the desk, in which role, with which password.

Passwords are kept as argon2id hashes only. `Accounts.authenticate` is the desk's one way of
checking who someone is: an OpenID Connect sign-in would stand beside it, giving an `Agent`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr import handover
from ivr.store import Store, agents

Role = Literal["agent", "supervisor"]
ROLES: tuple[Role, ...] = ("agent", "supervisor")
STATUSES = ("available", "away")
"""What an agent sets; "busy" is not set but shown while the agent holds a hand-over."""
LANGUAGES = ("da", "en")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12
PRESENCE_NOTED_EVERY = dt.timedelta(seconds=30)


class AccountError(ValueError):
    """An account cannot be made or changed as asked (the message says why, without secrets)."""


@dataclass(frozen=True)
class Agent:
    username: str
    display_name: str
    role: Role
    phone: str | None
    status: str
    """available or away as the agent set it; busy while holding a hand-over."""
    language: str
    disabled: bool

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


class Accounts:
    def __init__(self, store: Store, clock: Callable[[], dt.datetime], hasher: PasswordHasher | None = None):
        self.store = store
        self.clock = clock
        self.hasher = hasher or PasswordHasher()  # argon2id, the library's recommended cost
        self._dummy = self.hasher.hash("no such agent")

    def add(
        self, username: str, role: str, password: str, *, phone: str | None = None, name: str | None = None
    ) -> Agent:
        """Make an account; AccountError when the username is taken or a value will not do."""
        if not USERNAME.match(username):
            raise AccountError(
                "a username is 2-64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
            )
        if role not in ROLES:
            raise AccountError(f"the role is one of {', '.join(ROLES)}")
        _check_password(password)
        now = self.clock()
        row = {
            "username": username,
            "display_name": (name or username).strip()[:100],
            "role": role,
            "phone": phone,
            "password_hash": self.hasher.hash(password),
            "status": "away",
            "language": "da",
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.store.connection() as connection:
                connection.execute(sa.insert(agents).values(row))
        except sa.exc.IntegrityError:
            raise AccountError(f"there is already an agent {username!r}") from None
        found = self.get(username)
        assert found is not None
        return found

    def get(self, username: str) -> Agent | None:
        with self.store.connection() as connection:
            row = connection.execute(sa.select(agents).where(agents.c.username == username)).first()
            return _agent(row._mapping, handover.busy(connection, username)) if row else None

    def all(self) -> list[Agent]:
        with self.store.connection() as connection:
            busy = handover.busy(connection)
            rows = connection.execute(sa.select(agents).order_by(agents.c.username))
            return [_agent(row._mapping, busy) for row in rows]

    def authenticate(self, username: str, password: str) -> Agent | None:
        """The agent with this username and password, if enabled; None otherwise (as slowly)."""
        with self.store.connection() as connection:
            row = connection.execute(sa.select(agents).where(agents.c.username == username)).first()
        stored = row.password_hash if row is not None else self._dummy
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row.disabled:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._update(username, password_hash=self.hasher.hash(password))
        return self.get(username)

    def set_status(self, username: str, status: str) -> None:
        if status not in STATUSES:
            raise AccountError(f"the status is one of {', '.join(STATUSES)}")
        self._update(username, status=status)

    def mark_present(self, username: str, now: dt.datetime) -> None:
        """The desk heard from the agent now (written at most every half minute)."""
        c = agents.c
        stale = sa.or_(c.present_at.is_(None), c.present_at < now - PRESENCE_NOTED_EVERY)
        with self.store.connection() as connection:
            connection.execute(sa.update(agents).where(c.username == username, stale).values(present_at=now))

    def gone(self, username: str) -> None:
        """The agent signed out: away, and no longer present."""
        self._update(username, status="away", present_at=None)

    def set_language(self, username: str, language: str) -> None:
        if language not in LANGUAGES:
            raise AccountError(f"the language is one of {', '.join(LANGUAGES)}")
        self._update(username, language=language)

    def set_agent_code(self, username: str, code: str) -> bool:
        """The code the agent keys when phoning in from their registered phone (4-8 digits)."""
        if not re.fullmatch(r"[0-9]{4,8}", code):
            raise AccountError("an agent code is 4 to 8 digits")
        return self._update(username, agent_code_hash=self.hasher.hash(code))

    def disable(self, username: str) -> bool:
        return self._update(username, disabled=True, status="away")

    def reset(self, username: str, password: str) -> bool:
        """A new password, and the account enabled again."""
        _check_password(password)
        return self._update(username, password_hash=self.hasher.hash(password), disabled=False)

    def _update(self, username: str, **values: Any) -> bool:
        query = sa.update(agents).where(agents.c.username == username)
        with self.store.connection() as connection:
            return bool(connection.execute(query.values(updated_at=self.clock(), **values)).rowcount)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")


def _agent(row: Any, busy: set[str]) -> Agent:
    return Agent(
        username=row["username"],
        display_name=row["display_name"],
        role=row["role"],
        phone=row["phone"],
        status="busy" if row["username"] in busy else row["status"],
        language=row["language"],
        disabled=bool(row["disabled"]),
    )
