"""The agents' desk: signing in, the queue, taking calls, assisted verification, the supervisor."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask

from ivr.adapters.demo_people import DemoPerson
from ivr.cli import main
from ivr.desk import create_desk
from ivr.desk.queue import Queue
from ivr.questions import expected
from ivr.settings import Settings
from tests.calls import Call, Clock, Records
from tests.desk import PASSWORD, DeskUser, FakeCallControl
from tests.postgres import either_store

database_url = either_store  # every test here on SQLite and on PostgreSQL


@pytest.fixture
def control() -> FakeCallControl:
    return FakeCallControl()


@pytest.fixture
def desk(app: Flask, settings: Settings, clock: Clock, control: FakeCallControl) -> Iterator[Flask]:
    desk = create_desk(settings, clock=clock, call_control=control)
    accounts = desk.extensions["desk"].accounts
    accounts.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # argon2id, cheap
    accounts.add("anna", "agent", PASSWORD, name="Anna Agent")
    accounts.add("bo", "agent", PASSWORD)
    accounts.add("sara", "supervisor", PASSWORD, name="Sara Supervisor")
    yield desk
    desk.extensions["ivr.core"].close()


@pytest.fixture
def anna(desk: Flask) -> DeskUser:
    return DeskUser(desk, "anna").sign_in()


@pytest.fixture
def sara(desk: Flask) -> DeskUser:
    return DeskUser(desk, "sara").sign_in()


def queued(dial: Callable[..., Call], person: DemoPerson, language: str = "en") -> Call:
    """A caller who asked for an agent at the first knowledge question."""
    call = dial(language).choose_language().identify(person, "temporary_pin").press("0#")
    assert call.queued, call.heard
    return call


def call_id(records: Records, call: Call) -> int:
    return int(records.escalation(call)["id"])


def answer_all(agent: DeskUser, call: int, person: DemoPerson | None, right: bool = True) -> DeskUser:
    while (kind := agent.question) is not None:
        truth = expected(kind, person.person) if person else None
        keys = truth if right and truth else ("1" * 4 if truth != "1111" else "2222")
        if kind == "spouse_birth_date" and not (right and truth):
            keys = "11111111" if truth != "11111111" else "22222222"
        agent.post(f"/calls/{call}/answer", follow=True, answer=keys)
    return agent


def verified_call(agent: DeskUser, dial: Callable[..., Call], records: Records, person: DemoPerson) -> int:
    call = queued(dial, person)
    found = call_id(records, call)
    agent.take(found)
    document = person.person.documents[0]
    agent.verify(found, document.type.value, document.number)
    assert answer_all(agent, found, person).verdict == "Verified"
    return found


# -- signing in ------------------------------------------------------------------------------


def test_a_desk_page_without_signing_in_goes_to_the_sign_in_page(desk: Flask) -> None:
    user = DeskUser(desk, "anna").get("/")
    assert user.status == 302 and user.location.endswith("/sign-in")
    assert DeskUser(desk, "anna").get("/board").location.endswith("/sign-in")


def test_an_agent_signs_in_and_out(desk: Flask) -> None:
    anna = DeskUser(desk, "anna").sign_in()
    assert anna.status == 302 and anna.location.endswith("/")
    assert "Anna Agent" in anna.get("/").page
    cookie = anna.client.get_cookie("desk_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    anna.sign_out()
    assert anna.get("/").location.endswith("/sign-in")


def test_a_wrong_password_is_refused(desk: Flask, records: Records) -> None:
    anna = DeskUser(desk, "anna").sign_in(password="not the password at all")
    assert anna.status == 401 and "Wrong username or password" in anna.page
    assert anna.get("/").location.endswith("/sign-in")
    assert "desk_sign_in_failed" in [row["event"] for row in records.rows("audit_events")]


def test_sign_in_is_refused_after_five_failures_even_with_the_right_password(desk: Flask) -> None:
    anna = DeskUser(desk, "anna")
    for _ in range(5):
        assert anna.sign_in(password="wrong wrong wrong").status == 401
    assert anna.sign_in().status == 429
    assert DeskUser(desk, "bo").sign_in().status == 302  # another username is not held up


def test_an_office_behind_one_address_is_limited_by_wrong_passwords_not_by_its_sign_ins(desk: Flask) -> None:
    """Right passwords do not use up the address's tries (20 in 15 minutes, four users' worth):
    the 25th sign-in of the morning from one office goes in; 20 wrong ones across usernames do
    hold the address."""
    for _ in range(25):
        assert DeskUser(desk, "anna").sign_in().status == 302
    for name in ("eve", "mallory", "trent", "peggy"):
        for _ in range(5):
            assert DeskUser(desk, name).sign_in(password="wrong wrong wrong").status == 401
    assert DeskUser(desk, "bo").sign_in().status == 429


def test_a_session_ends_after_fifteen_idle_minutes(anna: DeskUser, clock: Clock) -> None:
    clock.advance(minutes=14)
    assert anna.get("/").status == 200
    clock.advance(minutes=14)
    assert anna.get("/queue/rows").status == 200  # polling does not keep a session alive
    clock.advance(minutes=2)
    assert anna.get("/").location.endswith("/sign-in?idle=1")


def test_a_form_without_its_csrf_token_is_refused(anna: DeskUser) -> None:
    assert anna.post("/status", csrf=False, status="available").status == 400
    assert (
        DeskUser(anna.desk, "bo").post("/sign-in", csrf=False, username="bo", password=PASSWORD).status == 400
    )


def test_the_browsers_own_requests_do_not_void_the_sign_in_form(desk: Flask) -> None:
    """A browser asks for /favicon.ico on its own as the sign-in page loads: that request is sent
    to sign in too, but the form's CSRF token must still hold."""
    anna = DeskUser(desk, "anna").get("/sign-in?lang=en")
    token = anna.csrf()
    assert anna.get("/favicon.ico").location.endswith("/sign-in")
    form = {"username": "anna", "password": PASSWORD, "csrf_token": token}
    assert anna.client.post("/sign-in", data=form).status_code == 302


