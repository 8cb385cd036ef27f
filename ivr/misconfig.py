"""Misconfiguration, said in the one or two lines an operator needs: which setting, what is wrong
with its value, and how to fix it. Never a traceback, never a secret's value.
"""

from __future__ import annotations

import datetime as dt
import difflib
import errno
import functools
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from ivr.settings import Settings

if TYPE_CHECKING:
    from flask import Flask

T = TypeVar("T")

WHERE = "in the environment or .env (README 'Settings' and .env.example list every setting)"


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


# Values never echoed: secrets, and database URLs (they may hold a password).
SENSITIVE = frozenset({"database_url", "demo_backend_database_url"}) | frozenset(
    name for name, field in Settings.model_fields.items() if _is_secret(field.annotation)
)
# `IVR_*` names that are not the line's settings: compose.yaml's and the proxy's (deploy/), and,
# by their prefix IVR_TEST_, the test suite's.
NOT_SETTINGS = frozenset({"IVR_PUBLIC_HOST", "IVR_DB_PASSWORD", "IVR_DESK_BIND"})
# Names that look like settings but are the commands' flags.
FLAGS = {
    "IVR_PORT": "the line's port is a flag: ivr serve --port, or make run PORT=...",
    "IVR_HOST": "the line's address is a flag: ivr serve --host, or make run HOST=...",
    "IVR_THREADS": "threads are a flag: ivr serve --threads",
    "IVR_DESK_PORT": "the desk's port is a flag: ivr desk --port, or make run DESK_PORT=...",
    "IVR_DESK_HOST": "the desk's address is a flag: ivr desk --host",
}
FORMATS = {
    "opening_hours": 'JSON such as {"weekly":{"mon":"09:00-17:00"},"holiday_regions":["DK"]}',
}


class Misconfigured(Exception):
    """A setting or flag the command cannot work with; `lines` say what and how to fix it."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def variable(field: str) -> str:
    """The environment variable of a Settings field: `opening_hours` -> `IVR_OPENING_HOURS`."""
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def from_settings_error(error: SettingsError) -> Misconfigured:
    """A value pydantic-settings could not even parse (complex settings are JSON)."""
    found = re.search(r'field "(\w+)" from source "(\w+)"', str(error))
    if found is None:
        return Misconfigured(f"ivr: bad configuration: {error}", f"ivr: fix it {WHERE}.")
    field, source = found.groups()
    name = variable(field)
    where = " in .env" if source.startswith("DotEnv") else ""
    cause = error.__cause__
    problem = f"is not valid JSON ({cause})" if isinstance(cause, json.JSONDecodeError) else "cannot be read"
    wanted = FORMATS.get(field, "a valid value")
    return Misconfigured(f"ivr: {name}{where} {problem}.", f"ivr: fix: set {name} to {wanted}, {WHERE}.")


def from_validation_error(error: ValidationError) -> Misconfigured:
    """Settings that parsed but are not acceptable: one line per problem, then the fix."""
    lines: list[str] = []
    names: list[str] = []
    across: list[str] = []  # variables named by rules across settings
    for problem in error.errors(include_url=False):
        message = str(problem["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in problem["loc"]]
        if not loc:  # a rule across settings; its message names them
            lines.append(f"ivr: {message}.")
            across += re.findall(r"IVR_[A-Z_]+", message)
            continue
        name = variable(loc[0])
        names.append(name)
        where = f" (at {'.'.join(loc[1:])})" if loc[1:] else _shown(loc[0], problem.get("input"))
        lines.append(f"ivr: {name}{where}: {message}.")
    if across == ["IVR_TWILIO_AUTH_TOKEN"] and len(lines) == 1:  # the demo token on a public URL
        public = _public_url(error)
        return Misconfigured(
            f"ivr: IVR_PUBLIC_BASE_URL={public!r} is not local, and IVR_TWILIO_AUTH_TOKEN is still the "
            "embedded demo token, so anyone could sign webhooks.",
            "ivr: fix: set IVR_TWILIO_AUTH_TOKEN to the Twilio account's auth token, or keep "
            "IVR_PUBLIC_BASE_URL local (http://127.0.0.1:8080) for the demo.",
        )
    unique = ", ".join(dict.fromkeys(names + across)) or "the settings"
    return Misconfigured(*lines, f"ivr: fix {unique} {WHERE}.")


def _shown(field: str, value: object) -> str:
    """`='value'` for a short plain value that may be shown, else nothing."""
    if field in SENSITIVE or not isinstance(value, str | int | float) or len(str(value)) > 80:
        return ""
    return f"={value!r}"


def _public_url(error: ValidationError) -> str:
    for problem in error.errors(include_url=False):
        given: Any = problem.get("input")
        if isinstance(given, dict) and isinstance(given.get("public_base_url"), str):
            return str(given["public_base_url"])
    return str(Settings.model_fields["public_base_url"].default)


def check_data_dir(path: Path) -> None:
    """The data directory exists (or can be made) and takes new files."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        shown = str(path) if path.is_absolute() else f"{path} (that is {path.resolve()})"
        problem = "is a file, not a directory" if isinstance(error, FileExistsError) else error.strerror
        raise Misconfigured(
            f"ivr: IVR_DATA_DIR={shown} cannot be used: {problem or error}.",
            f"ivr: fix: set IVR_DATA_DIR to a directory this user can create and write, {WHERE}.",
        ) from None


