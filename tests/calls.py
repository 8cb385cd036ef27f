"""Calls that read like calls: `call.press("1")`, `call.silence()`, `assert call.hears("main_menu")`.

A `Call` drives the real Flask app the way Twilio does: signed form posts to the URLs the TwiML
names, following each `<Gather>`'s action, and keeps what the caller heard.
"""

from __future__ import annotations

import datetime as dt
import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import Flask
from twilio.request_validator import RequestValidator

from ivr.adapters.demo_people import DemoPerson
from ivr.ports import DocumentType
from ivr.prompts import Slot
from ivr.questions import QUESTIONS

_sids = itertools.count(1)


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Call:
    app: Flask
    token: str
    base: str
    language: str = "da"
    caller: str = "+4520000001"
    sid: str = field(default_factory=lambda: f"CA{next(_sids):032d}")
    twiml: ET.Element | None = None
    status: int = 0
    history: list[str] = field(default_factory=list)

    # -- what the caller does ------------------------------------------------------------
    def dial(self) -> Call:
        return self.post(f"{self.base}/voice", CallStatus="ringing")

    def press(self, keys: str) -> Call:
        gather = self.gather
        assert gather is not None, f"nothing is listening; the caller heard: {self.heard}"
        finish = gather.attrib.get("finishOnKey", "#")
        if finish and finish in keys:
            keys = keys[: keys.index(finish)]  # Twilio sends the keys before the finish key
        if "numDigits" in gather.attrib:
            keys = keys[: int(gather.attrib["numDigits"])]
        return self.post(gather.attrib["action"], Digits=keys, CallStatus="in-progress")

    def silence(self) -> Call:
        return self.press("")

    def hang_up(self, duration: int = 60) -> Call:
        self.post(f"{self.base}/voice/status", CallStatus="completed", CallDuration=str(duration))
        return self

    def post(self, url: str, signature: str | None = None, **params: str) -> Call:
        form = {"CallSid": self.sid, "AccountSid": "AC" + "0" * 32, "From": self.caller,
                "To": "+4533980010", "Direction": "inbound", **params}
        if signature is None:
            signature = RequestValidator(self.token).compute_signature(url, form)
        parts = urlsplit(url)
        response = self.app.test_client().post(
            parts.path, query_string=parts.query, data=form, headers={"X-Twilio-Signature": signature}
        )
        self.status = response.status_code
        body = response.get_data(as_text=True)
        self.twiml = ET.fromstring(body) if body.startswith("<?xml") else None
        self.history.append(self.heard)
        return self

    # -- what the caller hears -------------------------------------------------------------
    @property
    def gather(self) -> ET.Element | None:
        return None if self.twiml is None else self.twiml.find("Gather")

    @property
    def heard(self) -> str:
        if self.twiml is None:
            return ""
        return " ".join((say.text or "") for say in self.twiml.iter("Say"))

    def text(self, key: str, language: str | None = None, **slots: Slot) -> str:
        lang = self.app.extensions["ivr"].services.catalog[language or self.language]
        return lang.text(key, slots)

    def hears(self, key: str, language: str | None = None, **slots: Slot) -> bool:
        return self.text(key, language, **slots) in self.heard

    @property
    def queued(self) -> bool:
        return self.twiml is not None and self.twiml.find("Enqueue") is not None

    @property
    def hung_up(self) -> bool:
        return self.twiml is not None and self.twiml.find("Hangup") is not None

    # -- whole stretches of a call ---------------------------------------------------------------
    def choose_language(self) -> Call:
        return self.press({"da": "1", "en": "2"}[self.language])

    def identify(self, person: DemoPerson, intent: str, document: int = 0) -> Call:
        """From the main menu: choose the intent, give the document and confirm it."""
        doc = person.person.documents[document]
        self.press({"user_id": "1", "temporary_pin": "2"}[intent])
        self.press({DocumentType.PASSPORT: "1", DocumentType.DRIVING_LICENCE: "2"}[doc.type])
        self.press(doc.number + "#")
        return self.press("1")

    def current_question(self) -> str:
        """Which question is being asked, read off what the caller hears."""
        for kind in QUESTIONS:
            if self.hears(f"question_{kind}"):
                return kind
        raise AssertionError(f"no question heard in: {self.heard}")

    def answer_questions(self, person: DemoPerson | None, right: int = 99) -> Call:
        """Answer every question asked: the first `right` correctly, the rest wrongly."""
        answered = 0
        while self.gather is not None and any(self.hears(f"question_{k}") for k in QUESTIONS):
            question = QUESTIONS[self.current_question()]
            truth = question.fact(person.person) if person else None
            answer = truth if truth and answered < right else _wrong(truth, question.digits)
            self.press(answer + ("" if question.digits else "#"))
            answered += 1
        return self


def _wrong(truth: str | None, digits: int | None) -> str:
    width = digits or 3
    candidate = "1" * width
    return "2" * width if candidate == truth else candidate
