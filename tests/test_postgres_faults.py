"""The line on PostgreSQL when the network fails at the worst moment: the server committed a
webhook's writes, and the answer to the COMMIT was lost with the connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event

from ivr.adapters.demo_people import DemoPerson
from ivr.prompts import Spelled
from ivr.store import audit_events, call_sessions, sms_outbox
from tests.calls import INTENT_KEYS, Call
from tests.pg_proxy import Proxy, proxied
from tests.test_store_postgres import _answer, _close, _dial, _kill_connections, _line, _mette, _rows


@pytest.fixture
def app(postgres_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The line on PostgreSQL, reached directly."""
    line = _line(postgres_url, tmp_path)
    yield line
    _close(line)


@pytest.fixture
def cut(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Proxy]]:
    """The line, its store reached through a proxy that can cut the connection at a COMMIT."""
    with proxied(postgres_url) as proxy:
        app = _line(proxy.url(postgres_url), tmp_path, demo_url=postgres_url)
        yield app, proxy
        _close(app)


def test_a_pin_order_whose_commit_answer_was_lost_still_sends_the_pin(cut: tuple[Flask, Proxy]) -> None:
    """The webhook that orders the PIN committed, but never heard so: it must not run again as
    if nothing had been written (the call moved on; a rerun finds its own turn taken and drops
    the SMS it had queued)."""
    app, proxy = cut
    person = _mette(app)
    call = _at_last_question(app, person)
    proxy.cut_at_next_commit()
    call.press(_answer(call, person) + "#")  # the answer that orders the PIN
    assert proxy.cuts == 1
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    [sms] = _rows(app, sms_outbox, call.sid)
    assert sms["status"] == "sent"
    events = [row["event"] for row in _rows(app, audit_events, call.sid)]
    assert "stale_webhook_ignored" not in events
    assert events.count("pin_ordered") == events.count("sms_sent") == 1


def test_a_pin_sent_while_the_database_restarted_is_recorded_as_sent(
    app: Flask, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database drops every connection while the SMS provider takes the PIN (a restart, a
    failover): the PIN went out, so the caller hears so and the outbox records it sent, as when
    every pooled connection was checked before use."""
    person = _mette(app)
    call = _at_last_question(app, person)
    sender = app.extensions["ivr"].outbox.sender
    taken = sender.send

    def send_then_restart(to: str, body: str) -> str:
        provider_id = taken(to, body)
        _dropped_every_connection(postgres_url)
        return provider_id

    monkeypatch.setattr(sender, "send", send_then_restart)
    call.press(_answer(call, person) + "#")  # the answer that orders the PIN
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    [sms] = _rows(app, sms_outbox, call.sid)
    assert sms["status"] == "sent"
    assert len(sender.received()) >= 1


def test_a_pin_call_on_connections_that_sat_idle_sends_the_pin(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pooled connection has sat idle past PING_AFTER_IDLE (a quiet line, or a pool grown
    by a busy minute: the pool hands out its oldest connection first), so each is pinged at
    checkout: the PIN still goes out, and the caller hears so."""
    monkeypatch.setattr("ivr.store.PING_AFTER_IDLE", 0.0)
    person = _mette(app)
    call = _dial(app).choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    [sms] = _rows(app, sms_outbox, call.sid)
    assert sms["status"] == "sent"


def _at_last_question(app: Flask, person: DemoPerson) -> Call:
    """A PIN call answered right up to its last question (whose answer orders the PIN)."""
    call = _dial(app).choose_language().identify(person, "temporary_pin")
    for _ in range(app.extensions["ivr.settings"].questions_asked - 1):
        call.press(_answer(call, person) + "#")
    return call


def _dropped_every_connection(url: str) -> None:
    """Every session of the line's database ended (as a restart ends them), and gone."""
    assert _kill_connections(url) >= 1
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as admin:
        for _ in range(500):
            left = admin.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            ).scalar_one()
            if left == 0:
                break
            time.sleep(0.01)
    engine.dispose()


def test_a_hang_up_right_after_a_database_restart_scrubs_the_call(app: Flask, postgres_url: str) -> None:
    """The first webhook after a restart is not always one of the flow's (which runs again on a
    lost connection): Twilio's end-of-call status must still scrub the caller's document number
    at once, not two hours later at the sweep."""
    person = _mette(app)
    call = _dial(app).choose_language().identify(person, "temporary_pin")
    [before] = _rows(app, call_sessions, call.sid)
    assert person.person.documents[0].number in str(before["state"])
    _dropped_every_connection(postgres_url)
    call.hang_up()
    [after] = _rows(app, call_sessions, call.sid)
    assert after["ended"] is True
    assert person.person.documents[0].number not in str(after["state"])
    assert "call_ended" in [e["event"] for e in _rows(app, audit_events, call.sid)]


