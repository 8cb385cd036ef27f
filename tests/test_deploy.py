"""The production shape's files, kept right without a container engine: compose.yaml against the
Compose file schema, every command and setting it names against the `ivr` command and its
settings, the Dockerfile and the proxy's configuration against the app's routes; then the
compose services' own commands, run here on a throwaway PostgreSQL, answer as they must.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from flask import Flask

from ivr.cli import _parser
from ivr.settings import Settings
from tests.postgres import own_database
from tests.shells import IVR, free_port

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "tests" / "data" / "compose_spec" / "compose_spec.json"
SETTINGS = {f"IVR_{name.upper()}" for name in Settings.model_fields}
# What an operator must give; compose refuses to start without each (`${NAME:?why}`).
REQUIRED = (
    "IVR_PUBLIC_HOST",
    "IVR_DB_PASSWORD",
    "IVR_SECRET_KEY",
    "IVR_TWILIO_ACCOUNT_SID",
    "IVR_TWILIO_AUTH_TOKEN",
)
OPERATOR = {
    "IVR_PUBLIC_HOST": "ivr.example.test",
    "IVR_DB_PASSWORD": "compose-test-db-password",
    "IVR_SECRET_KEY": "compose-test-secret-key-0123456789abcdef0123456789",
    "IVR_TWILIO_ACCOUNT_SID": "AC11111111111111111111111111111111",
    "IVR_TWILIO_AUTH_TOKEN": "compose-test-auth-token",
    "IVR_DEMO_SMS_TO": "+4571000000",
}
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def ivr_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("build")}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error}, and $$ for $."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind and kind.endswith("?"):
            raise LookupError(f"{name}: {rest}")
        return rest if kind else ""

    return VARIABLE.sub(one, text)


def command(service: dict[str, Any]) -> list[str]:
    """The service's `ivr ...` command line (the sweep's is inside `sh -c`)."""
    argv: list[str] = service["command"]
    if argv[:2] == ["sh", "-c"]:
        inner = re.search(r"\bivr [a-z ]+?(?=;|&&|$)", argv[2])
        assert inner, argv
        return shlex.split(inner.group(0))
    return argv


# -- compose.yaml, read --------------------------------------------------------------------------


def test_compose_yaml_is_a_valid_compose_file() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    broken = compose()
    broken["services"]["line1"]["helthcheck"] = {"test": ["CMD", "true"]}
    assert not validator.is_valid(broken)  # the schema does catch a misspelt key


def test_every_ivr_service_runs_an_ivr_command_that_exists() -> None:
    parser = _parser()
    for name, service in ivr_services().items():
        argv = command(service)
        assert argv[0] == "ivr", name
        parser.parse_args(argv[1:])  # exits (fails the test) on an unknown command or flag
    assert set(ivr_services()) == {"migrate", "line1", "line2", "desk", "sweep"}
    assert command(services()["migrate"]) == ["ivr", "db", "upgrade"]
    assert command(services()["sweep"]) == ["ivr", "sweep"]
    assert command(services()["desk"])[:2] == ["ivr", "desk"]
    assert command(services()["line1"])[:2] == command(services()["line2"])[:2] == ["ivr", "serve"]


def test_every_setting_compose_and_the_dockerfile_give_is_one_ivr_reads() -> None:
    named = {key for s in ivr_services().values() for key in s["environment"] if key.startswith("IVR_")}
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    named |= set(re.findall(r"\b(IVR_[A-Z_]+)=", dockerfile))
    assert named - SETTINGS == set()
    assert {"IVR_DATABASE_URL", "IVR_SECRET_KEY", "IVR_PUBLIC_BASE_URL", "IVR_TWILIO_AUTH_TOKEN"} <= named
    assert {"IVR_METRICS_PORT", "IVR_LOG_FORMAT", "IVR_FLOWS_DIR", "IVR_PROMPTS_DIR"} <= named


def test_secrets_have_no_default_and_every_server_shares_one_store_and_key() -> None:
    text = (REPO / "compose.yaml").read_text(encoding="utf-8")
    for name in REQUIRED:
        assert re.search(r"\$\{" + name + r":\?[^}]+\}", text), f"{name} must be required"
        assert not re.search(r"\$\{" + name + r":-", text), f"{name} must have no default"
    environments = [s["environment"] for s in ivr_services().values()]
    for key in ("IVR_DATABASE_URL", "IVR_SECRET_KEY", "IVR_PUBLIC_BASE_URL", "IVR_TWILIO_AUTH_TOKEN"):
        assert len({env[key] for env in environments}) == 1, key
    assert environments[0]["IVR_DATABASE_URL"].startswith("postgresql+psycopg://")
    with pytest.raises(LookupError, match="IVR_SECRET_KEY"):
        interpolate(environments[0]["IVR_SECRET_KEY"], {})


def test_only_the_proxy_faces_the_public_and_the_desk_and_metrics_stay_inside() -> None:
    spec, all_services = compose(), services()
    assert spec["networks"]["internal"] == {"internal": True}
    published = {name: s["ports"] for name, s in all_services.items() if "ports" in s}
    assert set(published) == {"proxy", "desk"}
    assert published["proxy"] == ["80:80", "443:443"]
    (desk_port,) = published["desk"]
    assert desk_port.startswith("${IVR_DESK_BIND:-127.0.0.1}:")  # loopback unless told otherwise
    assert "edge" not in all_services["desk"]["networks"]
    assert all_services["postgres"]["networks"] == ["internal"]
    for name in ("line1", "line2"):
        line = all_services[name]
        assert set(line["networks"]) == {"edge", "internal"}
        assert "ports" not in line
        metrics_port = line["environment"]["IVR_METRICS_PORT"]
        assert metrics_port != command(line)[command(line).index("--port") + 1]
    assert set(all_services["proxy"]["networks"]) == {"edge"}


def test_the_servers_start_after_the_migrations_and_the_proxy_after_healthy_servers() -> None:
    s = services()
    for name in ("line1", "line2", "desk", "sweep"):
        assert s[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert s["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert s["proxy"]["depends_on"] == {n: {"condition": "service_healthy"} for n in ("line1", "line2")}


# -- the Dockerfile and the proxy --------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_images_are_pinned_to_a_release() -> None:
    images = [arg.split()[0] for op, arg in dockerfile_instructions() if op == "FROM"]
    images += [s["image"] for name, s in services().items() if not s.get("build")]
    assert len(images) == 4
    for image in images:
        name, _, tag = image.partition(":")
        assert re.match(r"^\d+\.\d+\.\d+", tag) or re.match(r"^\d+\.\d+-", tag), image
        assert "latest" not in tag


def test_the_image_runs_ivr_serve_as_a_user_with_a_healthcheck_on_healthz(app: Flask) -> None:
    steps = dockerfile_instructions()
    ops = [op for op, _ in steps]
    final = max(i for i, op in enumerate(ops) if op == "FROM")
    user = [arg for op, arg in steps[final:] if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert ops.index("USER", final) < ops.index("CMD", final)
    cmd = json.loads(next(arg for op, arg in steps[final:] if op == "CMD"))
    assert cmd[:2] == ["ivr", "serve"]
    _parser().parse_args(cmd[1:])
    port = cmd[cmd.index("--port") + 1]
    health = next(arg for op, arg in steps if op == "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/healthz" in health
    assert app.test_client().get("/healthz").status_code == 200
    for op, arg in steps[final:]:
        if op == "COPY" and not arg.startswith("--from"):
            assert (REPO / arg.split()[0]).exists(), arg


def test_the_proxy_passes_on_every_webhook_and_nothing_else(app: Flask) -> None:
    text = (REPO / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    caddy = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddy)
    assert upstreams is not None
    lines = {
        f"{name}:{command(s)[command(s).index('--port') + 1]}"
        for name, s in services().items()
        if name.startswith("line")
    }
    assert set(upstreams.group(1).split()) == lines
    matcher = re.search(r"@webhooks path (.+)", caddy)
    assert matcher is not None
    patterns = matcher.group(1).split()

    def passed(path: str) -> bool:
        return any(path == p or (p.endswith("*") and path.startswith(p[:-1])) for p in patterns)

    rules = [rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]
    # Twilio's webhooks, and the recorded prompts it fetches for <Play>.
    webhooks = [r for r in rules if r.startswith(("/voice", "/sms", "/media"))]
    assert (
        len(webhooks) >= 11
        and all(passed(r) for r in webhooks)
        and any(r.startswith("/media") for r in webhooks)
    )
    assert not [r for r in rules if r not in webhooks and passed(r)]  # not /healthz, /readyz
    health = re.search(r"health_uri (\S+)", caddy)
    # Alive, not ready: with the store down the line still answers (sorry, and an agent); the
    # proxy must not turn that into a 503 by taking every server out.
    assert health is not None and health.group(1) == "/healthz" and "/healthz" in rules
    assert "9100" not in caddy and "8081" not in caddy and "desk" not in caddy
    assert "max_size 64KiB" in caddy  # 65536 bytes, the line's own limit
    assert services()["proxy"]["volumes"][0].startswith("./deploy/Caddyfile:")


# -- the services' commands, run ---------------------------------------------------------------------


@pytest.fixture
def compose_database(postgres_url: str) -> Iterator[str]:
    """A fresh database on the throwaway cluster, as compose's `postgres` service starts empty."""
    with own_database(postgres_url, "ivr_compose", "the compose tests") as url:
        yield url


