"""The PIN SMS goes within the webhook, and the caller hears what really happened to it.

With Twilio's SMS API (a loopback stand-in speaking Twilio's REST) up, down, slow or refusing:
"sent" only when Twilio took it; otherwise an apology and an agent, with an escalation that says
why. The PIN is never kept in the outbox, whatever happened; a crash mid-send never leads to a
second SMS; and Twilio's delivery reports are recorded.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from ivr import create_app
from ivr.adapters.sms_twilio import TwilioSms
from ivr.errors import BackendError
from ivr.prompts import Spelled
from ivr.settings import Settings
from ivr.store import call_sessions, sms_outbox
from tests.calls import Call, Records, sign
from tests.conftest import BASE, TOKEN
from tests.postgres import SECRET
from tests.test_sms_twilio import ACCOUNT_SID, AUTH_TOKEN, SENDER, FakeTwilio, twilio_server  # noqa: F401

PIN = re.compile(r"\b\d{8}\b")


def pin_call(app, language: str = "en") -> Call:
    """A whole temporary-PIN call as the ordinary demo person."""
    person = next(p for p in app.extensions["ivr.people"] if p.case == "ordinary")
    call = Call(app, TOKEN, BASE, language=language).dial().choose_language()
    return call.identify(person, "temporary_pin").answer_questions(person)


def line_on_twilio(settings, clock, base_url: str, timeout: float = 0.5):
    sms = TwilioSms(ACCOUNT_SID, AUTH_TOKEN, sender=SENDER, api_base_url=base_url, timeout=timeout)
    return create_app(settings, clock=clock, sms=sms)


def assert_no_pin_at_rest(app) -> None:
    for table, rows in Records(app).everything().items():
        if table != "demo_temporary_pins":
            assert not PIN.search(str(rows)), f"a PIN-like number rests in {table}"


def test_twilio_took_it_the_caller_hears_sent(settings, clock, twilio_server):  # noqa: F811
    app = line_on_twilio(settings, clock, twilio_server.base_url)
    call = pin_call(app)
    assert call.said == ["pin_sent", "goodbye"]
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51"))
    [seen] = twilio_server.seen
    assert seen.form["To"] == ["+4520123451"] and PIN.search(seen.form["Body"][0])
    [row] = app.extensions["ivr"].store.rows(sms_outbox)
    assert (row["status"], row["to"], row["body"]) == ("sent", "+45 …51", "temporary_pin")
    assert row["provider_id"].startswith("SM")
    assert_no_pin_at_rest(app)


def test_real_sms_for_demo_people_go_to_the_operators_own_phone_only(settings, clock, twilio_server):  # noqa: F811
    """The demo mobiles look like real Danish numbers: with Twilio, every SMS goes to IVR_DEMO_SMS_TO."""
    with pytest.raises(ValueError, match="IVR_DEMO_SMS_TO"):
        Settings(**{**settings.model_dump(), "sms_backend": "twilio"})
    real = Settings(
        **{
            **settings.model_dump(),
            "sms_backend": "twilio",
            "demo_sms_to": "+4571000000",
            "twilio_account_sid": ACCOUNT_SID,
            "sms_sender": SENDER,
            "twilio_api_base_url": twilio_server.base_url,
        }
    )
    app = create_app(real, clock=clock)
    call = pin_call(app)
    assert call.said == ["pin_sent", "goodbye"]
    assert call.hears("pin_sent", mobile_last_digits=Spelled("51"))  # the person's mobile, masked
    [seen] = twilio_server.seen
    assert seen.form["To"] == ["+4571000000"] and PIN.search(seen.form["Body"][0])


@pytest.mark.parametrize(
    ("fault", "status", "event"),
    [
        ("refused", "failed", "sms_failed"),
        ("slow", "unknown", "sms_unknown"),
        ("down", "failed", "sms_failed"),
    ],
)
def test_sms_that_did_not_go_is_an_apology_and_an_agent(settings, clock, twilio_server, fault, status, event):  # noqa: F811
    base = twilio_server.base_url
    if fault == "refused":
        twilio_server.status = 422
        twilio_server.answer = {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 422}
    elif fault == "slow":
        twilio_server.delay = 3.0
    else:
        base = "http://127.0.0.1:9"  # nothing listens there
    app = line_on_twilio(settings, clock, base)
    call = pin_call(app)
    assert call.said == ["sms_failed", "transfer", "context_kept"]
    assert not call.hears("pin_sent", mobile_last_digits=Spelled("51"))
    assert call.queued
    records = Records(app)
    escalation = records.escalation(call)
    assert (escalation["reason"], escalation["verification"]) == ("sms_failed", "verified")
    [row] = records.sms(call)
    assert row["status"] == status and row["error"]
    assert event in records.audit(call)
    assert_no_pin_at_rest(app)


class Provider:
    """A working stand-in for an SMS provider that records what it sent, or refuses."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str:
        if self.refuse:
            raise BackendError("refused (HTTP 400)")
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request, settings):
    """The line's settings on SQLite, and on a PostgreSQL database shared as by many machines."""
    if request.param == "sqlite":
        return settings
    url = request.getfixturevalue("postgres_url")
    return Settings(
        data_dir=settings.data_dir,
        public_base_url=BASE,
        twilio_auth_token=TOKEN,
        secret_key=SECRET,
        database_url=url,
        demo_backend_database_url=url,
    )


def _closed(app) -> None:
    app.extensions["ivr"].store.engine.dispose()
    app.extensions["ivr"].services.backend._engine.dispose()


