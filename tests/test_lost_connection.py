"""A webhook whose database connection is lost, before its COMMIT or after it (the answer lost).

On PostgreSQL these are real (tests/test_postgres_faults.py drops connections and swallows a
COMMIT's answer); here the store raises the same error SQLAlchemy raises for a dropped connection,
once, at the moment chosen, so that the line's handling is also tested on the embedded store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from ivr.prompts import Spelled
from ivr.store import Store
from tests.calls import Call, Records
from tests.test_outbox import answer_for


def _lost() -> sa.exc.DBAPIError:
    return sa.exc.OperationalError(
        "COMMIT", {}, Exception("server closed the connection"), connection_invalidated=True
    )


def _losing_the_next_transaction(monkeypatch: pytest.MonkeyPatch, when: str) -> list[str]:
    """The store's next transaction loses its connection `when` ("before" its COMMIT: nothing is
    written; "after" it: all is written, its answer is lost); what it took of them."""
    real = Store.transaction
    lost: list[str] = []

    @contextmanager
    def transaction(self: Store, now, call_sid):  # type: ignore[no-untyped-def]
        if lost:
            with real(self, now, call_sid) as tx:
                yield tx
            return
        lost.append(when)
        with real(self, now, call_sid) as tx:
            yield tx
            if when == "before":
                raise _lost()
        raise _lost()

    monkeypatch.setattr(Store, "transaction", transaction)
    return lost


def _at_last_question(dial, person) -> Call:  # type: ignore[no-untyped-def]
    call = dial(language="en").choose_language().identify(person, "temporary_pin")
    while len(call.state.verification.questions) - call.state.verification.asked > 1:
        call.press(answer_for(call, person))
    return call


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_pin_is_ordered_once_whether_the_commit_or_its_answer_was_lost(
    dial, cases, records: Records, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    person = cases["ordinary"]
    call = _at_last_question(dial, person)
    taken = _losing_the_next_transaction(monkeypatch, when)
    call.press(answer_for(call, person))
    assert taken == [when]
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    [sms] = records.sms(call)
    assert sms["status"] == "sent"
    events = records.audit(call)
    assert events.count("verification_passed") == events.count("pin_ordered") == 1
    assert "stale_webhook_ignored" not in events and "escalated" not in events


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_menu_key_counts_once_whether_the_commit_or_its_answer_was_lost(
    dial, records: Records, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    call = dial(language="en").choose_language()
    turn = call.state.turn
    _losing_the_next_transaction(monkeypatch, when)
    call.press("2")
    assert call.status == 200 and call.listening
    assert call.state.turn == turn + 1  # one step on, not two, not none
    assert "escalated" not in records.audit(call)


def test_a_connection_lost_twice_gives_the_apology_and_an_agent(
    dial, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhook runs again once; a second loss is an outside failure like any other (the
    apology's own transaction, the third, finds the database back)."""
    call = dial(language="en").choose_language()
    real = Store.transaction
    losses: list[int] = []

    @contextmanager
    def lost_twice(self: Store, now, call_sid) -> Iterator[object]:  # type: ignore[no-untyped-def]
        with real(self, now, call_sid) as tx:
            yield tx
            if len(losses) < 2:
                losses.append(1)
                raise _lost()

    monkeypatch.setattr(Store, "transaction", lost_twice)
    call.press("2")
    monkeypatch.undo()
    assert call.status == 200 and call.queued
    assert records.escalation(call)["reason"]


def test_any_other_database_error_is_not_run_again(
    dial, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a dropped connection means nothing was done; another error is not retried."""
    call = dial(language="en").choose_language()
    real = Store.transaction
    runs: list[int] = []

    @contextmanager
    def failing(self: Store, now, call_sid) -> Iterator[object]:  # type: ignore[no-untyped-def]
        with real(self, now, call_sid) as tx:
            yield tx
            runs.append(1)
            if len(runs) == 1:
                raise sa.exc.OperationalError("UPDATE", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Store, "transaction", failing)
    call.press("2")
    monkeypatch.undo()
    assert call.queued  # the apology and an agent, not the next menu
    assert records.escalation(call)["reason"]
