"""The terminal phone: dials the line exactly as Twilio would and shows what the caller hears.

Every webhook is a form-encoded POST signed with ``X-Twilio-Signature`` for the PUBLIC URL (the
one Twilio would call); the transport decides where the request really goes. The TwiML answers are
interpreted verb by verb and written to a text stream as plain lines.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TextIO
from urllib.parse import urljoin

import requests
from twilio.request_validator import RequestValidator

MAX_REQUESTS = 200  # webhook requests per call, so that a looping flow still ends
SILENCE_CAP = 3  # silences a scripted caller keeps up after the script ran out
WORDS_PER_SECOND = 150 / 60  # speech rate used for the simulated CallDuration
SECONDS_PER_KEY = 0.5
KEYPAD = frozenset("0123456789*#")
SPOKEN = ("Say", "Play", "Pause")
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
LINE_NUMBER = "+4533980010"


class PhoneError(Exception):
    """The line answered something Twilio would not accept (HTTP error, not TwiML, a loop)."""


class Transport(Protocol):
    def post(self, url: str, data: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        """POST ``data`` form-encoded; ``url`` is the public URL. Returns (status, body)."""
        ...


class HttpTransport:
    """Sends requests meant for ``public_base_url`` to ``target_base_url`` over HTTP."""

    def __init__(self, target_base_url: str, public_base_url: str, timeout: float = 10) -> None:
        self.target = target_base_url.rstrip("/")
        self.public = public_base_url.rstrip("/")
        self.timeout = timeout

    def map_url(self, url: str) -> str:
        rest = url[len(self.public) :]
        if url.startswith(self.public) and (not rest or rest[0] in "/?"):
            return self.target + rest
        return url

    def post(self, url: str, data: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        target = self.map_url(url)
        try:
            answer = requests.post(
                target, data=data, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise PhoneError(f"cannot reach {target}: {exc.__class__.__name__}") from exc
        return answer.status_code, answer.text


@dataclass
class Call:
    """What happened on one call."""

    transcript: list[str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    ended_by: str = ""  # "hangup", "queue", "end-of-twiml" or "caller-hangup"
    call_sid: str = ""
    duration: int = 0  # simulated seconds: speech, pauses, keying and timeouts


@dataclass
class _Goto:
    url: str
    params: dict[str, str]


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class _Phone:
    def __init__(
        self,
        transport: Transport,
        public_base_url: str,
        auth_token: str,
        keys: Iterable[str],
        out: TextIO,
        base: dict[str, str],
        interactive: bool,
    ) -> None:
        self.transport = transport
        self.public = public_base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.keys: Iterator[str] = iter(keys)
        self.echo = interactive and not getattr(keys, "isatty", lambda: False)()
        self.out = out
        self.base = base
        self.interactive = interactive
        self.call = Call(call_sid=base["CallSid"])
        self.seconds = 0.0
        self.silences = 0

    def line(self, text: str) -> None:
        self.call.transcript.append(text)
        self.out.write(text + "\n")

    def send(self, url: str, params: dict[str, str], status: str) -> tuple[str, int, str]:
        data = {**self.base, "CallStatus": status, **params}
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, data)}
        rest = url[len(self.public) :]
        where = rest if url.startswith(self.public) and rest[:1] in ("/", "?") else url
        self.call.requests.append((where, data))
        code, body = self.transport.post(url, data, headers)
        return where, code, body

    def fetch(self, url: str, params: dict[str, str], status: str = "in-progress") -> ET.Element:
        if len(self.call.requests) >= MAX_REQUESTS:
            raise PhoneError(f"more than {MAX_REQUESTS} webhook requests in one call: a loop?")
        where, code, body = self.send(url, params, status)
        if code != 200:
            hint = " (signature rejected? check auth token and public URL)" if code == 403 else ""
            raise PhoneError(f"POST {where} answered HTTP {code}{hint}")
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise PhoneError(f"POST {where} did not answer XML TwiML ({exc})") from None
        if root.tag != "Response":
            raise PhoneError(f"POST {where} answered <{root.tag}>, not a TwiML <Response>")
        return root

    def speak(self, verb: ET.Element) -> None:
        if verb.tag == "Say":
            text = " ".join("".join(verb.itertext()).split())
            if text:
                self.line(text)
                self.seconds += len(text.split()) / WORDS_PER_SECOND
        elif verb.tag == "Play":
            self.line(f"[audio: {(verb.text or '').strip()}]")
        elif verb.tag == "Pause":
            length = _int(verb.get("length"), 1)
            self.line(f"[pause {length}s]")
            self.seconds += length

    def next_entry(self) -> str | None:
        """The caller's keys for one Gather, "" for silence, None when the caller hangs up."""
        if self.interactive:
            self.out.write("keys> ")
            self.out.flush()
        entry = next(self.keys, None)
        if entry is None:
            if self.interactive:
                self.out.write("\n")
                return None
            self.silences += 1
            if self.silences > SILENCE_CAP:
                return None
            entry = ""
        elif self.echo:
            self.out.write(entry.rstrip("\r\n") + "\n")
        keys = "".join(key for key in entry if key in KEYPAD)
        self.call.transcript.append(f"> {keys or '(silence)'}")
        if not self.interactive:
            self.out.write(self.call.transcript[-1] + "\n")
        return keys

    def gather(self, verb: ET.Element, url: str) -> _Goto | str | None:
        for child in verb:
            self.speak(child)
        num_digits = _int(verb.get("numDigits"), 0)
        finish = verb.get("finishOnKey", "#")
        wanted = [f"up to {num_digits}"] if num_digits > 0 else []
        wanted += [f"finish with {finish}"] if finish else []
        self.line(f"[waiting for keys{': ' if wanted else ''}{', '.join(wanted)}]")
        entry = self.next_entry()
        if entry is None:
            return "caller-hangup"
        digits, finished_on = "", ""
        for key in entry:
            if finish and key == finish:
                finished_on = key
                break
            digits += key
            if len(digits) == num_digits:
                break
        self.seconds += len(entry) * SECONDS_PER_KEY
        if not digits:
            self.seconds += _int(verb.get("timeout"), 5)
            if verb.get("actionOnEmptyResult", "false").lower() != "true":
                return None
        action = urljoin(url, verb.get("action") or url)
        return _Goto(action, {"Digits": digits, "FinishedOnKey": finished_on})

    def enqueue(self, verb: ET.Element, url: str) -> None:
        name = (verb.text or "").strip()
        wait_url = verb.get("waitUrl")
        if wait_url:
            queue = {
                "QueuePosition": "1",
                "QueueSid": "QU" + uuid.uuid4().hex,
                "QueueTime": "0",
                "AvgQueueTime": "60",
                "CurrentQueueSize": "1",
            }
            for child in self.fetch(urljoin(url, wait_url), queue):
                for spoken in [child] if child.tag in SPOKEN else list(child):
                    self.speak(spoken)
        else:
            self.line("[hold music]")
        self.line(f"[queued for an agent in queue '{name}']")

    def execute(self, doc: ET.Element, url: str) -> _Goto | str:
        """Run one TwiML document; the next request to make, or how the call ended."""
        for verb in doc:
            if verb.tag in SPOKEN:
                self.speak(verb)
            elif verb.tag == "Gather":
                outcome = self.gather(verb, url)
                if outcome is not None:
                    return outcome
            elif verb.tag == "Redirect":
                target = (verb.text or "").strip()
                if not target:
                    raise PhoneError("<Redirect> without a URL")
                return _Goto(urljoin(url, target), {})
            elif verb.tag == "Enqueue":
                self.enqueue(verb, url)
                return "queue"
            elif verb.tag in ("Hangup", "Reject"):
                self.line("[the line hangs up]" if verb.tag == "Hangup" else "[call rejected]")
                return "hangup"
            else:
                self.line(f"[<{verb.tag}> is not supported by the terminal phone; skipped]")
        self.line("[end of TwiML: the line hangs up]")
        return "end-of-twiml"

    def run(self) -> Call:
        url = self.public + "/voice"
        outcome: _Goto | str = _Goto(url, {})
        status = "ringing"
        while isinstance(outcome, _Goto):
            url = outcome.url
            outcome = self.execute(self.fetch(url, outcome.params, status), url)
            status = "in-progress"
        if outcome == "caller-hangup":
            self.line("[caller hangs up]")
        self.call.ended_by = outcome
        self.call.duration = max(1, round(self.seconds))
        where, code, _ = self.send(
            self.public + "/voice/status", {"CallDuration": str(self.call.duration)}, "completed"
        )
        if not 200 <= code < 300:
            raise PhoneError(f"POST {where} (status callback) answered HTTP {code}")
        return self.call


def place_call(
    transport: Transport,
    public_base_url: str,
    auth_token: str,
    keys: Iterable[str],
    out: TextIO,
    caller: str = "+4520000001",
    call_sid: str | None = None,
    interactive: bool = False,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> Call:
    """Place one call to the line and write what the caller hears to ``out``.

    ``keys`` gives one entry per <Gather>: DTMF keys such as "1" or "123456#", or "" for silence.
    Scripted: when the entries run out the caller stays silent, and hangs up after SILENCE_CAP
    such silences. Interactive: ``keys`` is a text stream read line by line after a "keys> "
    prompt; an empty line is silence, end of file hangs up. Raises PhoneError on a bad answer.
    """
    base = {
        "CallSid": call_sid or "CA" + uuid.uuid4().hex,
        "AccountSid": account_sid,
        "From": caller,
        "To": LINE_NUMBER,
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    return _Phone(transport, public_base_url, auth_token, keys, out, base, interactive).run()
