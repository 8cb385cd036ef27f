"""The sweep: calls that never got their end-of-call status are scrubbed once they have been quiet
for `stale_call_minutes` (two hours), and only those."""

from __future__ import annotations

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
