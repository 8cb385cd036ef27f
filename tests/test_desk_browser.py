"""The agents' desk in a real Chromium, against the line and the desk on real HTTP servers.

The line (`create_app`) and the desk (`create_desk`) share one data directory and run on
werkzeug servers in threads; callers reach the line over HTTP through the fake Twilio of
`ivr.twilio_caller`, agents reach the desk through Playwright driving the system's Chromium
(never a downloaded browser). Without a Chromium these tests are skipped, saying why, unless
IVR_TEST_REQUIRE_BROWSER=1 (CI), which makes that a failure.

`IVR_TEST_UPDATE_SCREENSHOT=1 pytest -m browser` rewrites docs/desk.png, the README's picture of the
desk; otherwise the screenshot goes to the test's temporary directory, so a test run leaves the
working tree as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ivr.adapters.demo_people import DemoPerson
from ivr.desk import create_desk
from ivr.phone import HttpTransport
from ivr.questions import expected
from ivr.settings import Settings
from ivr.twilio_caller import TwilioCall
from tests.calls import Call, Clock, Records
from tests.conftest import BASE, TOKEN
from tests.desk import PASSWORD, FakeCallControl
from tests.postgres import either_store

try:
    from playwright.sync_api import Browser, Page, Response, ViewportSize, sync_playwright
except ImportError:  # pragma: no cover - playwright is a dev dependency
    sync_playwright = None  # type: ignore[assignment,unused-ignore]

pytestmark = pytest.mark.browser
database_url = either_store  # every test here on SQLite and on PostgreSQL

# Read when the module is imported: conftest's autouse fixture hides every IVR_* variable from tests.
REQUIRE_BROWSER = os.environ.get("IVR_TEST_REQUIRE_BROWSER") == "1"
UPDATE_SCREENSHOT = os.environ.get("IVR_TEST_UPDATE_SCREENSHOT") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "desk.png"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
LIVE = 10_000  # ms to wait for something the page fetches on its own (the queue polls every 3 s)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = (
        "no Chromium found (neither `chromium` nor `chromium-browser` is on PATH): "
        "the agents' desk is not tested in a browser; `apt-get install chromium` to run these tests"
        if CHROMIUM is None
        else "playwright is not installed (make install-dev)"
        if sync_playwright is None
        else None
    )
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(f"IVR_TEST_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


class Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Server:
    """A WSGI app on 127.0.0.1 on a port of its own, in a thread, until `stop`."""

    def __init__(self, app: Flask) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def control() -> FakeCallControl:
    return FakeCallControl()


@pytest.fixture
def line(app: Flask) -> Iterator[Server]:
    server = Server(app)
    yield server
    server.stop()


@pytest.fixture
def desk(app: Flask, settings: Settings, clock: Clock, control: FakeCallControl) -> Iterator[Server]:
    """The desk on the line's data directory, with an agent (anna) and a supervisor (sara)."""
    desk = create_desk(settings, clock=clock, call_control=control)
    accounts = desk.extensions["desk"].accounts
    accounts.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # argon2id, cheap
    accounts.add("anna", "agent", PASSWORD, name="Anna Agent")
    accounts.add("sara", "supervisor", PASSWORD, name="Sara Supervisor")
    server = Server(desk)
    yield server
    server.stop()
    desk.extensions["ivr.core"].close()


@pytest.fixture
def phone(app: Flask, line: Server) -> Callable[..., Call]:
    """Place a call to the line over HTTP: Twilio's signed webhooks go to the line's server."""
    numbers = iter(range(1, 10_000))

    def _dial(language: str = "en") -> Call:
        call = Call(app, TOKEN, BASE, language=language, caller=f"+452{next(numbers):07d}")
        transport = HttpTransport(line.url, BASE)
        call.twilio = TwilioCall(
            transport, BASE, TOKEN, caller=call.caller, call_sid=call.sid, max_requests=500
        )
        return call.dial()

    return _dial


@dataclass
class Seen:
    """Every HTML answer the desk gave a page (navigations and the page's own fetches alike),
    and the page as the browser showed it at the moments `look` was called."""

    desk: str
    answers: list[tuple[str, str]] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("response", self._keep)
        return page

    def _keep(self, response: Response) -> None:
        html = "text/html" in response.headers.get("content-type", "")
        if response.url.startswith(self.desk) and html and not 300 <= response.status < 400:
            try:  # now: the body is gone once the page navigated away
                self.answers.append((response.url, response.text()))
            except Exception:
                self.unread.append(response.url)

    def look(self, page: Page) -> None:
        self.snapshots.append(page.content())

    def pages(self) -> list[tuple[str, str]]:
        return self.answers + [("(as shown)", html) for html in self.snapshots]


@pytest.fixture
def seen(desk: Server) -> Seen:
    return Seen(desk.url)


@pytest.fixture
def open_page(browser: Browser, desk: Server, seen: Seen) -> Iterator[Callable[[], Page]]:
    """A fresh browser profile (its own cookies) on the desk, at 1280x800."""
    contexts = []

    def _open() -> Page:
        context = browser.new_context(base_url=desk.url, viewport=VIEWPORT)
        contexts.append(context)
        return seen.watch(context.new_page())

    yield _open
    for context in contexts:
        context.close()


