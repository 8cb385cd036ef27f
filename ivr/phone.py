"""The terminal phone: dials the line through the fake Twilio and shows what the caller hears.

Every webhook is signed with ``X-Twilio-Signature`` for the PUBLIC URL (the one Twilio would call);
the transport decides where the request really goes. ``ivr.twilio_caller`` runs the TwiML as
Twilio does; this module supplies the caller's keys and writes what happens as plain lines.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

import requests

from ivr.twilio_caller import TwilioCall
from ivr.twilio_rules import (
    DEFAULT_ACCOUNT_SID,
    KEYPAD,
    Answer,
    Event,
    Keyed,
    Listen,
    PhoneError,
    Request,
    Transport,
    refusal,
)

if TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "INTERRUPTED",
    "KEYPAD",
    "Call",
    "FlaskTransport",
    "Holding",
    "HttpTransport",
    "PhoneError",
    "Transport",
    "place_call",
    "refusal",
]

SILENCE_CAP = 3  # silences a scripted caller keeps up after the script ran out
MAX_PAUSE = 2.0  # seconds a holding caller waits, at most, before asking the waitUrl again
INTERRUPTED = "interrupted"  # Call.ended_by after Ctrl-C


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

    def send(self, request: Request) -> Answer:
        target = self.map_url(request.url)
        try:
            answer = requests.request(
                request.method,
                target,
                data=request.form or None,
                headers={"X-Twilio-Signature": request.signature},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise PhoneError(f"cannot reach {target}: {exc.__class__.__name__}") from exc
        return Answer(answer.status_code, answer.text)


class FlaskTransport:
    """Delivers requests meant for the public URL straight into a Flask app's test client."""

    def __init__(self, app: Callable[[], Flask]) -> None:
        self.app = app  # asked each time: a test may swap the app (a restarted process)

    def send(self, request: Request) -> Answer:
        parts = urlsplit(request.url)
        client = self.app().test_client()
        headers = {"X-Twilio-Signature": request.signature}
        if request.method == "GET":
            response = client.get(parts.path, query_string=parts.query, headers=headers)
        else:
            response = client.post(parts.path, query_string=parts.query, data=request.form, headers=headers)
        return Answer(response.status_code, response.get_data(as_text=True))


