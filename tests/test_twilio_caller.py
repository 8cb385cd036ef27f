"""The fake Twilio follows Twilio's documented rules for the verbs, driven against a tiny line."""

from __future__ import annotations

import pytest

from ivr.twilio_caller import PhoneError, TwilioCall
from tests.fake_line import SAY, FakeLine, twilio_call, twiml

ASK = SAY.format("Tast.")
AFTER = SAY.format("Efter.")


def gather(attributes: str = "") -> str:
    return f"<Gather {attributes}>{ASK}</Gather>"


def said(line: FakeLine, keys: str, script: dict[str, str]) -> tuple[list[str], FakeLine]:
    line.script.update(script)
    call = twilio_call(line)
    call.dial()
    call.press(keys)
    return [event.text for event in call.events if event.kind == "say"], line


def test_no_input_requests_nothing_and_goes_on_with_the_next_verb() -> None:
    line = FakeLine(
        {"/voice": twiml(gather('action="/keys"'), AFTER, '<Redirect method="POST">/keys?again</Redirect>')}
    )
    heard, _ = said(line, "", {"/keys?again": twiml(SAY.format("Igen."))})
    assert line.paths() == ["/voice", "/keys?again"]
    assert "Digits" not in line.form("/keys?again")
    assert heard == ["Tast.", "Efter.", "Igen."]


def test_the_finish_key_alone_is_no_input() -> None:
    line = FakeLine({"/voice": twiml(gather('action="/keys" finishOnKey="#"'), AFTER)})
    heard, _ = said(line, "#", {})
    assert line.paths() == ["/voice"]
    assert heard == ["Tast.", "Efter."]


def test_action_on_empty_result_requests_the_action_with_empty_digits() -> None:
    line = FakeLine({"/voice": twiml(gather('action="/keys" actionOnEmptyResult="true"'), AFTER)})
    heard, _ = said(line, "", {"/keys": twiml(SAY.format("Tom."))})
    assert line.paths() == ["/voice", "/keys"]
    assert line.form("/keys")["Digits"] == ""
    assert heard == ["Tast.", "Tom."]


@pytest.mark.parametrize(
    ("attributes", "typed", "digits", "finished"),
    [
        ('numDigits="1"', "12", "1", ""),
        ('numDigits="4" finishOnKey="#"', "12#", "12", "#"),
        ('finishOnKey=""', "12#*", "12#*", ""),  # no finish key: # and * are digits
        ('finishOnKey="*"', "1#2*9", "1#2", "*"),
        ("", "123", "123", ""),  # keys then the timeout: what was typed is sent
    ],
)
def test_digits_end_at_num_digits_or_the_finish_key_which_is_not_sent(
    attributes: str, typed: str, digits: str, finished: str
) -> None:
    line = FakeLine({"/voice": twiml(gather(f'action="/keys" {attributes}'), AFTER)})
    heard, _ = said(line, typed, {"/keys": twiml()})
    assert line.form("/keys")["Digits"] == digits
    assert line.form("/keys")["FinishedOnKey"] == finished
    assert heard == ["Tast."]  # after input, the verbs after the Gather never run


def test_a_gather_without_action_posts_to_the_document_url() -> None:
    line = FakeLine({"/voice": twiml(gather('numDigits="1"'))})
    line.script["/voice?x=1"] = twiml('<Redirect method="POST">/voice?x=1</Redirect>')
    call = twilio_call(line)
    call.dial()
    call.press("5")
    assert line.paths() == ["/voice", "/voice"]
    assert line.received[-1].form["Digits"] == "5"


def test_get_sends_the_parameters_in_the_signed_query() -> None:
    line = FakeLine({"/voice": twiml(gather('action="/keys?turn=2" method="GET" numDigits="1"'))})
    line.script["/keys"] = twiml('<Redirect method="GET">/next</Redirect>')
    line.script["/next"] = twiml('<Redirect method="POST">/last</Redirect>')
    line.script["/last"] = twiml("<Hangup/>")
    call = twilio_call(line)
    call.dial()
    call.press("7")
    assert [(r.method, r.path) for r in line.received] == [
        ("POST", "/voice"),
        ("GET", "/keys"),
        ("GET", "/next"),
        ("POST", "/last"),
    ]
    assert all(r.signature_ok for r in line.received)
    assert line.form("/keys")["turn"] == "2" and line.form("/keys")["Digits"] == "7"
    assert call.ended == "hangup"


