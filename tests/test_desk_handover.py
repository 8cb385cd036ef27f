"""A caller and an agent at once: every way a hand-over can end leaves the agent free and the
record whole, and what the line verified reaches the agent. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from flask import Flask

from ivr.adapters.demo_people import DemoPerson
from ivr.call_control_adapters import EmbeddedCallControl
from ivr.desk import create_desk
from ivr.errors import CallerGone
from ivr.settings import Settings
from tests.calls import Call, Clock, Records
from tests.conftest import BASE
from tests.desk import PASSWORD, DeskUser
from tests.postgres import either_store

database_url = either_store  # every test here on SQLite and on PostgreSQL
ANNA_PHONE = "+4520998877"


@dataclass
class Telephony:
    """The line's own (embedded) call control, which can also find the caller gone from the
    queue, as Twilio's REST API answers 404 for a member who hung up."""

    inner: EmbeddedCallControl
    lost: bool = False

    def put_through(self, call_sid: str) -> None:
        if self.lost:
            raise CallerGone("no such member in the queue")
        self.inner.put_through(call_sid)


@pytest.fixture
def telephony(app: Flask, clock: Clock) -> Telephony:
    return Telephony(EmbeddedCallControl(app.extensions["ivr"].store, clock))


@pytest.fixture
def desk(app: Flask, settings: Settings, clock: Clock, telephony: Telephony) -> Iterator[Flask]:
    desk = create_desk(settings, clock=clock, call_control=telephony)
    accounts = desk.extensions["desk"].accounts
    accounts.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    accounts.add("anna", "agent", PASSWORD, name="Anna Agent", phone=ANNA_PHONE)
    yield desk
    desk.extensions["ivr.core"].close()


@pytest.fixture
def anna(desk: Flask) -> DeskUser:
    return DeskUser(desk, "anna").sign_in()


def on_hold(dial: Callable[..., Call], person: DemoPerson) -> Call:
    """A caller who asked for an agent at the first knowledge question, waiting in the queue."""
    call = dial("en").choose_language().identify(person, "temporary_pin").press("0#")
    assert call.queued, call.heard
    return call.wait_in_queue(1)


def the_call(agent: DeskUser, records: Records, call: Call) -> int:
    found = int(records.escalation(call)["id"])
    agent.take(found)
    assert f'data-test="call-title">Call {found}<' in agent.page, agent.page
    return found


def busy(agent: DeskUser) -> bool:
    return 'data-test="status">busy<' in agent.get("/").page


def offered(agent: DeskUser) -> list[str]:
    import re

    select = agent.page.split('data-test="outcome"', 1)[1].split("</select>", 1)[0]
    return [value for value in re.findall(r'value="(\w*)"', select) if value]


# -- the line's verification carries over ------------------------------------------------------------


