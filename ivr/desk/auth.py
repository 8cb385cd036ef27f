"""Signing in and out, and what every request must bring: a live session, a CSRF token.

The session cookie (signed with a key derived from the line's secret) holds the username, a
CSRF token and when the agent was last active; it is HttpOnly, SameSite=Lax, and Secure when the
desk is served over https. A session idle for longer than `IVR_DESK_IDLE_MINUTES` ends. Sign-ins
are limited per username and per address with the line's counters (`SqlCounters.take`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ivr.counters import SqlCounters
from ivr.desk.accounts import Agent
from ivr.desk.context import desk
from ivr.desk.texts import LABELS, TEXTS
from ivr.store import attempts

bp = Blueprint("auth", __name__)
PUBLIC = frozenset({"auth.sign_in_form", "auth.sign_in", "static"})
QUIET = frozenset({"views.queue_rows", "views.caller", "supervisor.board_live"})
"""Requests the pages make on their own (polling): they do not count as the agent being active."""
MASKED_DOCUMENT = re.compile(r"^(\w+) ending (\d{2})$")
SIGN_IN, WINDOW = "desk_login", dt.timedelta(minutes=15)
F = TypeVar("F", bound=Callable[..., Any])


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_check_request)
    app.after_request(_no_store)
    app.context_processor(_texts)


def authenticate(username: str, password: str) -> Agent | None:
    """Who this is, by password (the seam where an OpenID Connect sign-in would come in)."""
    return desk().accounts.authenticate(username, password)


@bp.get("/sign-in")
def sign_in_form() -> str:
    """Show the sign-in form."""
    if request.args.get("lang") in TEXTS:
        session["lang"] = request.args["lang"]
    return render_template("sign_in.html", idle=request.args.get("idle") == "1")


@bp.post("/sign-in")
def sign_in() -> Response | tuple[str, int]:
    """Check the password (within the limits) and start a session."""
    username = request.form.get("username", "").strip().lower()[:64]
    password = request.form.get("password", "")[:1024]
    if not _may_try(username):
        desk().queue.audit(None, "desk_sign_in_limited")
        return render_template("sign_in.html", error="sign_in_limited"), 429
    agent = authenticate(username, password)
    if agent is None:
        desk().queue.audit(None, "desk_sign_in_failed")
        return render_template("sign_in.html", error="sign_in_failed"), 401
    forget_tries(username, this_address=True)
    if session.get("lang") in TEXTS and session["lang"] != agent.language:  # chosen on the sign-in page
        desk().accounts.set_language(agent.username, session["lang"])
    session.clear()
    session.update(agent=agent.username, csrf=secrets.token_urlsafe(32), seen=_now())
    desk().queue.audit(None, "desk_signed_in", agent=agent.username)
    return redirect(url_for("views.queue"))


@bp.post("/sign-out")
def sign_out() -> Response:
    """End the session."""
    desk().queue.audit(None, "desk_signed_out", agent=g.agent.username)
    if g.agent.status != "busy":
        desk().accounts.gone(g.agent.username)
    session.clear()
    return redirect(url_for("auth.sign_in_form"))


def supervisor_only(view: F) -> F:
    """Let only supervisors in (403 for agents)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not g.agent.supervisor:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _check_request() -> Response | None:
    """Every request: a CSRF token on a POST; a live session everywhere but the sign-in page."""
    session.setdefault("csrf", secrets.token_urlsafe(32))
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not hmac.compare_digest(sent.encode(), str(session["csrf"]).encode()):
            abort(400, "the form's CSRF token is missing or wrong: reload the page")
    g.agent = None
    if request.endpoint in PUBLIC:
        return None
    username, seen = session.get("agent"), session.get("seen")
    agent = desk().accounts.get(username) if username else None
    if agent is None or agent.disabled or not seen:
        # End a session that was signed in; one that never was keeps its CSRF token, or the
        # browser's own request for /favicon.ico would void the sign-in form it is showing.
        if username or seen:
            session.clear()
        return redirect(url_for("auth.sign_in_form"))
    if desk().clock() - dt.datetime.fromisoformat(seen) > desk().idle:
        desk().queue.audit(None, "desk_session_expired", agent=agent.username)
        session.clear()
        return redirect(url_for("auth.sign_in_form", idle="1"))
    if request.endpoint not in QUIET:
        session["seen"] = _now()
    desk().accounts.mark_present(agent.username, desk().clock())  # live parts too: the page is open
    g.agent = agent
    return None


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
    return response


def _texts() -> dict[str, Any]:
    """What the templates say, in the agent's language (before signing in: the one chosen)."""
    agent: Agent | None = g.get("agent")
    lang = agent.language if agent else session.get("lang", "da")
    lang = lang if lang in TEXTS else "da"
    texts, labels = TEXTS[lang], LABELS[lang]

    def t(key: str, **slots: object) -> str:
        return texts[key].format(**slots) if slots else texts[key]

    def label(value: str | None) -> str:
        return "–" if value is None else labels.get(value) or texts.get(value) or value.replace("_", " ")

    def document(value: str | None) -> str:
        """The line's masked document ("passport ending 01") in the agent's words."""
        match = MASKED_DOCUMENT.match(value or "")
        return f"{label(match[1])} {labels['ending']} {match[2]}" if match else label(value)

    def question_text(kind: str) -> str:
        return desk().verifier.services.catalog[lang].text(f"question_{kind}", {})

    return {
        "t": t,
        "label": label,
        "document": document,
        "duration": _duration,
        "local_time": _local_time,
        "question_text": question_text,
        "message_text": lambda message: texts.get(message, message),
        "lang": lang,
        "agent": agent,
        "csrf_token": session.get("csrf", ""),
    }


def _local_time(value: dt.datetime) -> str:
    """A moment as the desk's people read it: Copenhagen time, with its zone."""
    from ivr.desk.board import LOCAL

    return value.astimezone(LOCAL).strftime("%d-%m-%Y %H:%M %Z")


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "–"
    seconds = int(value.total_seconds())
    return f"{seconds // 60}:{seconds % 60:02d}"


def _keys(username: str) -> tuple[str, str]:
    pseudonym = desk().gate.pseudonym
    return pseudonym(f"desk-sign-in:{username}"), pseudonym(f"desk-sign-in-from:{request.remote_addr}")


def _may_try(username: str) -> bool:
    """Count this sign-in against the username and the address, within their limits."""
    now = desk().clock()
    per_user = desk().settings.desk_sign_in_failures
    counters = SqlCounters.on(desk().store)
    user_key, address_key = _keys(username)
    return counters.take(user_key, SIGN_IN, per_user, now - WINDOW, now) and counters.take(
        address_key, SIGN_IN, per_user * 4, now - WINDOW, now
    )


def forget_tries(username: str, this_address: bool = False) -> None:
    """A right password clears the username's count, and (`this_address`) gives the address back
    the one try it took: an office behind one address is limited by its wrong passwords, never by
    its agents signing in."""
    user_key, address_key = _keys(username)
    a = attempts.c
    with desk().store.connection() as connection:
        connection.execute(sa.delete(attempts).where(a.key == user_key, a.kind == SIGN_IN))
        if this_address:
            newest = sa.select(sa.func.max(a.id)).where(a.key == address_key, a.kind == SIGN_IN)
            connection.execute(sa.delete(attempts).where(a.id == newest.scalar_subquery()))


def _now() -> str:
    return desk().clock().isoformat()
