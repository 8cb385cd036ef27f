"""A fake Twilio for one call: it signs webhooks as Twilio does and runs the TwiML the line answers.

Twilio's documented rules, as far as this line's TwiML needs them:

- ``<Gather>``: its nested ``<Say>``/``<Play>``/``<Pause>`` play while keys already count
  (barge-in). Input ends at ``numDigits`` keys, at ``finishOnKey`` (default ``#``, never part of
  ``Digits``; ``""`` means no finish key) or after ``timeout`` seconds. With digits, Twilio requests
  the ``action`` (default: the document's URL) with ``method`` (default POST) and never runs the
  verbs after the Gather. With none (the timeout, or the finish key alone) it requests nothing,
  unless ``actionOnEmptyResult="true"``, and goes on with the next verb.
- ``<Redirect>``: requests its URL with ``method`` (default POST) and runs the answer.
- ``<Enqueue>``: the call waits in the queue. Each turn of waiting (``hold``) requests the
  ``waitUrl`` with ``waitUrlMethod`` and the queue's parameters and plays the answer, which may only
  hold Play, Say, Pause, Hangup, Redirect, Leave and Gather. When the call leaves the queue Twilio
  requests the Enqueue's ``action``.
- ``<Dial>`` with ``<Number>`` nouns (or a number as its text): Twilio rings the number; a
  Number's ``url`` is requested for the new leg (its own CallSid, ``From`` the line's number,
  ``To`` the number dialled, ``ParentCallSid`` the caller's call) and played to the person answering,
  before the two are connected (``whisper``; Say, Play, Pause, or Hangup, which drops that leg).
  Connected, the call stays so until someone hangs up (``bridged``).
- ``<Say>``, ``<Play>``, ``<Pause>`` are heard; ``<Hangup>`` and the end of a document end the call.

Anything else (another verb, an attribute value Twilio refuses, an HTTP error, an answer that is
not TwiML) is a ``PhoneError``: the fake cannot vouch for it. The call is driven from outside, as
time passes on a real one: ``dial()``; ``press()``/``silence()`` while it is listening; ``hold()``
while it is queued; ``hang_up()`` sends the status callback Twilio sends when a call is over.
"""

from __future__ import annotations

import contextlib
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin

from twilio.request_validator import RequestValidator

from ivr.twilio_rules import (
    DEFAULT_ACCOUNT_SID,
    LINE_NUMBER,
    MAX_REQUESTS,
    SECONDS_PER_KEY,
    SPOKEN,
    WAIT_URL_VERBS,
    WORDS_PER_SECOND,
    Answer,
    Event,
    Keyed,
    Listen,
    PhoneError,
    Request,
    Transport,
    audio_seconds,
    break_seconds,
    gather_keys,
    method_of,
    number_of,
    read_gather,
)

__all__ = ["Answer", "Event", "Keyed", "Listen", "PhoneError", "Request", "Transport", "TwilioCall"]


@dataclass(frozen=True)
class _Pending:
    """Where the call waits: the Gather or Enqueue, the verbs after it and its document's URL."""

    verb: ET.Element
    rest: Sequence[ET.Element]
    url: str


