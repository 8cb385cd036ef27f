"""Races with a call's end: its record wiped (an operator's clean-up, a restored store) while its
PIN is being sent, or its end-of-call status scrubbing it while another webhook is in flight."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from ivr import create_app
from ivr.engine import Engine
from ivr.store import call_sessions
from tests.calls import Call
from tests.conftest import BASE, TOKEN


def test_a_call_wiped_while_its_pin_is_sent_hears_an_apology_and_the_line_goes_on(
    app, dial, cases, records, monkeypatch
):
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "temporary_pin")
    for _ in range(app.extensions["ivr.settings"].questions_asked - 1):
        call.answer(person)
    store, sender = app.extensions["ivr"].store, app.extensions["ivr"].outbox.sender
    taken = sender.send

    def send_while_wiped(to: str, body: str) -> str:
        provider_id = str(taken(to, body))
        with store.connection() as other:
            other.execute(sa.delete(call_sessions))
        return provider_id

    monkeypatch.setattr(sender, "send", send_while_wiped)
    webhook = threading.Thread(target=lambda: call.answer(person), daemon=True)
    webhook.start()
    webhook.join(20)
    assert not webhook.is_alive(), "the webhook hangs on its own call's lock"
    assert call.status == 200
    assert call.said == ["apology", "transfer"] * 3
    assert records.escalation(call)["reason"] == "call_not_found"


def test_a_hang_up_while_another_process_takes_keys_keeps_the_call_scrubbed(
    dial, cases, records, settings, clock, monkeypatch
):
    """Twilio's end-of-call status lands on another process of the line (same SQLite file) while
    this one works on the caller's last keys: the scrub stands, the keys lose the race, and the
    document number is not written back."""
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "temporary_pin")
    number = person.person.documents[0].number
    assert number in records.session(call)["state"]
    other = create_app(settings, clock=clock)
    plain, hung_up = Engine.on_keys, []

    def hang_up_meanwhile(self, state, keys):
        if not hung_up:
            twin = Call(other, TOKEN, BASE, language="en", caller=call.caller, sid=call.sid)
            hung_up.append(twin.hang_up())
        return plain(self, state, keys)

    monkeypatch.setattr(Engine, "on_keys", hang_up_meanwhile)
    call.press("1#")
    monkeypatch.undo()
    assert hung_up
    session = records.session(call)
    assert session["ended"] is True
    assert number not in session["state"]
