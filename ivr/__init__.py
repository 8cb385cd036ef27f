"""The MitID Support phone line. `create_app` is the one place where things are wired."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask
from twilio.request_validator import RequestValidator

from ivr import definitions, handover, migrations
from ivr.actions import Services
from ivr.adapters import demo_directory
from ivr.adapters.demo_backend import DemoMitIdBackend
from ivr.adapters.demo_directory import DemoDirectory
from ivr.adapters.demo_people import DemoPerson, generate_people
from ivr.adapters.demo_register import DemoRegister
from ivr.adapters.demo_sms import EmbeddedSms
from ivr.agent_line import AgentLine
from ivr.audio import Library
from ivr.checks import CHECKS
from ivr.engine import Engine
from ivr.flows import Flow
from ivr.line import Line
from ivr.outbox import Outbox
from ivr.ports import CprRegister, MitIdBackend, SmsSender
from ivr.settings import Settings
from ivr.store import Store, make_engine
from ivr.twiml import Renderer, Urls
from ivr.verification import Gate, Policy

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.lru_cache(maxsize=4)
def demo_people(seed: int, count: int, today: dt.date) -> list[DemoPerson]:
    """Demo people generated in memory as of today (for benchmarks; the line itself reads the
    register built into the demo database, `Core.people`)."""
    now = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    return generate_people(seed, count, now=now)


@dataclass(frozen=True)
class Core:
    """What the line and the agents' desk share: the store, the rules and the outside systems."""

    settings: Settings
    flow: Flow
    store: Store
    services: Services
    outbox: Outbox
    people: DemoDirectory
    demo_engine: sa.Engine

    def close(self) -> None:
        """Close every database connection the core holds (the pools open new ones if used again)."""
        self.store.engine.dispose()
        self.demo_engine.dispose()


def build_core(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    register: CprRegister | None = None,
    backend: MitIdBackend | None = None,
    sms: SmsSender | None = None,
) -> Core:
    """Open the store (migrated), the register, the MitID back end and the SMS outbox."""
    flow, catalog = definitions.load(settings.flows_dir, settings.prompts_dir, settings.flow)
    handover.check()
    settings.private_data_dir()
    store = Store(make_engine(settings.sqlalchemy_url))
    store.upgrade()
    secret_key = settings.secret_key_bytes()
    demo_engine = _demo_engine(settings)
    demo_directory.ensure_built(demo_engine, settings.demo_seed, settings.demo_people, clock())
    people = DemoDirectory(demo_engine, clock)
    services = Services(
        register=register or DemoRegister(people),
        backend=backend or _demo_backend(settings, people, clock, demo_engine, secret_key),
        catalog=catalog,
        gate=Gate(_policy(settings), _pseudonym(secret_key)),
        opening_hours=settings.opening_hours,
        mobile_quarantine=dt.timedelta(hours=settings.mobile_quarantine_hours),
    )
    outbox = Outbox(store, sms or _sms(settings, clock, demo_engine), clock, settings.sms_timeout_seconds + 2)
    return Core(settings, flow, store, services, outbox, people, demo_engine)


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
    core = build_core(settings, clock=clock, register=register, backend=backend, sms=sms)
    line = Line(
        engine=Engine(core.flow, tuple(core.services.catalog), CHECKS),
        services=core.services,
        renderer=Renderer(
            core.services.catalog,
            Urls(settings.public_base_url),
            settings.agent_queue,
            Library.scan(settings.prompts_dir / "audio"),
        ),
        store=core.store,
        outbox=core.outbox,
        clock=clock,
        minutes_per_caller_ahead=settings.agent_minutes_per_caller,
        stale_after=dt.timedelta(minutes=settings.stale_call_minutes),
    )
    app = Flask(__name__)
    app.extensions["ivr"] = line
    app.extensions["ivr.core"] = core
    app.extensions["ivr.settings"] = settings
    app.extensions["ivr.people"] = core.people
    app.extensions["ivr.audio"] = line.renderer.audio
    app.extensions["ivr.agent_line"] = AgentLine(line.store, line.renderer, line.services.pseudonym, clock)
    app.extensions["ivr.validator"] = RequestValidator(settings.twilio_auth_token.get_secret_value())
    app.extensions["ivr.public_base_url"] = settings.public_base_url
    from ivr import health, metrics, web

    web.register(app)
    health.register(app)
    metrics.install(app, core.store, clock)
    return app


def _pseudonym(secret_key: bytes) -> Callable[[str], str]:
    def pseudonym(value: str) -> str:
        """A keyed hash that stands for an identity or a number in the store, never the value."""
        return hmac.new(secret_key, value.encode(), hashlib.sha256).hexdigest()

    return pseudonym


def _policy(settings: Settings) -> Policy:
    hours = dt.timedelta(hours=1)
    return Policy(
        questions_asked=settings.questions_asked,
        pass_mark=settings.questions_pass_mark,
        max_failures=settings.identity_max_failures,
        failure_window=hours * settings.identity_failure_window_hours,
        lockout=hours * settings.identity_lockout_hours,
        per_number_per_hour=settings.caller_verifications_per_hour,
        withheld_per_hour=settings.withheld_verifications_per_hour,
    )


def _demo_engine(settings: Settings) -> sa.Engine:
    """The database of the demo outside systems (CPR register, MitID back end, SMS network),
    migrated."""
    engine = make_engine(settings.demo_sqlalchemy_url)
    migrations.upgrade(engine, migrations.DEMO)
    return engine


def _demo_backend(
    settings: Settings, people: DemoDirectory, clock: Clock, engine: sa.Engine, secret_key: bytes
) -> DemoMitIdBackend:
    validity = dt.timedelta(minutes=settings.temporary_pin_validity_minutes)
    key = hmac.new(secret_key, b"demo MitID back end", hashlib.sha256).digest()
    return DemoMitIdBackend(people, engine, clock, validity, key)


def _sms(settings: Settings, clock: Clock, demo_engine: sa.Engine) -> SmsSender:
    if settings.sms_backend == "embedded":
        return EmbeddedSms(demo_engine, clock)
    from ivr.adapters.sms_twilio import ToOnePhone, TwilioSms

    assert settings.demo_sms_to is not None  # the settings refuse twilio without it
    twilio = TwilioSms(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        sender=None if settings.sms_messaging_service_sid else settings.sms_sender,
        messaging_service_sid=settings.sms_messaging_service_sid,
        api_base_url=settings.twilio_api_base_url,
        timeout=settings.sms_timeout_seconds,
        status_callback=f"{settings.public_base_url}/sms/status",
    )
    return ToOnePhone(twilio, settings.demo_sms_to)
