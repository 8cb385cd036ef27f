"""The MitID Support phone line. `create_app` is the one place where things are wired."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable

from flask import Flask
from twilio.request_validator import RequestValidator

from ivr import definitions
from ivr.actions import Policy, Services
from ivr.adapters.demo_backend import DemoMitIdBackend
from ivr.adapters.demo_people import DemoPerson, generate_people
from ivr.adapters.demo_register import DemoRegister
from ivr.checks import CHECKS
from ivr.engine import Engine
from ivr.line import Line
from ivr.outbox import EmbeddedSms
from ivr.ports import CprRegister, MitIdBackend, SmsSender
from ivr.settings import Settings
from ivr.store import Store, make_engine
from ivr.twiml import Renderer, Urls

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.lru_cache(maxsize=4)
def demo_people(seed: int, count: int, today: dt.date) -> list[DemoPerson]:
    """The demo register's people as of today (the same for every process on the same day)."""
    now = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    return generate_people(seed, count, now=now)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utc_now,
    register: CprRegister | None = None,
    backend: MitIdBackend | None = None,
    sms: SmsSender | None = None,
) -> Flask:
    """Build the line: settings, definitions, store, outside systems, web layer."""
    settings = settings or Settings()
    flow, catalog = definitions.load(settings.flows_dir, settings.prompts_dir, settings.flow)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(make_engine(settings.sqlalchemy_url))
    store.create()
    people = demo_people(settings.demo_seed, settings.demo_people, clock().date())
    services = Services(
        register=register or DemoRegister(people),
        backend=backend or _demo_backend(settings, people, clock),
        catalog=catalog,
        policy=_policy(settings),
        secret_key=settings.secret_key_bytes(),
    )
    line = Line(
        engine=Engine(flow, tuple(catalog), CHECKS),
        services=services,
        renderer=Renderer(catalog, Urls(settings.public_base_url), settings.agent_queue),
        store=store,
        sms=sms or _sms(settings),
        clock=clock,
        minutes_per_caller_ahead=settings.agent_minutes_per_caller,
    )
    app = Flask(__name__)
    app.extensions["ivr"] = line
    app.extensions["ivr.settings"] = settings
    app.extensions["ivr.people"] = people
    app.extensions["ivr.validator"] = RequestValidator(settings.twilio_auth_token.get_secret_value())
    app.extensions["ivr.public_base_url"] = settings.public_base_url
    from ivr.web import voice

    app.register_blueprint(voice)
    return app


def _policy(settings: Settings) -> Policy:
    hours = dt.timedelta(hours=1)
    return Policy(
        questions_asked=settings.questions_asked,
        questions_pass_mark=settings.questions_pass_mark,
        identity_max_failures=settings.identity_max_failures,
        identity_failure_window=hours * settings.identity_failure_window_hours,
        identity_lockout=hours * settings.identity_lockout_hours,
        caller_verifications_per_hour=settings.caller_verifications_per_hour,
        mobile_quarantine=hours * settings.mobile_quarantine_hours,
        opening_hours=settings.opening_hours,
    )


def _demo_backend(settings: Settings, people: list[DemoPerson], clock: Clock) -> DemoMitIdBackend:
    url = (
        settings.demo_backend_database_url
        or f"sqlite:///{settings.data_dir.resolve() / 'mitid-demo.sqlite3'}"
    )
    validity = dt.timedelta(minutes=settings.temporary_pin_validity_minutes)
    return DemoMitIdBackend(people, make_engine(url), clock, validity)


def _sms(settings: Settings) -> SmsSender:
    if settings.sms_backend == "embedded":
        return EmbeddedSms()
    from ivr.adapters.sms_twilio import TwilioSms

    return TwilioSms(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        sender=None if settings.sms_messaging_service_sid else settings.sms_sender,
        messaging_service_sid=settings.sms_messaging_service_sid,
        api_base_url=settings.twilio_api_base_url,
        timeout=settings.sms_timeout_seconds,
    )
