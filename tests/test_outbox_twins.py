"""The SMS outbox when two webhooks of one call reach it, and what the sweep settles.

Of two webhooks delivering the same SMS, one claims and sends it; the other waits (a little
longer than a send may take) and reports how it fared, or `unknown` when it is still being sent.
The sweep settles rows a crash left behind: `sending` becomes unknown, `pending` failed, and
only once they are older than five minutes.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from ivr.ports import OutgoingSms
from ivr.store import sms_outbox
from tests.calls import Records


def queue_sms(app, call_sid: str, key: str, to: str = "+4520123451") -> OutgoingSms:
    """An SMS written to the outbox as a webhook's transaction writes it."""
    line = app.extensions["ivr"]
    message = OutgoingSms(key, to, lambda: f"text of {key}")
    with line.store.transaction(line.clock(), call_sid) as tx:
        tx.add_sms(message, call_sid, "temporary_pin")
    return message


def set_status(app, key: str, **values) -> None:
    with app.extensions["ivr"].store.connection() as connection:
        connection.execute(sms_outbox.update().where(sms_outbox.c.key == key).values(**values))


def status_of(app, key: str) -> str:
    (row,) = Records(app).rows("sms_outbox", key=key)
    return str(row["status"])


def test_the_newest_sms_of_the_call_is_the_one_delivered(app, records):
    queue_sms(app, "CA1", "CA1:first", to="+4520123411")
    newest = queue_sms(app, "CA1", "CA1:second", to="+4520123422")
    set_status(app, "CA1:first", status="sent")
    assert app.extensions["ivr"].outbox.deliver("CA1", newest) == ("sent", "22")
    assert records.texts_to("+4520123422") == ["text of CA1:second"]
    assert records.texts_to("+4520123411") == []


def test_a_call_with_no_sms_reports_failed(app):
    assert app.extensions["ivr"].outbox.deliver("CA-none", None) == ("failed", "")


def test_an_sms_of_another_call_is_not_touched(app, records):
    queue_sms(app, "CA-other", "CA-other:pin")
    assert app.extensions["ivr"].outbox.deliver("CA-mine", None) == ("failed", "")
    assert status_of(app, "CA-other:pin") == "pending"


def test_sending_one_calls_sms_claims_no_other_calls_waiting_sms(app, records):
    queue_sms(app, "CA-other", "CA-other:pin", to="+4520123400")
    message = queue_sms(app, "CA-mine", "CA-mine:pin", to="+4520123411")
    outbox = dataclasses.replace(app.extensions["ivr"].outbox, patience=0.2)
    assert outbox.deliver("CA-mine", message) == ("sent", "11")
    assert status_of(app, "CA-other:pin") == "pending"
    assert records.texts_to("+4520123400") == []


@pytest.mark.parametrize("status", ["sent", "failed", "unknown"])
def test_a_twin_finds_the_sms_handled_and_reports_how_it_fared(app, records, status):
    message = queue_sms(app, "CA2", "CA2:pin", to="+4520123499")
    set_status(app, "CA2:pin", status=status)
    assert app.extensions["ivr"].outbox.deliver("CA2", message) == (status, "99")
    assert records.texts_to() == []  # not sent again


def test_a_twin_waits_for_the_send_under_way_and_reports_its_result(app, records):
    message = queue_sms(app, "CA3", "CA3:pin", to="+4520123433")
    set_status(app, "CA3:pin", status="sending")  # the other webhook claimed it and is sending
    finisher = threading.Timer(0.3, set_status, (app, "CA3:pin"), {"status": "sent"})
    finisher.start()
    try:
        assert app.extensions["ivr"].outbox.deliver("CA3", message) == ("sent", "33")
    finally:
        finisher.join()
    assert records.texts_to() == []


def test_a_twin_gives_up_after_its_patience_and_says_unknown(app, records):
    line = app.extensions["ivr"]
    message = queue_sms(app, "CA4", "CA4:pin")
    set_status(app, "CA4:pin", status="sending")
    outbox = dataclasses.replace(line.outbox, patience=0.2)
    assert outbox.deliver("CA4", message) == ("unknown", "51")
    assert status_of(app, "CA4:pin") == "sending"  # still the sender's to settle
    assert records.texts_to() == []


def test_the_sms_is_claimed_before_it_is_sent(app, records):
    message = queue_sms(app, "CA5", "CA5:pin", to="+4520123455")
    outbox = app.extensions["ivr"].outbox
    seen = []

    class Watching:
        def send(self, to: str, body: str) -> str:
            (row,) = Records(app).rows("sms_outbox", key="CA5:pin")
            seen.append((row["status"], row["claimed_at"]))
            return "SM123"

        def received(self):
            return {}

    assert dataclasses.replace(outbox, sender=Watching()).deliver("CA5", message) == ("sent", "55")
    assert seen == [("sending", app.extensions["ivr"].clock())]
    (row,) = Records(app).rows("sms_outbox", key="CA5:pin")
    assert (row["status"], row["provider_id"]) == ("sent", "SM123")


def test_a_message_whose_text_is_not_the_rows_is_never_sent(app, records):
    queue_sms(app, "CA6", "CA6:pin")
    other = OutgoingSms("CA6:something-else", "+4520123451", lambda: "another text")
    assert app.extensions["ivr"].outbox.deliver("CA6", other) == ("failed", "51")
    assert records.texts_to() == []
    (row,) = records.rows("sms_outbox", key="CA6:pin")
    assert (row["status"], row["error"]) == ("failed", "its text was lost unsent")


def test_a_message_that_can_no_longer_be_made_is_failed_and_never_sent(app, records):
    queue_sms(app, "CA10", "CA10:pin")
    spent = OutgoingSms("CA10:pin", "+4520123451", lambda: None)  # its PIN went to an earlier try
    assert app.extensions["ivr"].outbox.deliver("CA10", spent) == ("failed", "51")
    assert records.texts_to() == []
    (row,) = records.rows("sms_outbox", key="CA10:pin")
    assert (row["status"], row["error"]) == ("failed", "an attempt that did not finish issued its PIN")


# -- the sweep -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("minutes", "settled"), [(4, False), (5, False), (6, True)])
def test_the_sweep_settles_rows_left_by_a_crash_after_five_minutes(app, clock, minutes, settled):
    line = app.extensions["ivr"]
    queue_sms(app, "CA7", "CA7:pending")
    queue_sms(app, "CA8", "CA8:sending")
    queue_sms(app, "CA9", "CA9:sent")
    set_status(app, "CA8:sending", status="sending", claimed_at=clock())
    set_status(app, "CA9:sent", status="sent")
    clock.advance(minutes=minutes)
    assert line.outbox.resolve_stale() == (2 if settled else 0)
    expected = ("failed", "unknown") if settled else ("pending", "sending")
    assert (status_of(app, "CA7:pending"), status_of(app, "CA8:sending")) == expected
    assert status_of(app, "CA9:sent") == "sent"
    if settled:
        (pending,) = Records(app).rows("sms_outbox", key="CA7:pending")
        (sending,) = Records(app).rows("sms_outbox", key="CA8:sending")
        assert pending["error"] == "its text was lost before it was sent"
        assert sending["error"] == "left sending by a crash"
