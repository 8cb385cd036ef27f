"""The terminal phone, driven against a throwaway Flask app that checks signatures like Twilio's."""

from __future__ import annotations

import io
from typing import Any

import pytest

from ivr.phone import Call, FlaskTransport, Holding, HttpTransport, PhoneError, place_call
from ivr.twilio_caller import Request
from tests.fake_line import PUBLIC, SAY, FakeLine, twiml


def call(line: FakeLine, keys: Any = (), **kwargs: Any) -> tuple[Call, str]:
    out = io.StringIO()
    kwargs.setdefault("auth_token", line.token)
    app = line.app()
    result = place_call(FlaskTransport(lambda: app), PUBLIC, keys=keys, out=out, **kwargs)
    return result, out.getvalue()


MENU = twiml(
    '<Gather input="dtmf" action="/menu" method="POST" numDigits="1" timeout="5">',
    SAY.format("Tryk 1 for bruger-ID."),
    "</Gather>",
    SAY.format("Vi hørte ikke noget."),
    "<Hangup/>",
)


def test_every_request_is_signed_for_the_public_url() -> None:
    line = FakeLine(
        {
            "/voice": MENU,
            "/menu": twiml("<Redirect>/flow/next?step=2</Redirect>"),
            "/flow/next?step=2": twiml("<Hangup/>"),
        }
    )
    result, _ = call(line, ["1"], call_sid="CA" + "a" * 32)
    assert line.paths() == ["/voice", "/menu", "/flow/next?step=2", "/voice/status"]
    assert all(r.signature_ok for r in line.received)
    assert {r.form["CallSid"] for r in line.received} == {"CA" + "a" * 32}
    first = line.form("/voice")
    assert first["CallStatus"] == "ringing" and first["To"] == "+4533980010"
    assert first["From"] == "+4520000001" and first["Direction"] == "inbound"
    assert first["AccountSid"].startswith("AC") and first["ApiVersion"] == "2010-04-01"
    assert [path for path, _ in result.requests] == line.paths()


def test_wrong_token_is_rejected_with_403_as_phone_error() -> None:
    line = FakeLine({"/voice": MENU})
    with pytest.raises(PhoneError, match="HTTP 403"):
        call(line, ["1"], auth_token="not-the-token")
    assert [r.signature_ok for r in line.received] == [False]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [("oops", 200, "not answer XML"), ("<html/>", 200, "not a TwiML"), (MENU, 500, "HTTP 500")],
)
def test_bad_answers_are_phone_errors(body: str, status: int, message: str) -> None:
    line = FakeLine({"/voice": body}, status={"/voice": status})
    with pytest.raises(PhoneError, match=message):
        call(line)


def test_gather_num_digits_sends_only_the_first_keys() -> None:
    line = FakeLine({"/voice": MENU, "/menu": twiml(SAY.format("Bruger-ID."), "<Hangup/>")})
    result, out = call(line, ["12"])
    assert line.form("/menu")["Digits"] == "1"
    assert line.form("/menu")["CallStatus"] == "in-progress"
    assert result.transcript[:3] == [
        "Tryk 1 for bruger-ID.",
        "[waiting for keys: up to 1, finish with #]",
        "> 12",
    ]
    assert "Bruger-ID." in result.transcript and "Vi hørte ikke noget." not in out


@pytest.mark.parametrize(("entry", "digits"), [("123456789#", "123456789"), ("12#34", "12")])
def test_gather_finish_on_key_is_excluded(entry: str, digits: str) -> None:
    gather = '<Gather action="doc" finishOnKey="#" timeout="10">' + SAY.format("Nummer.")
    line = FakeLine({"/voice": twiml(gather + "</Gather>"), "/doc": twiml("<Hangup/>")})
    result, _ = call(line, [entry])
    assert line.form("/doc")["Digits"] == digits
    assert line.form("/doc")["FinishedOnKey"] == "#"
    assert "[waiting for keys: finish with #]" in result.transcript


def test_barge_in_keys_count_although_prompts_are_nested() -> None:
    gather = twiml(
        '<Gather numDigits="1" action="/menu">',
        SAY.format("Velkommen."),
        "<Play>/audio/kl.mp3</Play>",
        '<Pause length="2"/>',
        SAY.format("Tryk 2."),
        "</Gather>",
        SAY.format("Farvel."),
    )
    line = FakeLine({"/voice": gather, "/menu": twiml("<Hangup/>")})
    result, out = call(line, ["2"])
    assert line.form("/menu")["Digits"] == "2"
    assert result.transcript[:6] == [
        "Velkommen.",
        "[audio: /audio/kl.mp3]",
        "[pause 2s]",
        "Tryk 2.",
        "[waiting for keys: up to 1, finish with #]",
        "> 2",
    ]
    assert "Farvel." not in out