def check_database_urls(settings: Settings) -> None:
    """The configured database URLs name a database SQLAlchemy knows (their values stay unsaid)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    for field in ("database_url", "demo_backend_database_url"):
        value = getattr(settings, field)
        try:
            if value is not None and make_url(value).get_dialect().name not in ("sqlite", "postgresql"):
                raise NoSuchModuleError("not SQLite or PostgreSQL")
        except (ArgumentError, NoSuchModuleError) as error:
            problem = (
                "names a database the line does not run on (SQLite or PostgreSQL)"
                if isinstance(error, NoSuchModuleError)
                else "is not a URL"
            )
            raise Misconfigured(
                f"ivr: {variable(field)} {problem}.",
                f"ivr: fix: set it to a SQLAlchemy URL such as postgresql+psycopg://user:password@host/db, "
                f"or leave it unset for SQLite in IVR_DATA_DIR, {WHERE}.",
            ) from None


def cannot_open(error: Exception) -> Misconfigured:
    """Building the line failed on a file or database it was configured to use."""
    if isinstance(error, OSError):
        return Misconfigured(
            f"ivr: cannot use {error.filename or 'a file'}: {error.strerror or error}.",
            f"ivr: fix: check IVR_DATA_DIR, IVR_DATABASE_URL, IVR_FLOWS_DIR and IVR_PROMPTS_DIR {WHERE}.",
        )
    problem = str(getattr(error, "orig", None) or error).splitlines()[0]
    return Misconfigured(
        f"ivr: cannot open the line's database: {problem}.",
        f"ivr: fix: start the database, or correct IVR_DATABASE_URL / IVR_DEMO_BACKEND_DATABASE_URL {WHERE}.",
    )


def cannot_listen(program: str, host: str, port: int, error: Exception, *, make_port: str) -> Misconfigured:
    """`ivr serve` or `ivr desk` could not bind its address (an OSError, or waitress's ValueError
    for a bad host). `make_port` is the `make run` variable that moves this program's port."""
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        free = _free_port_after(port)
        fix = f"stop what listens there, or choose another --port (make run {make_port}={free})"
    elif code == errno.EACCES:
        fix = "choose a --port above 1023, or run with the right to bind low ports"
    else:
        fix = "give a --host this machine has, such as 127.0.0.1 or 0.0.0.0"
    problem = getattr(error, "strerror", None) or str(error).rstrip(".")
    return Misconfigured(
        f"{program}: cannot listen on {host}:{port}: {problem}.",
        f"{program}: fix: {fix}.",
    )


