"""A store that cannot be reached for a moment (PostgreSQL restarting, failing over) leaves a
record all the same: the hand-over reaches the desk's queue, and the PIN's outcome is what the
SMS provider did. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from ivr import store as store_module
from ivr.adapters.demo_people import DemoPerson
from ivr.engine import Engine
from ivr.line import Line
from ivr.prompts import Spelled
from tests.calls import Call, Records
from tests.postgres import either_store

database_url = either_store  # every test here on SQLite and on PostgreSQL


def unreachable() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("connect", {}, Exception("connection refused"))


def failing(times: int, real: Callable[..., Any], error: Callable[[], Exception] = unreachable) -> Any:
    """The method `real`, after failing `times` times (as a database that cannot be reached)."""
    left = [times]

    def attempt(*args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise error()
        return real(*args, **kwargs)

    return attempt


def break_next_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next keys webhook fails unexpectedly (as when the store went away under it)."""
    monkeypatch.setattr(Engine, "on_keys", failing(1, Engine.on_keys, lambda: RuntimeError("gone")))


def test_an_apology_while_the_store_restarts_waits_for_it_and_records_the_hand_over(
    app: Flask, dial: Callable[..., Call], records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = dial("en").choose_language()
    break_next_webhook(monkeypatch)
    monkeypatch.setattr(Line, "_record_failure", failing(2, Line._record_failure))
    call.press("2")
    assert call.said == ["apology", "transfer"] and call.queued
    escalation = records.escalation(call)
    assert (escalation["status"], escalation["reason"]) == ("waiting", "application_error")


def test_a_hand_over_the_store_could_not_take_reaches_the_queue_once_it_is_back(
    app: Flask,
    dial: Callable[..., Call],
    records: Records,
    monkeypatch: pytest.MonkeyPatch,
    on_duty: str,
) -> None:
    call = dial("en").choose_language()
    break_next_webhook(monkeypatch)
    monkeypatch.setattr(store_module, "UNREACHABLE_BUDGET", 0.3)
    real = Line._record_failure
    monkeypatch.setattr(Line, "_record_failure", failing(100, real))  # down for the whole webhook
    call.press("2")
    assert set(call.said) == {"apology", "transfer"} and call.queued  # in every language: not known
    assert records.escalations(call) == []

    monkeypatch.setattr(Line, "_record_failure", real)  # the store is back
    call.wait_in_queue(1)
    assert call.said == ["queue_position"]
    escalation = records.escalation(call)
    assert (escalation["status"], escalation["reason"]) == ("waiting", "handover_recorded_late")
    assert escalation["language"] == "en" and "handover_recorded_late" in records.audit(call)
    call.wait_in_queue(1)
    assert len(records.escalations(call)) == 1


def test_a_pin_sent_while_the_store_restarts_is_recorded_sent_and_the_caller_hears_so(
    app: Flask,
    dial: Callable[..., Call],
    records: Records,
    cases: dict[str, DemoPerson],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ivr.outbox

    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "temporary_pin")
    real = ivr.outbox.write_once
    sent_once = {"done": False}

    def write(engine: sa.Engine, text: str, params: Any) -> int:
        if "provider_id = ?" in text and not sent_once["done"]:
            sent_once["done"] = True
            raise unreachable()  # the provider took the SMS; the store was restarting
        return real(engine, text, params)

    monkeypatch.setattr(ivr.outbox, "write_once", write)
    call.answer_questions(person)
    assert sent_once["done"]
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    (sms,) = records.sms(call)
    assert sms["status"] == "sent"
    assert len(records.texts_to(person.account.mobile)) == 1


def test_an_ordinary_wait_for_a_call_with_no_hand_over_records_nothing(
    app: Flask, dial: Callable[..., Call], records: Records
) -> None:
    """Only the wait URL the apology gave when the store was down records a hand-over late."""
    from tests.conftest import BASE

    call = dial("en").choose_language()
    call.post(f"{BASE}/voice/wait", QueuePosition="1")
    assert records.escalations(call) == [] and not records.session(call)["ended"]
