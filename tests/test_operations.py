"""What an operator watches: health, readiness, the metrics after real calls, the JSON logs.

Calls are placed through the fake Twilio (tests/calls.py) into the real app; the metrics are
what a Prometheus scrape would read from the app's registry, the logs what `IVR_LOG_FORMAT=json`
writes. Neither may carry anything that tells who called.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ivr import create_app, logs
from ivr.adapters.demo_people import DemoPerson
from ivr.settings import Settings
from tests.calls import Call, Clock, Records
from tests.conftest import BASE, TOKEN
from tests.postgres import SECRET

# -- health ---------------------------------------------------------------------------------------


def test_healthz_and_readyz_answer_ok_unsigned_and_say_nothing_else(app: Flask) -> None:
    client = app.test_client()
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.get_data(as_text=True) == "ok\n"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Server" not in response.headers


def test_readyz_is_503_while_the_store_is_unreachable_and_says_nothing_of_why(
    app: Flask, settings: Settings, tmp_path: Path
) -> None:
    client = app.test_client()
    store = app.extensions["ivr"].store
    database = settings.data_dir / "ivr.sqlite3"
    away = tmp_path / "away"
    store.engine.dispose()
    shutil.move(settings.data_dir, away)  # the disk under the store is gone
    settings.data_dir.parent.joinpath("data").write_text("")  # and a file stands where the dir was
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.get_data(as_text=True)
        assert body == "unavailable\n"
        assert str(database) not in body and "sqlite" not in body.lower()
        assert client.get("/healthz").status_code == 200  # alive all the same
    finally:
        settings.data_dir.unlink()
        shutil.move(away, settings.data_dir)
    store.engine.dispose()
    assert client.get("/readyz").status_code == 200  # back when the store is


def test_readyz_follows_a_postgresql_store_going_away_and_coming_back(
    postgres_url: str, tmp_path: Path
) -> None:
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    url = sa.make_url(postgres_url).set(database="ivr_readyz")
    with admin.connect() as connection:
        connection.exec_driver_sql("DROP DATABASE IF EXISTS ivr_readyz")
        connection.exec_driver_sql("CREATE DATABASE ivr_readyz")
    settings = Settings(
        data_dir=tmp_path / "data",
        public_base_url=BASE,
        twilio_auth_token=TOKEN,
        secret_key=SECRET,
        database_url=url.render_as_string(hide_password=False),
    )
    app = create_app(settings)
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 200
        with admin.connect() as connection:
            connection.exec_driver_sql("DROP DATABASE ivr_readyz WITH (FORCE)")
        response = client.get("/readyz")
        assert (response.status_code, response.get_data(as_text=True)) == (503, "unavailable\n")
        with admin.connect() as connection:
            connection.exec_driver_sql("CREATE DATABASE ivr_readyz")
        assert client.get("/readyz").status_code == 200
    finally:
        app.extensions["ivr"].store.engine.dispose()
        app.extensions["ivr"].services.backend._engine.dispose()  # the demo systems share the database
        with admin.connect() as connection:
            connection.exec_driver_sql("DROP DATABASE IF EXISTS ivr_readyz WITH (FORCE)")
        admin.dispose()


def test_the_public_server_serves_no_metrics(app: Flask) -> None:
    assert app.test_client().get("/metrics").status_code == 404


# -- metrics after real calls ---------------------------------------------------------------------


def scrape(app: Flask) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """The text a scrape reads, and its samples by (name, labels)."""
    text = generate_latest(app.extensions["ivr.metrics"]).decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def day_of_calls(
    dial: Callable[..., Call], cases: dict[str, DemoPerson], records: Records
) -> Iterator[list[Call]]:
    """A morning on the line: each way a call can end, once or more."""
    calls = []
    ordinary, licence_only = cases["ordinary"], cases["licence_only"]
    pin = dial("en").choose_language().identify(ordinary, "temporary_pin").answer_questions(ordinary)
    assert pin.said == ["pin_sent", "goodbye"]
    user_id = dial("en").choose_language().identify(ordinary, "user_id").answer_questions(ordinary)
    user_id.press("2")
    assert user_id.said == ["goodbye"]
    calls += [pin.hang_up(), user_id.hang_up()]
    for _ in range(3):  # the third failure locks the identity
        failed = dial("da").choose_language().identify(licence_only, "user_id")
        failed.answer_questions(licence_only, right=0)
        assert failed.said == ["cannot_verify", "goodbye"]
        calls.append(failed.hang_up())
    to_agent = dial("en").choose_language().press("0")  # still waiting for an agent
    assert to_agent.queued
    calls.append(to_agent)
    gone = dial("en").choose_language().press("2")  # hangs up at the document number
    assert gone.step == "document_number"
    calls.append(gone.hang_up())
    failing = dial("en").choose_language().identify(cases["backend_fails"], "temporary_pin")
    failing.answer_questions(cases["backend_fails"])
    assert failing.queued
    calls.append(failing.hang_up())
    assert "identity_locked" in records.audit(calls[4])
    yield calls


def test_the_metrics_count_how_calls_ended(app: Flask, day_of_calls: list[Call]) -> None:
    _, samples = scrape(app)
    assert value(samples, "ivr_store_up") == 1
    assert value(samples, "ivr_calls_started_total") == 8
    assert value(samples, "ivr_calls_finished_total", journey="temporary_pin", step="pin_sent") == 1
    assert value(samples, "ivr_calls_finished_total", journey="user_id", step="goodbye") == 1
    assert value(samples, "ivr_calls_finished_total", journey="user_id", step="cannot_verify") == 3
    assert value(samples, "ivr_calls_handed_over_total", reason="caller_request") == 1
    assert value(samples, "ivr_calls_handed_over_total", reason="backend_failure") == 1
    assert value(samples, "ivr_calls_abandoned_total", step="document_number") == 1
    abandoned = [k for k in samples if k[0] == "ivr_calls_abandoned_total"]
    assert len(abandoned) == 1  # a call that ended at its goodbye or with an agent is no drop-off


def test_the_metrics_count_verifications_sms_and_the_queue(app: Flask, day_of_calls: list[Call]) -> None:
    _, samples = scrape(app)
    assert value(samples, "ivr_verifications_total", channel="line", result="passed") == 3
    assert value(samples, "ivr_verifications_total", channel="line", result="failed") == 2
    assert value(samples, "ivr_verifications_total", channel="line", result="locked") == 1
    assert value(samples, "ivr_verifications_total", channel="desk", result="passed") == 0
    assert value(samples, "ivr_sms_total", status="sent", delivery="none") == 1
    assert value(samples, "ivr_agent_queue_length") == 1
    assert value(samples, "ivr_handovers", status="waiting") == 1
    assert (
        value(samples, "ivr_handovers", status="ended") + value(samples, "ivr_handovers", status="abandoned")
        == 1
    )


def test_the_metrics_count_webhooks_by_route_template_and_time_them(
    app: Flask, day_of_calls: list[Call]
) -> None:
    text, samples = scrape(app)
    requests = {
        dict(labels)["route"]: count
        for (name, labels), count in samples.items()
        if name == "ivr_webhook_requests_total" and dict(labels)["status"] == "200"
    }
    keyed = sum(len([r for r in call.requests if "/voice/keys" in r.url]) for call in day_of_calls)
    assert requests["/voice"] == 8
    assert requests["/voice/keys"] == keyed > 30
    assert value(samples, "ivr_webhook_requests_total", route="/voice/status", status="204") == 7
    assert value(samples, "ivr_webhook_duration_seconds_count", route="/voice/keys") == keyed
    assert value(samples, "ivr_webhook_duration_seconds_bucket", route="/voice/keys", le="+Inf") == keyed
    assert "turn=" not in text and "?" not in "".join(requests)  # templates, never a URL as requested


def test_refused_and_unknown_requests_are_counted_by_template_too(
    app: Flask, dial: Callable[..., Call]
) -> None:
    client = app.test_client()
    client.post("/voice/keys?turn=1", data={"CallSid": "CA1", "Digits": "1"})  # unsigned
    client.get("/no/such/page/100000001")
    _, samples = scrape(app)
    assert value(samples, "ivr_webhook_requests_total", route="/voice/keys", status="403") == 1
    assert value(samples, "ivr_webhook_requests_total", route="unmatched", status="404") == 1
    assert not [k for k in samples if "100000001" in str(k)]


def secrets_of(people: list[DemoPerson], calls: list[Call], records: Records) -> list[str]:
    """Everything that tells who called: documents, CPR numbers, mobiles, user IDs, PINs, the
    calling numbers (the call SIDs too, which are no identity but have no place in a label)."""
    found = []
    for person in people:
        found += [d.number for d in person.person.documents]
        found += [person.person.cpr, person.person.cpr.replace("-", "")]
        if person.account:
            found.append(person.account.user_id)
            mobile = person.account.mobile
            found += [mobile, mobile[-8:]] if mobile else []
    found += [c.caller for c in calls] + [c.caller[-8:] for c in calls]
    for text in records.texts_to():
        found += [word for word in text.split() if word.isdigit() and len(word) == 8]  # the PIN
    assert len([s for s in found if s.isdigit() and len(s) == 8]) >= 1
    return found


def test_no_identity_appears_in_the_metrics(
    app: Flask, day_of_calls: list[Call], cases: dict[str, DemoPerson], records: Records
) -> None:
    text, _ = scrape(app)
    for secret in secrets_of(list(cases.values()), day_of_calls, records) + [TOKEN, SECRET]:
        assert secret not in text, secret
    for call in day_of_calls:
        assert call.sid not in text


def test_a_store_that_is_away_leaves_the_process_metrics_and_says_so(app: Flask, settings: Settings) -> None:
    store = app.extensions["ivr"].store
    store.engine.dispose()
    (settings.data_dir / "ivr.sqlite3").unlink()
    (settings.data_dir / "ivr.sqlite3").mkdir()  # the database file is no longer one
    text, samples = scrape(app)
    assert value(samples, "ivr_store_up") == 0
    assert "ivr_calls_started_total" not in text
    assert "ivr_webhook_requests" in text  # the process's own metrics are still served


# -- JSON logs ------------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What `IVR_LOG_FORMAT=json` writes while the test runs."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_json_logs_are_one_object_a_line_with_the_call_and_step_and_no_secret(
    app: Flask,
    json_log: io.StringIO,
    cases: dict[str, DemoPerson],
    records: Records,
    dial: Callable[..., Call],
) -> None:
    calls = []
    ordinary = cases["ordinary"]
    pin = dial("en").choose_language().identify(ordinary, "temporary_pin").answer_questions(ordinary)
    calls.append(pin.hang_up())
    stranger = dial("en").choose_language().press("1").press("123456789#")
    calls.append(stranger.press("1").answer_questions(None).hang_up())
    other = Call(app, TOKEN, BASE, caller="+4520999999", sid=pin.sid)  # someone else's number on that call
    other.post(BASE + "/voice/status", CallStatus="completed")
    app.test_client().post("/voice/keys", data={"CallSid": calls[0].sid})  # unsigned

    lines = json_log.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    access = [e for e in entries if e["logger"] == "ivr.access"]
    webhooks = [e for e in access if not e["route"].startswith("/media/")]
    assert len(webhooks) == sum(len(c.requests) for c in calls) + 2
    media = [e for e in access if e["route"].startswith("/media/")]  # the Greenlandic offer's audio
    assert len(media) == len(calls) and all(e["status"] == 200 for e in media)
    keys = [e for e in webhooks if e["route"] == "/voice/keys" and e.get("call_sid") == pin.sid]
    assert keys and all(e["status"] == 200 and isinstance(e["duration_ms"], float) for e in keys)
    assert {"choose_language", "main_menu", "document_number", "confirm_document", "question"} <= {
        e["step"] for e in keys
    }
    refused = [e for e in entries if "another number" in e["message"]]
    assert refused and refused[0]["call_sid"] == pin.sid and refused[0]["level"] == "WARNING"

    text = json_log.getvalue()
    for secret in secrets_of([ordinary], calls, records) + ["123456789", TOKEN, SECRET]:
        assert secret not in text, secret


def test_the_metrics_read_the_same_from_postgresql(postgres_url: str, tmp_path: Path, clock: Clock) -> None:
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("DROP DATABASE IF EXISTS ivr_metrics WITH (FORCE)")
        connection.exec_driver_sql("CREATE DATABASE ivr_metrics")
    url = sa.make_url(postgres_url).set(database="ivr_metrics").render_as_string(hide_password=False)
    settings = Settings(
        data_dir=tmp_path / "data",
        public_base_url=BASE,
        twilio_auth_token=TOKEN,
        secret_key=SECRET,
        database_url=url,
        demo_backend_database_url=url,
    )
    app = create_app(settings, clock=clock)
    try:
        people = {p.case: p for p in app.extensions["ivr.people"] if p.case}
        ordinary, licence_only = people["ordinary"], people["licence_only"]

        def dial(caller: str) -> Call:
            return Call(app, TOKEN, BASE, language="en", caller=caller).dial().choose_language()

        dial("+4520000001").identify(ordinary, "temporary_pin").answer_questions(ordinary).hang_up()
        for n in range(3):
            dial(f"+452000001{n}").identify(licence_only, "user_id").answer_questions(None).hang_up()
        dial("+4520000002").press("1").hang_up()  # gone at the document number
        queued = dial("+4520000003").press("0")
        clock.advance(seconds=90)
        _, samples = scrape(app)
        assert value(samples, "ivr_store_up") == 1
        assert value(samples, "ivr_calls_started_total") == 6
        assert value(samples, "ivr_calls_finished_total", journey="temporary_pin", step="pin_sent") == 1
        assert value(samples, "ivr_calls_finished_total", journey="user_id", step="cannot_verify") == 3
        assert value(samples, "ivr_calls_abandoned_total", step="document_number") == 1
        assert value(samples, "ivr_calls_handed_over_total", reason="caller_request") == 1
        assert value(samples, "ivr_verifications_total", channel="line", result="passed") == 1
        assert value(samples, "ivr_verifications_total", channel="line", result="failed") == 2
        assert value(samples, "ivr_verifications_total", channel="line", result="locked") == 1
        assert value(samples, "ivr_sms_total", status="sent", delivery="none") == 1
        assert value(samples, "ivr_agent_queue_length") == 1
        assert value(samples, "ivr_agent_queue_longest_wait_seconds") == 90
        assert queued.queued
    finally:
        app.extensions["ivr"].store.engine.dispose()
        app.extensions["ivr"].services.backend._engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql("DROP DATABASE IF EXISTS ivr_metrics WITH (FORCE)")
        admin.dispose()


def test_an_empty_metrics_port_means_no_metrics_server(monkeypatch) -> None:
    """`IVR_METRICS_PORT=` (as an env file or compose leaves it) is off, not a bad port."""
    monkeypatch.setenv("IVR_METRICS_PORT", "")
    assert Settings().metrics_port is None
    monkeypatch.setenv("IVR_METRICS_PORT", "0")
    with pytest.raises(ValueError, match="metrics_port"):
        Settings()


def test_the_metrics_port_serves_the_metrics_and_nothing_else(app: Flask) -> None:
    """The scrape answers at /metrics; any other path (a port scan, a typo) gets 404, not a copy."""
    import socket
    import urllib.error
    import urllib.request

    from ivr import metrics

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve(app.extensions["ivr.metrics"], "127.0.0.1", port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        families = {f.name for f in text_string_to_metric_families(answer.read().decode())}
    assert {"ivr_calls_finished", "ivr_agent_queue_length"} <= families
    for path in ("/", "/metrics/", "/favicon.ico", "/voice"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
        assert refused.value.code == 404
        refused.value.close()