def test_an_agent_cannot_reach_a_supervisors_page(anna: DeskUser, sara: DeskUser) -> None:
    for path in ("/board", "/locks", "/agents"):
        assert anna.get(path).status == 403
        assert sara.get(path).status == 200


def test_the_desk_speaks_the_agents_language(desk: Flask) -> None:
    bo = DeskUser(desk, "bo").sign_in(language="da")
    assert "Tag det næste opkald" in bo.get("/").page
    bo.post("/language", language="en", back="/")
    assert "Take the next call" in bo.get("/").page


# -- the queue and taking calls ------------------------------------------------------------------


def test_the_queue_shows_each_waiting_caller_with_the_lines_context(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson]
) -> None:
    queued(dial, cases["ordinary"])
    queued(dial, cases["passport_and_licence"], language="da")
    rows = anna.get("/queue/rows").page
    assert rows.count('data-test="queue-row"') == 2
    assert "passport ending 01" in rows and "passport ending 02" in rows
    assert "temporary PIN" in rows and "in progress" in rows
    assert re.findall(r'data-test="position">(\d)<', rows) == ["1", "2"]


def test_taking_the_next_call_puts_it_through_and_pops_its_context(
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    control: FakeCallControl,
) -> None:
    call = queued(dial, cases["ordinary"])
    anna.take()
    assert control.put_through_calls == [call.sid]
    assert 'data-test="call-title"' in anna.page and "passport ending 01" in anna.page
    row = records.escalation(call)
    assert (row["status"], row["agent"]) == ("connecting", "anna")
    assert 'data-test="status">busy<' in anna.get("/").page
    assert "No one" not in anna.get("/queue/rows").page and "queue-row" not in anna.page


def test_a_call_that_cannot_be_put_through_goes_back_to_the_queue(
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    control: FakeCallControl,
) -> None:
    call = queued(dial, cases["ordinary"])
    control.refuse = True
    anna.take()
    assert "could not be put through" in anna.page
    assert records.escalation(call)["status"] == "waiting" and records.escalation(call)["agent"] is None
    assert 'data-test="status">busy<' not in anna.get("/").page and 'data-test="take-next"' in anna.page


