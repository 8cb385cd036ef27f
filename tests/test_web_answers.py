"""How the web layer answers: TwiML as text/xml, and 400 for a signed request that names no call.

(Signatures and body limits are in test_security.py.)
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest

from tests.calls import Call, Records, sign
from tests.conftest import BASE, TOKEN


def post(app, path: str, form: dict[str, str]):
    url = f"{BASE}{path}"
    return app.test_client().post(path, data=form, headers={"X-Twilio-Signature": sign(TOKEN, url, form)})


@pytest.mark.parametrize(
    "path", ["/voice", "/voice/keys?turn=1", "/voice/wait", "/voice/queue-exit", "/voice/fallback"]
)
def test_every_twiml_answer_is_text_xml(app, path):
    answer = post(app, path, {"CallSid": "CA" + "1" * 32, "From": "+4579000001", "Digits": "1"})
    assert answer.status_code == 200
    assert answer.mimetype == "text/xml"
    assert answer.get_data(as_text=True).startswith("<?xml")


@pytest.mark.parametrize(
    "path", ["/voice", "/voice/keys?turn=1", "/voice/status", "/voice/wait", "/voice/queue-exit"]
)
def test_a_signed_request_without_a_call_sid_is_a_bad_request(app, path):
    answer = post(app, path, {"From": "+4579000001", "Digits": "1"})
    assert answer.status_code == 400


def test_a_request_naming_no_call_is_logged_with_its_path(app, caplog):
    post(app, "/voice/wait", {"From": "+4579000001"})
    messages = [record.getMessage() for record in caplog.records]
    assert "refused a signed request to /voice/wait without a usable CallSid" in messages


# -- the agent's leg, the fallback URL and SMS delivery reports -------------


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 400), ("?call=", 400), ("?call=C", 200), ("?call=" + "C" * 64, 200), ("?call=" + "C" * 65, 400)],
)
def test_a_whisper_names_the_callers_call_in_1_to_64_characters(app, query, status):
    answer = post(app, f"/voice/whisper{query}", {"CallSid": "CA" + "5" * 32, "From": "+4520998877"})
    assert answer.status_code == status
    if status == 200:  # a call nobody is taking: the agent's leg is hung up
        assert "<Hangup" in answer.get_data(as_text=True)


def test_a_caller_taken_by_an_unnamed_agent_is_connected_to_nobody_by_name(app, dial, records):
    caller = dial("en").choose_language().press("0")
    caller.post(f"{BASE}/voice/agent/dequeued")
    assert caller.said == ["connecting"]
    escalation = records.escalation(caller)
    assert (escalation["status"], escalation["agent"]) == ("connected", "")


def test_an_agent_name_in_the_dequeue_url_is_cut_to_64_characters(app, dial, records):
    caller = dial("en").choose_language().press("0")
    caller.post(f"{BASE}/voice/agent/dequeued?agent={'a' * 100}")
    assert records.escalation(caller)["agent"] == "a" * 64


def test_the_fallback_url_logs_twilios_error_code(dial, caplog):
    call = dial("en").choose_language()
    call.post(f"{BASE}/voice/fallback", ErrorCode="11200")
    assert call.queued
    assert "Twilio called the fallback URL (Twilio error 11200)" in messages(caplog)


def test_a_delivery_report_for_an_unknown_sms_is_logged_and_one_without_its_fields_refused(app, caplog):
    assert (
        post(app, "/sms/status", {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}).status_code
        == 204
    )
    assert "a delivery report for an SMS the line does not know" in messages(caplog)
    assert post(app, "/sms/status", {"MessageStatus": "delivered"}).status_code == 400


def test_a_delivery_report_for_a_known_sms_is_recorded_and_not_logged(dial, cases, records, caplog):
    call = dial("en").choose_language().identify(cases["ordinary"], "temporary_pin")
    call.answer_questions(cases["ordinary"])
    [row] = records.sms(call)
    report = {"MessageSid": row["provider_id"], "MessageStatus": "delivered"}
    assert post(call.app, "/sms/status", report).status_code == 204
    assert records.sms(call)[0]["delivery"] == "delivered"
    assert "a delivery report for an SMS the line does not know" not in messages(caplog)


def test_a_request_for_a_call_from_another_number_is_logged_with_its_path(dial, caplog):
    call = dial("en").choose_language()
    thief = Call(call.app, TOKEN, BASE, language="en", caller="+4599999999", sid=call.sid)
    thief.post(f"{BASE}/voice/wait", QueuePosition="1")
    assert thief.status == 403
    assert "refused a request to /voice/wait for a call from another number" in messages(caplog)


def messages(caplog) -> list[str]:
    """What the web layer logged (not the access log's line per request)."""
    return [record.getMessage() for record in caplog.records if record.name != "ivr.access"]


# -- a webhook that breaks: what each route answers, and what is written down --------------------

CALLER = "+4520000001"
# The apology and the hand-over, said in Danish and English and played in Greenlandic.
EVERY_LANGUAGE = [("Say", "da-DK")] * 2 + [("Say", "en-GB")] * 2 + [("Play", None)] * 2


def broken(app, monkeypatch, method: str) -> None:
    def fails(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(type(app.extensions["ivr"]), method, fails)


def heard(answer) -> list[tuple[str, str | None]]:
    return [(verb.tag, verb.get("language")) for verb in ET.fromstring(answer.get_data(as_text=True))]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/voice/dial-ended", "dial_ended"),
        ("/voice/agent/dequeued?agent=anna", "dequeued"),
        ("/voice/queue-exit", "queue_exit"),
    ],
)
def test_a_broken_hand_over_webhook_says_goodbye_in_the_first_language(
    app, monkeypatch, caplog, path, method
):
    broken(app, monkeypatch, method)
    answer = post(app, path, {"CallSid": "CA" + "1" * 32, "From": CALLER})
    assert answer.status_code == 200
    assert heard(answer) == [("Say", "da-DK"), ("Hangup", None)]
    failed = f"webhook {path.split('?')[0]} failed: RuntimeError at "
    assert [m for m in messages(caplog) if m.startswith(failed)], messages(caplog)
    assert records_of(app, "escalations") == []