@dataclass
class Call:
    """What happened on one call."""

    transcript: list[str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # "hangup", "rejected", "end-of-twiml", "queue", "caller-hangup" or "interrupted" (Ctrl-C)
    ended_by: str = ""
    call_sid: str = ""
    duration: int = 0  # simulated seconds: speech, pauses, keying and timeouts


def _waiting(listen: Listen) -> str:
    wanted = [f"up to {listen.num_digits}"] if listen.num_digits else []
    wanted += [f"finish with {listen.finish_on_key}"] if listen.finish_on_key else []
    return f"[waiting for keys{': ' if wanted else ''}{', '.join(wanted)}]"


def _ignored(listen: Listen, keyed: Keyed) -> str | None:
    """Say which keys went and which did not, when the caller typed more than the Gather took."""
    if not keyed.ignored:
        return None
    sent = f"sent {keyed.digits or 'nothing'}"
    sent += f" (ended by {keyed.finished_on})" if keyed.finished_on else ""
    verb = "was" if len(keyed.ignored) == 1 else "were"
    if keyed.finished_on:
        why = f"keys after {keyed.finished_on} are not sent"
    else:
        n = listen.num_digits
        why = f"this menu takes {'one key' if n == 1 else f'{n} keys'}"
    return f"[{sent}; {keyed.ignored} {verb} ignored: {why}]"


def _masked(number: str) -> str:
    """A number as the terminal shows it: its first three and last two characters."""
    return f"{number[:3]} …{number[-2:]}"


@dataclass(frozen=True)
class Holding:
    """How long a queued caller holds on (seconds, 0: not at all) and how time passes."""

    seconds: float = 0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


class _Phone:
    def __init__(
        self, twilio: TwilioCall, keys: Iterable[str], out: TextIO, interactive: bool, holding: Holding
    ) -> None:
        self.twilio = twilio
        self.source = keys
        self.holding = holding
        self.keys: Iterator[str] = iter(keys)
        self.echo = interactive and not getattr(keys, "isatty", lambda: False)()
        self.out = out
        self.interactive = interactive
        self.call = Call(call_sid=twilio.call_sid)
        self.silences = 0
        self.at_prompt = False
        twilio.listener = self.show

    def line(self, text: str, show: bool = True) -> None:
        self.call.transcript.append(text)
        if show:
            self.out.write(text + "\n")

    def show(self, event: Event) -> None:
        if event.kind == "say":
            text = " ".join(event.text.split())
            if text:
                self.line(text)
        elif event.kind == "play":
            self.line(f"[audio: {event.text}]")
        elif event.kind == "pause":
            self.line(f"[pause {event.text}s]")
        elif event.kind == "listen" and event.listen:
            self.line(_waiting(event.listen))
        elif event.kind == "keys" and event.listen and event.keyed:
            self.line(f"> {event.keyed.typed or '(silence)'}", show=not self.interactive)
            note = _ignored(event.listen, event.keyed)
            if note:
                self.line(note)
        elif event.kind == "queue":
            self.line(f"[queued for an agent in queue '{event.text}']")
        elif event.kind == "hold":
            self.line("[hold music]")
        elif event.kind == "leave":
            self.line(f"[the call leaves the queue: QueueResult={event.text}]")
        elif event.kind == "dial":
            self.line(f"[putting you through to {_masked(event.text)}]")
        elif event.kind == "whisper":
            self.line(f"[the agent hears: {' '.join(event.text.split())}]")
        elif event.kind == "connected":
            self.line("[connected to the agent]")
        elif event.kind == "dropped":
            self.line("[the agent's phone hung up before the call was put through]")
        elif event.kind == "end":
            self.line(
                {
                    "hangup": "[the line hangs up]",
                    "rejected": "[call rejected]",
                    "end-of-twiml": "[end of TwiML: the line hangs up]",
                }[event.text]
            )

    def next_entry(self) -> str | None:
        """The caller's keys for one Gather, "" for silence, None when the caller hangs up."""
        while True:
            if self.interactive:
                self.at_prompt = True  # before the prompt: a Ctrl-C may come as soon as it shows
                self.out.write("keys> ")
                self.out.flush()
            entry = next(self.keys, None)
            self.at_prompt = False
            if entry is None:
                if self.interactive:
                    self.out.write("\n")
                    return None
                self.silences += 1
                return "" if self.silences <= SILENCE_CAP else None
            if self.echo:
                self.out.write(entry.rstrip("\r\n") + "\n")
            entry = entry.strip()
            problem = refusal(entry)
            if problem is None:
                return entry
            if not self.interactive:
                raise PhoneError(f"cannot key {entry!r}: {problem}")
            self.out.write(f"[refused {entry!r}: {problem}; nothing was sent, key again]\n")

    def converse(self) -> str:
        """Key, listen and wait until the call ends; how it ended."""
        twilio = self.twilio
        twilio.dial()
        while not twilio.ended:
            if twilio.listen is not None:
                entry = self.next_entry()
                if entry is None:
                    return "caller-hangup"
                twilio.press(entry)
            elif twilio.queued is not None:
                ended = self.hold_on()
                if ended:
                    return ended
            elif twilio.bridged:
                if self.interactive:
                    self.out.write("[Enter or Ctrl-D hangs up]\n")
                    next(self.keys, None)
                return "caller-hangup"
        return twilio.ended

    def hold_on(self) -> str:
        """Hold in the queue, asking the waitUrl again after each of its pauses (no longer than
        MAX_PAUSE each), until the call moves on (""), the caller hangs up or the holding ends."""
        twilio, holding = self.twilio, self.holding
        until = holding.clock() + holding.seconds
        while True:
            since = len(twilio.events)
            twilio.hold()  # Twilio asks the waitUrl at once, and again when its answer is played
            if twilio.queued is None:
                return ""
            if holding.clock() >= until:
                return "queue"
            pauses = [float(e.text) for e in twilio.events[since:] if e.kind == "pause"]
            if self.hangs_up_within(min(sum(pauses) or 1, MAX_PAUSE, max(until - holding.clock(), 0))):
                return "caller-hangup"

    def hangs_up_within(self, seconds: float) -> bool:
        """Wait `seconds`; True if an interactive caller pressed Enter or closed the input."""
        try:
            fileno: int = getattr(self.source, "fileno", lambda: -1)() if self.interactive else -1
        except (OSError, ValueError):  # a stream with no file behind it
            fileno = -1
        if fileno < 0:
            self.holding.sleep(seconds)
            return False
        ready, _, _ = select.select([fileno], [], [], seconds)
        if ready:
            next(self.keys, None)
        return bool(ready)

    def run(self) -> Call:
        try:
            self.call.ended_by = self.converse()
        except KeyboardInterrupt:
            self.out.write("\n" if self.at_prompt else "")
            self.call.ended_by = INTERRUPTED
        if self.call.ended_by == "caller-hangup":
            self.line("[caller hangs up]")
        elif self.call.ended_by == INTERRUPTED:
            self.line("[Ctrl-C: the caller hangs up]")
        self.call.duration = max(1, round(self.twilio.seconds))
        answer = self.twilio.hang_up(self.call.duration)
        self.call.requests = [(self._where(r.url), r.form) for r in self.twilio.requests]
        if not 200 <= answer.status < 300:
            raise PhoneError(f"POST /voice/status (status callback) answered HTTP {answer.status}")
        return self.call

    def _where(self, url: str) -> str:
        rest = url[len(self.twilio.public) :]
        return rest if url.startswith(self.twilio.public) and rest[:1] in ("/", "?") else url


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
    holding: Holding = Holding(),
) -> Call:
    """Place one call to the line and write what the caller hears to ``out``.

    ``keys`` gives one entry per <Gather>: DTMF keys such as "1" or "123456#", or "" for silence.
    Scripted: when the entries run out the caller stays silent, and hangs up after SILENCE_CAP
    such silences; an entry a keypad cannot send is a PhoneError. Interactive: ``keys`` is a text
    stream read line by line after a "keys> " prompt; an empty line is silence, an entry a keypad
    cannot send is refused and asked again, end of file hangs up. Ctrl-C hangs up too (ended_by
    "interrupted"). Raises PhoneError on a bad answer.
    """
    twilio = TwilioCall(
        transport, public_base_url, auth_token, caller=caller, call_sid=call_sid, account_sid=account_sid
    )
    return _Phone(twilio, keys, out, interactive, holding).run()