def _end(url: str, pid: int) -> None:
    """One session of the database ended by the server, and gone."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(500):
            gone = admin.execute(
                sa.text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
            if gone:
                break
            time.sleep(0.01)
    engine.dispose()


def test_an_sms_result_written_on_a_connection_dropped_as_it_was_taken_is_kept(
    app: Flask, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection the outbox takes to record that the PIN went out is dropped by the server
    just as it leaves the pool (after any check there): the result is written all the same."""
    person = _mette(app)
    call = _at_last_question(app, person)
    engine = app.extensions["ivr"].store.engine
    sender = app.extensions["ivr"].outbox.sender
    taken, armed = sender.send, threading.Event()

    def send_and_arm(to: str, body: str) -> str:
        armed.set()
        return str(taken(to, body))

    def drop(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if armed.is_set():
            armed.clear()
            _end(postgres_url, dbapi_connection.info.backend_pid)

    monkeypatch.setattr(sender, "send", send_and_arm)
    event.listen(engine, "checkout", drop)
    try:
        call.press(_answer(call, person) + "#")  # the answer that orders the PIN
    finally:
        event.remove(engine, "checkout", drop)
    assert not armed.is_set()  # the connection was dropped
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    [sms] = _rows(app, sms_outbox, call.sid)
    assert sms["status"] == "sent" and sms["provider_id"]


def test_a_pin_whose_sent_commit_answer_was_lost_is_told_as_sent(
    cut: tuple[Flask, Proxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PIN went out and the call moved on to say so; the answer to that COMMIT was lost with
    the connection: the caller hears the PIN was sent, not an apology and an agent."""
    app, proxy = cut
    person = _mette(app)
    call = _at_last_question(app, person)
    sender = app.extensions["ivr"].outbox.sender
    taken = sender.send

    def send_then_cut(to: str, body: str) -> str:
        provider_id = str(taken(to, body))
        proxy.cut_at_next_commit()  # the call's next transaction: the SMS's outcome
        return provider_id

    monkeypatch.setattr(sender, "send", send_then_cut)
    call.press(_answer(call, person) + "#")
    assert proxy.cuts == 1
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    events = [row["event"] for row in _rows(app, audit_events, call.sid)]
    assert "escalated" not in events and "application_error" not in events
    assert events.count("sms_sent") == 1


def test_a_register_look_up_whose_connection_dropped_runs_the_webhook_again(
    app: Flask, postgres_url: str
) -> None:
    """The register's connection is lost while it looks up the caller's document (the database
    ended it): nothing was written, so the webhook runs again, as when the line's own connection
    is lost, and the caller hears the first question, not an apology and an agent."""
    person = _mette(app)
    call = _dial(app).choose_language()
    call.press(INTENT_KEYS["temporary_pin"]).give_document(person.person.documents[0])
    engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    killed: list[int] = []
    with engine.connect() as holder:
        holder.execute(sa.text("LOCK TABLE demo_people IN ACCESS EXCLUSIVE MODE"))  # the look-up waits

        def end_the_waiting_look_up() -> None:
            with engine.connect() as admin:
                for _ in range(500):
                    waiting = admin.execute(
                        sa.text(  # whoever waits for the table: the look-up
                            "SELECT pid FROM pg_locks"
                            " WHERE NOT granted AND relation = 'demo_people'::regclass"
                        )
                    ).scalars()
                    killed.extend(pid for pid in waiting)
                    if killed:
                        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": killed[0]})
                        break
                    time.sleep(0.01)
            holder.rollback()  # the table free again for the rerun

        ending = threading.Thread(target=end_the_waiting_look_up)
        ending.start()
        call.press("1")  # the document confirmed: the register is asked for its holder
        ending.join()
    engine.dispose()
    assert len(killed) == 1
    assert call.asked, call.heard
    events = [row["event"] for row in _rows(app, audit_events, call.sid)]
    assert "escalated" not in events and "application_error" not in events
    assert events.count("verification_started") == 1


def test_a_pin_whose_issue_lost_its_connection_is_recorded_as_not_sent(
    postgres_url: str, tmp_path: Path
) -> None:
    """The MitID back end's connection is lost as it issues the PIN (the answer to its COMMIT
    cut): no SMS went out, so the outbox says `failed` (not `sending`, later `unknown`, as if the
    provider might have it), and the caller hears that the SMS could not be sent and gets an
    agent for that reason, not an apology for an error."""
    with proxied(postgres_url) as proxy:
        app = _line(postgres_url, tmp_path, demo_url=proxy.url(postgres_url))  # the back end's PINs
        try:
            person = _mette(app)
            call = _at_last_question(app, person)
            proxy.cut_at_next_commit()  # the back end's next COMMIT: the PIN's
            call.press(_answer(call, person) + "#")
            assert proxy.cuts == 1
            assert call.hears("sms_failed"), call.heard
            [sms] = _rows(app, sms_outbox, call.sid)
            assert sms["status"] == "failed" and sms["provider_id"] is None
            events = [row["event"] for row in _rows(app, audit_events, call.sid)]
            assert "application_error" not in events and events.count("sms_failed") == 1
        finally:
            _close(app)
