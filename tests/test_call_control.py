"""The call-control adapters: Twilio's REST API against a loopback fake Twilio, and the embedded one."""

from __future__ import annotations

import base64
import json
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from ivr import call_control_adapters
from ivr.call_control import CallControl
from ivr.call_control_adapters import EmbeddedCallControl, TwilioCallControl
from ivr.errors import BackendError, CallerGone
from ivr.settings import Settings
from ivr.store import Store, escalations
from tests.calls import Clock, Records
from tests.conftest import BASE, OPEN_TIME
from tests.postgres import either_store
from tests.test_sms_twilio import (  # noqa: F401  (the fake server's fixture)
    ACCOUNT_SID,
    AUTH_TOKEN,
    MEMBER_PATH,
    OAI_FILE,
    FakeTwilio,
    twilio_server,
)

database_url = either_store  # every test here on SQLite and on PostgreSQL
CALL_SID = "CA" + "ab" * 16
QUEUE_SID = "QU" + "cd" * 16
OTHER_QUEUE = "QU" + "ef" * 16


def _member(queue_sid: str) -> dict[str, object]:
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues/{queue_sid}/Members/{CALL_SID}.json"
    return {"queue_sid": queue_sid, "call_sid": CALL_SID, "position": 1, "uri": uri, "wait_time": 143}


def escalate(store: Store, status: str | None = "connecting", queue_sid: str | None = QUEUE_SID) -> None:
    """A call in the agents' queue, as the line records it (and the desk, when taken)."""
    values: dict[str, Any] = {
        "call_sid": CALL_SID,
        "created_at": OPEN_TIME,
        "language": "en",
        "verification": "not_started",
        "reason": "caller_choice",
        "step": "main_menu",
        "status": status,
        "agent": "anna" if status == "connecting" else None,
        "queue_sid": queue_sid,
    }
    with store.connection() as connection:
        connection.execute(sa.insert(escalations).values(**values))


@pytest.fixture
def store(app: Flask) -> Store:
    line_store: Store = app.extensions["ivr"].store
    return line_store


@pytest.fixture
def twilio(twilio_server: FakeTwilio, store: Store) -> Iterator[TwilioCallControl]:  # noqa: F811
    control = TwilioCallControl(
        ACCOUNT_SID,
        AUTH_TOKEN,
        store,
        public_base_url=BASE,
        queue_name="mitid-support",
        api_base_url=twilio_server.base_url,
    )
    try:
        yield control
    finally:
        control.close()


def _update_member_schema() -> dict[str, Any]:
    spec = json.loads(OAI_FILE.read_text(encoding="utf-8"))
    post = spec["paths"][MEMBER_PATH]["post"]
    assert post["operationId"] == "UpdateMember"
    schema: dict[str, Any] = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return schema


def _assert_matches_update_member(form: dict[str, list[str]]) -> None:
    schema = _update_member_schema()
    assert set(form) <= set(schema["properties"]), sorted(set(form) - set(schema["properties"]))
    assert set(schema["required"]) <= set(form)
    assert form["Method"][0] in schema["properties"]["Method"]["enum"]


def _member_path(queue_sid: str) -> str:
    return (
        MEMBER_PATH.replace("{AccountSid}", ACCOUNT_SID)
        .replace("{QueueSid}", queue_sid)
        .replace("{CallSid}", CALL_SID)
    )


def test_twilio_redirects_the_queue_member_to_the_connect_url(
    twilio_server: FakeTwilio,  # noqa: F811
    twilio: TwilioCallControl,
    store: Store,
) -> None:
    escalate(store)
    twilio_server.status, twilio_server.answer = 200, _member(QUEUE_SID)
    port: CallControl = twilio

    port.put_through(CALL_SID)

    [seen] = twilio_server.seen
    assert (seen.method, seen.path) == ("POST", _member_path(QUEUE_SID))
    expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert seen.authorization == f"Basic {expected_auth}"
    assert seen.form == {"Url": [f"{BASE}/voice/connect"], "Method": ["POST"]}
    _assert_matches_update_member(seen.form)


