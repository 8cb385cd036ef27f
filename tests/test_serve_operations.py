"""`ivr serve` as it runs in production: metrics on a port of their own, JSON logs, health.

A real server process (waitress), phoned by `ivr call` as Twilio would; the metrics are scraped
over HTTP from the metrics port, and the server's own output is read back line by line.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.shells import (
    IVR,
    PIN_KEYS,
    SERVER_TOKEN,
    Shell,
    clean_environment,
    free_port,
    wait_until_answering,
)


@dataclass
class Server:
    shell: Shell
    base: str
    metrics: str
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ops")
    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_environment(
        home / "data",
        IVR_PUBLIC_BASE_URL=base,
        IVR_TWILIO_AUTH_TOKEN=SERVER_TOKEN,
        IVR_LOG_FORMAT="json",
        IVR_METRICS_PORT=str(metrics_port),
    )
    log_path = home / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [IVR, "serve", "--port", str(port)], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_until_answering(process, base, log_path)
            yield Server(Shell(home, env), base, f"http://127.0.0.1:{metrics_port}/metrics", log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_a_served_line_has_health_and_no_metrics_on_its_public_port(server: Server) -> None:
    assert requests.get(f"{server.base}/healthz", timeout=5).text == "ok\n"
    assert requests.get(f"{server.base}/readyz", timeout=5).text == "ok\n"
    assert requests.get(f"{server.base}/metrics", timeout=5).status_code == 404


def test_a_served_call_shows_in_the_metrics_port_and_the_json_log_without_secrets(server: Server) -> None:
    before = samples(server.metrics)
    done = server.shell.run("call", "--keys", PIN_KEYS)
    assert done.returncode == 0, done.stderr
    assert "Temporary PIN code texted to your mobile" in done.stdout
    after = samples(server.metrics)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("ivr_calls_finished_total", journey="temporary_pin", step="pin_sent") == 1
    assert grew("ivr_verifications_total", channel="line", result="passed") == 1
    assert grew("ivr_sms_total", status="sent", delivery="none") == 1
    assert grew("ivr_webhook_requests_total", route="/voice", status="200") == 1
    assert grew("ivr_webhook_requests_total", route="/voice/keys", status="200") == 7
    assert grew("ivr_webhook_duration_seconds_count", route="/voice/keys") == 7

    entries = [json.loads(line) for line in server.log.read_text().splitlines()]
    sid = re.search(r"CA[0-9a-f]{32}", server.log.read_text())
    assert sid is not None
    calls = [e for e in entries if e.get("call_sid") == sid.group(0)]
    assert {e["step"] for e in calls if "step" in e} >= {"choose_language", "main_menu", "question"}
    outbox = server.shell.json("outbox")
    pin = re.search(r"(?<!\d)\d{8}(?!\d)", outbox[0]["text"])
    assert pin is not None
    scrape = requests.get(server.metrics, timeout=5).text
    for secret in (pin.group(0), "100000001", "0503851234", "20123451", SERVER_TOKEN):
        assert secret not in server.log.read_text()
        assert secret not in scrape


def test_a_metrics_port_in_use_is_named_before_the_line_claims_to_run(tmp_path: Path) -> None:
    port = free_port()
    env = clean_environment(tmp_path / "data", IVR_METRICS_PORT=str(port))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [IVR, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert f"ivr serve: cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "IVR_METRICS_PORT" in done.stderr
