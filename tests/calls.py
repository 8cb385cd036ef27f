"""Calls that read like calls: `call.press("1")`, `call.silence()`, `assert call.hears("main_menu")`.

A `Call` drives the real Flask app the way Twilio does: signed form posts to the URLs the TwiML
names, following each `<Gather>`'s action, and keeps what the caller heard. `Records` reads what
the line wrote down (SMS outbox, escalations, audit trail, attempts, the demo back end's PINs).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
import yaml
from flask import Flask
from twilio.request_validator import RequestValidator

from ivr import store
from ivr.adapters.demo_people import DemoPerson
from ivr.flows import Flow, InputStep, MenuStep, QuestionStep
from ivr.ports import Document, DocumentType
from ivr.prompts import Catalog, Slot
from ivr.questions import QUESTIONS
from ivr.state import CallState

LANGUAGES = ("da", "en")
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
INTENT_KEYS = {"user_id": "1", "temporary_pin": "2"}
DOCUMENT_KEYS = {DocumentType.PASSPORT: "1", DocumentType.DRIVING_LICENCE: "2"}
# One digit short of what the check wants: a caller who stopped too early.
SHORT_NUMBERS = {"passport_number": "12345678", "driving_licence_number": "1234567"}

_sids = itertools.count(1)


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass(frozen=True)
class Request:
    """One webhook as Twilio sends it: the public URL it called, the form, the signature."""

    url: str
    form: dict[str, str]
    signature: str


def sign(token: str, url: str, form: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, form)


def spelled(value: str, language: str) -> str:
    """`value` read character by character with the names in prompts/<language>.yaml."""
    names = yaml.safe_load((PROMPTS_DIR / f"{language}.yaml").read_text(encoding="utf-8"))["characters"]
    return ", ".join(names[ch] for ch in value.lower())


@dataclass
class Call:
    app: Flask
    token: str
    base: str
    language: str = "da"
    caller: str = "+4520000001"
    sid: str = field(default_factory=lambda: f"CA{next(_sids):032d}")
    twiml: ET.Element | None = None
    body: str = ""
    status: int = 0
    history: list[str] = field(default_factory=list)
    replies: list[ET.Element | None] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    # -- what the caller does ------------------------------------------------------------
    def dial(self) -> Call:
        return self.post(f"{self.base}/voice", CallStatus="ringing")

    def press(self, keys: str) -> Call:
        return self.send(self.pressing(keys))

    def silence(self) -> Call:
        return self.press("")

    def hang_up(self, duration: int = 60) -> Call:
        self.post(f"{self.base}/voice/status", CallStatus="completed", CallDuration=str(duration))
        return self

    def wait_in_queue(self, position: int) -> Call:
        """Twilio asks the Enqueue's waitUrl what to play to a caller at `position`."""
        enqueue = self.twiml.find("Enqueue") if self.twiml is not None else None
        assert enqueue is not None, f"the caller is not queued; they heard: {self.heard}"
        return self.post(enqueue.attrib["waitUrl"], QueuePosition=str(position), QueueTime="30")

    def pressing(self, keys: str) -> Request:
        """The signed request Twilio would send if the caller keyed `keys` now."""
        gather = self.gather
        assert gather is not None, f"nothing is listening; the caller heard: {self.heard}"
        finish = gather.attrib.get("finishOnKey", "#")
        if finish and finish in keys:
            keys = keys[: keys.index(finish)]  # Twilio sends the keys before the finish key
        if "numDigits" in gather.attrib:
            keys = keys[: int(gather.attrib["numDigits"])]
        return self.request(gather.attrib["action"], Digits=keys, CallStatus="in-progress")

    def request(self, url: str, **params: str) -> Request:
        form = {
            "CallSid": self.sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.caller,
            "To": "+4533980010",
            "Direction": "inbound",
            **params,
        }
        return Request(url, form, sign(self.token, url, form))

    def post(self, url: str, **params: str) -> Call:
        return self.send(self.request(url, **params))

    def send(self, request: Request) -> Call:
        """Post a request exactly as given (signed or not) and take in the answer."""
        parts = urlsplit(request.url)
        response = self.app.test_client().post(
            parts.path,
            query_string=parts.query,
            data=request.form,
            headers={"X-Twilio-Signature": request.signature},
        )
        self.requests.append(request)
        self.status = response.status_code
        self.body = response.get_data(as_text=True)
        self.twiml = ET.fromstring(self.body) if self.body.startswith("<?xml") else None
        self.history.append(self.heard)
        self.replies.append(self.twiml)
        return self

    # -- what the caller hears -------------------------------------------------------------
    @property
    def gather(self) -> ET.Element | None:
        return None if self.twiml is None else self.twiml.find("Gather")

    @property
    def listening(self) -> bool:
        return self.gather is not None

    @property
    def heard(self) -> str:
        if self.twiml is None:
            return ""
        return " ".join((say.text or "") for say in self.twiml.iter("Say"))

    def text(self, key: str, language: str | None = None, **slots: Slot) -> str:
        return self.catalog[language or self.language].text(key, slots)

    def hears(self, key: str, language: str | None = None, **slots: Slot) -> bool:
        return self.text(key, language, **slots) in self.heard

    @property
    def said(self) -> list[str]:
        """The prompt keys of what the caller just heard, in order."""
        return _keys_of(self.twiml, self.catalog)

    @property
    def outline(self) -> list[str]:
        """Every prompt key heard in the whole call; any knowledge question shows as `question`."""
        keys = (key for reply in self.replies for key in _keys_of(reply, self.catalog))
        return ["question" if key.startswith("question_") else key for key in keys]

    @property
    def queued(self) -> bool:
        return self.twiml is not None and self.twiml.find("Enqueue") is not None

    @property
    def hung_up(self) -> bool:
        return self.twiml is not None and self.twiml.find("Hangup") is not None

    @property
    def urls(self) -> list[str]:
        """Every URL any answer so far told Twilio to call (Gather actions, waitUrls, ...)."""
        return [
            value
            for reply in self.replies
            if reply is not None
            for element in reply.iter()
            for value in element.attrib.values()
            if value.startswith("http")
        ]

    # -- where the line has the call ---------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        catalog: Catalog = self.app.extensions["ivr"].services.catalog
        return catalog

    @property
    def flow(self) -> Flow:
        flow: Flow = self.app.extensions["ivr"].engine.flow
        return flow

    @property
    def state(self) -> CallState:
        row = Records(self.app).session(self)
        return CallState.model_validate_json(row["state"])

    @property
    def step(self) -> str:
        return self.state.step

    def step_words(self) -> list[str]:
        """The prompt keys the current listening step says (each language, if it says all)."""
        step = self.flow.steps[self.step]
        assert isinstance(step, MenuStep | InputStep | QuestionStep), f"{self.step} does not listen"
        words = list(step.say)
        if isinstance(step, QuestionStep):
            words.append(f"question_{self.current_question()}")
        if isinstance(step, MenuStep) and step.say_in_every_language:
            words = words * len(self.catalog)
        return words

    def wrong_keys(self) -> str:
        """Keys the current step cannot take: a key no option has, a short number, a bad answer."""
        step = self.flow.steps[self.step]
        match step:
            case MenuStep():
                return next(k for k in "987654321#" if k not in step.options)
            case InputStep():
                return SHORT_NUMBERS[step.check] + "#"
            case QuestionStep():
                digits = QUESTIONS[self.current_question()].digits
                return ("1" * (digits - 1) if digits else "12345") + "#"
        raise AssertionError(f"step {self.step} does not listen")

    # -- whole stretches of a call ---------------------------------------------------------------
    def choose_language(self) -> Call:
        return self.press({"da": "1", "en": "2"}[self.language])

    def give_document(self, document: Document) -> Call:
        """At the document menu: choose the document's type and key in its number."""
        self.press(DOCUMENT_KEYS[document.type])
        return self.press(document.number + "#")

    def identify(self, person: DemoPerson | Document, intent: str, document: int = 0) -> Call:
        """From the main menu: choose the intent, give the document and confirm it."""
        doc = person if isinstance(person, Document) else person.person.documents[document]
        self.press(INTENT_KEYS[intent])
        self.give_document(doc)
        return self.press("1")

    def current_question(self) -> str:
        """Which question is being asked, read off what the caller hears."""
        for kind in QUESTIONS:
            if self.hears(f"question_{kind}"):
                return kind
        raise AssertionError(f"no question heard in: {self.heard}")

    @property
    def asked(self) -> bool:
        """Whether a knowledge question is waiting for its answer."""
        return self.listening and any(self.hears(f"question_{kind}") for kind in QUESTIONS)

    def answer(self, person: DemoPerson | None, right: bool = True) -> Call:
        """Answer the question being asked as `person` (None: a stranger), rightly or wrongly."""
        question = QUESTIONS[self.current_question()]
        truth = question.fact(person.person) if person else None
        answer = truth if truth and right else _wrong(truth, question.digits)
        return self.press(answer + ("" if question.digits else "#"))

    def answer_questions(self, person: DemoPerson | None, right: int = 99) -> Call:
        """Answer every question asked: the first `right` correctly, the rest wrongly."""
        answered = 0
        while self.asked:
            self.answer(person, right=answered < right)
            answered += 1
        return self

    def reach(self, step: str, person: DemoPerson) -> Call:
        """From the welcome, walk the shortest way to the listening `step` as `person`."""
        document = person.person.documents[0]
        walks = {
            "choose_language": lambda: self,
            "main_menu": self.choose_language,
            "document_type": lambda: self.reach("main_menu", person).press("1"),
            "passport_number": lambda: self.reach("document_type", person).press("1"),
            "driving_licence_number": lambda: self.reach("document_type", person).press("2"),
            "confirm_document": lambda: self.reach("document_type", person).give_document(document),
            "question": lambda: self.reach("main_menu", person).identify(person, "user_id"),
            "user_id_again": lambda: self.reach("question", person).answer_questions(person),
        }
        walks[step]()
        assert self.step == step, f"meant to reach {step}, the call is at {self.step}: {self.heard}"
        return self


