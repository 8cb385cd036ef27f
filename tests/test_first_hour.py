"""The first hour's commands, run as a newcomer runs them: from another directory, on another
port, with a typo in a setting, on the test suite's fixed clock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ivr.cli import main
from tests.conftest import OPEN_TIME
from tests.shells import SERVER_TOKEN, Shell, clean_environment, free_port, refused

READERS = [("outbox",), ("escalations",), ("audit",), ("locks",), ("agents", "list"), ("demo", "people")]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reading_command_elsewhere_says_where_it_looked_and_makes_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in clean_environment(tmp_path / "unused").items() if k != "IVR_DATA_DIR"}
    done = Shell(elsewhere, env).run(*command)
    lines = refused(done, str(elsewhere / "var" / "ivr.sqlite3"), "IVR_DATA_DIR")
    assert "no line's store" in lines[0]
    assert list(elsewhere.iterdir()) == []  # no new `var/`, no new secret key


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_directory_that_happens_to_be_called_var_is_not_the_lines_data(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "var" / "log").mkdir(parents=True)
    (tmp_path / "var").chmod(0o755)
    env = {k: v for k, v in clean_environment(tmp_path / "unused").items() if k != "IVR_DATA_DIR"}
    refused(Shell(tmp_path, env).run(*command), "IVR_DATA_DIR")
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["log"]  # no store, no key
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o755


def test_a_refused_demo_build_makes_no_data_directory(shell: Shell) -> None:
    done = shell.run("demo", "build", "--people", "5")
    assert done.returncode == 2 and "at least 20" in done.stderr
    assert not Path(shell.env["IVR_DATA_DIR"]).exists()


def test_a_reading_command_pointed_at_the_data_finds_it(tmp_path: Path) -> None:
    env = clean_environment(tmp_path / "data")
    made = Shell(tmp_path, env).run("db", "upgrade")
    assert made.returncode == 0, made.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = Shell(elsewhere, env).run("outbox")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "(none)\n"
    assert list(elsewhere.iterdir()) == []


def test_call_with_url_reaches_a_line_started_on_another_port(line: Shell) -> None:
    """`make run PORT=8090` gives the line IVR_PUBLIC_BASE_URL=http://127.0.0.1:8090; the shell
    that runs `ivr call --url http://127.0.0.1:8090` has no IVR_PUBLIC_BASE_URL of its own."""
    url = line.env["IVR_PUBLIC_BASE_URL"]
    shell = Shell(line.cwd, {k: v for k, v in line.env.items() if k != "IVR_PUBLIC_BASE_URL"})
    done = shell.run("call", "--url", url, "--keys", "2 0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"[calling the line at {url} from +452000")
    assert "queued for an agent" in done.stdout


def test_a_refused_signature_names_the_fix(line: Shell) -> None:
    url = line.env["IVR_PUBLIC_BASE_URL"]
    done = line.run("call", "--url", url, "--public-url", "https://elsewhere.example", "--keys", "2 0")
    assert done.returncode == 1
    first, fix = done.stderr.splitlines()[-2:]
    assert "answered HTTP 403" in first
    assert fix.startswith("ivr call: fix:") and "--public-url" in fix and "IVR_PUBLIC_BASE_URL" in fix
    assert "https://elsewhere.example" in fix and SERVER_TOKEN not in done.stderr


def test_call_without_url_says_which_line_it_calls(shell: Shell) -> None:
    made = shell.run("db", "upgrade")
    assert made.returncode == 0, made.stderr
    port = free_port()  # nothing answers there
    done = shell.run("call", "--keys", "2 0", IVR_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stdout.startswith(f"[calling the line at http://127.0.0.1:{port} from +452000")
    assert f"cannot reach http://127.0.0.1:{port}/voice" in done.stderr


def on_a_taken_port(shell: Shell, program: str) -> tuple[int, list[str]]:
    """`ivr PROGRAM --port P` with P in use: P, and what the program said."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = shell.run(program, "--port", str(port), timeout=30)
    return port, refused(done, f"127.0.0.1:{port}")


def test_the_desk_on_a_port_in_use_names_the_desk_and_its_make_variable(shell: Shell) -> None:
    _, lines = on_a_taken_port(shell, "desk")
    assert lines[0].startswith("ivr desk: cannot listen") and "in use" in lines[0]
    assert lines[1].startswith("ivr desk: fix:") and "DESK_PORT=" in lines[1] and " PORT=" not in lines[1]


