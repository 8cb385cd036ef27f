"""The `ivr` console command: run the line, phone it, and look at what it holds.

Every command builds the line from the same settings as the server (environment, `.env`), so
`ivr demo people` and `ivr outbox` see what the running line sees.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections.abc import Sequence
from typing import Any

from flask import Flask
from pydantic import ValidationError
from pydantic_settings import SettingsError

from ivr import db_cli, misconfig, operations
from ivr.desk import commands as desk_commands
from ivr.errors import DefinitionError
from ivr.misconfig import Misconfigured
from ivr.settings import Settings
from ivr.text_table import format_table

# `ivr call` dials from a random number in +45 20 00 00 00 - +45 20 00 99 99 unless given --from:
# the line allows only so many verifications per calling number and hour, and the demo is for
# trying again and again.
DEMO_CALLERS = "+452000"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `ivr` command; the exit status says whether it worked."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.run(args)
        return result
    except DefinitionError as error:
        print(error, file=sys.stderr)
        return 2
    except (Misconfigured, SettingsError, ValidationError) as error:
        print(*_explained(error).lines, sep="\n", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ivr demo people | head`
        sys.stderr.close()
        return 0


def _explained(error: Misconfigured | SettingsError | ValidationError) -> Misconfigured:
    if isinstance(error, SettingsError):
        return misconfig.from_settings_error(error)
    if isinstance(error, ValidationError):
        return misconfig.from_validation_error(error)
    return error


def _port(text: str) -> int:
    port = _whole(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port: give 1 to 65535")
    return port


def _threads(text: str) -> int:
    threads = _whole(text)
    if threads < 1:
        raise argparse.ArgumentTypeError(f"{text} threads would serve nothing: give 1 or more")
    return threads


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def demo_caller() -> str:
    """A calling number for one demo call: random in +45 20 00 00 00 - +45 20 00 99 99."""
    return f"{DEMO_CALLERS}{random.randrange(10_000):04d}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="The MitID Support phone line.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the line on a production WSGI server (waitress)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port, 1-65535 (default: 8080)")
    serve.add_argument("--threads", type=_threads, default=8, help="worker threads, 1 or more (default: 8)")
    serve.set_defaults(run=_serve)

    call = commands.add_parser("call", help="phone the running line as Twilio would")
    call.add_argument("--url", help="where the line really listens (default: IVR_PUBLIC_BASE_URL)")
    call.add_argument(
        "--from",
        dest="caller",
        help="the calling number (default: a random demo number +45 20 00 xx xx, new for each call, "
        "so the line's limit of verifications per calling number and hour does not stop the demo)",
    )
    call.add_argument(
        "--keys",
        help="scripted keys, one entry per menu, space-separated: '1', '123456789#', "
        "'_' for silence, '?' to answer a knowledge question as the demo person would",
    )
    call.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="how long a queued caller holds for an agent (default: 120 when keying by hand, "
        "0 with --keys); Enter, Ctrl-D or Ctrl-C hangs up",
    )
    call.set_defaults(run=_call)

    demo = commands.add_parser("demo", help="the embedded demo register").add_subparsers(required=True)
    people = demo.add_parser("people", help="list the demo people and their documents")
    people.add_argument("--json", action="store_true")
    people.set_defaults(run=_people)

    for name, helptext, run in (
        ("outbox", "the SMS the line has sent (embedded outbox)", _outbox),
        ("escalations", "the calls put through to an agent, with context", _escalations),
        ("audit", "the audit trail (what happened, never the secrets)", _audit),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=run)

    operations.register(commands, _app)
    desk_commands.register(commands, _port, _threads)
    db_cli.register(commands)

    flows = commands.add_parser("flows", help="call flows and prompts").add_subparsers(required=True)
    flows.add_parser("check", help="validate the flows and prompts").set_defaults(run=_check)
    table = flows.add_parser("table", help="the flow as a Markdown table (docs/call_flow.md)")
    table.add_argument("--language", default="en")
    table.set_defaults(run=_table)
    return parser


def _app() -> Flask:
    from ivr import create_app

    return misconfig.build(create_app)


def _serve(args: argparse.Namespace) -> int:
    from waitress.server import create_server

    from ivr import sweep
    from ivr.web import MAX_BODY

    app = _app()
    settings: Settings = app.extensions["ivr.settings"]
    try:
        server = create_server(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            ident="ivr",
            max_request_body_size=MAX_BODY,  # refused with 413 before the body is read
            # Webhooks are short: idle connections are dropped soon, and there is room for many,
            # so a crowd of silent connections cannot hold the line (a proxy in front helps more).
            connection_limit=1000,
            channel_timeout=15,
        )
    except (OSError, ValueError) as error:  # waitress says ValueError for a host it cannot resolve
        raise misconfig.cannot_listen(args.host, args.port, error) from None
    logging.getLogger(__name__).info(
        "MitID Support line on http://%s:%d (public URL %s, data in %s)",
        args.host,
        args.port,
        settings.public_base_url,
        settings.data_dir.resolve(),
    )
    sweep.start(app.extensions["ivr"], settings.sweep_interval_seconds)
    server.run()
    return 0


def _call(args: argparse.Namespace) -> int:
    from ivr.demo_caller import ANSWER, SILENCE, ScriptedKeys
    from ivr.phone import INTERRUPTED, Holding, HttpTransport, PhoneError, place_call, refusal

    tokens = None if args.keys is None else args.keys.split()
    for entry in tokens or ():
        problem = None if entry in (SILENCE, ANSWER) else refusal(entry)
        if problem:
            print(
                f"ivr call: --keys entry {entry!r} cannot be keyed: {problem}; "
                f"use {SILENCE!r} for silence and {ANSWER!r} to answer a question",
                file=sys.stderr,
            )
            return 2
    caller = args.caller or demo_caller()
    print(f"[calling the line from {caller}]")
    try:
        app = _app()
        settings: Settings = app.extensions["ivr.settings"]
        transport = HttpTransport(args.url or settings.public_base_url, settings.public_base_url)
        token = settings.twilio_auth_token.get_secret_value()
        if tokens is None:
            call = place_call(
                transport,
                settings.public_base_url,
                token,
                sys.stdin,
                sys.stdout,
                caller=caller,
                interactive=True,
                holding=Holding(120 if args.wait is None else args.wait),
            )
        else:
            script = ScriptedKeys(tokens, app)
            out = script.listening(sys.stdout)
            holding = Holding(args.wait or 0)
            call = place_call(
                transport, settings.public_base_url, token, script, out, caller=caller, holding=holding
            )
    except PhoneError as error:
        print(f"ivr call: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the call was placed, or while it was being ended
        print("\nivr call: interrupted", file=sys.stderr)
        return 130
    return 130 if call.ended_by == INTERRUPTED else 0


# The knowledge questions' answers, as a caller keys them, under these headers.
ANSWER_HEADERS = {
    "postcode": "postcode",
    "house_number": "house no.",
    "moved_in_year": "moved in",
    "mother_birth_year": "mother born",
    "father_birth_year": "father born",
    "spouse_birth_date": "spouse born (ddmmyyyy)",
    "eldest_child_birth_year": "eldest child born",
}
DOCUMENT_NAMES = {"passport": "passport", "driving_licence": "licence"}


def _people(args: argparse.Namespace) -> int:
    from ivr.adapters.demo_people import DemoPerson, person_to_json
    from ivr.questions import QUESTIONS

    people: list[DemoPerson] = _app().extensions["ivr.people"]
    if args.json:
        print(json.dumps([person_to_json(p) for p in people], ensure_ascii=False, indent=2))
        return 0
    answers = [ANSWER_HEADERS.get(kind, kind.replace("_", " ")) for kind in QUESTIONS]
    rows = [
        [
            p.case,
            p.person.name,
            p.person.cpr,
            ", ".join(
                f"{DOCUMENT_NAMES.get(d.type.value, d.type.value)} {d.number}" for d in p.person.documents
            ),
            p.account.mobile if p.account else None,
            p.account.user_id if p.account else "(no MitID)",
            *(question.fact(p.person) for question in QUESTIONS.values()),
        ]
        for p in people
    ]
    headers = ["case", "name", "CPR", "documents", "mobile", "user ID", *answers]
    print(*format_table(headers, rows), sep="\n")
    return 0


def _rows(table_name: str) -> list[dict[str, Any]]:
    from ivr import store

    line = _app().extensions["ivr"]
    rows: list[dict[str, Any]] = line.store.rows(getattr(store, table_name))
    return rows


def _print(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> int:
    """The rows as JSON, or as a table of `columns` under a header row."""
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
    elif not rows:
        print("(none)")
    else:
        table = format_table(
            [c.replace("_", " ") for c in columns], ([row[c] for c in columns] for row in rows)
        )
        print(*table, sep="\n")
    return 0


def _outbox(args: argparse.Namespace) -> int:
    """The outbox (never a message's text); on the embedded default also what the demo phones
    received, as a person trying the line would read it on their phone."""
    from ivr import store

    line = _app().extensions["ivr"]
    received: dict[str, tuple[str, str]] = getattr(line.outbox.sender, "received", dict)()
    rows = []
    for r in line.store.rows(store.sms_outbox):
        phone, text = received.get(r["provider_id"], (None, None))
        unresolved = r["status"] in ("sending", "unknown")
        rows.append(
            {
                "id": r["id"],
                "time": r["created_at"],
                "kind": r["body"],
                "to": r["to"],
                "status": r["status"] + (" (unresolved)" if unresolved else ""),
                "delivery": r["delivery"],
                "error": r["error"],
                "demo_phone": phone,
                "text": text,
            }
        )
    columns = ("time", "kind", "to", "status", "delivery", "error")
    return _print(rows, args.json, columns + (("demo_phone", "text") if received else ()))


def _escalations(args: argparse.Namespace) -> int:
    columns = ("created_at", "call_sid", "language", "intent", "verification", "reason", "document", "step")
    return _print(_rows("escalations"), args.json, columns)


def _audit(args: argparse.Namespace) -> int:
    return _print(_rows("audit_events"), args.json, ("at", "call_sid", "event", "detail"))


def _check(args: argparse.Namespace) -> int:
    from ivr import definitions

    settings = Settings()
    flow, catalog = definitions.load(settings.flows_dir, settings.prompts_dir, settings.flow)
    print(f"ok: {len(flow.steps)} steps in {settings.flows_dir}, languages {', '.join(catalog)}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from ivr import definitions
    from ivr.flow_doc import table

    settings = Settings()
    flow, catalog = definitions.load(settings.flows_dir, settings.prompts_dir, settings.flow)
    sys.stdout.write(table(flow, catalog[args.language]))
    return 0