def _wrong(truth: str | None, digits: int | None) -> str:
    width = digits or 3
    candidate = "1" * width
    return "2" * width if candidate == truth else candidate


def _patterns(catalog: Catalog) -> list[tuple[re.Pattern[str], str]]:
    """For every prompt of every language: a pattern matching its words with any slot filled."""
    found = []
    for lang in catalog.values():
        for key, text in lang.prompts.items():
            parts = re.split(r"\{\w+\}", text)
            found.append((re.compile(".+?".join(map(re.escape, parts)), re.DOTALL), key))
    return found


def _keys_of(twiml: ET.Element | None, catalog: Catalog) -> list[str]:
    if twiml is None:
        return []
    keys, patterns = [], _patterns(catalog)
    for say in twiml.iter("Say"):
        text = say.text or ""
        matches = [key for pattern, key in patterns if pattern.fullmatch(text)]
        assert matches, f"no prompt says {text!r}"
        keys.append(matches[0])
    return keys


@dataclass
class Records:
    """What the line wrote down, read straight from its store and the demo back end."""

    app: Flask

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        if table == "demo_temporary_pins":
            return self._pins()
        t: sa.Table = store.metadata.tables[table]
        s: store.Store = self.app.extensions["ivr"].store
        order = "id" if "id" in t.c else "call_sid"
        return s.rows(t, *(t.c[name] == value for name, value in where.items()), order=order)

    def everything(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, the demo back end's PINs included."""
        return {name: self.rows(name) for name in [*store.metadata.tables, "demo_temporary_pins"]}

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.everything().items()}

    def session(self, call: Call) -> dict[str, Any]:
        (row,) = self.rows("call_sessions", call_sid=call.sid)
        return row

    def sms(self, call: Call) -> list[dict[str, Any]]:
        return self.rows("sms_outbox", call_sid=call.sid)

    def escalation(self, call: Call) -> dict[str, Any]:
        """The one escalation an agent sees for this call."""
        (row,) = self.rows("escalations", call_sid=call.sid)
        return row

    def escalations(self, call: Call) -> list[dict[str, Any]]:
        return self.rows("escalations", call_sid=call.sid)

    def audit(self, call: Call) -> list[str]:
        return [row["event"] for row in self.rows("audit_events", call_sid=call.sid)]

    def _pins(self) -> list[dict[str, Any]]:
        backend = self.app.extensions["ivr"].services.backend
        with backend._engine.connect() as connection:  # the demo back end's own database
            return [dict(row._mapping) for row in connection.execute(sa.select(backend.pins))]
