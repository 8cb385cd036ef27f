"""A call whose record is wiped (an operator's clean-up, a restored store) while its PIN is being
sent: the webhook still answers, and the line goes on serving other calls."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from ivr.store import call_sessions


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
