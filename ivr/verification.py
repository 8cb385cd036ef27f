"""Identity verification: one set of rules for every channel that may verify a caller.

A claimed identity (the document, and the person when the register knows it) may be guessed at
most `max_failures` times in its window, counted across calls and however many run at once:
a guess is taken when verification starts and decided at the end, and a lock taken meanwhile
still stops the pass. A calling number may start `per_number_per_hour` verifications an hour;
withheld numbers share one larger bucket of their own.

Whatever the case (unknown document, locked identity, a holder with no spouse), the caller is
asked the same number of questions, drawn from the whole bank with the same odds, so nothing
they are asked or hear tells them which case applies.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ivr import questions
from ivr.counters import VERIFICATION, Settled, Window
from ivr.ports import Document, Person
from ivr.state import Verification

Admission = Literal["admitted", "phone_limited", "hidden_number_limited"]
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Policy:
    """The numbers an operator may tune (from `Settings`)."""

    questions_asked: int = 3
    pass_mark: int = 3
    max_failures: int = 3
    failure_window: dt.timedelta = dt.timedelta(hours=24)
    lockout: dt.timedelta = dt.timedelta(hours=24)
    per_number_per_hour: int = 5
    withheld_per_hour: int = 30


class Counters(Protocol):
    def take(self, key: str, kind: str, limit: int, since: dt.datetime, now: dt.datetime) -> bool: ...

    def reserve_guess(
        self, keys: Sequence[str], limit: int, window: Window, channel: str = "line"
    ) -> list[int]: ...

    def settle_guess(
        self, guesses: Sequence[int], keys: Sequence[str], passed: bool, limit: int, window: Window
    ) -> Settled: ...


@dataclass(frozen=True)
class Gate:
    policy: Policy
    pseudonym: Callable[[str], str]
    rng: random.Random = field(default_factory=random.SystemRandom)

    def window(self, now: dt.datetime) -> Window:
        return Window(now, now - self.policy.failure_window, now - self.policy.lockout)

    def admit(self, counters: Counters, caller_key: str, withheld: bool, now: dt.datetime) -> Admission:
        """Count a verification against the calling number, if it has not used up its hour."""
        limit = self.policy.withheld_per_hour if withheld else self.policy.per_number_per_hour
        if counters.take(caller_key, VERIFICATION, limit, now - HOUR, now):
            return "admitted"
        return "hidden_number_limited" if withheld else "phone_limited"

    def begin(
        self,
        counters: Counters,
        document: Document,
        person: Person | None,
        now: dt.datetime,
        channel: str = "line",
    ) -> Verification:
        """Take a guess on the claimed identity (by `channel`: the line or the desk) and choose
        the questions."""
        claimed = f"{document.type}:{document.number}"
        # Always two keys, the same work whatever the case: a document the register does not
        # know stands in for its own holder, so no case answers faster than another.
        holder = f"cpr:{person.cpr}" if person is not None else f"holder-of:{claimed}"
        keys = [self.pseudonym(claimed), self.pseudonym(holder)]
        guesses = counters.reserve_guess(keys, self.policy.max_failures, self.window(now), channel)
        return Verification(
            identity_keys=keys,
            questions=questions.choose(self.policy.questions_asked, self.rng),
            guesses=guesses,
            can_pass=person is not None and bool(guesses),
        )

    def answer(self, v: Verification, person: Person | None, keys: str) -> Verification:
        """Note one answer (only whether it was right, never what it was)."""
        right = v.can_pass and person is not None and questions.is_right(v.current_question, person, keys)
        return v.model_copy(update={"asked": v.asked + 1, "correct": v.correct + right})

    def decide(self, counters: Counters, v: Verification, now: dt.datetime) -> tuple[Verification, Settled]:
        """Verified or not: enough right answers, and no lock taken on the identity meanwhile."""
        passed = v.can_pass and v.correct >= self.policy.pass_mark
        settled = counters.settle_guess(
            v.guesses, v.identity_keys, passed, self.policy.max_failures, self.window(now)
        )
        outcome = "verified" if settled == "passed" else "not_verified"
        return v.model_copy(update={"outcome": outcome}), settled

    def abandon(self, counters: Counters, v: Verification, now: dt.datetime) -> Settled | None:
        """The call ended before its verification was decided (the caller hung up mid-questions):
        its guess is a failure, which may lock the identity. None when there was nothing to decide."""
        if v.outcome is not None or not v.guesses:
            return None
        return counters.settle_guess(
            v.guesses, v.identity_keys, False, self.policy.max_failures, self.window(now)
        )
