"""Attempt counters, guesses and locks: atomic across threads, processes and machines.

Every decision that a limit depends on (may this number start another verification? may this
identity be guessed once more? does this pass stand?) is taken inside one short write
transaction that holds the counted keys: SQLite has one writer at a time (`BEGIN IMMEDIATE`),
and on PostgreSQL a transaction-level advisory lock per key serialises the deciders. So however
many calls run at once, a limit of N lets exactly N through.

Keys are pseudonyms (keyed hashes); no identity is ever stored here. A claimed identity is
counted under two keys (its document's and its holder's); each row also names the holder's key
(`identity`), so that a lock is listed and lifted once for the identity, and the channel (the
line or the desk) that took the guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from ivr.store import Conn, Store, Text, Tx, attempts, first_rows, moment, sql, utc

GUESS, FAILURE, PASSED, LOCK, VERIFICATION = "guess", "failure", "passed", "lock", "verification"
"""A guess is taken when verification starts and becomes a failure or a pass at the decision;
one the caller hung up on becomes a failure when the call ends (and may lock the identity);
one whose call's end never came keeps counting as a guess for the whole window."""
LIFTABLE = (LOCK, FAILURE, GUESS, VERIFICATION)
Settled = Literal["passed", "failed", "locked"]


@dataclass(frozen=True)
class Window:
    """How far back failures count, and how long a lock lasts, as of `now`."""

    now: dt.datetime
    failures_since: dt.datetime
    locked_since: dt.datetime


@dataclass(frozen=True)
class LockedIdentity:
    """A claimed identity no guess may be taken on, as a supervisor sees it (no identity)."""

    key: str
    """The holder's pseudonym."""
    since: dt.datetime
    until: dt.datetime
    failures: int
    """Failed verifications in the failure window."""
    unfinished: int
    """Verifications started and never decided (the caller hung up): they count as failures."""
    channels: tuple[str, ...]


@dataclass(frozen=True)
class LockRow:
    """A locked identity or a busy calling number, as an operator may see it (no identity)."""

    key: str
    kind: str
    count: int
    last: dt.datetime


def _advisory_id(key: str) -> int:
    """A 64-bit lock id for a hex pseudonym (PostgreSQL's advisory locks take a bigint)."""
    return int.from_bytes(bytes.fromhex(key[:16].ljust(16, "0")), "big", signed=True)