def test_timeout_with_action_on_empty_result_posts_empty_digits() -> None:
    gather = '<Gather numDigits="1" action="/menu" actionOnEmptyResult="true"></Gather>'
    line = FakeLine(
        {
            "/voice": twiml(gather, SAY.format("Ikke her.")),
            "/menu": twiml(SAY.format("Ingen tast.")),
        }
    )
    result, out = call(line, [""])
    assert line.form("/menu")["Digits"] == ""
    assert "> (silence)" in result.transcript and "Ikke her." not in out
    assert result.ended_by == "end-of-twiml"


def test_timeout_without_action_on_empty_result_continues_with_next_verb() -> None:
    line = FakeLine({"/voice": MENU, "/menu": twiml()})
    result, _ = call(line, [""])
    assert line.paths() == ["/voice", "/voice/status"]
    assert result.transcript[-3:] == ["> (silence)", "Vi hørte ikke noget.", "[the line hangs up]"]
    assert result.ended_by == "hangup"


def test_redirect_resolves_relative_to_the_current_url() -> None:
    line = FakeLine(
        {
            "/voice": twiml('<Redirect method="POST">flow/start?lang=da</Redirect>'),
            "/flow/start?lang=da": twiml("<Redirect>next</Redirect>"),
            "/flow/next": twiml(SAY.format("Her.")),
        }
    )
    result, _ = call(line)
    assert line.paths() == ["/voice", "/flow/start?lang=da", "/flow/next", "/voice/status"]
    assert all(r.signature_ok for r in line.received)
    assert result.transcript == ["Her.", "[end of TwiML: the line hangs up]"]


def test_enqueue_posts_the_wait_url_once_and_ends_in_the_queue() -> None:
    enqueue = '<Enqueue waitUrl="/queue/wait" waitUrlMethod="POST" action="/queue/done">'
    line = FakeLine(
        {
            "/voice": twiml(SAY.format("Vent."), enqueue + "agents</Enqueue>", SAY.format("Nej.")),
            "/queue/wait": twiml(SAY.format("Du er nummer 1 i køen."), "<Play>/hold.mp3</Play>"),
        }
    )
    result, out = call(line)
    # the caller hangs up in the queue: Twilio requests the Enqueue's action, then the status
    assert line.paths() == ["/voice", "/queue/wait", "/queue/done", "/voice/status"]
    wait = line.form("/queue/wait")
    assert wait["QueuePosition"] == "1" and wait["QueueSid"].startswith("QU")
    assert len(wait["QueueSid"]) == 34 and wait["CurrentQueueSize"] == "1"
    assert line.form("/queue/done")["QueueResult"] == "hangup"
    assert line.form("/queue/done")["QueueSid"] == wait["QueueSid"]
    assert result.transcript == [
        "Vent.",
        "[queued for an agent in queue 'agents']",
        "Du er nummer 1 i køen.",
        "[audio: /hold.mp3]",
        "[the call leaves the queue: QueueResult=hangup]",
    ]
    assert result.ended_by == "queue" and "Nej." not in out


def test_hangup_ends_the_call() -> None:
    line = FakeLine({"/voice": twiml(SAY.format("Farvel."), "<Hangup/>", SAY.format("Nej."))})
    result, out = call(line)
    assert result.ended_by == "hangup"
    assert out == "Farvel.\n[the line hangs up]\n"


def test_status_callback_is_posted_at_the_end() -> None:
    line = FakeLine({"/voice": twiml(SAY.format("En to tre fire fem."))})
    result, _ = call(line)
    assert line.paths()[-1] == "/voice/status"
    status = line.form("/voice/status")
    assert status["CallStatus"] == "completed" and status["CallSid"] == result.call_sid
    assert int(status["CallDuration"]) == result.duration == 2  # 5 words at 150 per minute


