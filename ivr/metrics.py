"""Prometheus metrics: what an operator watches, never who called.

Two sources, so the figures are right however many line servers share one store:

- **This process** (`WebhookMetrics`, a WSGI middleware): webhooks by route template (never the
  URL as requested) and status, and their latency. Each line server counts its own; Prometheus
  adds them up (`sum by (route)`).
- **The shared store** (`StoreCollector`, read at scrape time): how calls ended, drop-offs per
  step, verifications, SMS, the agents' queue. Every server reports the same figures, since they
  read the same store: take one (`max without (instance)`), never the sum.

Labels are route templates, statuses, step names, reasons and other words from the flow file or
the code; no call SID, number, document, user ID or agent ever becomes a label. The metrics are
served on a port of their own (`IVR_METRICS_HOST`/`IVR_METRICS_PORT`), never by the public
webhook server.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import sqlalchemy as sa
from flask import Flask, request
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from ivr import handover, logs
from ivr.handover import Status
from ivr.store import Store, audit_events, escalations, sms_outbox

access_log = logging.getLogger("ivr.access")
ROUTE = "ivr.route"
UNMATCHED = "unmatched"
QUIET_ROUTES = frozenset({"/healthz", "/readyz"})
BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
VERIFICATION_EVENTS = (
    "verification_passed",
    "verification_failed",
    "desk_verification_passed",
    "desk_verification_failed",
    "identity_locked",
)
CALL_ENDS = ("call_ended", "call_swept")
WAITING = handover.IS_WAITING

StartResponse = Callable[..., Any]


def install(app: Flask, store: Store, clock: Callable[[], dt.datetime]) -> CollectorRegistry:
    """Count the app's requests (WSGI middleware) and read the store at each scrape, in a
    registry of the app's own (`app.extensions["ivr.metrics"]`)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(store, clock))

    @app.before_request
    def note_route() -> None:  # the route template (e.g. /voice/keys), before any other check
        request.environ[ROUTE] = request.url_rule.rule if request.url_rule else UNMATCHED

    app.wsgi_app = WebhookMetrics(app.wsgi_app, registry)  # type: ignore[method-assign]
    app.extensions["ivr.metrics"] = registry
    return registry


