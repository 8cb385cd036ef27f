"""The desk's console commands: `ivr desk` (serve it) and `ivr agents` (its accounts)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from typing import Any

from ivr import misconfig
from ivr.desk.accounts import ROLES, AccountError
from ivr.settings import Settings
from ivr.text_table import format_table

log = logging.getLogger(__name__)


def register(commands: Any, port: Any, threads: Any) -> None:
    """Add `ivr desk` and `ivr agents` to the `ivr` command's parser."""
    desk = commands.add_parser("desk", help="run the agents' desk (internal: never on the public server)")
    desk.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    desk.add_argument("--port", type=port, default=8081, help="TCP port, 1-65535 (default: 8081)")
    desk.add_argument("--threads", type=threads, default=8, help="worker threads (default: 8)")
    desk.set_defaults(run=_serve)

    agents = commands.add_parser("agents", help="the desk's agent accounts").add_subparsers(required=True)
    add = agents.add_parser("add", help="add an agent; the password is read from standard input")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="agent")
    add.add_argument("--phone", help="where a taken call is put through (E.164, e.g. +4520123456)")
    add.add_argument("--name", help="the name the desk shows (default: the username)")
    add.set_defaults(run=_add)
    listing = agents.add_parser("list", help="list the agents")
    listing.set_defaults(run=_list)
    code = agents.add_parser("code", help="set the code an agent keys when phoning in (from standard input)")
    code.add_argument("username")
    code.set_defaults(run=_code)


def _serve(args: argparse.Namespace) -> int:
    from waitress.server import create_server

    from ivr.desk import MAX_BODY

    app = args.build.desk(making=True)
    settings: Settings = app.extensions["desk"].settings
    try:
        server = create_server(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            ident="ivr-desk",
            max_request_body_size=MAX_BODY,
        )
    except (OSError, ValueError) as error:
        raise misconfig.cannot_listen(
            "ivr desk", args.host, args.port, error, make_port="DESK_PORT"
        ) from None
    log.info(
        "The agents' desk on http://%s:%d (sign in there; agents: `ivr agents add`), data in %s",
        args.host,
        args.port,
        settings.data_dir.resolve(),
    )
    server.run()
    return 0


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise AccountError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _add(args: argparse.Namespace) -> int:
    desk = args.build.desk().extensions["desk"]
    try:
        agent = desk.accounts.add(args.username, args.role, _password(), phone=args.phone, name=args.name)
    except AccountError as error:
        print(f"ivr agents add: {error}", file=sys.stderr)
        return 1
    desk.queue.audit(None, "desk_agent_added", agent=agent.username, role=agent.role, by=getpass.getuser())
    print(f"added {agent.role} {agent.username}")
    return 0


def _code(args: argparse.Namespace) -> int:
    desk = args.build.desk().extensions["desk"]
    code = getpass.getpass("Agent code: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    try:
        if not desk.accounts.set_agent_code(args.username, code):
            print(f"ivr agents code: no agent {args.username!r}", file=sys.stderr)
            return 1
    except AccountError as error:
        print(f"ivr agents code: {error}", file=sys.stderr)
        return 1
    desk.queue.audit(None, "desk_agent_code_set", agent=args.username, by=getpass.getuser())
    print(f"set the agent code of {args.username}")
    return 0


def _list(args: argparse.Namespace) -> int:
    agents = args.build.desk().extensions["desk"].accounts.all()
    if not agents:
        print("(no agents: add one with `ivr agents add USERNAME --role agent|supervisor`)")
        return 0
    rows = [
        [a.username, a.display_name, a.role, a.phone, "disabled" if a.disabled else a.status, a.language]
        for a in agents
    ]
    print(*format_table(["username", "name", "role", "phone", "status", "language"], rows), sep="\n")
    return 0
