"""Calls that read like calls: `call.press("1")`, `call.silence()`, `assert call.hears("main_menu")`.

A `Call` is a call placed by the fake Twilio of `ivr.twilio_caller` (the one behind `ivr call`)
into the Flask test client: it signs every webhook and runs the TwiML as Twilio would, so silence
follows the `<Redirect>` after a `<Gather>` and keys after a Gather's `numDigits` are not sent.
`Records` reads what the line wrote down (SMS outbox, escalations, audit trail, attempts, PINs).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from flask import Flask
from twilio.request_validator import RequestValidator

from ivr import store
from ivr.adapters.demo_people import DemoPerson
from ivr.flows import Flow, InputStep, MenuStep, QuestionStep
from ivr.phone import FlaskTransport
from ivr.ports import Document
from ivr.prompts import Catalog, Slot
from ivr.questions import QUESTIONS, expected
from ivr.state import CallState
from ivr.twilio_caller import Request, TwilioCall

LANGUAGES = ("da", "en")
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
INTENT_KEYS = {"user_id": "1", "temporary_pin": "2"}
# One digit short of the shortest number the check takes (a licence's 8): a caller who stopped too early.
SHORT_NUMBERS = {"document_number": "1234567"}

_sids = itertools.count(1)


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def sign(token: str, url: str, form: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, form)


def spelled(value: str, language: str) -> str:
    """`value` read character by character with the names in prompts/<language>.yaml."""
    names = yaml.safe_load((PROMPTS_DIR / f"{language}.yaml").read_text(encoding="utf-8"))["characters"]
    return ", ".join(names[ch] for ch in value.lower())


@dataclass
class Call:
    """One call through ivr.twilio_caller's fake Twilio, which runs the TwiML as Twilio would.

    Each thing the caller does (dial, press, silence, wait in the queue, hang up, or a raw
    `send`) runs the line's answers until the call waits again; `heard`/`said` are what was said
    since then, `outline` everything said in the call.
    """

    app: Flask
    token: str
    base: str
    language: str = "da"
    caller: str = "+4520000001"
    sid: str = field(default_factory=lambda: f"CA{next(_sids):032d}")
    twilio: TwilioCall = field(init=False, repr=False)
    since: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        transport = FlaskTransport(lambda: self.app)
        self.twilio = TwilioCall(
            transport, self.base, self.token, caller=self.caller, call_sid=self.sid, max_requests=10_000
        )

    # -- what the caller does ------------------------------------------------------------
    def dial(self) -> Call:
        self.since = len(self.twilio.events)
        self.twilio.dial()
        return self

    def press(self, keys: str) -> Call:
        """Key `keys` at the Gather listening now; Twilio's rules decide what is sent."""
        assert self.listening, f"nothing is listening; the caller heard: {self.heard}"
        self.since = len(self.twilio.events)
        self.twilio.press(keys)
        return self

    def silence(self) -> Call:
        """Key nothing until the Gather times out: Twilio goes on with the verb after it."""
        return self.press("")

    def hang_up(self, duration: int = 60) -> Call:
        """The call is over: Twilio's status callback (and the Enqueue's action if queued)."""
        self.since = len(self.twilio.events)
        self.twilio.hang_up(duration)
        return self

    def wait_in_queue(self, position: int) -> Call:
        """Twilio asks the Enqueue's waitUrl what to play to a caller at `position`."""
        assert self.queued, f"the caller is not queued; they heard: {self.heard}"
        self.since = len(self.twilio.events)
        self.twilio.hold(position, queue_time=30)
        return self

    def pressing(self, keys: str) -> Request:
        """The signed request Twilio would send if the caller keyed `keys` now."""
        assert self.listening, f"nothing is listening; the caller heard: {self.heard}"
        request = self.twilio.pressing(keys)
        assert request is not None, f"Twilio sends nothing for {keys!r}: no input goes to the next verb"
        return request

    def request(self, url: str, **params: str) -> Request:
        """A request to `url` signed as Twilio signs: the call's parameters, then `params`."""
        return self.twilio.request(url, params)

    def post(self, url: str, **params: str) -> Call:
        return self.send(self.request(url, **params))

    def send(self, request: Request) -> Call:
        """Post a request exactly as given (signed or not) and run the answer if it is TwiML."""
        self.since = len(self.twilio.events)
        self.twilio.take(request)
        return self

    # -- what the line answered --------------------------------------------------------------
    @property
    def status(self) -> int:
        return self.twilio.answer.status if self.twilio.answer else 0

    @property
    def body(self) -> str:
        return self.twilio.answer.body if self.twilio.answer else ""

    @property
    def twiml(self) -> ET.Element | None:
        """The last answer as TwiML (None if it was not: a 403, the status callback's 204)."""
        return self.twilio.document

    @property
    def replies(self) -> list[ET.Element]:
        """Every TwiML document the line answered in this call."""
        return self.twilio.documents

    @property
    def requests(self) -> list[Request]:
        return self.twilio.requests

    # -- what the caller hears -------------------------------------------------------------
    @property
    def gather(self) -> ET.Element | None:
        """The <Gather> waiting for keys now."""
        return self.twilio.listen.verb if self.twilio.listen else None

    @property
    def listening(self) -> bool:
        return self.twilio.listen is not None

    @property
    def heard(self) -> str:
        """Everything said since the caller's last action, as one text."""
        return " ".join(self._says(self.since))

    def text(self, key: str, language: str | None = None, **slots: Slot) -> str:
        return self.catalog[language or self.language].text(key, slots)

    def hears(self, key: str, language: str | None = None, **slots: Slot) -> bool:
        return self.text(key, language, **slots) in self.heard

    @property
    def said(self) -> list[str]:
        """The prompt keys of what the caller heard since their last action, in order."""
        return _keys_of(self._says(self.since), self.catalog)

    @property
    def outline(self) -> list[str]:
        """Every prompt key heard in the whole call; any knowledge question shows as `question`."""
        keys = _keys_of(self._says(0), self.catalog)
        return ["question" if key.startswith("question_") else key for key in keys]

    @property
    def queued(self) -> bool:
        return self.twilio.queued is not None

    @property
    def hung_up(self) -> bool:
        """The line ended the call (a <Hangup>, or the end of its TwiML: Twilio hangs up)."""
        return self.twilio.ended in ("hangup", "end-of-twiml")

    @property
    def urls(self) -> list[str]:
        """Every URL any answer so far told Twilio to call (Gather actions, waitUrls, ...)."""
        return [
            value
            for reply in self.replies
            for element in reply.iter()
            for value in [*element.attrib.values(), element.text or ""]
            if value.strip().startswith("http")
        ]

    def _says(self, since: int) -> list[str]:
        return [event.text for event in self.twilio.events[since:] if event.kind == "say"]

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
        """At the document prompt: key in its number (its length says which document it is)."""
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
        kind = self.current_question()
        question = QUESTIONS[kind]
        truth = expected(kind, person.person) if person else None
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
            "document_number": lambda: self.reach("main_menu", person).press("1"),
            "confirm_document": lambda: self.reach("document_number", person).give_document(document),
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


def _keys_of(says: list[str], catalog: Catalog) -> list[str]:
    keys, patterns = [], _patterns(catalog)
    for text in says:
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

    def texts_to(self, mobile: str | None = None) -> list[str]:
        """What the demo phone with this number (or any) received: the embedded SMS network."""
        sender = self.app.extensions["ivr"].outbox.sender
        return [body for to, body in sender.received().values() if mobile in (None, to)]

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


def at_once(calls: Sequence[Call], act: Callable[[Call], object]) -> None:
    """`act` on every call, each in its own thread, all released at the same moment."""
    start = threading.Barrier(len(calls))
    failures: list[BaseException] = []

    def run(call: Call) -> None:
        try:
            start.wait(timeout=30)
            act(call)
        except BaseException as error:  # reported in the test's own thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[0]