def by(name: str) -> str:
    return f'[data-test="{name}"]'


def sign_in(page: Page, username: str, password: str = PASSWORD) -> Response:
    page.goto("/sign-in?lang=en")
    page.fill(by("username"), username)
    page.fill(by("password"), password)
    with page.expect_response(lambda r: r.url.endswith("/sign-in") and r.request.method == "POST") as sent:
        page.click(by("sign-in-submit"))
    page.wait_for_load_state()
    return sent.value


def fails_three_times(phone: Callable[..., Call], person: DemoPerson) -> None:
    """Three calls that fail the knowledge questions: the identity is locked."""
    for _ in range(3):
        phone().choose_language().identify(person, "user_id").answer_questions(person, right=0)


# -- the whole story ---------------------------------------------------------------------------


def test_a_caller_is_helped_at_the_desk_from_the_live_queue_to_the_wrap_up_and_a_lock_is_lifted(
    open_page: Callable[[], Page],
    phone: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    control: FakeCallControl,
    clock: Clock,
    seen: Seen,
    tmp_path: Path,
) -> None:
    person, stranger = cases["ordinary"], cases["passport_and_licence"]
    assert person.account is not None and person.account.mobile is not None
    fails_three_times(phone, stranger)  # a lock for the supervisor to lift

    # The agent signs in and watches the empty queue.
    anna = open_page()
    assert sign_in(anna, "anna").status == 302
    assert anna.url.endswith("/") and "Anna Agent" in anna.inner_text(by("signed-in-as"))
    anna.click(by("status-available"))
    assert anna.inner_text(by("status")) == "available"
    anna.locator(by("queue-empty")).wait_for()
    seen.look(anna)
    anna.evaluate("window.stillTheSamePage = true")

    # The caller asks for an agent at the first question; the row appears without a reload.
    call = phone().choose_language().identify(person, "temporary_pin").press("0#")
    assert call.queued, call.heard
    call_id = int(records.escalation(call)["id"])
    row = anna.locator(f'{by("queue-row")}[data-call-id="{call_id}"]')
    row.wait_for(timeout=LIVE)
    assert anna.evaluate("window.stillTheSamePage") is True
    assert "passport ending 01" in row.inner_text() and anna.locator(by("queue-empty")).count() == 0
    seen.look(anna)

    # Taking it puts the caller through and pops the context.
    clock.advance(seconds=95)  # the caller has waited a while
    anna.click(by(f"take-{call_id}"))
    anna.wait_for_url(f"**/calls/{call_id}")
    assert control.put_through_calls == [call.sid]
    context = anna.locator(by("context"))
    assert context.locator(by("document")).inner_text() == "passport ending 01"
    assert context.locator(by("language")).inner_text() == "en"
    assert context.locator(by("waited")).inner_text() == "1:35"
    seen.look(anna)
    shot = SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "desk.png"
    anna.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # The agent verifies the caller with what they read out and answer.
    document = person.person.documents[0]
    anna.select_option(by("document-type"), document.type.value)
    anna.fill(by("document-number"), document.number)
    anna.click(by("start-verification"))
    asked = []
    while anna.locator(by("question")).count():
        kind = anna.get_attribute(by("question"), "data-question")
        assert kind is not None
        asked.append(kind)
        answer = expected(kind, person.person)
        assert answer is not None, kind
        anna.fill(by("answer"), answer)
        anna.click(by("record-answer"))
        anna.wait_for_load_state()
        seen.look(anna)
    assert len(asked) == 3, asked
    verdict = anna.locator(by("verdict"))
    assert verdict.get_attribute("data-outcome") == "verified" and verdict.inner_text() == "Verified"

    # The PIN goes by SMS to the registered mobile, through the outbox.
    anna.click(by("send-pin"))
    assert "The temporary PIN was sent" in anna.inner_text(by("flash"))
    seen.look(anna)
    (text,) = records.texts_to(person.account.mobile)
    pin = re.search(r"\b\d{8}\b", text)
    assert pin is not None, text
    (sms,) = records.sms(call)
    assert sms["status"] == "sent"

    # The user ID, on its own page.
    anna.click(by("show-user-id"))
    assert anna.inner_text(by("user-id")) == person.account.user_id
    anna.click(by("back-to-call"))

    # Wrap-up: an outcome and a note, then back to the queue.
    anna.select_option(by("outcome"), "pin_sent")
    anna.fill(by("note"), "Sent the temporary PIN; the caller activates MitID today.")
    anna.click(by("save-wrap-up"))
    anna.wait_for_url("**/")
    assert "The call was wrapped up" in anna.inner_text(by("flash"))
    row_now = records.escalation(call)
    assert (row_now["status"], row_now["agent"], row_now["outcome"]) == ("wrapped_up", "anna", "pin_sent")
    assert row_now["note"] == "Sent the temporary PIN; the caller activates MitID today."
    seen.look(anna)

    # The supervisor: the board, the call's audit trail, and lifting the lock with a reason.
    sara = open_page()
    assert sign_in(sara, "sara").status == 302
    sara.click(by("nav-board"))
    assert sara.inner_text(by("board-waiting")) == "0"
    assert sara.inner_text(by("board-by-machine")) == "3"
    seen.look(sara)
    sara.goto(f"/calls/{call_id}/audit")
    events = sara.locator(by("audit-event")).all_inner_texts()
    assert {"escalated", "desk_call_taken", "desk_pin_ordered"} <= set(events), events
    sara.click(by("nav-locks"))
    # One row per locked identity (however many keys count it), with when, how many failures and
    # where; the caller is let in again once it is lifted.
    (row,) = sara.locator(by("lock-row")).all()
    assert row.locator(by("lock-failures")).inner_text() == "3"
    assert row.locator(by("lock-channels")).inner_text() == "phone line"
    assert row.locator(by("lock-since")).inner_text().endswith("CET")
    seen.look(sara)
    key = row.get_attribute("data-key")
    assert key is not None
    row.locator(by(f"lift-reason-{key}")).fill("caller proved their identity at Citizen Service")
    row.locator(by(f"lift-{key}")).click()
    assert sara.inner_text(by("flash")) == "Lifted: the caller can be verified again."
    assert sara.locator(by("lock-row")).count() == 0 and sara.locator(by("no-locks")).count() == 1
    seen.look(sara)
    lifted = [row["detail"] for row in records.rows("audit_events") if row["event"] == "lock_lifted"]
    assert len(lifted) == 1 and all('"by": "sara"' in d and "Citizen Service" in d for d in lifted)
    again = phone().choose_language().identify(stranger, "user_id").answer_questions(stranger)
    assert again.step == "user_id_again", again.heard  # verified on the line again

    # No page the story showed held the CPR number, the full document number or the PIN.
    cpr = person.person.cpr
    secrets = {cpr, f"{cpr[:6]}-{cpr[6:]}", pin[0], *(d.number for d in person.person.documents)}
    secrets |= {stranger.person.cpr, *(d.number for d in stranger.person.documents)}
    pages = seen.pages()
    assert not seen.unread, seen.unread
    assert len(pages) > 20
    assert any("/queue/rows" in url for url, _ in pages)  # the polls were looked at too
    for url, html in pages:
        for secret in secrets:
            assert secret not in html, f"{url} shows a secret"


