"""The supervisor's pages: the board, a call's audit trail, locked identities, the agents."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ivr.counters import SqlCounters
from ivr.desk.accounts import ROLES, AccountError
from ivr.desk.auth import forget_tries, supervisor_only
from ivr.desk.board import board
from ivr.desk.context import desk

bp = Blueprint("supervisor", __name__)
SHOWN = 12
"""How many characters of a pseudonym are shown (as `ivr locks` does): enough to name one."""


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/board")
@supervisor_only
def board_page() -> str:
    """Show the board."""
    return render_template("board.html", board=board(desk().store, desk().queue, desk().clock()))


@bp.get("/board/live")
@supervisor_only
def board_live() -> str:
    """The board's figures alone, which the board page fetches every few seconds."""
    return render_template("_board.html", board=board(desk().store, desk().queue, desk().clock()))


@bp.get("/calls/<int:call_id>/audit")
@supervisor_only
def audit(call_id: int) -> str:
    """Show the audit trail of one call."""
    found = desk().queue.get(call_id)
    if found is None:
        abort(404)
    return render_template("audit.html", call=found, events=desk().queue.trail(found.call_sid))


@bp.get("/locks")
@supervisor_only
def locks() -> str:
    """Show the locked identities, one each, by pseudonym (never whose)."""
    locks = SqlCounters.on(desk().store).locked(desk().gate.window(desk().clock()))
    return render_template("locks.html", locks=locks, shown=SHOWN)


@bp.post("/locks/lift")
@supervisor_only
def lift() -> Response:
    """Lift the lock of one identity (every count behind it), with a reason (audited)."""
    key, reason = request.form.get("key", ""), request.form.get("reason", "").strip()[:200]
    found = SqlCounters.on(desk().store).lift(key) if len(key) >= 8 and reason else []
    if len(found) == 1:
        desk().queue.audit(None, "lock_lifted", key=found[0][:SHOWN], reason=reason, by=g.agent.username)
        flash("lifted")
    else:
        flash("lift_failed")
    return redirect(url_for("supervisor.locks"))


@bp.get("/agents")
@supervisor_only
def agents() -> str:
    """Show the agents, with forms to add, disable and reset them."""
    return render_template("agents.html", agents=desk().accounts.all(), roles=ROLES)


@bp.post("/agents")
@supervisor_only
def add_agent() -> Response:
    """Add an agent."""
    form = request.form
    try:
        added = desk().accounts.add(
            form.get("username", "").strip().lower(),
            form.get("role", ""),
            form.get("password", ""),
            phone=form.get("phone", "").strip() or None,
            name=form.get("name", "").strip() or None,
        )
    except AccountError as error:
        flash(str(error))
        return redirect(url_for("supervisor.agents"))
    desk().queue.audit(None, "desk_agent_added", agent=added.username, role=added.role, by=g.agent.username)
    flash("done")
    return redirect(url_for("supervisor.agents"))


@bp.post("/agents/<username>/disable")
@supervisor_only
def disable(username: str) -> Response:
    """Disable an agent: they can no longer sign in, and their session ends."""
    if desk().accounts.disable(username):
        desk().queue.audit(None, "desk_agent_disabled", agent=username, by=g.agent.username)
        desk().queue.agent_disabled(username, g.agent.username)
        flash("done")
    return redirect(url_for("supervisor.agents"))


@bp.post("/agents/<username>/reset")
@supervisor_only
def reset(username: str) -> Response:
    """Give an agent a new password (and enable them again)."""
    try:
        changed = desk().accounts.reset(username, request.form.get("password", ""))
    except AccountError as error:
        flash(str(error))
        return redirect(url_for("supervisor.agents"))
    if changed:
        forget_tries(username)
        desk().queue.audit(None, "desk_agent_reset", agent=username, by=g.agent.username)
        flash("done")
    return redirect(url_for("supervisor.agents"))
