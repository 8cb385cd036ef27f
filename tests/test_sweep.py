"""The sweep: calls that never got their end-of-call status are scrubbed once they have been quiet
for `stale_call_minutes` (two hours), and only those."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ivr.store import desk_verifications
from tests.test_audit_trail import assert_in_order


def test_only_calls_quiet_for_longer_than_the_limit_are_swept(app, dial, clock, records):
    line = app.extensions["ivr"]
    old = dial("en").choose_language().press("2").press("100000001#")
    ended = dial("en").choose_language().press("0")  # put through: its flow is over
    clock.advance(minutes=119)
    recent = dial("en").choose_language().press("2").press("100000001#")
    assert line.sweep() == 0
    clock.advance(minutes=2)
    assert line.sweep() == 1
    assert_in_order(records, old, ("call_swept", {"step": "confirm_document"}))
    assert "call_swept" not in records.audit(ended) + records.audit(recent)
    assert "100000001" in records.session(recent)["state"]
    assert "100000001" not in records.session(old)["state"]
    assert line.sweep() == 0  # a swept call is not swept again


def test_a_call_quiet_for_exactly_the_limit_is_not_swept_yet(app, dial, clock):
    line = app.extensions["ivr"]
    dial("en").choose_language().press("2").press("100000001#")
    clock.advance(hours=2)
    assert line.sweep() == 0
    clock.advance(seconds=1)
    assert line.sweep() == 1


def desk_numbers(line) -> dict[str, str | None]:
    with line.store.connection() as connection:
        query = sa.select(desk_verifications.c.call_sid, desk_verifications.c.document_number)
        return dict(connection.execute(query).all())


def test_the_sweep_clears_a_desk_verification_left_for_longer_than_the_limit(app, clock):
    """A verification the desk left unfinished (for a call the line has no record of, so only
    this part of the sweep can clear it), once it is older than the limit; newer ones stay."""
    line = app.extensions["ivr"]
    for call_sid, age in (("CA-old", dt.timedelta(hours=2, seconds=1)), ("CA-now", dt.timedelta(hours=2))):
        with line.store.connection() as connection:
            connection.execute(
                sa.insert(desk_verifications).values(
                    call_sid=call_sid,
                    agent="anna",
                    document_type="passport",
                    document_number="100000001",
                    progress="{}",
                    started_at=clock.now - age,
                    updated_at=clock.now - age,
                )
            )
    assert line.sweep() == 0
    assert desk_numbers(line) == {"CA-old": None, "CA-now": "100000001"}


def test_a_write_ahead_log_a_reader_holds_is_logged_and_folded_by_a_later_sweep(app, dial, caplog):
    line = app.extensions["ivr"]
    dial("en").choose_language()
    busy = "the write-ahead log was busy; the next sweep folds it"
    reader = line.store.engine.connect().execution_options(read_only=True)
    reader.exec_driver_sql("SELECT count(*) FROM call_sessions").scalar()  # holds a snapshot
    try:
        line.sweep()
    finally:
        reader.close()
    assert busy in [record.getMessage() for record in caplog.records]
    caplog.clear()
    line.sweep()
    assert busy not in [record.getMessage() for record in caplog.records]
