"""The SMS outbox with a real provider: the PIN in the body is not kept once the SMS has gone or failed."""

from __future__ import annotations

import re

from ivr import create_app
from ivr.errors import BackendError
from ivr.outbox import REDACTED
from ivr.prompts import Spelled
from ivr.store import sms_outbox
from tests.calls import Call
from tests.conftest import BASE, TOKEN


class Provider:
    """A working stand-in for Twilio's SMS API that can be told to refuse."""

    keeps_body = False

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str:
        if self.refuse:
            raise BackendError("Twilio refused the SMS (HTTP 400, Twilio error 21610)")
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"


def pin_call(settings, clock, provider: Provider) -> list[dict]:
    app = create_app(settings, clock=clock, sms=provider)
    person = next(p for p in app.extensions["ivr.people"] if p.case == "ordinary")
    call = Call(app, TOKEN, BASE, language="en").dial().choose_language()
    call.identify(person, "temporary_pin").answer_questions(person)
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51"))
    return app.extensions["ivr"].store.rows(sms_outbox)


def test_a_sent_sms_keeps_no_pin(settings, clock):
    provider = Provider(refuse=False)
    [row] = pin_call(settings, clock, provider)
    [(to, body)] = provider.sent
    assert to == "+4520123451" and re.search(r"\b\d{8}\b", body)
    assert (row["status"], row["body"], row["provider_id"]) == ("sent", REDACTED, "SM" + "1".zfill(32))


def test_a_failed_sms_keeps_no_pin_either(settings, clock):
    [row] = pin_call(settings, clock, Provider(refuse=True))
    assert row["status"] == "failed"
    assert row["body"] == REDACTED
    assert row["error"] == "Twilio refused the SMS (HTTP 400, Twilio error 21610)"
