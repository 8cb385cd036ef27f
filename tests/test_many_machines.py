"""Two `ivr serve` processes on one PostgreSQL are one line.

Two real line servers (waitress, each its own process and data directory) share one throwaway
PostgreSQL (`postgres_url`, a database of this module's own), one public URL and one auth token,
as two machines behind a proxy would. The fake Twilio sends each webhook of a call to the next
server in turn, so every call here jumps between the machines at every step. What is checked is
what the caller hears and what the shared store holds: one SMS for one PIN however the webhook
is replayed, limits and locks counted across both, one agents' queue, and a call that goes on
on the other machine when its server is killed (SIGKILL) in the middle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from ivr import create_app, utc_now
from ivr.adapters.demo_people import DemoPerson
from ivr.call_control_adapters import EmbeddedCallControl
from ivr.desk.queue import Queue
from ivr.phone import HttpTransport
from ivr.ports import Document, DocumentType
from ivr.prompts import Spelled
from ivr.questions import QUESTIONS, expected
from ivr.settings import Settings
from ivr.store import IDLE_IN_TRANSACTION, call_sessions, make_engine
from ivr.twilio_caller import Answer, Request
from tests.calls import Call, Records
from tests.postgres import own_database
from tests.shells import ALL_WEEK, IVR, clean_environment, free_port, wait_until_answering
from tests.test_handover import AGENT_PHONE, add_agent

pytestmark = pytest.mark.slow  # two servers and a database of their own: some seconds

PUBLIC = "https://ivr.example.test"  # what Twilio calls, and signs: the proxy in front of both
TOKEN = "many-machines-auth-token"
SECRET = secrets.token_hex(32)  # one key on every machine: pseudonyms (limits, locks) agree

_numbers = itertools.count(1)


@dataclasses.dataclass
class Server:
    """One machine: an `ivr serve` process with a data directory of its own."""

    name: str
    home: Path
    env: dict[str, str]
    port: int = dataclasses.field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [IVR, "serve", "--port", str(self.port), "--threads", "8"],
                cwd=self.home,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait(self) -> None:
        assert self.process is not None
        wait_until_answering(self.process, self.base, self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def send(self, request: Request) -> Answer:
        return HttpTransport(self.base, PUBLIC, timeout=60).send(request)


class Proxy:
    """What the fake Twilio talks to: each request goes to the next live server in turn."""

    def __init__(self, servers: list[Server], start: int = 0) -> None:
        self.servers = servers
        self.down: set[str] = set()
        self.turn = itertools.count(start)
        self.served: list[str] = []

    def send(self, request: Request) -> Answer:
        alive = [server for server in self.servers if server.name not in self.down]
        server = alive[next(self.turn) % len(alive)]
        self.served.append(server.name)
        return server.send(request)


@dataclasses.dataclass
class Line:
    servers: list[Server]
    observer: Flask  # reads the shared store (never serves): the catalog, records, the desk's queue
    url: str  # the database

    @property
    def records(self) -> Records:
        return Records(self.observer)

    def call(self, caller: str | None = None, proxy: Proxy | None = None) -> tuple[Call, Proxy]:
        """A call from `caller` (a number of its own by default) through a proxy over the servers."""
        caller = caller or f"+4526{next(_numbers):06d}"
        call = Call(
            self.observer, TOKEN, PUBLIC, language="en", caller=caller, sid=f"CA{secrets.token_hex(16)}"
        )
        proxy = proxy or Proxy(self.servers)
        call.twilio.transport = proxy
        return call.dial(), proxy

    def person(self, case: str) -> DemoPerson:
        return self.observer.extensions["ivr.people"].cases()[case]


@pytest.fixture(scope="module")
def line(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    """Two line servers started at once on a new database (both migrate it and build the demo
    register at their first start: one does, the other waits and finds it done)."""
    home = tmp_path_factory.mktemp("machines")
    with own_database(postgres_url, "ivr_machines", "the many-machines tests") as url:
        shared = {  # the demo systems (register, PINs, the demo phones' SMS) share the store's database
            "IVR_DATABASE_URL": url,
            "IVR_PUBLIC_BASE_URL": PUBLIC,
            "IVR_TWILIO_AUTH_TOKEN": TOKEN,
            "IVR_SECRET_KEY": SECRET,
        }
        servers = [Server(name, home, clean_environment(home / name, **shared)) for name in ("a", "b")]
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait()
            settings = Settings(
                data_dir=home / "observer",
                public_base_url=PUBLIC,
                twilio_auth_token=TOKEN,
                secret_key=SECRET,
                database_url=url,
                opening_hours=json.loads(ALL_WEEK),
            )
            observer = create_app(settings)
            yield Line(servers, observer, url)
            observer.extensions["ivr"].store.engine.dispose()
            observer.extensions["ivr"].services.backend._engine.dispose()
        finally:
            for server in servers:
                server.kill()


def _pin_call(line: Line, person: DemoPerson, proxy: Proxy | None = None) -> tuple[Call, Proxy]:
    call, proxy = line.call(proxy=proxy)
    call.choose_language().identify(person, "temporary_pin")
    return call, proxy


def _codes(line: Line, mobile: str) -> list[str]:
    texts = line.records.texts_to(mobile)
    return [m.group(0) for text in texts for m in re.finditer(r"(?<!\d)\d{8}(?!\d)", text)]


# -- one call, two machines -------------------------------------------------------------------------


def test_a_call_whose_webhooks_alternate_between_the_servers_goes_on_as_one(line: Line) -> None:
    mette = line.person("ordinary")
    texts_before = len(_codes(line, "+4520123451"))
    call, proxy = _pin_call(line, mette)
    call.answer_questions(mette)

    assert call.hears("pin_sent", mobile_last_digits=Spelled("51")), call.heard
    assert call.hung_up
    assert call.outline.count("question") == 3 and "pin_sent" in call.outline, call.outline
    assert {"a", "b"} <= set(proxy.served) and len(proxy.served) >= 6
    assert all(x != y for x, y in itertools.pairwise(proxy.served))  # every step on the other machine
    call.hang_up()

    [sms] = line.records.sms(call)
    assert (sms["to"], sms["body"], sms["status"]) == ("+45 …51", "temporary_pin", "sent")
    assert len(_codes(line, "+4520123451")) == texts_before + 1
    events = line.records.audit(call)
    assert events.count("call_started") == events.count("verification_passed") == 1
    assert events.count("pin_ordered") == events.count("sms_sent") == events.count("call_ended") == 1
    [session] = line.records.rows("call_sessions", call_sid=call.sid)
    assert session["ended"]


def _at_once(request: Request, servers: list[Server], each: int = 3) -> list[Answer]:
    """Send the same request `each` times to every server, all released at the same moment."""
    senders = [server for server in servers for _ in range(each)]
    start = threading.Barrier(len(senders))
    answers: list[Answer] = []

    def send(server: Server) -> None:
        start.wait(timeout=30)
        answers.append(server.send(request))

    threads = [threading.Thread(target=send, args=(server,)) for server in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == len(senders)
    return answers


def test_a_new_call_announced_to_both_servers_at_once_is_one_call(line: Line) -> None:
    sid = f"CA{secrets.token_hex(16)}"
    call = Call(line.observer, TOKEN, PUBLIC, language="en", caller="+4525000001", sid=sid)
    answers = _at_once(call.request(f"{PUBLIC}/voice"), line.servers)
    assert {a.status for a in answers} == {200}
    assert len({a.body for a in answers}) == 1, [a.body for a in answers]
    assert call.text("choose_language", "en") in answers[0].body
    assert len(line.records.rows("call_sessions", call_sid=sid)) == 1
    assert line.records.rows("audit_events", call_sid=sid, event="call_started")[0]["call_sid"] == sid
    assert len(line.records.rows("audit_events", call_sid=sid, event="call_started")) == 1


def test_the_same_webhook_replayed_to_both_servers_at_once_sends_one_sms(line: Line) -> None:
    person = line.person("passport_and_licence")
    mobile = "+4520123452"
    texts_before = len(_codes(line, mobile))
    call, _ = _pin_call(line, person)
    call.answer(person).answer(person)  # the third question's answer is the webhook that sends the PIN
    assert call.asked, call.heard
    kind = call.current_question()
    answer = expected(kind, person.person)
    assert answer is not None
    request = call.pressing(answer + ("" if QUESTIONS[kind].digits else "#"))

    answers = _at_once(request, line.servers)  # 3 to each server, all at once
    assert {a.status for a in answers} == {200}
    # Each replay gets the reply the call has: that the code was sent or, while the first is
    # still sending, the way back into the call (a Redirect), which then says it was sent.
    said = call.text("pin_sent", mobile_last_digits=Spelled("52"))
    for number, answer in enumerate(answers):
        resume = re.search(r"<Redirect method=\"POST\">([^<]+)</Redirect>", answer.body)
        if resume is not None:
            server = line.servers[number % 2]
            answer = server.send(call.request(resume.group(1).replace("&amp;", "&")))
        assert said in answer.body, answer.body
    [sms] = line.records.sms(call)
    assert (sms["status"], sms["body"]) == ("sent", "temporary_pin")
    assert len(_codes(line, mobile)) == texts_before + 1
    pins = line.records.rows("demo_temporary_pins")
    assert sum(1 for pin in pins if pin["request_key"].startswith(call.sid)) == 1
    events = line.records.audit(call)
    assert events.count("pin_ordered") == events.count("sms_sent") == 1


# -- shared limits, locks and queue -----------------------------------------------------------------


def test_calls_from_one_number_over_both_servers_stop_at_the_limit(line: Line) -> None:
    busy = f"+4527{secrets.randbelow(10**6):06d}"
    heard = []
    for n in range(6):  # the limit is 5 an hour; each call starts on the other machine
        stranger = Document(DocumentType.PASSPORT, f"5{secrets.randbelow(10**8):08d}")
        call, _ = line.call(busy, proxy=Proxy(line.servers, start=n))
        call.choose_language().identify(stranger, "user_id")
        heard.append(call.said)
        call.hang_up()
    assert all(said[-1].startswith("question_") for said in heard[:5]), heard
    assert heard[5] == ["phone_limited", "goodbye"], heard


def test_failures_on_both_servers_lock_the_identity_for_both(line: Line) -> None:
    person = line.person("greenlandic")
    for _ in range(3):
        call, _ = line.call()
        call.choose_language().identify(person, "user_id").answer_questions(person, right=0)
        assert call.said == ["cannot_verify", "goodbye"], call.heard
    for _ in range(2):  # now locked, whichever machine asks, even with every answer right
        call, _ = line.call()
        call.choose_language().identify(person, "user_id").answer_questions(person)
        assert call.said == ["cannot_verify", "goodbye"], call.heard
    locked = [row for row in line.records.rows("audit_events", event="identity_locked")]
    assert len(locked) == 1


def test_one_agents_queue_across_the_servers(line: Line) -> None:
    store = line.observer.extensions["ivr"].store
    agent = f"agent{secrets.token_hex(3)}"
    add_agent(line.observer, username=agent)
    first, _ = line.call(proxy=Proxy(line.servers, start=0))  # queued through a...
    first.choose_language().press("0")
    second, _ = line.call(proxy=Proxy(line.servers, start=1))  # ...and through b
    second.choose_language().press("0")
    assert first.queued and second.queued, (first.heard, second.heard)
    first.wait_in_queue(1)
    second.wait_in_queue(2)

    queue = Queue(store, utc_now)
    waiting = [call.call_sid for call in queue.waiting()]
    assert waiting[-2:] == [first.sid, second.sid]
    taken = queue.take(agent)
    assert taken is not None and taken.call_sid == first.sid
    EmbeddedCallControl(store).put_through(first.sid)

    first.wait_in_queue(1)  # its next turn of waiting, on whichever machine, puts it through
    assert first.said == ["connecting"], first.heard
    assert first.twilio.bridged == AGENT_PHONE
    second.wait_in_queue(1)
    assert second.queued and second.twilio.bridged == ""
    assert line.records.escalation(first)["status"] == "connected"
    assert line.records.escalation(second)["status"] in (None, "waiting")  # NULL: waiting
    assert [call.call_sid for call in queue.waiting()][-1:] == [second.sid]
    for call in (first, second):
        call.hang_up()


# -- a machine dies ---------------------------------------------------------------------------------


def test_a_call_goes_on_on_the_other_server_when_its_server_is_killed(line: Line) -> None:
    person = line.person("licence_only")
    texts_before = len(_codes(line, "+4520123458"))
    call, proxy = _pin_call(line, person)
    call.answer(person)
    victim = next(server for server in line.servers if server.name == proxy.served[-1])
    victim.kill()  # SIGKILL: no goodbye, right after it answered the call's last webhook
    proxy.down.add(victim.name)
    try:
        call.answer_questions(person)
        assert call.hears("pin_sent", mobile_last_digits=Spelled("58")), call.heard
        assert call.hung_up
        call.hang_up()
    finally:
        victim.start()
        victim.wait()
    assert victim.name not in proxy.served[-3:]
    [sms] = line.records.sms(call)
    assert (sms["status"], sms["body"]) == ("sent", "temporary_pin")
    assert len(_codes(line, "+4520123458")) == texts_before + 1
    events = line.records.audit(call)
    assert events.count("verification_passed") == events.count("sms_sent") == 1
    assert call.outline.count("question") == 3


def test_a_server_frozen_inside_a_webhook_holds_the_call_only_for_seconds(line: Line) -> None:
    """A machine that stops dead inside a webhook (frozen, or cut off: no connection closed)
    keeps its transaction, and the lock on the call in it, open. The database ends such a
    transaction after IDLE_IN_TRANSACTION, and the call goes on on the other machine."""
    call, _ = line.call()
    call.choose_language()
    frozen = make_engine(line.url).connect()  # as a line server connects
    frozen.begin()
    c = call_sessions.c
    frozen.execute(sa.select(c.turn).where(c.call_sid == call.sid).with_for_update())
    try:
        started = time.monotonic()
        call.press("1")  # the user ID: the webhook waits for the frozen one, then goes on
        waited = time.monotonic() - started
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            frozen.close()
    assert call.said == ["document_number"], call.heard
    assert IDLE_IN_TRANSACTION.total_seconds() - 1 < waited < IDLE_IN_TRANSACTION.total_seconds() + 15
