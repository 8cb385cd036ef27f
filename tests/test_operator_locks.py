"""What an operator or a supervisor sees of the counters, and lifting a lock.

A locked identity is one lock, whatever keys it is counted under (its document's, its holder's):
listed once, by pseudonym only, with since when, until when, how many failures and where; a
state that refuses every guess is a lock too. Lifting it (by a prefix of its pseudonym) clears
every count behind it, and the caller can pass at once. Busy calling numbers are listed apart.
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

from ivr.counters import LockedIdentity, SqlCounters
from tests.calls import Call, Records
from tests.conftest import BASE, TOKEN
from tests.postgres import either_store
from tests.test_limits import passed, verify

database_url = either_store  # every test here on SQLite and on PostgreSQL


def counters_of(app) -> SqlCounters:
    return SqlCounters.on(app.extensions["ivr"].store)


def window(app):
    gate = app.extensions["ivr"].services.gate
    return gate.window(app.extensions["ivr"].clock())


def locked(app) -> list[LockedIdentity]:
    return counters_of(app).locked(window(app))


def lock_out(app, person) -> None:
    for _ in range(3):
        verify(app, person, right=False)


def test_a_locked_identity_is_one_row_with_since_until_failures_and_channel(app, clock, cases):
    person = cases["ordinary"]
    lock_out(app, person)
    (lock,) = locked(app)
    policy = app.extensions["ivr"].services.gate.policy
    assert (lock.since, lock.until) == (clock(), clock() + policy.lockout)
    assert (lock.failures, lock.unfinished, lock.channels) == (3, 0, ("line",))
    assert person.person.cpr not in lock.key and len(lock.key) == 64


def test_failing_twice_and_hanging_up_once_mid_questions_is_a_lock_that_is_listed(app, cases):
    """Two failures and a verification the caller hung up on refuse every later guess: the
    hang-up settles its guess as a failure, so that is a lock, and it shows as one (before, it
    refused every guess with no lock anywhere)."""
    person = cases["ordinary"]
    for _ in range(2):
        verify(app, person, right=False)
    half = Call(app, TOKEN, BASE, language="en", caller="+4571999001").dial().choose_language()
    half.identify(person, "user_id").hang_up()
    (lock,) = locked(app)
    assert (lock.failures, lock.unfinished, lock.channels) == (3, 0, ("line",))
    assert "verification_abandoned" in Records(app).audit(half)
    assert not passed(verify(app, person, right=True))
    assert counters_of(app).lift(lock.key[:12]) == [lock.key]
    assert passed(verify(app, person, right=True))


def test_lifting_the_identity_lets_the_caller_pass_at_once(app, cases):

    person = cases["ordinary"]
    lock_out(app, person)
    (lock,) = locked(app)
    assert counters_of(app).lift(lock.key[:12]) == [lock.key]
    assert locked(app) == []
    assert passed(verify(app, person, right=True))


def test_old_locks_are_no_longer_listed(app, clock, cases):
    lock_out(app, cases["ordinary"])
    policy = app.extensions["ivr"].services.gate.policy
    started = clock()
    clock.now = started + policy.lockout
    assert len(locked(app)) == 1  # to the very end of the lockout
    clock.now = started + policy.lockout + dt.timedelta(seconds=1)
    assert locked(app) == []


def test_a_busy_number_is_listed_for_an_hour(app, clock, cases):
    for _ in range(2):
        verify(app, cases["ordinary"], right=True, caller="+4576000001")
    (busy,) = counters_of(app).busy_numbers(clock() - dt.timedelta(hours=1))
    assert (busy.kind, busy.count) == ("verification", 2)
    clock.advance(minutes=61)
    assert counters_of(app).busy_numbers(clock() - dt.timedelta(hours=1)) == []


def test_a_prefix_of_several_identities_or_of_none_lifts_nothing(app, cases):
    lock_out(app, cases["ordinary"])
    lock_out(app, cases["passport_and_licence"])
    before = locked(app)
    assert len(before) == 2
    assert len(counters_of(app).lift("")) > 1
    assert counters_of(app).lift("not-a-hex-prefix") == []
    for pattern in ("%", "_", "%%", "_" * 4):
        assert counters_of(app).lift(pattern) == []
    assert locked(app) == before


def test_the_newest_locks_are_listed_first(app, clock, cases):
    lock_out(app, cases["ordinary"])
    (first,) = locked(app)
    clock.advance(minutes=5)
    lock_out(app, cases["passport_and_licence"])
    listed = locked(app)
    assert len(listed) == 2 and listed[1] == first


def test_lifting_leaves_passes_alone_and_a_key_with_only_passes_is_not_a_match(app):
    """A pass is not a count to lift: a key with only passes does not make a prefix ambiguous,
    and lifting a key clears its counts but keeps its passes (the audit of who passed)."""
    counters, win = counters_of(app), window(app)
    both, passes_only = "a" * 64, "b" * 64
    for key in (both, passes_only):
        guesses = counters.reserve_guess([key], 3, win)
        assert counters.settle_guess(guesses, [key], True, 3, win) == "passed"
    assert counters.take(both, "verification", 5, win.now - dt.timedelta(hours=1), win.now)

    assert counters.lift("") == [both]  # the only key with counts: lifted
    kinds = {
        key: sorted(row["kind"] for row in Records(app).rows("attempts", key=key))
        for key in (both, passes_only)
    }
    assert kinds == {both: ["passed"], passes_only: ["passed"]}
