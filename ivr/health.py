"""Health for whatever runs the line (a container engine, a load balancer, a proxy).

`GET /healthz`: the process answers. `GET /readyz`: it can take calls — its store answers and
its call flow is loaded — else 503. Both unsigned, and both say only "ok" or "unavailable":
no version, no path, no error (the reason goes to the log, once per failure).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app

from ivr.line import Line

log = logging.getLogger(__name__)
health = Blueprint("health", __name__)


def register(app: Flask) -> None:
    app.register_blueprint(health)


def _plain(text: str, status: int) -> Response:
    response = Response(text + "\n", status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@health.get("/healthz")
def alive() -> Response:
    return _plain("ok", 200)


@health.get("/readyz")
def ready() -> Response:
    line: Line = current_app.extensions["ivr"]
    try:
        if not line.engine.flow.steps:
            raise RuntimeError("no call flow loaded")
        with line.store.engine.connect().execution_options(read_only=True) as connection:
            connection.execute(sa.text("SELECT 1")).scalar_one()
    except Exception as error:
        log.warning("not ready: %s", type(error).__name__)
        return _plain("unavailable", 503)
    return _plain("ok", 200)
