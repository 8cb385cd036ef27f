"""Logging: plain lines for a person, or one JSON object a line (`IVR_LOG_FORMAT=json`).

A webhook binds what its log lines may name — the call SID (Twilio's identifier of the call,
no secret) and the call's step — with `bind`; every record logged while it runs carries them.
Nothing else is added: messages are written with `without_values` where an error may hold a
value, so a secret never reaches a log line by this way.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("call_sid", "step")

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "ivr_log_context", default=None
)


@contextmanager
def request_context() -> Iterator[dict[str, str]]:
    """A fresh context for one request: what `bind` adds is gone when the request ends."""
    token = _context.set({})
    try:
        yield _context.get() or {}
    finally:
        _context.reset(token)


def bind(**values: str | None) -> None:
    """Name the call (and its step) in every log line of the current request."""
    context = _context.get()
    if context is not None:
        context.update({k: v for k, v in values.items() if k in FIELDS and v})


def bound() -> dict[str, str]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Puts the request's call SID and step on each record (for either format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, and the call when known."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        for name in ("route", "status", "duration_ms"):
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def handler(log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to standard error (or `stream`), as text or as JSON lines."""
    made: logging.Handler = logging.StreamHandler(stream)
    made.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    made.addFilter(ContextFilter())
    return made


def configure(log_format: str = "text", stream: TextIO | None = None) -> None:
    """Log INFO and up, through `handler`, and nothing else."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(log_format, stream))
    root.setLevel(logging.INFO)
