"""What an operator sees of the counters, and lifting a lock (the counters under `ivr locks`).

An operator sees locked identities and busy calling numbers as pseudonyms only, and may lift the
counts of exactly one key by a prefix of it: the locked caller can then pass again at once.
"""

from __future__ import annotations

import datetime as dt

from ivr.counters import SqlCounters
from tests.calls import Records
from tests.test_limits import passed, verify

DAY = dt.timedelta(hours=24)


def counters_of(app) -> SqlCounters:
    return SqlCounters.on(app.extensions["ivr"].store)


def window(app):
    gate = app.extensions["ivr"].services.gate
    return gate.window(app.extensions["ivr"].clock())


def lock_keys(app) -> list[str]:
    now = app.extensions["ivr"].clock()
    return [
        row.key
        for row in counters_of(app).current(window(app), now - dt.timedelta(hours=1))
        if row.kind == "lock"
    ]


def lock_out(app, person) -> None:
    for _ in range(3):
        verify(app, person, right=False)


def test_a_locked_identity_is_listed_by_pseudonym_with_its_failures(app, cases):
    person = cases["ordinary"]
    lock_out(app, person)
    now = app.extensions["ivr"].clock()
    rows = counters_of(app).current(window(app), now - dt.timedelta(hours=1))
    locks = [row for row in rows if row.kind == "lock"]
    failures = [row for row in rows if row.kind == "failure"]
    assert len(locks) == 2  # the passport and the person
    assert {row.count for row in failures} == {3}
    assert {row.key for row in locks} == {row.key for row in failures}
    assert all(row.last.replace(tzinfo=None) == now.replace(tzinfo=None) for row in locks)
    assert all(person.person.cpr not in row.key for row in rows)
    assert all(counters_of(app).is_locked(key, window(app)) for key in lock_keys(app))


def test_old_locks_and_failures_are_no_longer_listed(app, clock, cases):
    lock_out(app, cases["ordinary"])
    expired = lock_keys(app)
    clock.advance(hours=25)
    now = clock()
    rows = counters_of(app).current(window(app), now - dt.timedelta(hours=1))
    assert [row for row in rows if row.kind in ("lock", "failure", "verification")] == []
    assert expired and not any(counters_of(app).is_locked(key, window(app)) for key in expired)


def test_a_busy_number_is_listed_for_an_hour(app, clock, cases):
    for _ in range(2):
        verify(app, cases["ordinary"], right=True, caller="+4576000001")
    now = clock()
    (busy,) = [
        r
        for r in counters_of(app).current(window(app), now - dt.timedelta(hours=1))
        if r.kind == "verification"
    ]
    assert busy.count == 2
    clock.advance(minutes=61)
    later = counters_of(app).current(window(app), clock() - dt.timedelta(hours=1))
    assert [r for r in later if r.kind == "verification"] == []


def test_lifting_by_a_prefix_clears_that_one_key_and_the_caller_passes_again(app, cases):
    person = cases["ordinary"]
    lock_out(app, person)
    keys = sorted(lock_keys(app))
    for key in keys:
        assert counters_of(app).lift(key[:12]) == [key]
    assert lock_keys(app) == []
    assert passed(verify(app, person, right=True))


def test_lifting_one_of_two_keys_still_leaves_the_identity_locked(app, cases):
    person = cases["ordinary"]
    lock_out(app, person)
    first, second = sorted(lock_keys(app))
    assert counters_of(app).lift(first) == [first]
    assert lock_keys(app) == [second]
    assert not passed(verify(app, person, right=True))


def test_a_prefix_of_several_keys_or_of_none_lifts_nothing(app, cases):
    lock_out(app, cases["ordinary"])
    lock_out(app, cases["passport_and_licence"])
    before = sorted(lock_keys(app))
    assert len(counters_of(app).lift("")) > 1
    assert counters_of(app).lift("not-a-hex-prefix") == []
    assert sorted(lock_keys(app)) == before


def test_the_newest_locks_are_listed_first(app, clock, cases):
    lock_out(app, cases["ordinary"])
    first = set(lock_keys(app))
    clock.advance(minutes=5)
    lock_out(app, cases["passport_and_licence"])
    listed = lock_keys(app)
    assert len(listed) == 4
    assert set(listed[2:]) == first  # the earlier locks come last


def test_a_prefix_is_taken_literally(app, cases):
    lock_out(app, cases["ordinary"])
    before = sorted(lock_keys(app))
    for pattern in ("%", "_", "%%", "_" * 4):
        assert counters_of(app).lift(pattern) == []
    assert sorted(lock_keys(app)) == before


def test_counts_are_listed_up_to_the_very_end_of_their_window(app, clock, cases):
    """A lock, its failures and the numbers' verifications are listed while the window still
    reaches back to them, the last time at its very end."""
    lock_out(app, cases["ordinary"])  # three calls from numbers of their own: verifications too
    policy = app.extensions["ivr"].services.gate.policy
    started = clock()

    def kinds_listed_at(moment: dt.datetime) -> set[str]:
        clock.now = moment
        rows = counters_of(app).current(window(app), moment - dt.timedelta(hours=1))
        return {row.kind for row in rows}

    second = dt.timedelta(seconds=1)
    for kind, span in (
        ("verification", dt.timedelta(hours=1)),
        ("failure", policy.failure_window),
        ("lock", policy.lockout),
    ):
        assert kind in kinds_listed_at(started + span), kind
        assert kind not in kinds_listed_at(started + span + second), kind


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