DEFAULT_PORTS = frozenset({8080, 8081})
"""The line's and the desk's own ports: never suggested to the other."""


def _free_port_after(port: int) -> int:
    """A port above `port`, in steps of ten, that is free on loopback now and is neither the
    line's nor the desk's default (the first candidate, should none be free)."""
    import socket

    candidates = [p for p in range(port + 10, min(port + 200, 65535), 10) if p not in DEFAULT_PORTS]
    for candidate in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    return candidates[0] if candidates else 1024


def check_data_found(settings: Settings) -> None:
    """A command that only reads or adds to the line's data finds it (the store a line made),
    rather than making a new store wherever it happens to run: the default data directory,
    `var`, is relative to the directory, and a directory of that name may be anything."""
    from sqlalchemy.engine import make_url

    if settings.shared_store or (settings.data_dir.exists() and not settings.data_dir.is_dir()):
        return  # (a file there is named by check_data_dir)
    store = Path(make_url(settings.sqlalchemy_url).database or "")
    demo = Path(make_url(settings.demo_sqlalchemy_url).database or "")
    if any(path.is_file() for path in (store, demo, settings.data_dir / "secret.key")):
        return
    raise Misconfigured(
        f"ivr: no line's store at {store}: no line has run here with these settings.",
        "ivr: fix: run the command in the directory where the line runs (`make run`), or set "
        f"IVR_DATA_DIR to the line's data directory, {WHERE}.",
    )


def build(factory: Callable[[Settings], T], *, making: bool = False) -> T:
    """Build the line or the desk from the environment's settings; a setting, file or database
    it cannot use is a `Misconfigured` naming it, never a traceback. Only a command that is
    `making` the line's data (a server, a build) creates a data directory that is not there."""
    import sqlalchemy.exc

    settings = Settings()
    if not making:
        check_data_found(settings)
    check_data_dir(settings.data_dir)
    check_database_urls(settings)
    try:
        return factory(settings)
    except (OSError, sqlalchemy.exc.OperationalError) as error:
        raise cannot_open(error) from None


def unknown_variables(environ: Mapping[str, str], env_file: object) -> list[str]:
    """A warning for each `IVR_*` name, in the environment or `.env`, that is no setting (a typo
    would otherwise be ignored in silence), with the nearest setting's name."""
    found = {name: "" for name in environ}
    if isinstance(env_file, str | Path) and Path(env_file).is_file():
        from dotenv import dotenv_values

        found |= {name: " in .env" for name in dotenv_values(env_file) if name not in found}
    known = {variable(field) for field in Settings.model_fields}
    warnings = []
    for name, where in found.items():
        upper = name.upper()
        if (
            not upper.startswith("IVR_")
            or upper in known
            or upper in NOT_SETTINGS
            or upper.startswith("IVR_TEST_")
        ):
            continue
        nearest = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        if upper in FLAGS:
            hint = f" ({FLAGS[upper]})"
        elif upper.startswith("IVR_REQUIRE_"):
            hint = f" (the test suite's switches are IVR_TEST_*: {upper.replace('IVR_', 'IVR_TEST_', 1)})"
        elif nearest:
            hint = f" (did you mean {nearest[0]}?)"
        else:
            hint = " (README 'Settings' lists every setting)"
        warnings.append(f"ivr: warning: {name}{where} is not a setting of the line and is ignored{hint}.")
    return warnings


@dataclass(frozen=True)
class Builds:
    """How a command builds the line or the desk: from the environment's settings, on the clock
    `ivr.cli.main` was given (the wall clock, or in a test the one its calls were placed at)."""

    clock: Callable[[], dt.datetime]

    def line(self, *, making: bool = False) -> Flask:
        from ivr import create_app

        return build(functools.partial(create_app, clock=self.clock), making=making)

    def desk(self, *, making: bool = False) -> Flask:
        from ivr.desk import create_desk

        return build(functools.partial(create_desk, clock=self.clock), making=making)
