"""The `ivr` console command: run the line, phone it, and look at what it holds.

Every command builds the line from the same settings as the server (environment, `.env`), so
`ivr demo people` and `ivr outbox` see what the running line sees.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from typing import Any

from flask import Flask
from pydantic import ValidationError
from pydantic_settings import SettingsError

from ivr import Clock, db_cli, logs, misconfig, operations, utc_now
from ivr.desk import commands as desk_commands
from ivr.errors import DefinitionError
from ivr.handover import diagram as handover_diagram
from ivr.misconfig import Builds, Misconfigured
from ivr.settings import Settings
from ivr.text_table import format_table

# `ivr call` dials from a random number in +45 20 00 00 00 - +45 20 00 99 99 unless given --from:
# the line allows only so many verifications per calling number and hour, and the demo is for
# trying again and again.
DEMO_CALLERS = "+452000"


def main(argv: Sequence[str] | None = None, *, clock: Clock = utc_now) -> int:
    """Run one `ivr` command; the exit status says whether it worked. Every command reads the
    time from `clock` (a test passes the fixed clock its calls were placed at)."""
    args = _parser().parse_args(argv)
    args.build = Builds(clock)
    log_format = _log_format()
    logs.configure(log_format)
    for warning in misconfig.unknown_variables(os.environ, Settings.model_config.get("env_file")):
        if log_format == "json":  # a log collector reads standard error
            logging.getLogger("ivr.settings").warning(warning.removeprefix("ivr: warning: "))
        else:
            print(warning, file=sys.stderr)
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


def _log_format() -> str:
    """`IVR_LOG_FORMAT` (text or json); text while the settings cannot be read, which the
    command itself then reports."""
    try:
        return Settings().log_format
    except (SettingsError, ValidationError):
        return "text"


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
    call.add_argument(
        "--url", help="where the line listens, e.g. http://127.0.0.1:8090 (default: IVR_PUBLIC_BASE_URL)"
    )
    call.add_argument(
        "--public-url",
        metavar="URL",
        help="the public URL the line checks signatures against, when --url reaches it another way "
        "(a proxy in front); default: IVR_PUBLIC_BASE_URL where set, else --url",
    )
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
    people.add_argument("--first", type=_whole, metavar="N", help="only the first N people")
    people.set_defaults(run=_people)
    build = demo.add_parser(
        "build",
        help="build the demo register into the demo database, replacing the one there "
        "(the line builds IVR_DEMO_PEOPLE people at its first start; a million take a few minutes)",
    )
    build.add_argument("--people", type=_whole, metavar="N", help="how many (default IVR_DEMO_PEOPLE)")
    build.add_argument("--seed", type=_whole, help="the seed (default IVR_DEMO_SEED)")
    build.set_defaults(run=_build)

    for name, helptext, run in (
        ("outbox", "the SMS the line has sent (embedded outbox)", _outbox),
        ("escalations", "the calls put through to an agent, with context", _escalations),
        ("audit", "the audit trail (what happened, never the secrets)", _audit),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=run)

    operations.register(commands)
    desk_commands.register(commands, _port, _threads)
    db_cli.register(commands)

    flows = commands.add_parser("flows", help="call flows and prompts").add_subparsers(required=True)
    flows.add_parser("check", help="validate the flows and prompts").set_defaults(run=_check)
    prompts = commands.add_parser("prompts", help="the prompts' audio").add_subparsers(required=True)
    render = prompts.add_parser("render", help="render missing audio with espeak-ng (audio languages)")
    render.add_argument("--language", action="append", help="only this language (default: every audio one)")
    render.add_argument("--force", action="store_true", help="render again even what is up to date")
    render.set_defaults(run=_render)
    table = flows.add_parser(
        "table", help="the flow as a Markdown table and a Mermaid diagram (docs/call_flow.md)"
    )
    table.add_argument("--language", default="en")
    table.set_defaults(run=_table)
    flows.add_parser(
        "handover", help="the hand-over's states as Markdown with a Mermaid diagram (docs/handover.md)"
    ).set_defaults(run=lambda args: print(handover_diagram(), end="") or 0)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from waitress.server import create_server

    from ivr import sweep
    from ivr.web import MAX_BODY

    app = args.build.line(making=True)
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
        raise misconfig.cannot_listen("ivr serve", args.host, args.port, error, make_port="PORT") from None
    logging.getLogger(__name__).info(
        "MitID Support line on http://%s:%d (public URL %s, data in %s)",
        args.host,
        args.port,
        settings.public_base_url,
        settings.data_dir.resolve(),
    )
    if settings.metrics_port is not None:
        _serve_metrics(app, settings)
    sweep.start(app.extensions["ivr"], settings.sweep_interval_seconds)
    server.run()
    return 0


def _serve_metrics(app: Flask, settings: Settings) -> None:
    """Prometheus metrics on their own port (loopback unless IVR_METRICS_HOST says otherwise)."""
    from ivr import metrics

    assert settings.metrics_port is not None
    try:
        metrics.serve(app.extensions["ivr.metrics"], settings.metrics_host, settings.metrics_port)
    except OSError as error:
        problem = getattr(error, "strerror", None) or str(error)
        raise Misconfigured(
            f"ivr serve: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {problem}.",
            "ivr serve: fix: set IVR_METRICS_PORT to a free port (or unset it for no metrics), and "
            "IVR_METRICS_HOST to an address this machine has.",
        ) from None
    logging.getLogger(__name__).info(
        "metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
    )


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
    public = ""
    try:
        app = args.build.line()
        settings: Settings = app.extensions["ivr.settings"]
        target, public = _call_urls(args, settings)
        print(f"[calling the line at {target} from {caller}]")
        transport = HttpTransport(target, public)
        token = settings.twilio_auth_token.get_secret_value()
        if tokens is None:
            call = place_call(
                transport,
                public,
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
            call = place_call(transport, public, token, script, out, caller=caller, holding=holding)
    except PhoneError as error:
        print(f"ivr call: {error}", file=sys.stderr)
        if error.status == 403 and public:
            print(
                f"ivr call: fix: the line checks signatures against its own IVR_PUBLIC_BASE_URL and "
                f"IVR_TWILIO_AUTH_TOKEN; this call signed over {public} with this shell's token. Give "
                "--public-url with the line's public URL, or set both here as the line has them.",
                file=sys.stderr,
            )
        return 1
    except KeyboardInterrupt:  # before the call was placed, or while it was being ended
        print("\nivr call: interrupted", file=sys.stderr)
        return 130
    return 130 if call.ended_by == INTERRUPTED else 0


def _call_urls(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """Where `ivr call` sends its requests, and the public URL it signs them over: the line checks
    signatures against its IVR_PUBLIC_BASE_URL, which `make run` derives from its port unless
    the environment or .env sets it. So: --public-url, else a configured IVR_PUBLIC_BASE_URL,
    else the --url the call goes to."""
    target = (args.url or settings.public_base_url).rstrip("/")
    configured = "public_base_url" in settings.model_fields_set
    public = args.public_url or (settings.public_base_url if configured or not args.url else target)
    return target, public.rstrip("/")


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

    directory: Sequence[DemoPerson] = args.build.line().extensions["ivr.people"]
    people = itertools.islice(directory, args.first)
    if args.json:  # streamed: a register of a million is never held
        print("[", end="")
        for number, p in enumerate(people):
            text = json.dumps(person_to_json(p), ensure_ascii=False, indent=2).replace("\n", "\n  ")
            print(("," if number else "") + "\n  " + text, end="")
        print("\n]")
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


def _build(args: argparse.Namespace) -> int:
    import time

    from ivr import migrations
    from ivr.adapters import demo_directory
    from ivr.store import make_engine

    settings = Settings()
    count = settings.demo_people if args.people is None else args.people
    seed = settings.demo_seed if args.seed is None else args.seed
    if count < 20:
        print("ivr demo build: --people must be at least 20 (the awkward cases come first)", file=sys.stderr)
        return 2
    settings.private_data_dir()
    engine = make_engine(settings.demo_sqlalchemy_url)
    migrations.upgrade(engine, migrations.DEMO)
    started = time.monotonic()
    info = demo_directory.build(engine, seed, count, args.build.clock())
    where = engine.url.render_as_string(hide_password=True)
    print(f"built the demo register: {info.people:,} people, seed {info.seed}, as of {info.as_of}, ", end="")
    print(f"in {time.monotonic() - started:.1f} s, into {where}")
    return 0


def _rows(args: argparse.Namespace, table_name: str) -> list[dict[str, Any]]:
    from ivr import store

    line = args.build.line().extensions["ivr"]
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

    line = args.build.line().extensions["ivr"]
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
    return _print(_rows(args, "escalations"), args.json, columns)


def _audit(args: argparse.Namespace) -> int:
    return _print(_rows(args, "audit_events"), args.json, ("at", "call_sid", "event", "detail"))


def _check(args: argparse.Namespace) -> int:
    from ivr import audio, definitions
    from ivr.flow_doc import document
    from ivr.settings import REPO_ROOT

    settings = Settings()
    flow, catalog = definitions.load(settings.flows_dir, settings.prompts_dir, settings.flow)
    for warning in audio.warnings(catalog, settings.prompts_dir):
        print(f"warning: {warning}", file=sys.stderr)
    doc = REPO_ROOT / "docs" / "call_flow.md"  # the repository's picture of its own flow
    ours = (settings.flows_dir, settings.prompts_dir) == (REPO_ROOT / "call_flows", REPO_ROOT / "prompts")
    mine = ours and settings.flow == "support" and doc.exists()
    if mine and doc.read_text(encoding="utf-8") != document(flow, catalog["en"]):
        print(f"{doc} is stale: regenerate it with `ivr flows table > docs/call_flow.md`", file=sys.stderr)
        return 1
    print(f"ok: {len(flow.steps)} steps in {settings.flows_dir}, languages {', '.join(catalog)}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from ivr import render
    from ivr.prompts import load_catalog

    settings = Settings()
    catalog = load_catalog(settings.prompts_dir)
    return render.run(catalog, settings.prompts_dir / "audio", args.language, force=args.force)


def _table(args: argparse.Namespace) -> int:
    from ivr import definitions
    from ivr.flow_doc import document

    settings = Settings()
    flow, catalog = definitions.load(settings.flows_dir, settings.prompts_dir, settings.flow)
    sys.stdout.write(document(flow, catalog[args.language]))
    return 0
