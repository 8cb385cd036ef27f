"""Twilio's vocabulary for the fake caller: requests and answers, keypad rules, a Gather's attributes.

Pure, no I/O: what ``ivr.twilio_caller`` needs to read TwiML the way Twilio reads it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin

KEYPAD = frozenset("0123456789*#")
SPOKEN = frozenset({"Say", "Play", "Pause"})
WAIT_URL_VERBS = ("Play", "Say", "Pause", "Hangup", "Redirect", "Leave", "Gather")
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
LINE_NUMBER = "+4533980010"
MAX_REQUESTS = 200  # webhook requests per call, so that a looping line still ends
WORDS_PER_SECOND = 150 / 60  # speech rate used for the simulated CallDuration
SECONDS_PER_KEY = 0.5


class PhoneError(Exception):
    """The line answered something Twilio would not accept (HTTP error, not TwiML, a loop);
    `status` is the HTTP status of an error answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One webhook as Twilio sends it: the public URL it calls, the form, the signature."""

    url: str
    form: dict[str, str]
    signature: str
    method: str = "POST"


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content: bytes = b""
    """The body as bytes (what a <Play> fetches)."""


class Transport(Protocol):
    def send(self, request: Request) -> Answer:
        """Deliver ``request`` (whose URL is the public one) to the line and return its answer."""
        ...


@dataclass(frozen=True)
class Listen:
    """A ``<Gather>`` read with Twilio's defaults, its URLs made absolute."""

    verb: ET.Element
    action: str
    method: str
    num_digits: int | None
    finish_on_key: str
    timeout: int
    action_on_empty_result: bool


@dataclass(frozen=True)
class Keyed:
    """What Twilio makes of the keys a caller typed at one ``<Gather>``."""

    typed: str
    digits: str  # sent as Digits
    finished_on: str  # the finish key that ended the input, or ""
    ignored: str  # typed after the input was complete: never sent


@dataclass(frozen=True)
class Event:
    """Something that happened on the call: ``say``, ``play``, ``pause`` (text: seconds),
    ``play`` (text: the URL; seconds: how long it played), ``listen``, ``keys`` (text: the Digits
    sent), ``queue`` (text: its name), ``hold`` (no waitUrl:
    Twilio's music), ``leave`` or ``end`` (text: ``hangup``, ``rejected``, ``end-of-twiml``);
    for a Dial, ``dial``, then ``whisper`` (what the answering person hears) and ``connected`` or
    ``dropped`` (text: the number dialled)."""

    kind: str
    text: str
    listen: Listen | None = None
    keyed: Keyed | None = None
    seconds: float = 0.0


def break_seconds(verb: ET.Element) -> float:
    """The SSML <break time="300ms"/> (or "1s") pauses inside a <Say>; Twilio's default 0.5 s
    for a break with a strength and no time."""
    total = 0.0
    for brk in verb.iter("break"):
        time = brk.get("time", "")
        if time.endswith("ms") and time[:-2].isdigit():
            total += int(time[:-2]) / 1000
        elif time.endswith("s") and time[:-1].replace(".", "", 1).isdigit():
            total += float(time[:-1])
        else:
            total += 0.5
    return total


def refusal(keys: str) -> str | None:
    """Why a phone keypad cannot send ``keys``, or None when it can."""
    bad = sorted({key for key in keys if key not in KEYPAD})
    if not bad:
        return None
    return f"{''.join(bad)!r} {'is' if len(bad) == 1 else 'are'} not on a phone keypad (0-9, * and #)"


def gather_keys(listen: Listen, typed: str) -> Keyed:
    """Twilio's reading of ``typed`` at a Gather: numDigits and finishOnKey end the input."""
    problem = refusal(typed)
    if problem:
        raise ValueError(problem)
    digits = ""
    for at, key in enumerate(typed):
        if listen.finish_on_key and key == listen.finish_on_key:
            return Keyed(typed, digits, key, typed[at + 1 :])
        digits += key
        if len(digits) == listen.num_digits:
            return Keyed(typed, digits, "", typed[at + 1 :])
    return Keyed(typed, digits, "", "")


def method_of(verb: ET.Element, attribute: str = "method") -> str:
    method = verb.get(attribute, "POST")
    if method not in ("GET", "POST"):
        raise PhoneError(f"<{verb.tag} {attribute}={method!r}>: Twilio takes GET or POST")
    return method


def number_of(verb: ET.Element, attribute: str, default: int | None, least: int) -> int | None:
    value = verb.get(attribute)
    if value is None:
        return default
    if not value.isdigit() or int(value) < least:
        raise PhoneError(f"<{verb.tag} {attribute}={value!r}>: Twilio takes a whole number >= {least}")
    return int(value)


def read_gather(verb: ET.Element, url: str) -> Listen:
    if "dtmf" not in verb.get("input", "dtmf").split():
        raise PhoneError(f"<Gather input={verb.get('input')!r}>: the fake caller can only press keys")
    finish = verb.get("finishOnKey", "#")
    if finish and (len(finish) != 1 or finish not in KEYPAD):
        raise PhoneError(f"<Gather finishOnKey={finish!r}>: Twilio takes one of 0-9, *, # or ''")
    empty = verb.get("actionOnEmptyResult", "false")
    if empty not in ("true", "false"):
        raise PhoneError(f"<Gather actionOnEmptyResult={empty!r}>: Twilio takes true or false")
    for child in verb:
        if child.tag not in SPOKEN:
            raise PhoneError(f"<{child.tag}> inside <Gather>: Twilio nests only Say, Play and Pause")
    timeout = number_of(verb, "timeout", 5, 1)
    assert timeout is not None
    return Listen(
        verb=verb,
        action=urljoin(url, verb.get("action") or url),
        method=method_of(verb),
        num_digits=number_of(verb, "numDigits", None, 1),
        finish_on_key=finish,
        timeout=timeout,
        action_on_empty_result=empty == "true",
    )


MP3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # MPEG-1 layer III


def audio_seconds(data: bytes) -> float | None:
    """How long a WAV (any encoding: its byte rate says) or an MP3 (from its first frame's bit
    rate, as if constant) plays; None when it is neither."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        byte_rate = frames = None
        at = 12
        while at + 8 <= len(data):
            tag, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
            if tag == b"fmt " and size >= 16:
                byte_rate = int.from_bytes(data[at + 16 : at + 20], "little")
            elif tag == b"data":
                frames = min(size, len(data) - at - 8)
            at += 8 + size + (size & 1)
        return frames / byte_rate if byte_rate and frames is not None else None
    start = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # a tag before the first frame: its size is syncsafe
        start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    header = data[start : start + 4]
    if len(header) == 4 and header[0] == 0xFF and header[1] & 0xFE == 0xFA:  # MPEG-1 layer III
        index = header[2] >> 4
        if 0 < index < len(MP3_KBPS):
            return (len(data) - start) * 8 / (MP3_KBPS[index] * 1000)
    return None
