"""What a caller hears while queued for an agent, and on leaving the queue.

Their place (never below first) and an estimate of at least a minute, rounded up, in the
language they chose; the goodbye on leaving the queue in that language too.
"""

from __future__ import annotations

import pytest

from ivr import create_app
from tests.calls import Call
from tests.conftest import BASE, TOKEN


def queued(app, language: str) -> Call:
    call = Call(app, TOKEN, BASE, language=language, caller="+4577000001").dial()
    call.choose_language().press("0")
    assert call.queued
    return call


@pytest.mark.parametrize(("position", "place", "minutes"), [(1, "1", "3"), (4, "4", "12"), (0, "1", "3")])
def test_the_place_and_the_wait_are_said_in_the_callers_language(app, position, place, minutes):
    call = queued(app, "en").wait_in_queue(position)
    assert call.said == ["queue_position"]
    assert call.hears("queue_position", "en", position=place, minutes=minutes)


def test_with_no_position_given_the_caller_is_told_they_are_first(app):
    call = queued(app, "da")
    call.post(f"{BASE}/voice/wait", QueueTime="30")
    assert call.status == 200
    assert call.hears("queue_position", "da", position="1", minutes="3")


def test_the_estimate_is_rounded_up_to_at_least_a_minute(settings, clock):
    app = create_app(settings.model_copy(update={"agent_minutes_per_caller": 0.4}), clock=clock)
    assert queued(app, "en").wait_in_queue(1).hears("queue_position", "en", position="1", minutes="1")
    assert queued(app, "en").wait_in_queue(3).hears("queue_position", "en", position="3", minutes="2")


@pytest.mark.parametrize("language", ["da", "en"])
def test_leaving_the_queue_says_goodbye_in_the_callers_language(app, language):
    call = queued(app, language)
    call.post(f"{BASE}/voice/queue-exit", QueueResult="hangup")
    assert call.status == 200
    assert call.said == ["goodbye"]
    assert call.hears("goodbye", language)
    assert call.twiml.find("Hangup") is not None


def test_a_call_the_line_does_not_know_hears_the_first_language(app):
    stranger = Call(app, TOKEN, BASE, caller="+4577000009")
    stranger.post(f"{BASE}/voice/queue-exit", QueueResult="hangup")
    assert stranger.said == ["goodbye"]
    assert stranger.hears("goodbye", "da")
    stranger.post(f"{BASE}/voice/wait", QueuePosition="2")
    assert stranger.hears("queue_position", "da", position="2", minutes="6")