def test_a_broken_agent_code_webhook_says_goodbye(app, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(type(app.extensions["ivr.agent_line"]), "code", fails)
    answer = post(app, "/voice/agent/code", {"CallSid": "CA" + "1" * 32, "From": CALLER, "Digits": "1"})
    assert heard(answer) == [("Say", "da-DK"), ("Hangup", None)]


def test_a_broken_status_callback_is_still_204(app, monkeypatch):
    broken(app, monkeypatch, "status")
    answer = post(
        app, "/voice/status", {"CallSid": "CA" + "1" * 32, "From": CALLER, "CallStatus": "completed"}
    )
    assert (answer.status_code, answer.get_data()) == (204, b"")


def test_a_broken_connect_puts_the_caller_back_in_the_queue_in_every_language(app, monkeypatch):
    broken(app, monkeypatch, "connect")
    answer = post(app, "/voice/connect", {"CallSid": "CA" + "1" * 32, "From": CALLER})
    assert heard(answer) == EVERY_LANGUAGE + [("Enqueue", None)]
    assert records_of(app, "escalations") == []  # already handed over: no second hand-over


def test_a_broken_whisper_puts_the_agent_through_without_the_context(app, monkeypatch):
    broken(app, monkeypatch, "whisper")
    answer = post(app, "/voice/whisper?call=CA1", {"CallSid": "CA" + "9" * 32, "From": CALLER})
    assert (answer.status_code, heard(answer)) == (200, [])


def test_a_broken_flow_webhook_apologises_and_hands_the_call_over_with_the_reason(app, dial, monkeypatch):
    call = dial("en").choose_language()
    broken(app, monkeypatch, "keys")
    call.press("1")
    assert call.said == ["apology", "transfer"] and call.queued
    [escalation] = records_of(app, "escalations")
    assert (escalation["call_sid"], escalation["reason"]) == (call.sid, "application_error")


def test_a_flow_webhook_broken_before_it_knows_its_call_apologises_all_the_same(app, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("the validator went away")

    monkeypatch.setattr(app.extensions["ivr.validator"], "compute_signature", fails)
    answer = post(app, "/voice", {"From": CALLER})  # no CallSid either
    assert answer.status_code == 200
    assert heard(answer) == EVERY_LANGUAGE + [("Enqueue", None)]
    assert records_of(app, "escalations") == []


def test_a_broken_flow_webhook_for_a_call_from_another_number_is_refused_and_audited(app, dial, monkeypatch):
    call = dial("en").choose_language()
    broken(app, monkeypatch, "keys")
    thief = Call(app, TOKEN, BASE, language="en", caller="+4599999999", sid=call.sid)
    thief.post(call.gather.attrib["action"], Digits="1")
    assert thief.status == 403
    assert records_of(app, "escalations") == []
    assert Records(app).audit(call)[-1] == "caller_mismatch"


def records_of(app, table: str) -> list[dict]:
    return Records(app).rows(table)


# -- the signature and size checks: the boundaries, and what the log says -------------------------

WELL_FORMED = "A" * 27 + "="  # the shape of a signature, not the right one


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not(app):
    from ivr.web import MAX_BODY

    client = app.test_client()
    for size, status in ((MAX_BODY, 403), (MAX_BODY + 1, 413)):
        body = b"CallSid=CA1&Digits=" + b"1" * (size - len(b"CallSid=CA1&Digits="))
        headers = {"X-Twilio-Signature": WELL_FORMED, "Content-Type": "application/x-www-form-urlencoded"}
        assert client.post("/voice", data=body, headers=headers).status_code == status, size


def test_a_body_of_unknown_length_is_refused_unread(app):
    headers = {"X-Twilio-Signature": WELL_FORMED, "Content-Type": "application/x-www-form-urlencoded"}
    headers["Transfer-Encoding"] = "chunked"  # no Content-Length
    answer = app.test_client().post("/voice", input_stream=io.BytesIO(b"CallSid=CA1"), headers=headers)
    assert answer.status_code == 411


def test_refused_signatures_are_logged_with_the_path_only(app, caplog):
    form = {"CallSid": "CA" + "1" * 32, "From": CALLER}
    app.test_client().post("/voice/wait", data=form, headers={"X-Twilio-Signature": "not base64!"})
    app.test_client().post("/voice/keys", data=form, headers={"X-Twilio-Signature": WELL_FORMED})
    assert messages(caplog) == [
        "refused a request to /voice/wait with no or a malformed signature",
        "refused a request to /voice/keys with a wrong signature",
    ]