def test_without_a_recorded_queue_the_agents_queue_is_found_by_name(
    twilio_server: FakeTwilio,  # noqa: F811
    twilio: TwilioCallControl,
    store: Store,
) -> None:
    escalate(store, queue_sid=None)
    twilio_server.status, twilio_server.answer = 200, _member(QUEUE_SID)
    queue = {"sid": QUEUE_SID, "friendly_name": "mitid-support", "account_sid": ACCOUNT_SID}
    other = {**queue, "sid": OTHER_QUEUE, "friendly_name": "another-line"}
    twilio_server.listing = {"queues": [other, queue], "next_page_uri": None, "page": 0, "page_size": 100}

    twilio.put_through(CALL_SID)

    [listing, update] = twilio_server.seen
    assert listing.method == "GET"
    assert listing.path.startswith(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues.json")
    assert update.path == _member_path(QUEUE_SID)


def test_no_queue_by_that_name_is_a_backend_error(
    twilio_server: FakeTwilio,  # noqa: F811
    twilio: TwilioCallControl,
    store: Store,
) -> None:
    escalate(store, queue_sid=None)
    twilio_server.listing = {"queues": [], "next_page_uri": None, "page": 0, "page_size": 100}
    with pytest.raises(BackendError, match="no queue"):
        twilio.put_through(CALL_SID)


def test_a_refusal_is_a_backend_error_without_the_call_or_the_numbers(
    twilio_server: FakeTwilio,  # noqa: F811
    twilio: TwilioCallControl,
    store: Store,
) -> None:
    escalate(store)
    twilio_refuses(twilio_server, 400, 21220, f"Invalid call state for {CALL_SID}")
    with pytest.raises(BackendError) as caught:
        twilio.put_through(CALL_SID)
    assert not isinstance(caught.value, CallerGone)
    assert "400" in str(caught.value) and "21220" in str(caught.value)
    told = "".join(traceback.format_exception(caught.value))
    assert CALL_SID not in told and AUTH_TOKEN not in told
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_caller_twilio_no_longer_has_in_the_queue_is_gone(
    twilio_server: FakeTwilio,  # noqa: F811
    twilio: TwilioCallControl,
    store: Store,
) -> None:
    """Twilio answers 404 for a queue member that is not there: the caller hung up."""
    escalate(store)
    missing = f"The requested resource /Queues/{QUEUE_SID}/Members/{CALL_SID}.json was not found"
    twilio_refuses(twilio_server, 404, 20404, missing)
    with pytest.raises(CallerGone):
        twilio.put_through(CALL_SID)


def twilio_refuses(server: FakeTwilio, status: int, code: int, message: str) -> None:
    """Twilio's REST API answers the next request with an error, as it documents its errors."""
    server.status = status
    server.answer = {"code": code, "message": message, "status": status}


def test_an_unreachable_twilio_is_a_backend_error(store: Store) -> None:
    escalate(store)
    control = TwilioCallControl(
        ACCOUNT_SID,
        AUTH_TOKEN,
        store,
        public_base_url=BASE,
        queue_name="q",
        api_base_url="http://127.0.0.1:9",
    )
    try:
        with pytest.raises(BackendError, match="ConnectionError"):
            control.put_through(CALL_SID)
    finally:
        control.close()


def test_embedded_notes_the_put_through_of_a_connecting_call(app: Flask, store: Store, clock: Clock) -> None:
    escalate(store)
    EmbeddedCallControl(store, clock).put_through(CALL_SID)
    [row] = Records(app).rows("escalations")
    assert row["put_through_at"] == OPEN_TIME and row["status"] == "connecting"


@pytest.mark.parametrize("status", [None, "waiting", "abandoned", "connected"])
def test_embedded_refuses_a_call_nobody_is_taking(app: Flask, store: Store, status: str | None) -> None:
    escalate(store, status=status)
    with pytest.raises(CallerGone, match="no longer waiting for its agent"):
        EmbeddedCallControl(store).put_through(CALL_SID)
    assert Records(app).rows("escalations")[0]["put_through_at"] is None


def test_make_picks_by_the_setting(settings: Settings, store: Store) -> None:
    assert isinstance(call_control_adapters.make(settings, store), EmbeddedCallControl)
    twilio = settings.model_copy(update={"call_control": "twilio"})
    control = call_control_adapters.make(twilio, store)
    assert isinstance(control, TwilioCallControl)
    assert control.connect_url == f"{BASE}/voice/connect"
    control.close()


def test_an_agent_who_does_not_answer_sends_the_caller_back_to_the_queue(app, dial, records):
    """The `<Dial>` to the agent ends unanswered: the caller waits for the next agent instead of
    being cut off, and the hand-over is waiting again."""
    import sqlalchemy as sa

    from ivr.store import escalations

    call = dial("en").choose_language().press("0")
    with app.extensions["ivr"].store.connection() as connection:
        connection.execute(
            sa.update(escalations)
            .where(escalations.c.call_sid == call.sid)
            .values(status="connected", agent="x")
        )
    for status, then in (("no-answer", "agent_unavailable"), ("completed", "goodbye")):
        call.post(f"{BASE}/voice/dial-ended", DialCallStatus=status)
        assert call.said[0] == then
    assert records.escalation(call)["status"] == "waiting"
    assert "agent_did_not_answer" in records.audit(call)