def test_scripted_silence_cap_ends_a_looping_call() -> None:
    gather = '<Gather numDigits="1" action="/voice" actionOnEmptyResult="true">'
    line = FakeLine({"/voice": twiml(gather + SAY.format("Tryk."), "</Gather>")})
    result, _ = call(line, ["", "5"])
    digits = [r.form.get("Digits") for r in line.received]
    assert digits == [None, "", "5", "", "", "", None]  # 3 silences beyond the script, then status
    assert result.ended_by == "caller-hangup"
    assert result.transcript[-1] == "[caller hangs up]"


def test_request_cap_stops_an_endless_redirect_loop() -> None:
    line = FakeLine({"/voice": twiml("<Redirect>/voice</Redirect>")})
    with pytest.raises(PhoneError, match="a loop"):
        call(line)
    assert len(line.received) == 200


def test_interactive_mode_reads_keys_line_by_line_from_a_stream() -> None:
    gather = '<Gather numDigits="1" action="/voice" actionOnEmptyResult="true">'
    line = FakeLine({"/voice": twiml(gather + SAY.format("Tryk."), "</Gather>")})
    result, out = call(line, io.StringIO("1\n\n"), interactive=True)
    assert [r.form.get("Digits") for r in line.received] == [None, "1", "", None]
    assert out.count("keys> ") == 3
    assert "keys> 1\n" in out and "keys> \n" in out
    assert result.ended_by == "caller-hangup"
    assert result.transcript.count("> 1") == 1 and result.transcript[-1] == "[caller hangs up]"


def test_nothing_is_printed_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    line = FakeLine({"/voice": MENU, "/menu": twiml(SAY.format("Ja."))})
    _, out = call(line, ["1"], caller="+4520000099")
    assert capsys.readouterr().out == ""
    assert out.splitlines()[-2:] == ["Ja.", "[end of TwiML: the line hangs up]"]
    assert line.form("/voice")["From"] == "+4520000099"


def test_http_transport_posts_to_the_target_for_public_urls(monkeypatch: Any) -> None:
    sent: list[tuple[str, str, dict[str, str] | None, dict[str, str]]] = []

    class Reply:
        status_code, text = 200, "<Response/>"

    def fake_request(method: str, url: str, data: dict[str, str] | None, headers: Any, **_: Any) -> Reply:
        sent.append((method, url, data, headers))
        return Reply()

    monkeypatch.setattr("ivr.phone.requests.request", fake_request)
    transport = HttpTransport("http://127.0.0.1:8080/", PUBLIC + "/")
    answer = transport.send(Request(PUBLIC + "/voice?x=1", {"A": "b"}, "sig"))
    assert (answer.status, answer.body) == (200, "<Response/>")
    assert sent[0] == ("POST", "http://127.0.0.1:8080/voice?x=1", {"A": "b"}, {"X-Twilio-Signature": "sig"})
    transport.send(Request("https://elsewhere.example/voice", {}, "", "GET"))
    transport.send(Request(PUBLIC + ".evil.example/voice", {}, ""))
    assert sent[1][0] == "GET"
    assert [url for _, url, _, _ in sent] == [
        "http://127.0.0.1:8080/voice?x=1",
        "https://elsewhere.example/voice",
        "https://ivr.example.dk.evil.example/voice",
    ]


# -- what a keypad cannot send, and keys a menu does not take ----------------------------------------


def test_keys_beyond_what_the_menu_takes_are_named_not_dropped_silently() -> None:
    line = FakeLine({"/voice": MENU, "/menu": twiml(SAY.format("Bruger-ID."), "<Hangup/>")})
    result, out = call(line, ["12"])
    assert line.form("/menu")["Digits"] == "1"
    assert "[sent 1; 2 was ignored: this menu takes one key]\n" in out
    assert out.index("> 12") < out.index("[sent 1;") < out.index("Bruger-ID.")


def test_keys_after_the_finish_key_are_named() -> None:
    gather = '<Gather action="/doc" numDigits="9" finishOnKey="#">' + SAY.format("Nummer.") + "</Gather>"
    line = FakeLine({"/voice": twiml(gather), "/doc": twiml("<Hangup/>")})
    _, out = call(line, ["12#34"])
    assert line.form("/doc")["Digits"] == "12"
    assert "[sent 12 (ended by #); 34 were ignored: keys after # are not sent]" in out


