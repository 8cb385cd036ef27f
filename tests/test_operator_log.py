"""What the log tells an operator about SMS and about records the store could not take.

Each SMS's fate is logged under its key (never its text or number), with the provider's reason
when it did not go; and when the store itself fails, the log names what could not be recorded.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from ivr.errors import BackendError, DeliveryUnknown
from ivr.ports import OutgoingSms
from tests.calls import Records
from tests.test_outbox_twins import queue_sms


class Sender:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def send(self, to: str, body: str) -> str:
        if self.error:
            raise self.error
        return "SM0001"

    def received(self):
        return {}


def deliver(app, sender: Sender) -> tuple[str, OutgoingSms]:
    message = queue_sms(app, "CA-log", "CA-log:pin", to="+4520123477")
    outbox = dataclasses.replace(app.extensions["ivr"].outbox, sender=sender)
    status, _ = outbox.deliver("CA-log", message)
    return status, message


def logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_a_sent_sms_is_logged_and_recorded_with_its_time(app, caplog):
    caplog.set_level(logging.INFO)
    assert deliver(app, Sender())[0] == "sent"
    assert "SMS CA-log:pin sent" in logged(caplog)
    (row,) = Records(app).rows("sms_outbox", key="CA-log:pin")
    assert (row["provider_id"], row["sent_at"]) == ("SM0001", app.extensions["ivr"].clock())


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (BackendError("refused (HTTP 400)"), "failed", "SMS CA-log:pin was not sent: refused (HTTP 400)"),
        (DeliveryUnknown("no answer in 5 s"), "unknown", "SMS CA-log:pin: no answer in 5 s"),
    ],
)
def test_an_sms_that_did_not_go_is_logged_with_the_reason(app, caplog, error, status, line):
    assert deliver(app, Sender(error))[0] == status
    assert line in logged(caplog)
    (row,) = Records(app).rows("sms_outbox", key="CA-log:pin")
    assert (row["status"], row["error"], row["sent_at"]) == (status, str(error), None)
    assert "+4520123477" not in " ".join(logged(caplog))


@pytest.mark.parametrize(("error", "status"), [(BackendError, "failed"), (DeliveryUnknown, "unknown")])
def test_a_long_provider_error_is_cut_to_200_characters(app, error, status):
    assert deliver(app, Sender(error("x" * 300)))[0] == status
    (row,) = Records(app).rows("sms_outbox", key="CA-log:pin")
    assert row["error"] == "x" * 200


def test_a_delivery_status_is_kept_whole(app):
    assert deliver(app, Sender())[0] == "sent"
    outbox = app.extensions["ivr"].outbox
    assert outbox.record_delivery("SM0001", "partially_delivered")
    assert not outbox.record_delivery("SM9999", "delivered")
    (row,) = Records(app).rows("sms_outbox", key="CA-log:pin")
    assert row["delivery"] == "partially_delivered"


def broken_store(app, monkeypatch) -> None:
    store = app.extensions["ivr"].store

    def fails(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(store, "transaction", fails)


def test_an_audit_event_the_store_cannot_take_is_named_in_the_log(app, caplog, monkeypatch):
    broken_store(app, monkeypatch)
    app.extensions["ivr"].note("CA-x", "caller_mismatch", route="/voice/keys")
    assert "could not audit caller_mismatch: RuntimeError" in " ".join(logged(caplog))


def test_a_failure_the_store_cannot_record_is_logged_and_the_caller_still_hears_sorry(
    app, caplog, monkeypatch
):
    broken_store(app, monkeypatch)
    twiml = app.extensions["ivr"].apology("CA-y", "+4520123477", "application_error")
    assert "could not record the failed call: RuntimeError" in " ".join(logged(caplog))
    assert "<Enqueue" in twiml and twiml.count("<Say") >= 2  # in every language, then an agent


def test_an_sms_whose_text_could_not_be_made_is_failed_and_logged_without_values(app, caplog):
    """Making the text broke unexpectedly (the MitID back end lost its database as it issued the
    PIN, with the CPR number in the error): nothing went to the provider, so the SMS failed (not
    left `sending`, as if it might have gone), and the log names the SMS and the error's type,
    never the values in its message."""

    def broken() -> str:
        raise RuntimeError("connection lost at INSERT ... cpr=0101901234 to +4520123477")

    message = dataclasses.replace(queue_sms(app, "CA-log", "CA-log:pin", to="+4520123477"), compose=broken)
    outbox = dataclasses.replace(app.extensions["ivr"].outbox, sender=Sender())
    assert outbox.deliver("CA-log", message) == ("failed", "77")
    (row,) = Records(app).rows("sms_outbox", key="CA-log:pin")
    assert (row["status"], row["error"], row["provider_id"]) == ("failed", "its text could not be made", None)
    lines = logged(caplog)
    made = "SMS CA-log:pin: its text could not be made: RuntimeError at "
    assert any(line.startswith(made) for line in lines)
    assert "SMS CA-log:pin was not sent: its text could not be made" in lines
    assert "0101901234" not in " ".join(lines) and "+4520123477" not in " ".join(lines)