class SqlCounters:
    """The counters on the line's store (SQLite or PostgreSQL, the same statements), decided on
    the connections `connect` gives (see `Tx.decision`)."""

    def __init__(self, connect: Callable[[], AbstractContextManager[Conn]], postgres: bool) -> None:
        self.connect = connect
        self.postgres = postgres

    @classmethod
    def of(cls, tx: Tx) -> SqlCounters:
        """The counters as one webhook decides them."""
        return cls(tx.decision, tx.postgres)

    @classmethod
    def on(cls, store: Store) -> SqlCounters:
        """The counters as an operator's command sees them."""
        return cls(store.connection, not store.sqlite)

    @contextmanager
    def _holding(
        self, keys: Iterable[str], counts: Sequence[Text]
    ) -> Iterator[tuple[Conn, list[tuple[int, ...]]]]:
        """A decision on `keys`, with the `counts` read once the keys are held (on PostgreSQL
        the keys' locks and the counts go in one round trip)."""
        with self.connect() as connection:
            held = sorted(set(keys)) if self.postgres else []  # always in the same order: no deadlock
            locks = [("SELECT pg_advisory_xact_lock(?)", (_advisory_id(key),)) for key in held]
            rows = first_rows(connection, [*locks, *counts])
            yield connection, [tuple(int(n) for n in row) for row in rows[len(locks) :]]

    def take(self, key: str, kind: str, limit: int, since: dt.datetime, now: dt.datetime) -> bool:
        """Count one `kind` for `key` if fewer than `limit` were counted since `since`."""
        with self._holding([key], [_count(key, (kind,), since)]) as (connection, [(counted,)]):
            if counted >= limit:
                return False
            sql(connection, _INSERT, (key, kind, moment(connection, now)))
            return True

    def reserve_guess(
        self, keys: Sequence[str], limit: int, window: Window, channel: str = "line"
    ) -> list[int]:
        """Take one guess on every key, or none (empty) when any key is locked or used up."""
        with self._holding(keys, [_standing(key, window) for key in keys]) as (connection, standing):
            for locks, used in standing:
                if locks or used >= limit:
                    return []
            at = moment(connection, window.now)
            insert = _INSERT_FULL + " RETURNING id"
            return [
                int(sql(connection, insert, (key, GUESS, at, keys[-1], channel)).fetchone()[0])
                for key in keys
            ]

    def settle_guess(
        self, guesses: Sequence[int], keys: Sequence[str], passed: bool, limit: int, window: Window
    ) -> Settled:
        """Decide the guesses: "passed" when a pass stands (no key got locked meanwhile), else
        "failed", or "locked" when this failure brought a key to `limit` failures in its window."""
        if not guesses:
            return "failed"
        with self._holding(keys, [_locks(key, window) for key in keys]) as (connection, counted):
            locks = [n for (n,) in counted]
            stands = passed and not any(locks)
            marks = ", ".join("?" * len(guesses))
            sql(
                connection,
                f"UPDATE attempts SET kind = ? WHERE kind = ? AND id IN ({marks})",
                (PASSED if stands else FAILURE, GUESS, *guesses),
            )
            if stands:
                return "passed"
            newly = [
                key
                for key, locked in zip(keys, locks, strict=True)
                if not locked
                and _counted(connection, _count(key, (FAILURE,), window.failures_since)) >= limit
            ]
            for key in newly:
                sql(connection, _INSERT_FULL, (key, LOCK, moment(connection, window.now), keys[-1], None))
            return "locked" if newly else "failed"

    def is_locked(self, key: str, window: Window) -> bool:
        with self.connect() as connection:
            return _counted(connection, _locks(key, window)) > 0

    def locked(self, window: Window) -> list[LockedIdentity]:
        """The identities locked now, one each, the most recently locked first."""
        c = attempts.c
        who = sa.func.coalesce(c.identity, c.key)
        in_force = (c.kind == LOCK) & (c.at >= window.locked_since)
        counted = c.kind.in_((GUESS, FAILURE)) & (c.at >= window.failures_since) & (c.key == who)
        query = sa.select(who, c.kind, c.at, c.channel).where(in_force | counted)
        with self.connect() as connection:
            assert isinstance(connection, sa.Connection)  # an operator's: `SqlCounters.on`
            rows = list(connection.execute(query))
        lockout = window.now - window.locked_since
        found = []
        for key in {key for key, kind, _, _ in rows if kind == LOCK}:
            mine = [(kind, utc(at), channel) for k, kind, at, channel in rows if k == key]
            last = max(at for kind, at, _ in mine if kind == LOCK)
            found.append(
                LockedIdentity(
                    key=key,
                    since=min(at for kind, at, _ in mine if kind == LOCK),
                    until=last + lockout,
                    failures=sum(kind == FAILURE for kind, _, _ in mine),
                    unfinished=sum(kind == GUESS for kind, _, _ in mine),
                    channels=tuple(sorted({channel for kind, _, channel in mine if channel})),
                )
            )
        return sorted(found, key=lambda lock: lock.since, reverse=True)

    def busy_numbers(self, since: dt.datetime) -> list[LockRow]:
        """Calling numbers with verifications counted since `since` (the last hour)."""
        c = attempts.c
        query = (
            sa.select(c.key, c.kind, sa.func.count(), sa.func.max(c.at))
            .where(c.kind == VERIFICATION, c.at >= since)
            .group_by(c.key, c.kind)
            .order_by(sa.func.max(c.at).desc())
        )
        with self.connect() as connection:
            assert isinstance(connection, sa.Connection)  # an operator's: `SqlCounters.on`
            return [LockRow(key, kind, int(n), utc(last)) for key, kind, n, last in connection.execute(query)]

    def lift(self, key_prefix: str) -> list[str]:
        """Clear every count of the one identity (a lock, failures, unfinished guesses, under
        each of its keys) or calling number whose key starts with `key_prefix`; the keys that
        matched (nothing is cleared unless exactly one)."""
        c = attempts.c
        who = sa.func.coalesce(c.identity, c.key)
        counted = c.kind.in_(LIFTABLE)
        with self.connect() as connection:
            assert isinstance(connection, sa.Connection)  # an operator's: `SqlCounters.on`
            query = sa.select(who).where(who.startswith(key_prefix, autoescape=True), counted).distinct()
            found = sorted(connection.execute(query).scalars())
            if len(found) == 1:
                connection.execute(
                    sa.delete(attempts).where(sa.or_(who == found[0], c.key == found[0]), counted)
                )
            return found


_INSERT = "INSERT INTO attempts (key, kind, at) VALUES (?, ?, ?)"
_INSERT_FULL = "INSERT INTO attempts (key, kind, at, identity, channel) VALUES (?, ?, ?, ?, ?)"


def _count(key: str, kinds: Sequence[str], since: dt.datetime) -> Text:
    """The statement counting `kinds` for `key` since `since`."""
    marks = ", ".join("?" * len(kinds))
    query = f"SELECT count(*) FROM attempts WHERE key = ? AND kind IN ({marks}) AND at >= ?"
    return query, (key, *kinds, since)


def _locks(key: str, window: Window) -> Text:
    """The statement counting a key's locks in force."""
    return _count(key, (LOCK,), window.locked_since)


def _counted(connection: Conn, count: Text) -> int:
    return int(first_rows(connection, [count])[0][0])


def _standing(key: str, window: Window) -> Text:
    """A key's locks in force, and its guesses and failures in the window, in one statement."""
    query = (
        "SELECT count(*) FILTER (WHERE kind = ? AND at >= ?),"
        " count(*) FILTER (WHERE kind IN (?, ?) AND at >= ?) FROM attempts WHERE key = ?"
    )
    return query, (LOCK, window.locked_since, GUESS, FAILURE, window.failures_since, key)