def test_interactive_refuses_what_a_keypad_cannot_send_and_asks_again() -> None:
    line = FakeLine({"/voice": MENU, "/menu": twiml(SAY.format("Ja."), "<Hangup/>")})
    result, out = call(line, io.StringIO("abc\n1 2\n1\n"), interactive=True)
    assert (
        "[refused 'abc': 'abc' are not on a phone keypad (0-9, * and #); nothing was sent, key again]" in out
    )
    assert "[refused '1 2': ' ' is not on a phone keypad (0-9, * and #); nothing was sent, key again]" in out
    assert out.count("keys> ") == 3
    assert [r.form.get("Digits") for r in line.received] == [None, "1", None]
    assert result.ended_by == "hangup" and "Ja." in out


def test_a_scripted_entry_a_keypad_cannot_send_is_an_error() -> None:
    line = FakeLine({"/voice": MENU})
    with pytest.raises(PhoneError, match="cannot key 'x1': 'x' is not on a phone keypad"):
        call(line, ["x1"])
    assert line.paths() == ["/voice"]


# -- Ctrl-C -------------------------------------------------------------------------------------------


class CtrlC(io.StringIO):
    """A terminal where the caller types `1`, then presses Ctrl-C at the next prompt."""

    def __init__(self) -> None:
        super().__init__("1\n")

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise KeyboardInterrupt
        return line


def test_ctrl_c_hangs_up_with_the_status_callback_and_one_line() -> None:
    gather = '<Gather numDigits="1" action="/voice">' + SAY.format("Tryk.") + "</Gather>"
    line = FakeLine({"/voice": twiml(gather, "<Redirect>/voice</Redirect>")})
    result, out = call(line, CtrlC(), interactive=True)
    assert result.ended_by == "interrupted"
    assert line.paths() == ["/voice", "/voice", "/voice/status"]
    status = line.form("/voice/status")
    assert status["CallStatus"] == "completed" and int(status["CallDuration"]) >= 1
    assert out.endswith("keys> \n[Ctrl-C: the caller hangs up]\n")
    assert out.count("Ctrl-C") == 1


class Time:
    """Time for a holding caller: sleeping moves it on, and may change what the line answers."""

    def __init__(self, line: FakeLine, after: int = 0, script: dict[str, str] | None = None) -> None:
        self.now, self.slept, self.line, self.after, self.script = 0.0, [], line, after, script or {}

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if len(self.slept) == self.after:
            self.line.script.update(self.script)

    def holding(self, seconds: float) -> Holding:
        return Holding(seconds, self.sleep, lambda: self.now)


QUEUED = {
    "/voice": twiml('<Enqueue waitUrl="/wait" action="/left">agents</Enqueue>'),
    "/wait": twiml(SAY.format("Du er nummer 1 i køen."), '<Pause length="20"/>'),
    "/left": twiml(SAY.format("Farvel."), "<Hangup/>"),
}


def test_a_holding_caller_asks_the_wait_url_again_after_each_pause_until_the_cap() -> None:
    line = FakeLine(dict(QUEUED))
    time = Time(line)
    result, _ = call(line, holding=time.holding(5))
    assert time.slept == [2.0, 2.0, 1.0]  # each pause capped at 2 s, the last one at what is left
    assert line.paths().count("/wait") == 4 and result.ended_by == "queue"
    assert line.form("/left")["QueueResult"] == "hangup"


def test_a_holding_caller_is_put_through_when_the_line_takes_them_out_of_the_queue() -> None:
    line = FakeLine(dict(QUEUED))
    agent = f'<Dial><Number url="/whisper">{"+4512345678"}</Number></Dial>'
    taken = {
        "/wait": twiml("<Leave/>"),
        "/left": twiml(SAY.format("Et øjeblik."), agent),
        "/whisper": twiml(SAY.format("Dansk opkald.")),
    }
    time = Time(line, after=2, script=taken)
    result, _ = call(line, holding=time.holding(120))
    assert result.transcript[-6:] == [
        "[the call leaves the queue: QueueResult=leave]",
        "Et øjeblik.",
        "[putting you through to +45 …78]",
        "[the agent hears: Dansk opkald.]",
        "[connected to the agent]",
        "[caller hangs up]",
    ]
    assert result.ended_by == "caller-hangup" and line.paths()[-1] == "/voice/status"


def test_an_interactive_caller_hangs_up_while_connected_with_end_of_input() -> None:
    line = FakeLine({"/voice": twiml("<Dial><Number>+4512345678</Number></Dial>")})
    result, out = call(line, keys=io.StringIO(""), interactive=True)
    assert "[connected to the agent]" in out and "[Enter or Ctrl-D hangs up]" in out
    assert result.ended_by == "caller-hangup"