def test_redirect_is_a_post_by_default() -> None:
    line = FakeLine({"/voice": twiml("<Redirect>/next</Redirect>"), "/next": twiml(AFTER)})
    call = twilio_call(line)
    call.dial()
    assert [(r.method, r.path) for r in line.received] == [("POST", "/voice"), ("POST", "/next")]
    assert call.ended == "end-of-twiml"


def test_the_end_of_a_document_hangs_up() -> None:
    call = twilio_call(FakeLine({"/voice": twiml(AFTER)}))
    call.dial()
    assert call.ended == "end-of-twiml" and call.listen is None


ENQUEUE = '<Enqueue waitUrl="/wait" waitUrlMethod="{}" action="/left">agents</Enqueue>'


def queued(wait: str, method: str = "POST", **script: str) -> tuple[FakeLine, TwilioCall]:
    line = FakeLine({"/voice": twiml(SAY.format("Vent."), ENQUEUE.format(method), AFTER), "/wait": wait})
    line.script.update({f"/{k}": v for k, v in script.items()})
    call = twilio_call(line)
    call.dial()
    assert call.queued is not None and call.ended == ""
    return line, call


def test_waiting_in_the_queue_asks_the_wait_url_with_the_queue_parameters() -> None:
    line, call = queued(twiml(SAY.format("Nummer 2."), '<Pause length="20"/>'), method="GET")
    call.hold(position=2, queue_time=40)
    wait = line.received[-1]
    assert (wait.method, wait.path, wait.signature_ok) == ("GET", "/wait", True)
    assert (wait.form["QueuePosition"], wait.form["QueueTime"]) == ("2", "40")
    assert wait.form["QueueSid"].startswith("QU") and wait.form["CurrentQueueSize"] == "2"
    assert [e.text for e in call.events if e.kind in ("say", "pause")] == ["Vent.", "Nummer 2.", "20"]
    assert call.queued is not None


@pytest.mark.parametrize("verb", ["<Dial>+4512345678</Dial>", "<Enqueue>other</Enqueue>", "<Record/>"])
def test_a_wait_url_may_not_answer_other_verbs(verb: str) -> None:
    _, call = queued(twiml(SAY.format("Vent lidt."), verb))
    with pytest.raises(PhoneError, match="waitUrl answer: Twilio allows only Play, Say, Pause"):
        call.hold()


def test_leave_in_the_wait_url_requests_the_enqueue_action_and_runs_its_answer() -> None:
    line, call = queued(twiml("<Leave/>"), left=twiml(SAY.format("Ude af køen."), "<Hangup/>"))
    call.hold()
    assert line.paths()[-1] == "/left" and line.form("/left")["QueueResult"] == "leave"
    assert call.events[-2].text == "Ude af køen." and call.ended == "hangup"


def test_hangup_in_the_wait_url_ends_the_call() -> None:
    _, call = queued(twiml("<Hangup/>"))
    call.hold()
    assert call.ended == "hangup" and call.queued is None


@pytest.mark.parametrize(
    ("verbs", "problem"),
    [
        (["<Record/>"], "<Record> is not a verb"),
        (["<Dial><Sip>sip:agent@example.test</Sip></Dial>"], "exactly one <Number>"),
        (["<Dial>4512345678</Dial>"], "E.164"),
        (['<Gather finishOnKey="##"/>'], "finishOnKey"),
        (['<Gather numDigits="0"/>'], "numDigits"),
        (['<Gather method="PUT"/>'], "GET or POST"),
        (['<Gather input="speech"/>'], "only press keys"),
        (['<Gather actionOnEmptyResult="yes"/>'], "true or false"),
        (["<Gather><Redirect>/x</Redirect></Gather>"], "nests only Say, Play and Pause"),
        (["<Redirect/>"], "without a URL"),
        (['<Redirect method="PATCH">/x</Redirect>'], "GET or POST"),
        (["<Enqueue/>"], "without a queue name"),
    ],
)
def test_twiml_twilio_would_refuse_is_an_error(verbs: list[str], problem: str) -> None:
    call = twilio_call(FakeLine({"/voice": twiml(*verbs)}))
    with pytest.raises(PhoneError, match=problem):
        call.dial()