class TwilioCall:
    """One call placed by a fake Twilio; see the module's docstring for the rules it follows."""

    def __init__(
        self,
        transport: Transport,
        public_base_url: str,
        auth_token: str,
        *,
        caller: str = "+4520000001",
        call_sid: str | None = None,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        max_requests: int = MAX_REQUESTS,
        listener: Callable[[Event], None] | None = None,
    ) -> None:
        self.transport = transport
        self.public = public_base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.params = {
            "CallSid": self.call_sid,
            "AccountSid": account_sid,
            "From": caller,
            "To": LINE_NUMBER,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        self.max_requests = max_requests
        self.listener = listener
        self.requests: list[Request] = []
        self.events: list[Event] = []
        self.documents: list[ET.Element] = []  # every TwiML document the line answered
        self.answer: Answer | None = None  # the last answer to any request
        self.document: ET.Element | None = None  # that answer as TwiML, if it was
        self.listen: Listen | None = None  # the Gather waiting for keys
        self.ended = ""  # how the call ended: hangup, rejected, end-of-twiml, caller-hangup
        self.seconds = 0.0  # simulated: speech, pauses, keying and timeouts
        self.queue_sid = "QU" + uuid.uuid4().hex
        self.bridged = ""  # the number the caller is connected to by a <Dial>
        self._dial_action: tuple[str, str] | None = None  # where Twilio reports how the Dial ended
        self._gather: _Pending | None = None
        self._queue: _Pending | None = None
        self._played: dict[str, float] = {}  # audio fetched once per call, as Twilio caches it

    # -- the state of the call -------------------------------------------------------------------
    @property
    def queued(self) -> ET.Element | None:
        """The Enqueue the call waits under, if it is in a queue."""
        return self._queue.verb if self._queue else None

    # -- requests, signed as Twilio signs them -----------------------------------------------------
    def request(self, url: str, params: dict[str, str] | None = None, method: str = "POST") -> Request:
        """The request Twilio sends to ``url``: the call's parameters, then ``params``."""
        form = {**self.params, "CallStatus": "in-progress", **(params or {})}
        if method == "GET":  # the parameters go in the query string, and are signed there
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(form)}"
            form = {}
        return Request(url, form, self.validator.compute_signature(url, form), method)

    def post(self, request: Request) -> Answer:
        """Send ``request`` as it is and take in the answer, without running it."""
        if len(self.requests) >= self.max_requests:
            raise PhoneError(f"more than {self.max_requests} webhook requests in one call: a loop?")
        self.requests.append(request)
        self.answer = self.transport.send(request)
        self.document = None
        body = self.answer.body
        if self.answer.status == 200 and body.lstrip().startswith("<"):
            with contextlib.suppress(ET.ParseError):
                self.document = ET.fromstring(body)
        if self.document is not None and self.document.tag == "Response":
            self.documents.append(self.document)
        return self.answer

    def take(self, request: Request) -> None:
        """Twilio sends ``request`` and, when the answer is TwiML, runs it (the call goes on)."""
        self.post(request)
        self._gather = self._queue = None
        if self.document is not None and self.document.tag == "Response":
            self._run(list(self.document), request.url)

    # -- what happens on the call --------------------------------------------------------------------
    def dial(self) -> None:
        """The caller rings the line: Twilio requests the number's voice URL."""
        self._run(*self._fetch(self.request(self.public + "/voice", {"CallStatus": "ringing"})))

    def pressing(self, keys: str) -> Request | None:
        """The request Twilio makes when the caller keys ``keys`` now (None: it makes none)."""
        listen = self._listening()
        keyed = gather_keys(listen, keys)
        if not keyed.digits and not listen.action_on_empty_result:
            return None
        params = {"Digits": keyed.digits, "FinishedOnKey": keyed.finished_on}
        return self.request(listen.action, params, listen.method)

    def press(self, keys: str) -> Keyed:
        """The caller keys ``keys`` at the Gather ("" is silence until its timeout)."""
        listen, pending = self._listening(), self._gather
        assert pending is not None
        keyed = gather_keys(listen, keys)
        request = self.pressing(keys)
        self._gather = self.listen = None
        self.seconds += len(keys) * SECONDS_PER_KEY
        if not keyed.finished_on and len(keyed.digits) != listen.num_digits:
            self.seconds += listen.timeout
        self._emit(Event("keys", keyed.digits, listen, keyed))
        if request is None:  # no input: no request, the next verb
            self._run(pending.rest, pending.url)
        else:
            self._run(*self._fetch(request))
        return keyed

    def silence(self) -> Keyed:
        return self.press("")

    def hold(self, position: int = 1, queue_time: int = 0) -> None:
        """One turn of waiting in the queue: Twilio requests the waitUrl and plays its answer."""
        if self._queue is None:
            raise PhoneError("the call is not in a queue")
        enqueue, url = self._queue.verb, self._queue.url
        if not enqueue.get("waitUrl"):
            self._emit(Event("hold", "Twilio's hold music"))
            return
        params = {
            "QueuePosition": str(position),
            "QueueSid": self.queue_sid,
            "QueueTime": str(queue_time),
            "AvgQueueTime": "60",
            "CurrentQueueSize": str(max(position, 1)),
        }
        wait_url = urljoin(url, enqueue.get("waitUrl", ""))
        self._run_wait(*self._fetch(self.request(wait_url, params, method_of(enqueue, "waitUrlMethod"))))

    def hang_up(self, duration: int | None = None) -> Answer:
        """The call is over (either side hung up): Twilio posts the status callback."""
        if self._queue is not None:  # leaving the queue: Twilio requests the Enqueue's action
            self._leave_queue("hangup", run=False)
        self._gather = self.listen = None
        if self.bridged and self._dial_action is not None:  # the Dial ends: its action is asked
            self.post(self._dial_ended("completed"))  # (the call is over: its TwiML is not run)
        self.bridged = ""
        self.ended = self.ended or "caller-hangup"
        seconds = str(duration if duration is not None else max(1, round(self.seconds)))
        params = {"CallStatus": "completed", "CallDuration": seconds}
        return self.post(self.request(self.public + "/voice/status", params))

    # -- running TwiML --------------------------------------------------------------------------------
    def _listening(self) -> Listen:
        if self.listen is None:
            raise PhoneError("nothing is listening for keys")
        return self.listen

    def _fetch(self, request: Request) -> tuple[list[ET.Element], str]:
        """Request the next document; its verbs and its URL. Raises PhoneError on a bad answer."""
        answer = self.post(request)
        where = request.url.removeprefix(self.public) if request.method == "POST" else request.url
        if answer.status != 200:
            hint = " (signature rejected: check auth token and public URL)" if answer.status == 403 else ""
            raise PhoneError(f"{request.method} {where} answered HTTP {answer.status}{hint}", answer.status)
        asked = f"{request.method} {where}"
        if self.document is None:
            raise PhoneError(f"{asked} did not answer XML TwiML: {answer.body[:40]!r}")
        if self.document.tag != "Response":
            raise PhoneError(f"{asked} answered <{self.document.tag}>, not a TwiML <Response>")
        return list(self.document), request.url

    def _audio(self, url: str) -> float:
        """Fetch a <Play>'s audio as Twilio does (a GET, unsigned): how long it plays. Audio that
        is missing or that Twilio cannot play is a PhoneError: the caller would hear nothing."""
        if url not in self._played:
            answer = self.transport.send(Request(url, {}, "", "GET"))
            where = url.removeprefix(self.public)
            if answer.status != 200:
                raise PhoneError(f"<Play> {where}: the audio answered HTTP {answer.status}")
            seconds = audio_seconds(answer.content)
            if seconds is None:
                raise PhoneError(f"<Play> {where}: not WAV or MP3 audio")
            self._played[url] = seconds
        return self._played[url]

    def _run(self, verbs: Sequence[ET.Element], url: str) -> None:
        """Run verbs until the call waits (Gather, Enqueue) or ends."""
        self.ended = ""
        at = 0
        while at < len(verbs):
            verb, at = verbs[at], at + 1
            if verb.tag in SPOKEN:
                self._speak(verb, url)
            elif verb.tag == "Gather":
                self.listen = read_gather(verb, url)
                for child in verb:
                    self._speak(child, url)
                self._gather = _Pending(verb, verbs[at:], url)
                self._emit(Event("listen", "", self.listen))
                return
            elif verb.tag == "Redirect":
                verbs, url = self._fetch(self._redirect(verb, url))
                at = 0
            elif verb.tag == "Enqueue":
                if not (verb.text or "").strip():
                    raise PhoneError("<Enqueue> without a queue name")
                method_of(verb)
                method_of(verb, "waitUrlMethod")
                self._queue = _Pending(verb, verbs[at:], url)
                self._emit(Event("queue", (verb.text or "").strip()))
                return
            elif verb.tag in ("Hangup", "Reject"):
                return self._end("hangup" if verb.tag == "Hangup" else "rejected")
            elif verb.tag == "Dial":
                if self._dial(verb, url):
                    return
                if self._dial_action is not None:  # not answered: Twilio asks the Dial's action
                    verbs, url = self._fetch(self._dial_ended("no-answer"))
                    at = 0
            else:
                raise PhoneError(f"<{verb.tag}> is not a verb the fake caller knows")
        self._end("end-of-twiml")

    def _run_wait(self, verbs: Sequence[ET.Element], url: str) -> None:
        """Run a waitUrl answer: the caller on hold hears it and keys nothing."""
        at = 0
        while at < len(verbs):
            verb, at = verbs[at], at + 1
            if verb.tag not in WAIT_URL_VERBS:
                allowed = ", ".join(WAIT_URL_VERBS)
                raise PhoneError(f"<{verb.tag}> in a waitUrl answer: Twilio allows only {allowed}")
            if verb.tag in SPOKEN:
                self._speak(verb, url)
            elif verb.tag == "Gather":  # on hold nobody keys: no input, the next verb
                read_gather(verb, url)
                for child in verb:
                    self._speak(child, url)
            elif verb.tag == "Redirect":
                verbs, url = self._fetch(self._redirect(verb, url))
                at = 0
            elif verb.tag == "Leave":
                return self._leave_queue("leave", run=True)
            else:  # Hangup
                self._queue = None
                return self._end("hangup")

    def _dial(self, verb: ET.Element, url: str) -> bool:
        """Ring the Dial's number; True when the caller is connected (the call waits there)."""
        action = verb.get("action")
        self._dial_action = (urljoin(url, action), method_of(verb)) if action else None
        numbers = list(verb)
        if not numbers:  # <Dial>+4512345678</Dial>: the number as the Dial's text
            numbers = [ET.Element("Number")]
            numbers[0].text = verb.text
        if len(numbers) != 1 or numbers[0].tag != "Number":
            raise PhoneError("<Dial>: the fake caller dials exactly one <Number>")
        number = numbers[0]
        phone = (number.text or "").strip()
        if not re.fullmatch(r"\+[1-9][0-9]{5,14}", phone):
            raise PhoneError(f"<Number> {phone[:4]!r}...: Twilio dials E.164 numbers")
        self._emit(Event("dial", phone))
        if number.get("url") and not self._whisper(phone, urljoin(url, number.get("url", "")), number):
            self._emit(Event("dropped", phone))
            return False
        self.bridged = phone
        self._emit(Event("connected", phone))
        return True

    def _dial_ended(self, status: str) -> Request:
        assert self._dial_action is not None
        url, method = self._dial_action
        self._dial_action = None
        return self.request(url, {"DialCallStatus": status}, method)

    def _whisper(self, phone: str, url: str, number: ET.Element) -> bool:
        """The dialled leg answers: its Number's url plays to it; False if it hangs up there."""
        params = {"CallSid": "CA" + uuid.uuid4().hex, "From": LINE_NUMBER, "To": phone}
        params |= {"Direction": "outbound-dial", "ParentCallSid": self.call_sid}
        request = self.request(url, params, method_of(number))
        verbs, _ = self._fetch(request)
        for verb in verbs:
            if verb.tag == "Say":
                self._emit(Event("whisper", "".join(verb.itertext())))
            elif verb.tag == "Hangup":
                return False
            elif verb.tag not in ("Play", "Pause"):
                allowed = "Say, Play, Pause and Hangup"
                raise PhoneError(f"<{verb.tag}> in a Number's url: the fake caller knows {allowed}")
        return True

    def _leave_queue(self, result: str, run: bool) -> None:
        assert self._queue is not None
        enqueue, rest, url = self._queue.verb, self._queue.rest, self._queue.url
        self._queue = None
        self._emit(Event("leave", result))
        if not enqueue.get("action"):
            if run:
                self._run(rest, url)
            return
        params = {"QueueResult": result, "QueueSid": self.queue_sid, "QueueTime": "0"}
        request = self.request(urljoin(url, enqueue.get("action", "")), params, method_of(enqueue))
        if run:
            self._run(*self._fetch(request))
        else:
            self.post(request)

    def _redirect(self, verb: ET.Element, url: str) -> Request:
        target = (verb.text or "").strip()
        if not target:
            raise PhoneError("<Redirect> without a URL")
        return self.request(urljoin(url, target), {}, method_of(verb))

    def _speak(self, verb: ET.Element, url: str) -> None:
        loops = number_of(verb, "loop", 1, 0) if verb.tag != "Pause" else 1
        for _ in range(max(loops or 1, 1)):
            if verb.tag == "Say":
                text = "".join(verb.itertext())
                self.seconds += len(text.split()) / WORDS_PER_SECOND + break_seconds(verb)
                self._emit(Event("say", text))
            elif verb.tag == "Play":
                seconds = self._audio(urljoin(url, (verb.text or "").strip()))
                self.seconds += seconds
                self._emit(Event("play", (verb.text or "").strip(), seconds=seconds))
            else:
                length = number_of(verb, "length", 1, 1)
                self.seconds += length or 1
                self._emit(Event("pause", str(length)))

    def _end(self, how: str) -> None:
        self.ended = how
        self._emit(Event("end", how))

    def _emit(self, event: Event) -> None:
        self.events.append(event)
        if self.listener is not None:
            self.listener(event)