def test_two_agents_taking_the_same_call_at_once_one_gets_it(
    desk: Flask, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    found = call_id(records, queued(dial, cases["ordinary"]))
    queue: Queue = desk.extensions["desk"].queue
    barrier, won = threading.Barrier(8), []

    def take(agent: str) -> None:
        barrier.wait()
        won.append(queue.take(agent, found))

    threads = [threading.Thread(target=take, args=(f"agent{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [call for call in won if call is not None]
    assert len(winners) == 1 and records.rows("escalations")[0]["agent"] == winners[0].agent


def test_the_second_agent_to_take_a_call_is_told(
    desk: Flask, anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    found = call_id(records, queued(dial, cases["ordinary"]))
    bo = DeskUser(desk, "bo").sign_in()
    anna.take(found)
    assert "Another agent took that call first" in bo.take(found).page
    assert (
        "That call is not yours, or it is already wrapped up."
        in bo.get(f"/calls/{found}", follow_redirects=True).page
    )


# -- assisted verification -------------------------------------------------------------------------


def test_assisted_verification_passes_and_the_pin_goes_once_through_the_outbox(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    person = cases["ordinary"]
    found = verified_call(anna, dial, records, person)
    anna.post(f"/calls/{found}/pin", follow=True)
    assert "The temporary PIN was sent" in anna.page
    anna.post(f"/calls/{found}/pin", follow=True)
    assert "already sent" in anna.page
    assert len(records.texts_to(person.account.mobile if person.account else None)) == 1
    (sms,) = [
        row
        for row in records.rows("sms_outbox")
        if row["call_sid"] == records.rows("escalations")[0]["call_sid"]
    ]
    assert sms["status"] == "sent"
    events = [(row["event"], row["detail"]) for row in records.rows("audit_events")]
    assert ("desk_pin_ordered", '{"agent": "anna"}') in events


def test_the_user_id_is_shown_only_after_verification_and_audited(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    person = cases["ordinary"]
    assert person.account is not None
    call = queued(dial, person)
    found = call_id(records, call)
    anna.take(found)
    assert anna.post(f"/calls/{found}/user-id").status == 403
    anna.verify(found, "passport", person.person.documents[0].number)
    answer_all(anna, found, person)
    assert person.account.user_id in anna.post(f"/calls/{found}/user-id").page
    assert "desk_user_id_shown" in records.audit(call)


@pytest.mark.parametrize("case", ["wrong_answers", "unknown_document", "locked_on_the_line"])
def test_assisted_verification_fails_in_the_same_words_whatever_the_case(
    case: str, anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    person = cases["passport_and_licence"]
    if case == "locked_on_the_line":  # three failures on the phone lock the identity for the desk too
        for _ in range(3):
            dial("en").choose_language().identify(person, "user_id").answer_questions(person, right=0)
    found = call_id(records, queued(dial, cases["ordinary"]))
    anna.take(found)
    number = "999999990" if case == "unknown_document" else person.person.documents[0].number
    anna.verify(found, "passport", number)
    answer_all(anna, found, person, right=case != "wrong_answers")
    assert anna.verdict == "Not verified"
    assert anna.post(f"/calls/{found}/pin", follow=True).page.count("The caller is not verified") == 1
    assert records.rows("desk_verifications")[0]["document_number"] is None


def test_failures_at_the_desk_count_on_the_line(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    person = cases["ordinary"]
    found = call_id(records, queued(dial, person))
    anna.take(found)
    for _ in range(3):
        anna.verify(found, "passport", person.person.documents[0].number)
        answer_all(anna, found, person, right=False)
    call = dial("en").choose_language().identify(person, "user_id").answer_questions(person)
    assert call.hears("cannot_verify")


# -- wrapping up -------------------------------------------------------------------------------


def test_a_note_with_a_cpr_like_number_is_masked_and_confirmed_before_it_is_saved(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    call = queued(dial, cases["ordinary"])
    found = call_id(records, call)
    anna.take(found)
    anna.post(f"/calls/{found}/wrap-up", outcome="other", note="caller gave 050385-1234 twice")
    assert anna.status == 200 and 'data-test="note-warning"' in anna.page
    assert "050385-1234" not in anna.page and records.escalation(call)["status"] == "connecting"
    note = re.search(r'data-test="note"[^>]*>([^<]*)<', anna.page)
    assert note is not None
    anna.post(f"/calls/{found}/wrap-up", follow=True, outcome="other", note=note[1])
    row = records.escalation(call)
    assert (row["status"], row["outcome"], row["note"]) == (
        "wrapped_up",
        "other",
        "caller gave ••••••••••• twice",
    )
    assert records.rows("agents", username="anna")[0]["status"] == "available"


# -- the supervisor ------------------------------------------------------------------------------


def test_the_supervisor_sees_the_board_the_audit_trail_and_lifts_a_lock(
    sara: DeskUser,
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
) -> None:
    person = cases["passport_and_licence"]
    for _ in range(3):
        dial("en").choose_language().identify(person, "user_id").answer_questions(person, right=0)
    queued(dial, cases["ordinary"])
    board = sara.get("/board/live").page
    assert re.search(r'board-waiting">1<', board) and re.search(r'board-by-machine">3<', board)
    locks = sara.get("/locks").page
    keys = set(re.findall(r'data-key="(\w+)"', locks))
    assert keys
    key = next(k for k in keys if f"lift-{k}" in locks)
    sara.post("/locks/lift", follow=True, key=key, reason="caller proved identity at Citizen Service")
    assert "Lifted" in sara.page
    lifted = [row for row in records.rows("audit_events") if row["event"] == "lock_lifted"]
    assert '"by": "sara"' in lifted[0]["detail"]
    found = call_id(records, records_call := queued(dial, cases["no_mobile"]))
    anna.take(found)
    trail = sara.get(f"/calls/{found}/audit").page
    assert "desk_call_taken" in trail and "escalated" in trail and records_call.sid


def test_the_supervisor_adds_disables_and_resets_agents(sara: DeskUser, desk: Flask) -> None:
    sara.post("/agents", follow=True, username="carl", role="agent", password="carl's password!", name="Carl")
    assert "Carl" in sara.page
    carl = DeskUser(desk, "carl").sign_in(password="carl's password!")
    assert carl.status == 302
    sara.post("/agents/carl/disable")
    assert carl.get("/").location.endswith("/sign-in")
    assert DeskUser(desk, "carl").sign_in(password="carl's password!").status == 401
    sara.post("/agents/carl/reset", password="a brand new password")
    assert DeskUser(desk, "carl").sign_in(password="a brand new password").status == 302


# -- privacy -----------------------------------------------------------------------------------------


def test_no_page_shows_a_cpr_number_a_full_document_number_or_a_pin(
    anna: DeskUser,
    sara: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
) -> None:
    person = cases["passport_and_licence"]
    call = queued(dial, person)
    found = call_id(records, call)
    pages = [anna.get("/").page, anna.get("/queue/rows").page]
    anna.take(found)
    pages.append(anna.page)
    anna.verify(found, "passport", person.person.documents[0].number)
    pages.append(anna.page)
    answer_all(anna, found, person)
    pages.append(anna.page)
    pages.append(anna.post(f"/calls/{found}/pin", follow=True).page)
    anna.post(f"/calls/{found}/user-id")
    assert anna.status == 200  # shows the user ID, and nothing else of theirs
    pages.append(anna.page)
    for path in ("/board", "/board/live", f"/calls/{found}/audit", "/locks", "/agents"):
        pages.append(sara.get(path).page)
    pages.append(anna.post(f"/calls/{found}/wrap-up", follow=True, outcome="pin_sent", note="ok").page)
    pages.append(DeskUser(anna.desk, "x").get("/sign-in").page)
    (text,) = records.texts_to(person.account.mobile if person.account else None)
    pin = re.search(r"\d{8}", text)
    assert pin is not None
    cpr = person.person.cpr
    secrets = [cpr, f"{cpr[:6]}-{cpr[6:]}", pin[0], *(d.number for d in person.person.documents)]
    for page in pages:
        for secret in secrets:
            assert secret not in page
    assert all(row["document_number"] is None for row in records.rows("desk_verifications"))


def test_ivr_agents_add_reads_the_password_from_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_DATA_DIR", str(tmp_path / "data"))
    assert main(["db", "upgrade"]) == 0  # as `ivr desk` or `make run` would have
    monkeypatch.setattr("sys.stdin", io.StringIO("a password from stdin\n"))
    assert main(["agents", "add", "eva", "--role", "supervisor", "--name", "Eva"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["agents", "add", "finn"]) == 1
    assert main(["agents", "list"]) == 0
    out = capsys.readouterr().out
    assert "added supervisor eva" in out and "Eva" in out and "finn" not in out
    assert "a password from stdin" not in out


def test_the_desk_keeps_no_document_number_once_the_call_has_ended_or_gone_stale(
    app, settings, clock, dial, cases
):
    """The end-of-call status, and the sweep for calls that never got one, clear the document
    number the agent keyed in (the desk cannot go on with a call that is over)."""
    import sqlalchemy as sa

    from ivr.store import desk_verifications

    line = app.extensions["ivr"]
    rows = []
    for ended in (True, False):
        call = dial("en").choose_language().press("0")
        with line.store.connection() as connection:
            connection.execute(
                sa.insert(desk_verifications).values(
                    call_sid=call.sid,
                    agent="anna",
                    document_type="passport",
                    document_number="100000001",
                    progress="{}",
                    started_at=clock.now,
                    updated_at=clock.now,
                )
            )
        if ended:
            call.hang_up()
        rows.append(call.sid)
    with line.store.connection() as connection:
        kept = dict(
            connection.execute(
                sa.select(desk_verifications.c.call_sid, desk_verifications.c.document_number)
            ).all()
        )
    assert kept == {rows[0]: None, rows[1]: "100000001"}
    clock.advance(hours=3)
    line.sweep()
    with line.store.connection() as connection:
        kept = dict(
            connection.execute(
                sa.select(desk_verifications.c.call_sid, desk_verifications.c.document_number)
            ).all()
        )
    assert kept == {rows[0]: None, rows[1]: None}
