"""What a caller hears while queued for an agent, and on leaving the queue.

Their place (never below first) and an honest estimate of at least a minute, rounded up, in the
language they chose: the callers up to them times today's time an agent spends on a call (the
setting until a call was wrapped up today), shared among the agents on duty; with no agent on
duty, that nobody can say. The goodbye on leaving the queue in their language too.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ivr import create_app
from ivr.store import escalations
from tests.calls import Call
from tests.conftest import BASE, TOKEN
from tests.postgres import either_store

database_url = either_store  # every test here on SQLite and on PostgreSQL


def queued(app, language: str) -> Call:
    call = Call(app, TOKEN, BASE, language=language, caller="+4577000001").dial()
    call.choose_language().press("0")
    assert call.queued
    return call


@pytest.mark.parametrize(("position", "place", "minutes"), [(1, "1", "3"), (4, "4", "12"), (0, "1", "3")])
def test_the_place_and_the_wait_are_said_in_the_callers_language(app, on_duty, position, place, minutes):
    call = queued(app, "en").wait_in_queue(position)
    assert call.said == ["queue_position"]
    assert call.hears("queue_position", "en", position=place, minutes=minutes)


def test_with_no_position_given_the_caller_is_told_they_are_first(app, on_duty):
    call = queued(app, "da")
    call.post(f"{BASE}/voice/wait", QueueTime="30")
    assert call.status == 200
    assert call.hears("queue_position", "da", position="1", minutes="3")


def test_the_estimate_is_rounded_up_to_at_least_a_minute(settings, clock):
    app = create_app(settings.model_copy(update={"agent_minutes_per_caller": 0.4}), clock=clock)
    try:
        add_on_duty(app)
        assert (
            queued(app, "en").wait_in_queue(1).hears("queue_position_one", "en", position="1")
        )  # one minute
        assert queued(app, "en").wait_in_queue(3).hears("queue_position", "en", position="3", minutes="2")
    finally:
        app.extensions["ivr.core"].close()


@pytest.mark.parametrize("language", ["da", "en"])
def test_leaving_the_queue_says_goodbye_in_the_callers_language(app, language):
    call = queued(app, language)
    call.post(f"{BASE}/voice/queue-exit", QueueResult="hangup")
    assert call.status == 200
    assert call.said == ["goodbye"]
    assert call.hears("goodbye", language)
    assert call.twiml.find("Hangup") is not None


def test_a_call_the_line_does_not_know_hears_the_first_language(app, on_duty):
    stranger = Call(app, TOKEN, BASE, caller="+4577000009")
    stranger.post(f"{BASE}/voice/queue-exit", QueueResult="hangup")
    assert stranger.said == ["goodbye"]
    assert stranger.hears("goodbye", "da")
    stranger.post(f"{BASE}/voice/wait", QueuePosition="2")
    assert stranger.hears("queue_position", "da", position="2", minutes="6")


def test_with_no_agent_on_duty_the_caller_hears_that_not_a_number_of_minutes(app):
    call = queued(app, "en").wait_in_queue(2)
    assert call.said == ["queue_no_agent"]
    assert call.hears("queue_no_agent", "en", position="2")
    assert "minute" not in call.heard


def test_the_estimate_follows_todays_calls_and_the_agents_on_duty(app, clock, on_duty):
    """Two calls wrapped up today, of 6 and 2 minutes (4 on average); two agents on duty: the
    third in line waits 3 x 4 / 2 = 6 minutes. Yesterday's long call does not count."""
    add_on_duty(app, "second")
    wrapped_up(app, "CAyesterday", clock.now - dt.timedelta(days=1), minutes=60)
    wrapped_up(app, "CAfirst", clock.now - dt.timedelta(minutes=30), minutes=6)
    wrapped_up(app, "CAsecond", clock.now - dt.timedelta(minutes=20), minutes=2)
    assert queued(app, "en").wait_in_queue(3).hears("queue_position", "en", position="3", minutes="6")


def add_on_duty(app, username: str = "duty") -> None:
    from ivr.desk.accounts import Accounts
    from tests.conftest import FAST_HASHER, OPEN_TIME

    accounts = Accounts(app.extensions["ivr"].store, lambda: OPEN_TIME, hasher=FAST_HASHER)
    accounts.add(username, "agent", "a long enough password")
    accounts.set_status(username, "available")
    accounts.mark_present(username, OPEN_TIME)


def wrapped_up(app, call_sid: str, connected: dt.datetime, minutes: float) -> None:
    values = {"call_sid": call_sid, "created_at": connected, "language": "en", "verification": "not_started"}
    values |= {"reason": "caller_request", "step": "agent_requested", "status": "wrapped_up", "agent": "duty"}
    values |= {"connected_at": connected, "finished_at": connected + dt.timedelta(minutes=minutes)}
    with app.extensions["ivr"].store.connection() as connection:
        connection.execute(sa.insert(escalations).values(**values))


def test_an_agent_available_but_not_at_the_desk_is_not_on_duty(app, clock, on_duty):
    """Their browser closed, or their session ran out: the desk has not heard from them."""
    clock.advance(minutes=3)
    assert queued(app, "en").wait_in_queue(1).said == ["queue_no_agent"]