def test_a_retry_of_the_pin_webhook_sends_no_second_sms(store_settings, clock):
    provider = Provider()
    app = create_app(store_settings, clock=clock, sms=provider)
    call = pin_call(app)
    last = call.requests[-1]
    for _ in range(3):
        call.send(last)
        assert call.said == ["pin_sent", "goodbye"]
    assert len(provider.sent) == 1
    _closed(app)


def test_a_crash_between_commit_and_send_never_sends_and_the_retry_goes_to_an_agent(
    store_settings, clock, monkeypatch
):
    """The process dies after the call's state and the outbox row were committed, before the
    SMS went: the text died with it, so the retried webhook sends nothing and hands over."""
    provider = Provider()
    app = create_app(store_settings, clock=clock, sms=provider)
    line = app.extensions["ivr"]
    person = next(p for p in app.extensions["ivr.people"] if p.case == "ordinary")
    call = Call(app, TOKEN, BASE, language="en").dial().choose_language().identify(person, "temporary_pin")
    while True:  # answer until the last question
        request = call.pressing(answer_for(call, person))
        if len(call.state.verification.questions) - call.state.verification.asked == 1:
            break
        call.send(request)

    def crash(*args, **kwargs):
        raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(type(line.outbox), "deliver", crash)
        with pytest.raises(SystemExit):
            call.send(request)
    [row] = Records(app).sms(call)
    assert row["status"] == "pending"

    call.send(request)  # Twilio retries the webhook whose answer it never got
    assert call.said == ["sms_failed", "transfer", "context_kept"]
    assert provider.sent == []
    [row] = Records(app).sms(call)
    assert row["status"] == "failed"
    assert Records(app).escalation(call)["reason"] == "sms_failed"
    _closed(app)


def answer_for(call: Call, person) -> str:
    from ivr.questions import QUESTIONS, expected

    kind = call.current_question()
    return expected(kind, person.person) + ("" if QUESTIONS[kind].digits else "#")


def test_delivery_reports_are_recorded_and_must_be_signed(settings, clock):
    provider = Provider()
    app = create_app(settings, clock=clock, sms=provider)
    call = pin_call(app)
    [row] = Records(app).sms(call)
    report = {"MessageSid": row["provider_id"], "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    client = app.test_client()
    url = f"{BASE}/sms/status"

    def report_with(token: str) -> int:
        signature = sign(token, url, report)
        return client.post("/sms/status", data=report, headers={"X-Twilio-Signature": signature}).status_code

    assert report_with("not-the-auth-token") == 403
    assert Records(app).sms(call)[0]["delivery"] is None
    assert report_with(TOKEN) == 204
    [row] = Records(app).sms(call)
    assert row["delivery"] == "delivered"


def test_a_row_left_sending_by_a_crash_is_shown_unresolved_by_the_sweep(settings, clock):
    provider = Provider()
    app = create_app(settings, clock=clock, sms=provider)
    line = app.extensions["ivr"]
    call = pin_call(app)
    with line.store.connection() as connection:
        connection.execute(sms_outbox.update().values(status="sending", claimed_at=clock.now))
    clock.advance(minutes=10)
    line.sweep()
    [row] = Records(app).sms(call)
    assert row["status"] == "unknown"


def test_a_webhook_that_dies_before_its_commit_leaves_no_pin_in_the_way_of_its_retry(
    settings, clock, monkeypatch
):
    """Issuing the PIN waits for the commit: a webhook that died before it issued nothing, so
    its retry sends the PIN, and never hears "a code has already been sent" with none sent."""
    provider = Provider()
    app = create_app(settings, clock=clock, sms=provider)
    person = next(p for p in app.extensions["ivr.people"] if p.case == "ordinary")
    call = Call(app, TOKEN, BASE, language="en").dial().choose_language().identify(person, "temporary_pin")
    verification = call.state.verification
    for _ in range(len(verification.questions) - 1):
        call.answer(person)
    last = call.pressing(answer_for(call, person))

    from ivr.store import Tx

    def dies(*args, **kwargs):
        raise SystemExit("killed before the commit")

    with monkeypatch.context() as patch:
        patch.setattr(Tx, "commit", dies)
        with pytest.raises(SystemExit):
            call.send(last)
    assert Records(app).rows("demo_temporary_pins") == []  # nothing issued by the dead webhook

    call.send(last)
    assert call.said == ["pin_sent", "goodbye"]
    assert len(provider.sent) == 1
    assert len(Records(app).rows("demo_temporary_pins")) == 1


def test_a_twin_that_finished_the_call_while_the_sms_went_has_the_last_word(settings, clock, monkeypatch):
    """While this webhook was sending the SMS, a twin of it finished the call: this one answers
    what the twin saved, and changes nothing."""
    provider = Provider()
    app = create_app(settings, clock=clock, sms=provider)
    line = app.extensions["ivr"]
    deliver = type(line.outbox).deliver

    def twin_finishes_meanwhile(self, call_sid, message):
        sent = deliver(self, call_sid, message)
        with line.store.connection() as connection:
            c = call_sessions.c
            query = sa.update(call_sessions).where(c.call_sid == call_sid)
            connection.execute(query.values(turn=c.turn + 1, reply=line.renderer.goodbye("en")))
        return sent

    monkeypatch.setattr(type(line.outbox), "deliver", twin_finishes_meanwhile)
    call = pin_call(app)
    assert call.said == ["goodbye"] and call.hung_up
    assert len(provider.sent) == 1
    assert "sms_sent" not in Records(app).audit(call)