def test_keys_a_keypad_cannot_send_are_refused() -> None:
    call = twilio_call(FakeLine({"/voice": twiml(gather())}))
    call.dial()
    with pytest.raises(ValueError, match="'a' is not on a phone keypad"):
        call.press("1a")


AGENT = "+4512345678"
DIAL = f'<Dial><Number url="/whisper?call=x">{AGENT}</Number></Dial>'


def test_dial_requests_the_numbers_url_as_the_dialled_leg_then_connects() -> None:
    line = FakeLine(
        {
            "/voice": twiml(SAY.format("Et øjeblik."), DIAL, AFTER),
            "/whisper?call=x": twiml(SAY.format("Kontekst.")),
        }
    )
    call = twilio_call(line, caller="+4520000001")
    call.dial()
    whisper = line.received[-1]
    assert (whisper.path, whisper.signature_ok) == ("/whisper?call=x", True)
    assert whisper.form["CallSid"] != call.call_sid and whisper.form["CallSid"].startswith("CA")
    assert whisper.form["ParentCallSid"] == call.call_sid
    assert (whisper.form["From"], whisper.form["To"]) == ("+4533980010", AGENT)
    assert [(e.kind, e.text) for e in call.events] == [
        ("say", "Et øjeblik."),
        ("dial", AGENT),
        ("whisper", "Kontekst."),
        ("connected", AGENT),
    ]
    assert call.bridged == AGENT and call.ended == ""  # "Efter." waits until the Dial is over
    call.hang_up()
    assert line.paths()[-1] == "/voice/status" and call.bridged == ""


def test_a_hangup_in_the_whisper_drops_the_dialled_leg_and_the_call_goes_on() -> None:
    line = FakeLine({"/voice": twiml(DIAL, AFTER), "/whisper?call=x": twiml("<Hangup/>")})
    call = twilio_call(line)
    call.dial()
    assert [e.kind for e in call.events] == ["dial", "dropped", "say", "end"]
    assert call.bridged == "" and call.ended == "end-of-twiml"


def test_a_number_without_url_connects_at_once() -> None:
    call = twilio_call(FakeLine({"/voice": twiml(f"<Dial>{AGENT}</Dial>")}))
    call.dial()
    assert call.bridged == AGENT


def test_leave_then_a_redirect_to_a_dial_takes_the_caller_to_the_agent() -> None:
    line, call = queued(
        twiml("<Leave/>"),
        left=twiml('<Redirect method="POST">/connect</Redirect>'),
        connect=twiml(DIAL),
        **{"whisper?call=x": twiml(SAY.format("Kontekst."))},
    )
    call.hold()
    assert line.paths()[-3:] == ["/left", "/connect", "/whisper?call=x"]
    assert call.queued is None and call.bridged == AGENT


def test_a_dial_not_answered_asks_its_action_and_runs_what_it_answers() -> None:
    dialled = f'<Dial action="/after"><Number url="/whisper">{AGENT}</Number></Dial>'
    line = FakeLine(
        {
            "/voice": twiml(dialled, SAY.format("Ikke dette.")),
            "/whisper": twiml("<Hangup/>"),
            "/after": twiml(SAY.format("Igen."), "<Hangup/>"),
        }
    )
    call = twilio_call(line, caller="+4520000001")
    call.dial()
    assert line.form("/after")["DialCallStatus"] == "no-answer"
    assert [e.text for e in call.events if e.kind == "say"] == ["Igen."]
    assert call.ended == "hangup"


def test_a_dial_that_ends_with_the_call_reports_completed_to_its_action() -> None:
    dialled = f'<Dial action="/after"><Number>{AGENT}</Number></Dial>'
    line = FakeLine({"/voice": twiml(dialled), "/after": twiml(SAY.format("Aldrig hørt."))})
    call = twilio_call(line, caller="+4520000001")
    call.dial()
    call.hang_up()
    assert line.form("/after")["DialCallStatus"] == "completed"
    assert "Aldrig hørt." not in [e.text for e in call.events]