def service_env(service: dict[str, Any], database_url: str, home: Path) -> dict[str, str]:
    """The service's environment as compose would give it, but the database is the test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    for key, value in service["environment"].items():
        env[key] = interpolate(str(value), OPERATOR)
    for key in ("IVR_DATABASE_URL", "IVR_DEMO_BACKEND_DATABASE_URL"):
        assert "@postgres:5432/ivr" in env[key]
        env[key] = database_url
    if "IVR_METRICS_HOST" in env:
        env["IVR_METRICS_HOST"] = "127.0.0.1"
    return {
        **env,
        "IVR_DATA_DIR": str(home / "data"),
        "IVR_SMS_BACKEND": "embedded",
        "IVR_CALL_CONTROL": "embedded",
    }


def listening(argv: list[str], port: int) -> list[str]:
    argv = [IVR, *argv[1:]]
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    return argv


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> requests.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within 30 s:\n{log.read_text()}")


@pytest.mark.slow
def test_the_compose_services_commands_run_on_postgresql(compose_database: str, tmp_path: Path) -> None:
    s = services()
    done = subprocess.run(
        [IVR, *command(s["migrate"])[1:]],
        env=service_env(s["migrate"], compose_database, tmp_path / "migrate"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    started: list[tuple[subprocess.Popen[bytes], Any]] = []
    try:
        checks = []
        for name in ("line1", "line2", "desk"):
            port = free_port()
            env = service_env(s[name], compose_database, tmp_path / name)
            if "IVR_METRICS_PORT" in env:
                env["IVR_METRICS_PORT"] = str(free_port())
            log_path = tmp_path / f"{name}.log"
            log = log_path.open("w")
            process = subprocess.Popen(
                listening(command(s[name]), port), env=env, stdout=log, stderr=subprocess.STDOUT
            )
            started.append((process, log))
            checks.append((name, port, env, process, log_path))
        for name, port, env, process, log_path in checks:
            if name == "desk":
                assert wait_for(f"http://127.0.0.1:{port}/sign-in", process, log_path).status_code == 200
                continue
            ready = wait_for(f"http://127.0.0.1:{port}/readyz", process, log_path)
            assert (ready.status_code, ready.text) == (200, "ok\n")
            scrape = wait_for(f"http://127.0.0.1:{env['IVR_METRICS_PORT']}/metrics", process, log_path)
            assert "ivr_store_up 1.0" in scrape.text
            first = json.loads(log_path.read_text().splitlines()[0])  # IVR_LOG_FORMAT=json
            assert first["level"] == "INFO"
        swept = subprocess.run(
            [IVR, *command(s["sweep"])[1:]],
            env=service_env(s["sweep"], compose_database, tmp_path / "sweep"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert swept.returncode == 0, swept.stderr
        assert "swept 0 stale call(s)" in swept.stdout
    finally:
        for process, log in started:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