def test_a_caller_verified_on_the_line_is_verified_at_the_desk_and_the_agent_acts_at_once(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    person = cases["mobile_changed_48h"]
    call = dial("en").choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.said == ["mobile_recently_changed", "transfer", "context_kept"] and call.queued
    guesses_before = len(records.rows("attempts"))

    found = the_call(anna, records, call)
    assert 'data-test="verdict" data-outcome="verified">Verified<' in anna.page
    assert 'data-test="verified-by-line"' in anna.page and 'data-test="document-number"' not in anna.page
    anna.post(f"/calls/{found}/user-id")
    assert f'data-test="user-id">{person.account.user_id}<' in anna.page
    anna.post(f"/calls/{found}/pin", follow=True)  # the 5-day rule holds at the desk too
    assert "The mobile was registered or changed too recently: no PIN by SMS." in anna.page
    assert records.sms(call) == [] and len(records.rows("attempts")) == guesses_before
    events = records.audit(call)
    assert "desk_user_id_shown" in events and "desk_verification_started" not in events
    assert person.person.documents[0].number not in anna.get(f"/calls/{found}").page


def test_a_caller_verified_on_the_line_gets_the_pin_from_the_agent_once(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    person = cases["ordinary"]
    call = dial("en").choose_language().identify(person, "user_id").answer_questions(person)
    assert call.said == ["user_id_is", "user_id_again"]
    call.press("0")
    assert call.queued and call.said[-1] == "context_kept"
    found = the_call(anna, records, call)
    anna.post(f"/calls/{found}/pin", follow=True)
    assert "The temporary PIN was sent" in anna.page
    anna.post(f"/calls/{found}/pin", follow=True)
    assert len(records.sms(call)) == 1 and len(records.texts_to(person.account.mobile)) == 1
    assert "pin_sent" in offered(anna.get(f"/calls/{found}"))


def test_an_unverified_caller_is_not_told_the_agent_knows_everything_and_is_verified_at_the_desk(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    call = on_hold(dial, cases["ordinary"])
    assert "transfer" in call.outline and "context_kept" not in call.outline
    the_call(anna, records, call)
    assert 'data-test="document-number"' in anna.page and 'data-test="verified-by-line"' not in anna.page


# -- a caller who leaves never strands the agent ----------------------------------------------------


def test_a_caller_who_hangs_up_while_being_put_through_leaves_the_agent_a_wrap_up(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    call = on_hold(dial, cases["ordinary"])
    found = the_call(anna, records, call)
    assert 'data-test="caller-on-line"' in anna.get(f"/calls/{found}/caller").page
    call.hang_up()
    assert records.escalation(call)["status"] == "ended"

    assert 'data-test="caller-gone"' in anna.get(f"/calls/{found}/caller").page  # what the page polls
    page = anna.get(f"/calls/{found}").page
    assert 'data-test="caller-gone"' in page and busy(anna)
    guesses = len(records.rows("attempts"))
    document = cases["ordinary"].person.documents[0]
    anna.verify(found, document.type.value, document.number)
    assert "The caller has hung up" in anna.page and len(records.rows("attempts")) == guesses
    anna.post(f"/calls/{found}/pin", follow=True)
    assert "The caller has hung up" in anna.page and records.sms(call) == []

    assert offered(anna.get(f"/calls/{found}")) == ["citizen_service", "caller_left", "other"]
    anna.post(f"/calls/{found}/wrap-up", follow=True, outcome="caller_left", note="")
    assert "The call was wrapped up" in anna.page and not busy(anna)
    row = records.escalation(call)
    assert (row["status"], row["outcome"]) == ("wrapped_up", "caller_left")
    assert 'data-test="take-next"' in anna.page


def test_a_caller_who_hangs_up_after_talking_to_the_agent_leaves_a_wrap_up_that_survives_sign_out(
    desk: Flask,
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    clock: Clock,
) -> None:
    call = on_hold(dial, cases["ordinary"])
    found = the_call(anna, records, call)
    call.wait_in_queue(1)  # the caller's next turn of waiting takes them to the agent
    assert call.said == ["connecting"] and records.escalation(call)["status"] == "connected"
    call.post(f"{BASE}/voice/dial-ended", DialCallStatus="answered")  # Twilio's word for a talk
    assert call.said == ["goodbye"] and records.escalation(call)["status"] == "connected"
    clock.advance(minutes=4)
    call.hang_up()
    assert (records.escalation(call)["status"], records.escalation(call)["agent"]) == ("ended", "anna")

    anna.sign_out()
    again = DeskUser(desk, "anna").sign_in()
    page = again.get("/").page
    assert 'data-test="current-call"' in page and busy(again)
    again.get(f"/calls/{found}")
    again.post(f"/calls/{found}/wrap-up", follow=True, outcome="other", note="Talked it through.")
    assert not busy(again) and records.escalation(call)["status"] == "wrapped_up"


def test_a_caller_the_telephony_no_longer_has_frees_the_agent_and_is_not_offered_again(
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    telephony: Telephony,
) -> None:
    ghost = on_hold(dial, cases["ordinary"])
    real = on_hold(dial, cases["passport_and_licence"])
    telephony.lost = True
    anna.take()
    assert "had already hung up" in anna.page and not busy(anna)
    assert records.escalation(ghost)["status"] == "abandoned"
    telephony.lost = False
    anna.take()
    assert records.escalation(real)["agent"] == "anna" and records.escalation(ghost)["agent"] == "anna"
    assert records.escalation(ghost)["status"] == "abandoned"


def test_a_wrapped_up_or_foreign_call_is_said_so_not_a_bare_404(
    desk: Flask, anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    call = on_hold(dial, cases["ordinary"])
    found = the_call(anna, records, call)
    anna.post(f"/calls/{found}/wrap-up", follow=True, outcome="other", note="")
    for path in (f"/calls/{found}", f"/calls/{found}/caller"):
        anna.get(path, follow_redirects=True)
        assert anna.status == 200 and "That call is not yours, or it is already wrapped up." in anna.page
    anna.post(f"/calls/{found}/answer", follow=True, answer="2200")
    assert anna.status == 200 and "already wrapped up" in anna.page


# -- the wrap-up --------------------------------------------------------------------------------------


def test_the_wrap_up_starts_on_no_outcome_and_offers_only_what_happened(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    call = on_hold(dial, cases["ordinary"])
    found = the_call(anna, records, call)
    assert '<option value="" selected>— choose —</option>' in anna.page
    assert offered(anna) == ["citizen_service", "other"]

    anna.post(f"/calls/{found}/wrap-up", outcome="", note="Caller asked about opening hours.")
    assert "Choose how the call ended." in anna.page and "opening hours" in anna.page
    anna.post(f"/calls/{found}/wrap-up", outcome="user_id_given", note="")  # not shown: not offered
    assert "Choose how the call ended." in anna.page
    assert records.escalation(call)["status"] == "connecting" and busy(anna)


def test_a_desk_verification_the_caller_hangs_up_on_counts_as_a_failure_and_can_lock(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records, app: Flask
) -> None:
    from ivr.counters import SqlCounters

    person = cases["ordinary"]
    for _ in range(2):
        dial("en").choose_language().identify(person, "user_id").answer_questions(person, right=0)
    call = on_hold(dial, cases["passport_and_licence"])  # someone else's call, asking for help
    found = the_call(anna, records, call)
    document = person.person.documents[0]
    anna.verify(found, document.type.value, document.number)  # the third guess, at the desk
    assert anna.question is not None
    call.hang_up()
    line = app.extensions["ivr"]
    (lock,) = SqlCounters.on(line.store).locked(line.services.gate.window(line.clock()))
    assert (lock.failures, lock.channels) == (3, ("desk", "line"))
    assert "desk_verification_abandoned" in records.audit(call)


# -- what an outside tester found --------------------------------------------------------------------


def test_a_phoning_agent_first_to_a_caller_the_desk_just_took_wins_and_the_desk_agent_is_free(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records, app: Flask
) -> None:
    from ivr.desk.accounts import Accounts
    from tests.conftest import FAST_HASHER

    Accounts(app.extensions["ivr"].store, app.extensions["ivr"].clock, hasher=FAST_HASHER).add(
        "bo", "agent", PASSWORD, phone="+4520998866"
    )
    call = on_hold(dial, cases["ordinary"])
    found = the_call(anna, records, call)
    call.post(f"{BASE}/voice/agent/dequeued?agent=bo")  # Twilio bridged bo's phone first
    assert call.said == ["connecting"]
    assert (records.escalation(call)["status"], records.escalation(call)["agent"]) == ("connected", "bo")
    anna.get(f"/calls/{found}", follow_redirects=True)
    assert "That call is not yours" in anna.page and not busy(anna)


def test_a_caller_twilio_drops_from_the_queue_once_put_through_goes_on_to_the_agent(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    call = on_hold(dial, cases["ordinary"])
    the_call(anna, records, call)
    call.post(f"{BASE}/voice/queue-exit", QueueResult="error")
    assert call.said == ["connecting"] and records.escalation(call)["status"] == "connected"


def test_disabling_an_agent_who_holds_calls_leaves_no_call_stranded(
    desk: Flask, dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records, app: Flask
) -> None:
    accounts = desk.extensions["desk"].accounts
    accounts.add("sara", "supervisor", PASSWORD)
    accounts.add("bo", "agent", PASSWORD, phone="+4520998866")
    sara, bo = DeskUser(desk, "sara").sign_in(), DeskUser(desk, "bo").sign_in()
    call = on_hold(dial, cases["ordinary"])
    the_call(bo, records, call)
    call.wait_in_queue(1)  # put through: connected to bo
    assert records.escalation(call)["status"] == "connected"
    sara.post("/agents/bo/disable", follow=True)
    row = records.escalation(call)
    assert (row["status"], row["outcome"]) == ("wrapped_up", "other")
    assert "desk_agent_disabled_call" in records.audit(call)

    waiting = on_hold(dial, cases["passport_and_licence"])
    accounts.reset("bo", PASSWORD)
    bo = DeskUser(desk, "bo").sign_in()
    the_call(bo, records, waiting)  # connecting: back to the queue for another agent
    sara.post("/agents/bo/disable", follow=True)
    assert (records.escalation(waiting)["status"], records.escalation(waiting)["agent"]) == ("waiting", None)


def test_an_end_of_call_status_during_a_store_restart_is_taken_once_the_store_is_back(
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlalchemy as sa

    from ivr.line import Line

    call = on_hold(dial, cases["ordinary"])
    found = the_call(anna, records, call)
    real, left = Line._scrub, [2]

    def restarting(*args: object, **kwargs: object) -> None:
        if left[0]:
            left[0] -= 1
            raise sa.exc.OperationalError("connect", {}, Exception("the database is starting up"))
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Line, "_scrub", restarting)
    call.hang_up()
    assert call.status == 204 and records.escalation(call)["status"] == "ended"
    assert 'data-test="caller-gone"' in anna.get(f"/calls/{found}/caller").page


def test_the_sweep_abandons_a_caller_twilio_stopped_asking_about_and_leaves_live_ones_alone(
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    app: Flask,
    clock: Clock,
) -> None:
    """The end-of-call status was lost (a database outage): a queued caller Twilio no longer asks
    the wait URL about has gone; one it still asks about is there, however long they have waited;
    a call an agent holds is the agent's to wrap up."""
    ghost = on_hold(dial, cases["ordinary"])
    patient = on_hold(dial, cases["mobile_changed_48h"])
    talking = on_hold(dial, cases["passport_and_licence"])
    the_call(anna, records, talking)
    for _ in range(45):  # three hours; the patient caller's wait URL asked every four minutes
        clock.advance(minutes=4)
        patient.wait_in_queue(1)
        app.extensions["ivr"].sweep()
    assert records.escalation(ghost)["status"] == "abandoned"
    assert "handover_swept" in records.audit(ghost)
    assert records.escalation(patient)["status"] == "waiting"
    assert records.escalation(talking)["status"] == "connecting"


def test_the_desk_says_so_when_its_database_is_down_not_a_bare_500(
    anna: DeskUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from ivr.desk.accounts import Accounts

    def down(*args: object, **kwargs: object) -> None:
        raise sa.exc.OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(Accounts, "get", down)
    anna.get("/")
    assert anna.status == 503 and anna.response is not None
    assert anna.response.headers["Retry-After"] == "5"
    assert "cannot reach its database" in anna.page and "kan ikke nå sin database" in anna.page
    assert "Traceback" not in anna.page


def test_an_agent_available_at_an_open_desk_makes_the_wait_a_number_and_signing_out_undoes_it(
    anna: DeskUser, dial: Callable[..., Call], cases: dict[str, DemoPerson]
) -> None:
    assert on_hold(dial, cases["ordinary"]).said == ["queue_no_agent"]  # anna is away
    anna.post("/status", status="available")
    assert on_hold(dial, cases["passport_and_licence"]).said == ["queue_position"]
    anna.sign_out()
    assert on_hold(dial, cases["mobile_changed_48h"]).said == ["queue_no_agent"]


def test_a_caller_leaving_the_queue_while_the_store_is_down_goes_on_to_connect_not_goodbye(
    anna: DeskUser,
    dial: Callable[..., Call],
    cases: dict[str, DemoPerson],
    records: Records,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Put through while the database restarts: the queue exit cannot read the hand-over, so it
    sends the caller on to /voice/connect (which dials the agent, or puts them back in the
    queue), never a goodbye that cuts them off while the agent waits."""
    from ivr.line import Line

    call = on_hold(dial, cases["ordinary"])
    the_call(anna, records, call)

    def down(*args: object, **kwargs: object) -> str:
        raise RuntimeError("the database is down")

    monkeypatch.setattr(Line, "queue_exit", down)
    call.post(f"{BASE}/voice/queue-exit", QueueResult="leave")
    monkeypatch.undo()
    assert call.said == ["connecting"] and records.escalation(call)["status"] == "connected"