# -- signing in, CSRF, roles -----------------------------------------------------------------------


def test_a_wrong_password_shows_the_error(open_page: Callable[[], Page]) -> None:
    page = open_page()
    assert sign_in(page, "anna", "not the password at all").status == 401
    assert page.inner_text(by("sign-in-error")) == "Wrong username or password."
    page.goto("/")
    assert page.url.endswith("/sign-in")


def test_repeated_wrong_passwords_lock_sign_in_even_with_the_right_one(open_page: Callable[[], Page]) -> None:
    page = open_page()
    for _ in range(5):
        assert sign_in(page, "anna", "wrong wrong wrong").status == 401
    assert sign_in(page, "anna").status == 429
    assert page.inner_text(by("sign-in-error")) == "Too many attempts. Try again in 15 minutes."
    assert page.locator(by("signed-in-as")).count() == 0


def test_a_form_posted_without_its_csrf_token_is_refused(
    open_page: Callable[[], Page], records: Records
) -> None:
    page = open_page()
    sign_in(page, "anna")
    before = records.rows("agents", username="anna")[0]["status"]
    assert before != "available"
    page.locator(by("status-available")).evaluate(
        "button => button.form.querySelector('[name=csrf_token]').remove()"
    )
    with page.expect_response(lambda r: r.url.endswith("/status")) as answer:
        page.click(by("status-available"))
    assert answer.value.status == 400 and "CSRF" in page.content()
    assert records.rows("agents", username="anna")[0]["status"] == before
    # The sign-in form too.
    fresh = open_page()
    fresh.goto("/sign-in?lang=en")
    fresh.evaluate("document.querySelector('[name=csrf_token]').remove()")
    fresh.fill(by("username"), "sara")
    fresh.fill(by("password"), PASSWORD)
    with fresh.expect_response(lambda r: r.url.endswith("/sign-in") and r.request.method == "POST") as answer:
        fresh.click(by("sign-in-submit"))
    assert answer.value.status == 400
    fresh.goto("/")
    assert fresh.url.endswith("/sign-in")


def test_an_agent_opening_a_supervisors_page_gets_403(open_page: Callable[[], Page]) -> None:
    page = open_page()
    sign_in(page, "anna")
    assert page.locator(by("nav-board")).count() == 0 and page.locator(by("nav-locks")).count() == 0
    for path in ("/board", "/board/live", "/locks", "/agents"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 403, path


def test_a_desk_page_reached_without_signing_in_goes_to_the_sign_in_page(
    open_page: Callable[[], Page],
) -> None:
    page = open_page()
    for path in ("/", "/calls/1", "/board", "/locks"):
        page.goto(path)
        assert page.url.endswith("/sign-in"), path
        assert page.locator(by("sign-in-form")).is_visible()