def test_the_line_on_a_port_in_use_advises_a_port_that_is_not_the_desks(shell: Shell) -> None:
    port, lines = on_a_taken_port(shell, "serve")
    assert lines[0].startswith("ivr serve: cannot listen")
    suggested = int(lines[1].split("make run PORT=")[1].split(")")[0])
    assert suggested > port and suggested not in (8080, 8081)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # free, as said


def test_the_suggested_port_is_never_the_other_programs_default() -> None:
    from ivr.misconfig import _free_port_after

    assert _free_port_after(8071) not in (8080, 8081)
    assert _free_port_after(8070) not in (8080, 8081)


def test_a_misspelt_setting_in_the_environment_is_named_with_the_nearest(shell: Shell) -> None:
    done = shell.run("flows", "table", IVR_QUESTIONS_ASKD="3")
    assert done.returncode == 0, done.stderr
    warning = [said for said in done.stderr.splitlines() if "IVR_QUESTIONS_ASKD" in said]
    assert len(warning) == 1
    assert "not a setting" in warning[0] and "did you mean IVR_QUESTIONS_ASKED?" in warning[0]


def test_a_misspelt_setting_in_dot_env_is_named_too(shell: Shell) -> None:
    (shell.cwd / ".env").write_text("IVR_SMS_BAKEND=embedded\nIVR_DEMO_SEED=7\n")
    done = shell.run("flows", "table")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "ivr: warning: IVR_SMS_BAKEND in .env is not a setting of the line and is ignored "
        "(did you mean IVR_SMS_BACKEND?)."
    ]


def test_the_deployments_and_the_tests_own_names_are_no_typos(shell: Shell) -> None:
    done = shell.run(
        "flows", "table", IVR_PUBLIC_HOST="ivr.example.test", IVR_DESK_BIND="10.0.0.1", IVR_TEST_ANYTHING="1"
    )
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr


def test_demo_build_dates_the_register_by_the_clock_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_DATA_DIR", str(tmp_path / "data"))
    assert main(["demo", "build", "--people", "20"], clock=lambda: OPEN_TIME) == 0
    assert f"as of {OPEN_TIME.date()}" in capsys.readouterr().out


def test_the_wall_clock_is_as_far_ahead_as_the_run_says(tmp_path: Path) -> None:
    """`make test-ahead` moves the wall clock (CLOCK_AHEAD_DAYS) here and in the processes the
    tests start, by the same amount in each, however long a process idles before it first reads
    the clock; the file system's times stay real, so they show how far."""
    ahead = float(os.environ.get("CLOCK_AHEAD_DAYS") or 0) * 86400
    marker = tmp_path / "now"
    marker.write_text("")
    assert abs(time.time() - marker.stat().st_mtime - ahead) < 0.5
    idles_first = (
        "import datetime, pathlib, sys, time; time.sleep(1.5); p = pathlib.Path(sys.argv[1]);"
        " p.write_text(''); print(datetime.datetime.now().timestamp() - p.stat().st_mtime)"
    )
    child = subprocess.run(
        [sys.executable, "-c", idles_first, str(tmp_path / "child")],
        capture_output=True,
        text=True,
        check=True,
        env=clean_environment(tmp_path / "data"),
    )
    assert abs(float(child.stdout) - ahead) < 0.5


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("IVR_PORT", "make run PORT="),
        ("IVR_DESK_PORT", "make run DESK_PORT="),
        ("IVR_REQUIRE_POSTGRES", "IVR_TEST_REQUIRE_POSTGRES"),
    ],
)
def test_a_flag_or_an_old_test_switch_set_as_a_variable_is_named_with_what_to_use(
    shell: Shell, name: str, hint: str
) -> None:
    done = shell.run("flows", "table", **{name: "1"})
    (warning,) = done.stderr.splitlines()
    assert name in warning and hint in warning and "METRICS" not in warning


def test_with_json_logs_the_warning_is_json_too(shell: Shell) -> None:
    import json

    done = shell.run("flows", "table", IVR_QUESTIONS_ASKD="3", IVR_LOG_FORMAT="json")
    (line,) = done.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and "IVR_QUESTIONS_ASKD" in entry["message"]
