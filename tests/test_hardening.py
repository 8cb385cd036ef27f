"""What a signed but odd request, a forged size, a borrowed CallSid or a call that never ends can
do to the line: nothing it should not.
"""

from __future__ import annotations

import io
import os
import stat
import time
import xml.etree.ElementTree as ET

import pytest

from ivr import cli, create_app
from ivr.prompts import Spelled
from tests.calls import LANGUAGES, Call, Request, sign, spelled
from tests.conftest import BASE, TOKEN

languages = pytest.mark.parametrize("language", LANGUAGES)
# A well-formed signature that is not the right one: 27 base64 characters and "=".
WRONG_SIGNATURE = "A" * 27 + "="


# -- 4. an odd optional field never drops a live call -----------------------------------------------


@pytest.mark.parametrize(
    ("route", "odd"),
    [
        ("/voice/status", {"CallStatus": "in-progress", "CallDuration": "abc"}),
        ("/voice/status", {"CallStatus": "ringing", "CallDuration": "-5"}),
        ("/voice/status", {"CallStatus": "x" * 100}),
        ("/voice/wait", {"QueuePosition": "1.5", "QueueTime": "soon"}),
        ("/voice/queue-exit", {"QueueResult": "x" * 500}),
    ],
)
def test_a_signed_request_with_odd_optional_fields_leaves_the_live_call_alone(dial, records, route, odd):
    call = dial("en").choose_language()
    assert call.said == ["main_menu"]
    before = records.session(call)
    agent = call.pressing("0")  # what the caller will key once the odd request is answered
    call.post(f"{BASE}{route}", **odd)
    assert call.status in (200, 204)
    assert records.escalations(call) == []
    after = records.session(call)
    assert (after["turn"], after["ended"], after["state"]) == (
        before["turn"],
        before["ended"],
        before["state"],
    )
    call.send(agent)  # the call goes on as if nothing happened
    assert call.said == ["transfer"]
    assert call.queued


def test_a_wait_request_with_an_odd_position_still_hears_a_place_in_the_queue(dial, on_duty):
    call = dial("en").choose_language().press("0")
    call.post(f"{BASE}/voice/wait", QueuePosition="1.5")
    assert call.status == 200
    assert call.said == ["queue_position"]


def test_a_long_from_is_a_withheld_number_not_an_error(app):
    call = Call(app, TOKEN, BASE, language="en", caller="+45" + "1" * 62).dial()
    assert call.status == 200
    assert call.said == ["welcome", "choose_language", "choose_language", "choose_language"]
    assert call.state.caller_withheld


def test_only_a_real_end_status_ends_the_call(dial, records):
    call = dial("en").choose_language()
    for status in ("queued", "ringing", "in-progress", "whatever"):
        call.post(f"{BASE}/voice/status", CallStatus=status)
        assert not records.session(call)["ended"]
    call.post(f"{BASE}/voice/status", CallStatus="completed", CallDuration="12")
    assert records.session(call)["ended"]


def test_a_wait_url_that_breaks_answers_with_verbs_a_wait_url_may_use(app, dial, records, monkeypatch):
    call = dial("en").choose_language().press("0")
    escalations = records.rows("escalations")

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(type(app.extensions["ivr"]), "wait", broken)
    call.post(f"{BASE}/voice/wait", QueuePosition="2")
    assert call.status == 200
    assert {verb.tag for verb in call.twiml} <= {"Say", "Play", "Pause", "Redirect", "Hangup", "Leave"}
    assert call.said == ["hold"] * 3
    assert records.rows("escalations") == escalations  # no second hand-over of a queued caller


def test_a_missing_callsid_is_refused_and_changes_nothing(app, records):
    before = records.counts()
    form = {"From": "+4520000001"}
    response = app.test_client().post(
        "/voice", data=form, headers={"X-Twilio-Signature": sign(TOKEN, f"{BASE}/voice", form)}
    )
    assert response.status_code == 400
    assert records.counts() == before


# -- 8. size and signature are checked before the body is read -----------------------------------


def test_a_body_over_the_limit_gets_413_unread(app, records):
    before = records.counts()
    body = b"CallSid=CA1&Digits=" + b"1" * (65 * 1024)
    response = app.test_client().post(
        "/voice",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": WRONG_SIGNATURE},
    )
    assert response.status_code == 413
    assert records.counts() == before


