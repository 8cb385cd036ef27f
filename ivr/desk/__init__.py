"""The agents' desk: a web application for the agents who take the calls the line hands over.

`create_desk` is the one place where the desk is wired. It shares the line's store, rules and
outside systems (`ivr.build_core`), never its webhooks: it is served on an internal port by
`ivr desk`, not by the public webhook server.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask

from ivr import Clock, build_core, utc_now
from ivr.call_control import CallControl
from ivr.desk.accounts import Accounts
from ivr.desk.context import Desk
from ivr.desk.queue import Queue
from ivr.desk.verify import Verifier
from ivr.ports import CprRegister, MitIdBackend, SmsSender
from ivr.settings import Settings
from ivr.store import Store

MAX_BODY = 16 * 1024


def create_desk(
    settings: Settings | None = None,
    *,
    clock: Clock = utc_now,
    call_control: CallControl | None = None,
    register: CprRegister | None = None,
    backend: MitIdBackend | None = None,
    sms: SmsSender | None = None,
) -> Flask:
    """Build the desk: the line's core, the agents' accounts, the queue, the web pages."""
    settings = settings or Settings()
    core = build_core(settings, clock=clock, register=register, backend=backend, sms=sms)
    queue = Queue(core.store, clock)
    desk = Desk(
        settings=settings,
        store=core.store,
        accounts=Accounts(core.store, clock),
        queue=queue,
        verifier=Verifier(core.store, core.services, core.outbox, queue, clock),
        call_control=call_control or _call_control(settings, core.store, clock),
        gate=core.services.gate,
        clock=clock,
    )
    app = Flask(__name__)
    app.secret_key = hmac.new(settings.secret_key_bytes(), b"agents' desk cookies", hashlib.sha256).digest()
    app.config.update(
        SESSION_COOKIE_NAME="desk_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.desk_base_url.startswith("https://"),
        MAX_CONTENT_LENGTH=MAX_BODY,
    )
    app.extensions["desk"] = desk
    app.extensions["ivr.core"] = core
    from ivr.desk import auth, supervisor, views

    auth.register(app)
    views.register(app)
    supervisor.register(app)
    return app


def _call_control(settings: Settings, store: Store, clock: Clock) -> CallControl:
    from ivr.call_control_adapters import make

    return make(settings, store, clock)


__all__ = ["create_desk"]