def serve(registry: CollectorRegistry, host: str, port: int) -> None:
    """Serve the registry at http://host:port/metrics in a daemon thread (any other path: 404)."""
    scrape = make_wsgi_app(registry)

    def only_metrics(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/metrics":
            return scrape(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found: the metrics are at /metrics\n"]

    class Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:  # the access log is the line's, not this
            pass

    server = make_server(host, port, only_metrics, Server, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


class WebhookMetrics:
    """Times and counts every request by route template and status; gives each request a log
    context (the call SID and step, once the line binds them) and one access-log line."""

    def __init__(
        self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], registry: CollectorRegistry
    ):
        self.app = app
        self.requests = Counter(
            "ivr_webhook_requests",
            "Requests to the line's web server, by route template and HTTP status",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "ivr_webhook_duration_seconds",
            "Time to answer a request to the line's web server, by route template",
            ["route"],
            buckets=BUCKETS,
            registry=registry,
        )
        self._cache: dict[tuple[str, str], tuple[Any, Any]] = {}

    def _children(self, route: str, status: str) -> tuple[Any, Any]:
        """The labelled counter and histogram (looked up once per route and status)."""
        key = (route, status)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = (self.requests.labels(route, status), self.latency.labels(route))
        return found

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status = "500"

        def capture(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = status_line[:3]
            return start_response(status_line, headers, exc_info)

        with logs.request_context():
            try:
                return self.app(environ, capture)
            finally:
                elapsed = time.perf_counter() - started
                route = environ.get(ROUTE, UNMATCHED)
                counter, histogram = self._children(route, status)
                counter.inc()
                histogram.observe(elapsed)
                if route not in QUIET_ROUTES:
                    milliseconds = round(elapsed * 1000, 1)
                    access_log.info(
                        "%s %s %s in %.1f ms",
                        environ.get("REQUEST_METHOD", "-"),
                        route,
                        status,
                        milliseconds,
                        extra={"route": route, "status": int(status), "duration_ms": milliseconds},
                    )


class StoreCollector(Collector):
    """The line's business, read from the shared store at each scrape (every server agrees)."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at scrape time; nothing to describe ahead

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ivr_store_up", "1 when the metrics could be read from the store, else 0")
        try:
            # read-only: on SQLite a plain BEGIN, never the write lock the webhooks need
            with self.store.engine.connect().execution_options(read_only=True) as connection:
                families = list(self._families(connection))
        except Exception as error:  # the store is away: say so, and serve the process metrics
            logging.getLogger(__name__).error(
                "metrics: the store could not be read (%s)", type(error).__name__
            )
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, connection: sa.Connection) -> Iterator[Metric]:
        yield from self._calls(connection)
        yield from self._verifications(connection)
        yield from self._sms(connection)
        yield from self._queue(connection)

    # -- how calls ended ------------------------------------------------------------------------

    def _calls(self, connection: sa.Connection) -> Iterator[Metric]:
        a = audit_events.c
        started = connection.execute(sa.select(sa.func.count()).where(a.event == "call_started")).scalar_one()
        yield CounterMetricFamily("ivr_calls_started", "Calls the line answered", value=started)

        finished = CounterMetricFamily(
            "ivr_calls_finished",
            "Calls the machine finished itself (no agent), by journey (what the caller asked for) "
            "and the step the flow ended at",
            labels=["journey", "step"],
        )
        handed = CounterMetricFamily(
            "ivr_calls_handed_over", "Calls handed over to an agent, by reason", labels=["reason"]
        )
        abandoned = CounterMetricFamily(
            "ivr_calls_abandoned",
            "Calls that ended before the flow did (the caller hung up, or the call went quiet and "
            "was swept), by the step they were at: the drop-off per step",
            labels=["step"],
        )
        for (journey, step), count in self._finished(connection).items():
            finished.add_metric([journey, step], count)
        e = escalations.c
        for reason, count in connection.execute(sa.select(e.reason, sa.func.count()).group_by(e.reason)):
            handed.add_metric([reason], count)
        for where, count in self._abandoned(connection):
            abandoned.add_metric([where or "unknown"], count)
        yield finished
        yield handed
        yield abandoned

    def _finished(self, connection: sa.Connection) -> dict[tuple[str, str], int]:
        """flow_ended events that did not end at an agent, by the call's intent and end step."""
        from ivr.store import call_sessions

        a = audit_events.c
        intent = _json(connection, call_sessions.c.state)[("collected", "intent")].as_string()
        query = (
            sa.select(a.detail, intent, sa.func.count())
            .select_from(audit_events.outerjoin(call_sessions, call_sessions.c.call_sid == a.call_sid))
            .where(a.event == "flow_ended")
            .group_by(a.detail, intent)
        )
        counts: dict[tuple[str, str], int] = {}
        for detail, journey, count in connection.execute(query):
            ended = _load(detail)
            if ended.get("end") == "agent":
                continue
            key = (journey or "none", str(ended.get("step", "unknown")))
            counts[key] = counts.get(key, 0) + count
        return counts

    def _abandoned(self, connection: sa.Connection) -> Iterable[tuple[str | None, int]]:
        """Calls whose end came before their flow's end, and that no agent was given: by the
        step in the end event (one query: per call, did the flow end, and where the call was)."""
        a = audit_events.c
        step = _json(connection, a.detail)["step"].as_string()
        per_call = (
            sa.select(
                a.call_sid.label("call_sid"),
                sa.func.max(sa.case((a.event == "flow_ended", 1), else_=0)).label("flow_over"),
                sa.func.max(sa.case((a.event.in_(CALL_ENDS), step), else_=None)).label("step"),
            )
            .where(a.event.in_(("flow_ended", *CALL_ENDS)), a.call_sid.is_not(None))
            .group_by(a.call_sid)
            .subquery()
        )
        handed_over = sa.exists().where(escalations.c.call_sid == per_call.c.call_sid)
        query = (
            sa.select(per_call.c.step, sa.func.count())
            .where(per_call.c.flow_over == 0, per_call.c.step.is_not(None), ~handed_over)
            .group_by(per_call.c.step)
        )
        return [(row[0], row[1]) for row in connection.execute(query)]

    # -- verifications, SMS, the queue ------------------------------------------------------------

    def _verifications(self, connection: sa.Connection) -> Iterator[Metric]:
        a = audit_events.c
        channel = sa.case((a.event.like("desk_%"), "desk"), (a.detail == "{}", "line"), else_="desk")
        query = (
            sa.select(a.event, channel, sa.func.count())
            .where(a.event.in_(VERIFICATION_EVENTS))
            .group_by(a.event, channel)
        )
        counts: dict[tuple[str, str], int] = {}
        for event, where, count in connection.execute(query):
            counts[(event.removeprefix("desk_"), where)] = count
        family = CounterMetricFamily(
            "ivr_verifications",
            "Identity verifications decided, by channel (line, or an agent at the desk) and result: "
            "passed, failed, or locked (a failure that locked the claimed identity)",
            labels=["channel", "result"],
        )
        for where in ("line", "desk"):
            locked = counts.get(("identity_locked", where), 0)
            family.add_metric([where, "passed"], counts.get(("verification_passed", where), 0))
            family.add_metric([where, "failed"], counts.get(("verification_failed", where), 0) - locked)
            family.add_metric([where, "locked"], locked)
        yield family

    def _sms(self, connection: sa.Connection) -> Iterator[Metric]:
        s = sms_outbox.c
        query = sa.select(s.status, s.delivery, sa.func.count()).group_by(s.status, s.delivery)
        family = CounterMetricFamily(
            "ivr_sms",
            "SMS by the outbox's status (sent, failed, unknown, ...) and the provider's last "
            "delivery report (none until one came)",
            labels=["status", "delivery"],
        )
        for status, delivery, count in connection.execute(query):
            family.add_metric([status, delivery or "none"], count)
        yield family

    def _queue(self, connection: sa.Connection) -> Iterator[Metric]:
        e = escalations.c
        waiting, oldest = connection.execute(
            sa.select(sa.func.count(), sa.func.min(e.created_at)).where(WAITING)
        ).one()
        yield GaugeMetricFamily("ivr_agent_queue_length", "Callers waiting for an agent now", value=waiting)
        longest = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
            longest = max(0.0, (self.clock() - oldest).total_seconds())
        yield GaugeMetricFamily(
            "ivr_agent_queue_longest_wait_seconds",
            "How long the longest-waiting caller has waited",
            value=longest,
        )
        status = e.status
        hand_overs = GaugeMetricFamily(
            "ivr_handovers",
            f"Hand-overs by where they are now ({', '.join(Status)})",
            labels=["status"],
        )
        for name, count in connection.execute(sa.select(status, sa.func.count()).group_by(status)):
            hand_overs.add_metric([name], count)
        yield hand_overs
        seconds = _seconds_between(connection, e.created_at, e.connected_at)
        count, total = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(seconds), 0)).where(
                e.connected_at.is_not(None)
            )
        ).one()
        yield SummaryMetricFamily(
            "ivr_agent_queue_wait_seconds",
            "How long callers put through to an agent waited, from hand-over to the agent",
            count_value=count,
            sum_value=float(total),
        )


def _json(connection: sa.Connection, column: sa.ColumnElement[Any]) -> Any:
    """A text column read as JSON: PostgreSQL needs the cast, SQLite's JSON functions read text."""
    if connection.dialect.name == "postgresql":
        return sa.cast(column, sa.JSON)
    return sa.type_coerce(column, sa.JSON)


def _seconds_between(connection: sa.Connection, start: Any, end: Any) -> sa.ColumnElement[Any]:
    if connection.dialect.name == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    return sa.extract("epoch", end - start)


def _load(detail: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(detail)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