@pytest.mark.parametrize("signature", [None, "", "not base64!", "A" * 200])
def test_no_or_a_malformed_signature_is_refused_before_the_body_is_parsed(app, records, signature):
    class Unreadable(io.BytesIO):
        """A body that fails the test if anyone reads it."""

        def read(self, *args):
            raise AssertionError("the body was read")

        readline = readinto = read

    headers = {"Content-Length": "40", "Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    response = app.test_client().post("/voice", input_stream=Unreadable(b"CallSid=CA1"), headers=headers)
    assert response.status_code == 403


# -- 9. a CallSid answers only to its own number --------------------------------------------------


@languages
def test_a_known_callsid_from_another_number_is_refused_and_audited(dial, cases, records, language):
    person = cases["ordinary"]
    call = dial(language).reach("user_id_again", person)
    before = records.session(call)
    thief = Call(call.app, TOKEN, BASE, language=language, caller="+4599999999", sid=call.sid)
    for url, params in (
        (f"{BASE}/voice", {}),
        (call.gather.attrib["action"], {"Digits": "1"}),
        (f"{BASE}/voice/wait", {"QueuePosition": "1"}),
        (f"{BASE}/voice/status", {"CallStatus": "completed"}),
    ):
        thief.post(url, **params)
        assert thief.status == 403
        assert person.account.user_id not in thief.body
        assert spelled(person.account.user_id, language) not in thief.body
    assert records.session(call) == before
    assert records.audit(call).count("caller_mismatch") == 4
    call.press("1")  # the real caller hears it again
    assert call.hears("user_id_is", user_id=Spelled(person.account.user_id))


# -- 7. secrets do not outlive the call -------------------------------------------------------------


def test_a_call_with_no_end_status_is_scrubbed_by_the_sweep(app, clock, dial, cases, records):
    person = cases["exotic_user_id"]
    call = dial("en").reach("user_id_again", person)  # the reply spells the user ID
    line = app.extensions["ivr"]
    clock.advance(minutes=119)
    assert line.sweep() == 0
    clock.advance(minutes=2)
    assert line.sweep() == 1
    session = records.session(call)
    assert session["ended"]
    number, user_id = person.person.documents[0].number, person.account.user_id
    reply = " ".join(say.text or "" for say in ET.fromstring(session["reply"]).iter("Say"))
    for secret in (number, spelled(number, "en"), spelled(user_id, "en")):
        assert secret not in session["state"] and secret not in reply
    assert "call_swept" in records.audit(call)


def line_files(settings):
    """The line's own files in the data directory: not the demo outside systems' database, whose
    CPR register holds every document number, as the real register does."""
    files = [path for path in settings.data_dir.iterdir() if not path.name.startswith("mitid-demo.")]
    assert {path.name for path in files} >= {"ivr.sqlite3"}
    return files


def test_after_the_sweep_a_scrubbed_value_is_gone_from_the_database_files(settings, clock, dial, cases):
    person = cases["passport_and_licence"]
    calls = [dial("en").reach("question", person) for _ in range(3)]
    for call in calls:
        call.hang_up()
    clock.advance(hours=3)
    calls[0].app.extensions["ivr"].sweep()
    number = person.person.documents[0].number.encode()
    spoken = spelled(person.person.documents[0].number, "en").encode()
    for path in line_files(settings):
        content = path.read_bytes()
        assert number not in content and spoken not in content, path.name


def test_the_data_directory_and_its_files_are_for_the_owner_only(settings, clock, dial, cases):
    dial("en").reach("question", cases["ordinary"])
    assert stat.S_IMODE(os.stat(settings.data_dir).st_mode) == 0o700
    files = list(settings.data_dir.iterdir())
    assert {p.name for p in files} >= {"ivr.sqlite3", "mitid-demo.sqlite3"}
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path.name


def test_an_existing_world_readable_data_dir_is_closed_at_start(settings, clock):
    settings.data_dir.mkdir(mode=0o755)
    os.chmod(settings.data_dir, 0o755)
    create_app(settings, clock=clock)
    assert stat.S_IMODE(os.stat(settings.data_dir).st_mode) == 0o700


# -- the operator's view of locks (issue 6) ------------------------------------------------------


def test_an_operator_lists_and_lifts_a_lock_without_learning_whose_it_is(
    settings, clock, dial, cases, records, monkeypatch, capsys
):
    person = cases["ordinary"]
    for _ in range(3):
        dial("en").choose_language().identify(person, "user_id").answer_questions(person, right=0)
    locked = dial("en").choose_language().identify(person, "user_id").answer_questions(person)
    assert locked.said == ["cannot_verify", "goodbye"]

    monkeypatch.setenv("IVR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("IVR_SECRET_KEY", settings.secret_key.get_secret_value())
    assert cli.main(["locks", "--json"], clock=clock) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    keys = {row["key"] for row in rows if row["what"] == "identity locked"}
    assert len(keys) == 1  # one identity, however many keys count it (its passport, the person)
    (locked_row,) = [row for row in rows if row["what"] == "identity locked"]
    assert (locked_row["failures"], locked_row["by"]) == (3, "line")
    shown = capsys.readouterr().out
    for secret in (person.person.cpr, person.person.documents[0].number):
        assert secret not in json.dumps(rows) and secret not in shown

    assert cli.main(["locks", "lift", "abc", "--reason", "x"], clock=clock) == 2  # too short to name one
    for key in keys:
        assert cli.main(["locks", "lift", key, "--reason", "caller identified at the desk"], clock=clock) == 0
    lifted = [row for row in records.rows("audit_events") if row["event"] == "lock_lifted"]
    assert len(lifted) == 1 and all("caller identified at the desk" in row["detail"] for row in lifted)
    again = dial("en").choose_language().identify(person, "user_id").answer_questions(person)
    assert again.said == ["user_id_is", "user_id_again"]


def test_forged_requests_are_still_403(app, dial):
    call = dial("en")
    forged = Request(f"{BASE}/voice", {"CallSid": call.sid}, WRONG_SIGNATURE)
    call.send(forged)
    assert call.status == 403


def test_a_secret_key_made_by_the_line_is_for_the_owner_only(settings, clock):
    create_app(settings.model_copy(update={"secret_key": None}), clock=clock)
    key = settings.data_dir / "secret.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert len(key.read_text()) == 64


def test_the_fallback_url_for_a_call_from_another_number_changes_nothing(dial, records):
    call = dial("en").choose_language()
    before = records.session(call)
    thief = Call(call.app, TOKEN, BASE, language="en", caller="+4599999999", sid=call.sid)
    thief.post(f"{BASE}/voice/fallback", ErrorCode="11200")
    assert thief.status == 403
    assert records.session(call) == before
    assert records.escalations(call) == []


def test_a_reader_holding_the_log_delays_the_fold_not_the_line(app, clock, dial, cases, settings):
    """The sweep's checkpoint gives up within a second while a reader holds the log (the next
    sweep folds it), instead of holding every webhook up for half a minute."""
    line = app.extensions["ivr"]
    person = cases["passport_and_licence"]
    dial("en").reach("question", person).hang_up()
    clock.advance(hours=3)
    reader = line.store.engine.connect().execution_options(read_only=True)
    reader.exec_driver_sql("SELECT count(*) FROM call_sessions").scalar()  # holds a snapshot
    try:
        started = time.monotonic()
        line.sweep()
        assert time.monotonic() - started < 5
        assert dial("en").said == [
            "welcome",
            "choose_language",
            "choose_language",
            "choose_language",
        ]  # the line answers
    finally:
        reader.close()
    line.sweep()
    number = person.person.documents[0].number.encode()
    for path in line_files(settings):
        assert number not in path.read_bytes(), path.name


def test_keys_for_a_call_the_line_has_no_record_of_reach_an_agent_with_a_reason(app, records):
    call = Call(app, TOKEN, BASE, language="en", sid="CA" + "7" * 32)
    call.post(f"{BASE}/voice/keys?turn=3", Digits="1")
    assert call.status == 200
    assert call.said == ["apology", "transfer"] * 3
    assert call.queued
    assert records.escalation(call)["reason"] == "call_not_found"


def test_every_delivery_status_twilio_sends_is_recorded(settings, clock, dial, cases, records):
    call = dial("en").choose_language().identify(cases["ordinary"], "temporary_pin")
    call.answer_questions(cases["ordinary"])
    [row] = records.sms(call)
    report = {"MessageSid": row["provider_id"], "MessageStatus": "partially_delivered"}
    signature = sign(TOKEN, f"{BASE}/sms/status", report)
    client = call.app.test_client()
    assert (
        client.post("/sms/status", data=report, headers={"X-Twilio-Signature": signature}).status_code == 204
    )
    assert records.sms(call)[0]["delivery"] == "partially_delivered"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("twilio_auth_token", ""),
        ("twilio_auth_token", "   "),
        ("secret_key", ""),
        ("secret_key", "short"),
        ("secret_key", "change-me-to-64-random-hex-characters"),
    ],
)
def test_a_line_does_not_start_with_an_empty_token_or_a_guessable_key(tmp_path, setting, value):
    from pydantic import ValidationError

    from ivr.settings import Settings

    with pytest.raises(ValidationError) as refused:
        Settings(data_dir=tmp_path, public_base_url="https://ivr.example.dk", **{setting: value})
    assert setting in str(refused.value)
