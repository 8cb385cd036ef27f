"""The operator's commands beside the line: `ivr sweep` and `ivr locks`.

Locks and limits are listed by pseudonym (the first characters of a keyed hash): an operator
sees that an identity or a number is locked, and lifts it by that prefix with a reason, which
goes into the audit trail with the operator's login name. Nobody learns whose it is.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Any

from flask import Flask

from ivr.counters import SqlCounters
from ivr.line import Line
from ivr.text_table import format_table

SHOWN = 12
"""How many characters of a pseudonym are shown: enough to name one, too few to matter."""
KINDS = {"verification": "verifications from a number"}


def register(commands: Any) -> None:
    """Add the operator's commands to the `ivr` command's parser."""
    sweep = commands.add_parser("sweep", help="scrub calls that never ended, settle stuck SMS (once)")
    sweep.set_defaults(run=lambda args: _sweep(args.build.line()))

    locks = commands.add_parser("locks", help="current locks and limits, by pseudonym")
    locks.add_argument("--json", action="store_true")
    locks.set_defaults(run=lambda args: _locks(args.build.line(), args.json))
    actions = locks.add_subparsers(metavar="ACTION")
    lift = actions.add_parser("lift", help="lift the lock or limit on one pseudonym, with a reason")
    lift.add_argument("key", help=f"the pseudonym as `ivr locks` shows it ({SHOWN} characters)")
    lift.add_argument("--reason", required=True, help="why (goes into the audit trail)")
    lift.set_defaults(run=lambda args: _lift(args.build.line(), args.key, args.reason))


def _line(app: Flask) -> Line:
    line: Line = app.extensions["ivr"]
    return line


def _sweep(app: Flask) -> int:
    swept = _line(app).sweep()
    print(f"swept {swept} stale call(s)")
    return 0


def _locks(app: Flask, as_json: bool) -> int:
    line = _line(app)
    now = line.clock()
    counters = SqlCounters.on(line.store)
    rows: list[dict[str, Any]] = [
        {
            "key": lock.key[:SHOWN],
            "what": "identity locked",
            "since": lock.since,
            "until": lock.until,
            "failures": lock.failures + lock.unfinished,
            "by": ", ".join(lock.channels),
        }
        for lock in counters.locked(line.services.gate.window(now))
    ]
    rows += [
        {"key": row.key[:SHOWN], "what": KINDS[row.kind], "since": None, "until": None, "failures": row.count}
        | {"by": "", "last": row.last}
        for row in counters.busy_numbers(now - dt.timedelta(hours=1))
    ]
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    elif not rows:
        print("(no locked identities, no calling numbers at their limit)")
    else:
        columns = ["key", "what", "since", "until", "failures", "by"]
        print(*format_table(columns, [[r[c] for c in columns] for r in rows]), sep="\n")
    return 0


def _lift(app: Flask, key: str, reason: str) -> int:
    line = _line(app)
    if len(key) < 8 or not reason.strip():
        print("ivr locks lift: give at least 8 characters of the key, and a reason", flush=True)
        return 2
    found = SqlCounters.on(line.store).lift(key)
    if len(found) != 1:
        what = "no lock or limit has" if not found else f"{len(found)} pseudonyms have"
        print(f"ivr locks lift: {what} a key starting {key!r}; nothing was lifted")
        return 1
    line.note(None, "lock_lifted", key=found[0][:SHOWN], reason=reason.strip()[:200], by=getpass.getuser())
    print(f"lifted every lock and count on {found[0][:SHOWN]}")
    return 0
