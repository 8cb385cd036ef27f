"""The `ivr` console command, run as an operator would: in a shell, against a real server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.cli import main
from tests.shells import (
    IVR,
    PIN_KEYS,
    REPO,
    Shell,
    clean_environment,
    free_port,
    refused,
    wait_until_answering,
)

# -- flows check ------------------------------------------------------------------------------------


def test_flows_check_says_ok(shell: Shell) -> None:
    done = shell.run("flows", "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ")
    assert "languages da, en" in done.stdout


def test_flows_check_names_the_file_and_step_of_a_broken_flow(shell: Shell, tmp_path: Path) -> None:
    flows = tmp_path / "broken_flows"
    shutil.copytree(REPO / "call_flows", flows)
    path = flows / "support.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["steps"]["confirm_document"]["options"]["2"]["next"] = "enter_docment_again"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    done = shell.run("flows", "check", IVR_FLOWS_DIR=str(flows))
    assert done.returncode != 0
    assert f"{path}: step 'confirm_document' leads to unknown step 'enter_docment_again'" in done.stderr
    assert "Traceback" not in done.stderr
    assert "ok" not in done.stdout


# -- the demo register ------------------------------------------------------------------------------


def test_demo_people_lists_a_thousand_documented_people(made: Shell) -> None:
    people = made.json("demo", "people")
    assert len(people) >= 1000
    keys = {
        "cpr",
        "name",
        "birth_date",
        "sex",
        "documents",
        "address",
        "mobile",
        "mobile_registered_at",
        "user_id",
        "has_mitid",
        "case",
        "mother_birth_year",
        "father_birth_year",
        "spouse_birth_date",
        "children_birth_dates",
        "backend_fails",
    }
    for person in people:
        assert keys <= person.keys()
        assert re.fullmatch(r"\d{10}", person["cpr"])
        assert set(person["address"]) == {"street", "house_number", "postcode", "city", "moved_in"}
        dt.date.fromisoformat(person["birth_date"])
        for document in person["documents"]:
            digits = {"passport": 9, "driving_licence": 8}[document["type"]]
            assert re.fullmatch(rf"\d{{{digits}}}", document["number"])
        if person["mobile"]:
            assert person["mobile"].startswith(("+45", "+299"))
            dt.datetime.fromisoformat(person["mobile_registered_at"])
    first = people[0]
    assert (first["case"], first["name"], first["mobile"]) == ("ordinary", "Mette Hansen", "+4520123451")
    assert first["documents"] == [{"type": "passport", "number": "100000001"}]
    cprs = [p["cpr"] for p in people]
    assert len(set(cprs)) == len(cprs)


def test_demo_people_prints_a_table_for_people_too(made: Shell) -> None:
    done = made.run("demo", "people")
    assert done.returncode == 0, done.stderr
    assert "Mette Hansen" in done.stdout and "passport 100000001" in done.stdout


def test_demo_build_replaces_the_register_the_line_then_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_DATA_DIR", str(tmp_path / "data"))  # in this process: quicker
    assert main(["demo", "build", "--people", "30", "--seed", "7"]) == 0
    assert "built the demo register: 30 people, seed 7" in capsys.readouterr().out
    assert main(["demo", "people", "--json"]) == 0
    people = json.loads(capsys.readouterr().out)
    assert len(people) == 30  # what was built, not IVR_DEMO_PEOPLE's 1,000
    assert people[0]["documents"] == [{"type": "passport", "number": "100000001"}]
    assert main(["demo", "people", "--json", "--first", "9"]) == 0
    assert json.loads(capsys.readouterr().out) == people[:9]
    assert main(["demo", "build", "--people", "5"]) == 2
    assert "at least 20" in capsys.readouterr().err


# -- calling the running line -----------------------------------------------------------------------


def test_a_scripted_call_gets_a_temporary_pin_by_sms(line: Shell) -> None:
    done = line.run("call", "--keys", PIN_KEYS)
    assert done.returncode == 0, done.stderr
    assert "Temporary PIN code texted to your mobile ending in 5, 1." in done.stdout
    assert "[the line hangs up]" in done.stdout

    outbox = line.json("outbox")
    assert len(outbox) == 1
    sms = outbox[0]
    assert (sms["to"], sms["kind"], sms["status"]) == ("+45 …51", "temporary_pin", "sent")
    assert sms["demo_phone"] == "+4520123451"  # what the demo phone received: the PIN is there only
    code = re.search(r"(?<!\d)\d{8}(?!\d)", sms["text"])
    assert code is not None, sms["text"]

    # the code is in the SMS and nowhere else the operator's tools show
    assert code.group(0) not in done.stdout
    audit = line.run("audit", "--json")
    assert audit.returncode == 0, audit.stderr
    assert "sms_sent" in audit.stdout
    for secret in (code.group(0), "100000001", "0503851234"):
        assert secret not in audit.stdout


def test_pressing_0_puts_the_call_in_the_agents_list(line: Shell) -> None:
    done = line.run("call", "--keys", "2 0")
    assert done.returncode == 0, done.stderr
    assert "queued for an agent" in done.stdout

    escalations = [e for e in line.json("escalations") if e["reason"] == "caller_request"]
    assert len(escalations) == 1
    context = {k: escalations[0][k] for k in ("language", "intent", "verification", "document", "step")}
    assert context == {
        "language": "en",
        "intent": None,
        "verification": "not_started",
        "document": None,
        "step": "agent_requested",
    }
    assert escalations[0]["call_sid"].startswith("CA")


def test_calling_with_the_wrong_auth_token_is_a_clear_error(line: Shell) -> None:
    done = line.run("call", "--keys", "2 0", IVR_TWILIO_AUTH_TOKEN="not-the-servers-token")
    assert done.returncode == 1
    assert "ivr call: POST /voice answered HTTP 403" in done.stderr
    assert "signature" in done.stderr
    assert "Traceback" not in done.stderr


def test_keys_a_phone_cannot_send_are_refused_before_dialling(shell: Shell) -> None:
    done = shell.run("call", "--url", "http://127.0.0.1:9", "--keys", "2 _ 12ab# ? 1")
    assert done.returncode == 2
    assert "ivr call: --keys entry '12ab#' cannot be keyed: 'ab' are not on a phone keypad" in done.stderr
    assert "cannot reach" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_an_interactive_call_names_what_it_refused_and_what_a_menu_did_not_take(line: Shell) -> None:
    done = line.run("call", stdin="abc\n12\n")
    assert done.returncode == 0, done.stderr
    refused = "[refused 'abc': 'abc' are not on a phone keypad (0-9, * and #); nothing was sent, key again]"
    assert refused in done.stdout
    assert "[sent 1; 2 was ignored: this menu takes one key]" in done.stdout
    assert done.stdout.count("keys> ") == 3  # abc (asked again), 12, then the end of input
    assert done.stdout.count("[waiting for keys: up to 1]") == 2  # the language menu, then Danish
    assert done.stdout.rstrip().endswith("[caller hangs up]")


def _read_until(stream: Any, text: str, timeout: float) -> str:
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} within {timeout} s: {seen.decode()!r}"
        if select.select([stream], [], [], left)[0]:
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"output ended before {text!r}: {seen.decode()!r}"
            seen += chunk
    return seen.decode()


def test_ctrl_c_hangs_up_an_interactive_call_and_exits_130(line: Shell) -> None:
    started = {e["call_sid"] for e in line.json("audit") if e["event"] == "call_started"}
    phone = subprocess.Popen(
        [IVR, "call"],
        cwd=line.cwd,
        env=line.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As at a terminal: a shell's background job (a CI runner's, say) starts with Ctrl-C ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        heard = _read_until(phone.stdout, "keys> ", timeout=60)
        phone.send_signal(signal.SIGINT)
        rest, errors = phone.communicate(timeout=30)
    finally:
        if phone.poll() is None:
            phone.kill()
            phone.wait()
    out = heard + rest.decode()
    assert phone.returncode == 130, errors.decode()
    assert "Traceback" not in errors.decode() and "KeyboardInterrupt" not in errors.decode()
    assert out.endswith("keys> \n[Ctrl-C: the caller hangs up]\n")

    events = line.json("audit")
    (sid,) = {e["call_sid"] for e in events if e["event"] == "call_started"} - started
    ended = [json.loads(e["detail"]) for e in events if e["call_sid"] == sid and e["event"] == "call_ended"]
    assert [e["status"] for e in ended] == ["completed"]


# -- the demo keeps working -------------------------------------------------------------------------

DEMO_CALLER = re.compile(
    r"^\[calling the line at http://127\.0\.0\.1:\d+ from (\+452000\d{4})\]$", re.MULTILINE
)


def test_the_readme_call_can_be_placed_again_and_again(line: Shell) -> None:
    """The line allows 5 verifications per calling number and hour; `ivr call` dials from a new one."""
    callers = []
    for attempt in range(6):
        done = line.run("call", "--keys", PIN_KEYS)
        assert done.returncode == 0, done.stderr
        assert "Temporary PIN code texted to your mobile ending in 5, 1." in done.stdout, (
            attempt,
            done.stdout,
        )
        found = DEMO_CALLER.search(done.stdout)
        assert found is not None, done.stdout
        callers.append(found.group(1))
    assert len(set(callers)) > 1, callers


def test_call_from_a_given_number_keeps_it(line: Shell) -> None:
    done = line.run("call", "--from", "+4520009999", "--keys", "2 0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"[calling the line at {line.env['IVR_PUBLIC_BASE_URL']} from +4520009999]\n"
    )


def test_call_help_says_the_calling_number_is_random_per_call(shell: Shell) -> None:
    done = shell.run("call", "--help")
    assert done.returncode == 0, done.stderr
    assert "random demo number +45 20 00 xx xx, new for each call" in " ".join(done.stdout.split())


# -- make run ---------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_on_another_port_answers_for_that_port(tmp_path: Path) -> None:
    """`make run PORT=...` from another directory, on this test run's environment (no install)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    venv = Path(sys.executable).parent.parent
    make = ["make", "--no-print-directory", "-f", str(REPO / "Makefile"), "-o", "install", "run"]
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*make, f"VENV={venv}", f"PORT={port}", f"DESK_PORT={free_port()}"],
            cwd=tmp_path,
            env=clean_environment(tmp_path / "data"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, its shell and `ivr serve` stop together
        )
        try:
            wait_until_answering(server, base, log_path)
            caller = Shell(tmp_path, clean_environment(tmp_path / "data", IVR_PUBLIC_BASE_URL=base))
            done = caller.run("call", "--keys", "2 0")
            assert done.returncode == 0, done.stderr + log_path.read_text()
            assert "queued for an agent" in done.stdout
            assert f"public URL {base}" in log_path.read_text()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "IVR_PUBLIC_BASE_URL='http://127.0.0.1:8125'"),
        ({"IVR_PUBLIC_BASE_URL": "https://ivr.example.test"}, None),
    ],
    ids=["derived", "set"],
)
def test_make_run_derives_the_public_url_unless_it_is_set(
    tmp_path: Path, env: dict[str, str], expected: str | None
) -> None:
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "-f",
            str(REPO / "Makefile"),
            "-o",
            "install",
            "run",
            "PORT=8125",
        ],
        cwd=tmp_path,
        env=clean_environment(tmp_path / "data", **env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "--port 8125" in done.stdout
    if expected:
        assert expected in done.stdout
    else:
        assert "IVR_PUBLIC_BASE_URL=" not in done.stdout  # the environment's own value reaches the line


def make_run_dry(tmp_path: Path) -> str:
    """What `make run PORT=8125` would run, in a shell with no IVR_* variables."""
    make = ["make", "--no-print-directory", "-n", "-f", str(REPO / "Makefile"), "-o", "install", "run"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    done = subprocess.run(
        [*make, "PORT=8125"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(
    "line",
    ["IVR_PUBLIC_BASE_URL=https://ivr.example.test", "ivr_public_base_url = https://ivr.example.test"],
)
def test_make_run_leaves_the_public_url_of_dot_env_alone_however_it_is_spelt(
    tmp_path: Path, line: str
) -> None:
    (tmp_path / ".env").write_text(line + "\n")
    assert "IVR_PUBLIC_BASE_URL=" not in make_run_dry(tmp_path)  # the line reads .env's own


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_keeps_the_opening_hours_of_dot_env(tmp_path: Path) -> None:
    assert "IVR_OPENING_HOURS='" in make_run_dry(tmp_path)  # around the clock, for the demo
    (tmp_path / ".env").write_text('IVR_OPENING_HOURS={"weekly":{"mon":"09:00-17:00"}}\n')
    assert "IVR_OPENING_HOURS=" not in make_run_dry(tmp_path)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_stops_and_says_so_when_the_desk_cannot_start(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        desk_port = taken.getsockname()[1]
        done = subprocess.run(
            ["make", "--no-print-directory", "-f", str(REPO / "Makefile"), "-o", "install", "run"]
            + [f"VENV={venv}", f"PORT={free_port()}", f"DESK_PORT={desk_port}"],
            cwd=tmp_path,
            env=clean_environment(tmp_path / "data"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"ivr desk: cannot listen on 127.0.0.1:{desk_port}" in done.stderr


# -- operator output --------------------------------------------------------------------------------


def _columns_line_up(lines: list[str], headers: list[str]) -> None:
    """Every row has a cell starting where each header starts, after a gap of at least two spaces."""
    header = lines[0]
    starts = []
    for name in headers:
        starts.append(header.index(name, starts[-1] if starts else 0))
    assert starts[0] == 0
    for row in lines[1:]:
        for start in starts[1:]:
            assert row[start - 2 : start] == "  " and row[start] != " ", (start, row)


def test_outbox_escalations_and_audit_have_aligned_headers(line: Shell) -> None:
    assert line.run("call", "--keys", PIN_KEYS).returncode == 0
    assert line.run("call", "--keys", "2 0").returncode == 0
    for command, headers in (
        ("outbox", ["time", "kind", "to", "status", "delivery", "error", "demo phone", "text"]),
        ("escalations", ["created at", "call sid", "language", "intent", "verification", "reason"]),
        ("audit", ["at", "call sid", "event", "detail"]),
    ):
        done = line.run(command)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) >= 2, done.stdout
        _columns_line_up(lines, headers)


PEOPLE_HEADERS = ["case", "name", "CPR", "documents", "mobile", "user ID", "postcode", "house no."]
PEOPLE_HEADERS += ["moved in", "mother born", "father born", "spouse born (ddmmyyyy)", "eldest child born"]


def test_demo_people_shows_the_facts_a_demo_caller_needs_in_aligned_columns(made: Shell) -> None:
    done = made.run("demo", "people")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split("  ")[0] == "case"
    _columns_line_up(lines, PEOPLE_HEADERS)
    assert len(lines) == 1 + 1000
    rows = {line.split()[0]: " ".join(line.split()) for line in lines[1:10]}
    assert rows["ordinary"] == (
        "ordinary Mette Hansen 0503851234 passport 100000001 +4520123451 mette.hansen85 "
        "2200 12 2015 1958 1955 17061983 2012"
    )
    assert "passport 100000002, licence 20000002" in rows["passport_and_licence"]
    assert "søren.ærø å{1}!" in rows["exotic_user_id"]
    assert "(no MitID)" in rows["no_mitid"]


# -- misconfiguration: a line or two, naming the setting, exit 2 ------------------------------------

REAL_LOOKING_TOKEN = "f3a9c1d2e4b5a6978877665544332211"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{weekly: mon 9-17}", "is not valid JSON"),
        ('{"weekly": {"mon": "25:00-26:00"}}', "'25:00-26:00' is not in the form HH:MM-HH:MM"),
        ('{"timezone": "Europe/Atlantis"}', "unknown timezone 'Europe/Atlantis'"),
        ('{"weekly": {"mon": "09:00-17:00"}, "lunch": "12:00-13:00"}', "lunch"),
        ('{"weekly": {}}', "names no day"),
    ],
    ids=["not JSON", "bad hours", "bad timezone", "unknown key", "no day"],
)
def test_bad_opening_hours_are_named(shell: Shell, value: str, problem: str) -> None:
    lines = refused(shell.run("demo", "people", IVR_OPENING_HOURS=value), "IVR_OPENING_HOURS")
    assert problem in lines[0]


def test_other_bad_settings_are_named_with_their_value(shell: Shell) -> None:
    lines = refused(shell.run("outbox", IVR_QUESTIONS_ASKED="nine"), "IVR_QUESTIONS_ASKED")
    assert "IVR_QUESTIONS_ASKED='nine'" in lines[0] and "integer" in lines[0]
    refused(shell.run("audit", IVR_SMS_BACKEND="pigeon"), "IVR_SMS_BACKEND", "'embedded' or 'twilio'")
    refused(shell.run("escalations", IVR_QUESTIONS_PASS_MARK="5"), "IVR_QUESTIONS_PASS_MARK")
    refused(shell.run("outbox", IVR_SMS_BACKEND="twilio"), "IVR_DEMO_SMS_TO", "your own phone")


def test_a_public_url_with_the_demo_token_is_refused_in_two_lines(shell: Shell) -> None:
    done = shell.run("serve", "--port", str(free_port()), IVR_PUBLIC_BASE_URL="https://ivr.example.com")
    refused(done, "IVR_PUBLIC_BASE_URL='https://ivr.example.com'", "IVR_TWILIO_AUTH_TOKEN")
    assert "embedded-demo-token" not in done.stderr
    assert "MitID Support line on" not in done.stderr


def test_secrets_are_never_repeated(shell: Shell) -> None:
    secrets_given = {
        "IVR_TWILIO_AUTH_TOKEN": REAL_LOOKING_TOKEN,
        "IVR_SECRET_KEY": "my-secret-key-value-long-enough-for-the-line-0123",
        "IVR_DATABASE_URL": f"postgresql+psycopg://ivr:db-pass-word@127.0.0.1:{free_port()}/ivr",
    }
    done = shell.run("audit", IVR_QUESTIONS_ASKED="0", **secrets_given)  # one bad, plain setting
    refused(done, "IVR_QUESTIONS_ASKED")
    unreachable = shell.run("audit", **secrets_given)  # the database is not there
    refused(unreachable, "IVR_DATABASE_URL")
    for value in [*secrets_given.values(), "db-pass-word"]:
        assert value not in done.stderr + unreachable.stderr


def test_a_shared_database_without_a_shared_secret_key_is_refused(shell: Shell) -> None:
    """Two machines each keeping a key of their own would count limits and locks apart."""
    url = f"postgresql+psycopg://ivr:db-pass-word@127.0.0.1:{free_port()}/ivr"
    lines = refused(shell.run("serve", "--port", str(free_port()), IVR_DATABASE_URL=url), "IVR_SECRET_KEY")
    assert "the same on each" in lines[0]
    assert "db-pass-word" not in "".join(lines)
    assert not (shell.cwd / "data" / "secret.key").exists()  # refused before making one


def test_a_data_dir_that_cannot_be_made_is_named(shell: Shell, tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    for data_dir, problem in ((a_file, "is a file"), (a_file / "data", "Not a directory")):
        lines = refused(shell.run("db", "upgrade", IVR_DATA_DIR=str(data_dir)), f"IVR_DATA_DIR={data_dir}")
        assert problem in lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any directory")
def test_a_data_dir_without_write_permission_is_named(shell: Shell, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        lines = refused(shell.run("outbox", IVR_DATA_DIR=str(locked)), f"IVR_DATA_DIR={locked}")
        assert "Permission denied" in lines[0]
    finally:
        locked.chmod(0o700)


def test_serve_on_a_port_in_use_says_so_before_claiming_to_run(shell: Shell) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = shell.run("serve", "--port", str(port), timeout=30)
    lines = refused(done, f"127.0.0.1:{port}", "--port")
    assert "in use" in lines[0]
    assert "MitID Support line on" not in done.stderr


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "99999"), ("--port", "0"), ("--threads", "0"), ("--port", "http")]
)
def test_serve_refuses_impossible_numbers(shell: Shell, flag: str, value: str) -> None:
    done = shell.run("serve", flag, value)
    assert done.returncode == 2
    assert f"argument {flag}: " in done.stderr and value in done.stderr
    assert "Traceback" not in done.stderr
