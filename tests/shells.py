"""`ivr` run as an operator runs it: in a shell with a clean environment, against a real server.

The fixtures `shell` (a fresh directory) and `line` (`ivr serve` on a free port, one per test
module) are registered in conftest.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
IVR = str(Path(sys.executable).with_name("ivr"))
SERVER_TOKEN = "cli-test-auth-token"
PIN_KEYS = "2 2 100000001# 1 ? ? ?"  # English, temporary PIN, Mette Hansen's passport, confirm, answers
ALL_WEEK = json.dumps(
    {
        "weekly": dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "00:00-24:00"),
        "holiday_regions": [],
    }
)


@dataclass
class Shell:
    """Runs `ivr` in a clean environment: no `IVR_*` from outside, no `.env` from the repository."""

    cwd: Path
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 60, stdin: str = "", **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IVR, *args],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )

    def json(self, *args: str) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def clean_environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    return {**env, "IVR_DATA_DIR": str(data_dir), "IVR_OPENING_HOURS": ALL_WEEK, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    return Shell(tmp_path, clean_environment(tmp_path / "data"))


@pytest.fixture
def made(shell: Shell) -> Shell:
    """A shell whose data directory the line has made, as after `make run` (or `ivr db upgrade`)."""
    done = shell.run("db", "upgrade")
    assert done.returncode == 0, done.stderr
    return shell


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """`ivr serve` on a free port; the shell it gives has the same settings, as an operator's would."""
    home = tmp_path_factory.mktemp("line")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_environment(home / "data", IVR_PUBLIC_BASE_URL=base, IVR_TWILIO_AUTH_TOKEN=SERVER_TOKEN)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [IVR, "serve", "--port", str(port)], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until_answering(server, base, home / "server.log")
        yield Shell(home, env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def wait_until_answering(server: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"ivr serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if requests.post(f"{base}/voice", timeout=1).status_code == 403:  # unsigned: refused
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"ivr serve did not answer within 30 s:\n{log.read_text()}")


def refused(done: subprocess.CompletedProcess[str], *names: str) -> list[str]:
    """The command refused its configuration as an operator should see it; its lines on stderr."""
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert 1 <= len(lines) <= 2, done.stderr
    for name in names:
        assert name in done.stderr, done.stderr
    assert "fix" in lines[-1], done.stderr
    assert done.stdout == ""
    return lines
