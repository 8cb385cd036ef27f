"""The proxy's configuration (deploy/Caddyfile) in a real Caddy: valid as committed, and in front
of two `ivr serve` on a throwaway PostgreSQL it passes Twilio's webhooks on and nothing else.

Needs Debian's `caddy` on the PATH (`apt-get install caddy`): without it these tests are
skipped, saying why, unless IVR_TEST_REQUIRE_PROXY=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.shells import ALL_WEEK, IVR, PIN_KEYS, free_port
from tests.test_deploy import OPERATOR, command, compose_database, service_env, services, wait_for

# Read at import: conftest's autouse fixture hides every IVR_* variable from tests.
REQUIRE_PROXY = os.environ.get("IVR_TEST_REQUIRE_PROXY") == "1"
CADDY = shutil.which("caddy")
CADDYFILE = Path(__file__).resolve().parent.parent / "deploy" / "Caddyfile"
__all__ = ["compose_database"]  # the fixture, used below


@pytest.fixture
def caddy() -> str:
    if CADDY is None:
        missing = (
            "no `caddy` on PATH: the proxy's configuration is not tried; `apt-get install caddy` to run it"
        )
        if REQUIRE_PROXY:
            pytest.fail(f"IVR_TEST_REQUIRE_PROXY=1 but {missing}")
        pytest.skip(missing)
    return CADDY


def test_the_committed_caddyfile_is_valid(caddy: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "IVR_PUBLIC_HOST": OPERATOR["IVR_PUBLIC_HOST"]}
    done = subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stdout + done.stderr


class Started:
    """Processes started by a test, stopped (and their logs closed) at its end."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.processes: list[tuple[subprocess.Popen[bytes], object]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
        path = self.home / f"{name}.log"
        log = path.open("w")
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((process, log))
        return process, path

    def stop(self) -> None:
        for process, log in self.processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()  # type: ignore[attr-defined]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    processes = Started(tmp_path)
    yield processes
    processes.stop()


def keys_webhooks(metrics_url: str) -> float:
    text = requests.get(metrics_url, timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "ivr_webhook_requests_total" and s.labels["route"].startswith("/voice")
    )


@pytest.mark.slow
def test_the_proxy_config_fronts_two_line_servers_with_webhooks_only(
    caddy: str, compose_database: str, started: Started, tmp_path: Path
) -> None:
    proxy_port = free_port()
    public = f"http://127.0.0.1:{proxy_port}"  # stands in for https://IVR_PUBLIC_HOST
    s = services()
    migrated = subprocess.run(
        [IVR, "db", "upgrade"], env=service_env(s["migrate"], compose_database, tmp_path), timeout=60
    )
    assert migrated.returncode == 0
    caddyfile = CADDYFILE.read_text(encoding="utf-8")
    lines = []
    for name in ("line1", "line2"):
        port, metrics_port = free_port(), free_port()
        env = service_env(s[name], compose_database, tmp_path / name)
        env.update(IVR_PUBLIC_BASE_URL=public, IVR_METRICS_PORT=str(metrics_port), IVR_OPENING_HOURS=ALL_WEEK)
        argv = [IVR, *command(s[name])[1:]]
        argv[argv.index("--port") + 1], argv[argv.index("--host") + 1] = str(port), "127.0.0.1"
        process, log = started.start(name, argv, env)
        lines.append((env, process, log, f"http://127.0.0.1:{metrics_port}/metrics"))
        caddyfile = caddyfile.replace(f"{name}:8080", f"127.0.0.1:{port}")  # the service's name, here
    for _, process, log, metrics in lines:
        wait_for(metrics, process, log)
    local = tmp_path / "Caddyfile"
    local.write_text("{\n\tadmin off\n}\n" + caddyfile, encoding="utf-8")
    proxy, proxy_log = started.start(
        "proxy",
        [caddy, "run", "--adapter", "caddyfile", "--config", str(local)],
        {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "IVR_PUBLIC_HOST": public},
    )
    deadline = time.monotonic() + 30
    while not _up(public):
        assert proxy.poll() is None, proxy_log.read_text()
        assert time.monotonic() < deadline, proxy_log.read_text()
        time.sleep(0.1)

    # Only the webhooks are passed on; the health, metrics and any other path end at the proxy.
    for path in ("/healthz", "/readyz", "/metrics", "/sign-in", "/"):
        assert requests.get(public + path, timeout=5).status_code == 404, path
    assert requests.post(f"{public}/voice", timeout=5).status_code == 403  # the line's: unsigned
    big = requests.post(
        f"{public}/voice", data=b"x" * 70_000, timeout=5, headers={"X-Twilio-Signature": "a" * 27 + "="}
    )
    # Refused at 64 KiB: by Caddy (413, or 502 when its limit cuts the body it was passing on) or
    # by the line itself (413); never taken.
    assert big.status_code in (413, 502)

    # A call placed at the public address is answered, its webhooks shared by both servers.
    before = [keys_webhooks(metrics) for _, _, _, metrics in lines]
    env = lines[0][0]
    call = subprocess.run(
        [IVR, "call", "--keys", PIN_KEYS], env=env, capture_output=True, text=True, timeout=120
    )
    assert call.returncode == 0, call.stderr
    assert "Temporary PIN code texted to your mobile" in call.stdout
    served = [keys_webhooks(metrics) - was for (_, _, _, metrics), was in zip(lines, before, strict=True)]
    assert sum(served) == 9 and min(served) >= 2, served  # the call, its 7 keys, its status
    assert re.search(r"CA[0-9a-f]{32}", lines[0][2].read_text() + lines[1][2].read_text())


def _up(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True
