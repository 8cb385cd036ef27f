"""The agent's pages: the queue, taking a call, the call (context, verification, wrap-up)."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ivr.desk.accounts import LANGUAGES
from ivr.desk.context import desk
from ivr.desk.notes import MAX_NOTE, has_sensitive_number, masked
from ivr.desk.queue import Call
from ivr.desk.texts import TEXTS
from ivr.errors import BackendError, CallerGone, without_values
from ivr.handover import HELD

bp = Blueprint("views", __name__)
log = logging.getLogger(__name__)


class NotHeld(Exception):
    """The call is not one this agent holds (another agent's, or already wrapped up)."""


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(NotHeld, _not_held)
    app.register_error_handler(sa.exc.DBAPIError, _store_unreachable)


def _store_unreachable(error: sa.exc.DBAPIError) -> tuple[str, int, dict[str, str]]:
    """The store cannot be reached (restarting, failing over): say so, and that nothing was lost,
    in both the desk's languages (the agent's own is in the database)."""
    log.error("the desk could not reach its database: %s", without_values(error))
    page = render_template("unavailable.html", texts=[TEXTS[lang] for lang in ("da", "en")])
    return page, 503, {"Retry-After": "5"}


def _not_held(error: NotHeld) -> Response:
    flash("call_not_held")
    return redirect(url_for("views.queue"))


@bp.get("/")
def queue() -> str:
    """Show the waiting callers, the agent's status, and their current call."""
    return render_template(
        "queue.html", calls=desk().queue.waiting(), current=desk().queue.current(g.agent.username)
    )


@bp.get("/queue/rows")
def queue_rows() -> str:
    """The queue's rows alone, which the queue page fetches every few seconds."""
    return render_template("_queue_rows.html", calls=desk().queue.waiting())


@bp.post("/status")
def set_status() -> Response:
    """Set the agent's own status: available or away (busy comes with a call)."""
    status = request.form.get("status")
    if status not in ("available", "away"):
        abort(400)
    if g.agent.status == "busy":  # a page from before the agent took a call
        flash("finish_current")
        return redirect(url_for("views.queue"))
    desk().accounts.set_status(g.agent.username, status)
    desk().queue.audit(None, "desk_status_set", agent=g.agent.username, status=status)
    return redirect(url_for("views.queue"))


@bp.post("/language")
def set_language() -> Response:
    """Choose the desk's language (Danish or English)."""
    language = request.form.get("language", "")
    if language not in LANGUAGES:
        abort(400)
    desk().accounts.set_language(g.agent.username, language)
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/") and not back.startswith("//") else "/")


@bp.post("/take")
def take() -> Response:
    """Take the next waiting call, or the one chosen, and have it put through to the agent."""
    d, me = desk(), g.agent.username
    current = d.queue.current(me)
    if current is not None:
        flash("finish_current")
        return redirect(url_for("views.call", call_id=current.id))
    chosen = request.form.get("call_id", type=int)
    call = d.queue.take(me, chosen)
    if call is None:
        gone = chosen is not None and (found := d.queue.get(chosen)) is not None and found.gone
        flash("caller_gone_before" if gone else "taken_by_other" if chosen is not None else "nobody_waiting")
        return redirect(url_for("views.queue"))
    try:
        d.call_control.put_through(call.call_sid)
    except CallerGone:
        d.queue.caller_gone(call.id, me)
        flash("caller_gone_before")
        return redirect(url_for("views.queue"))
    except BackendError:
        d.queue.release(call.id, me, "call control refused")
        flash("put_through_failed")
        return redirect(url_for("views.queue"))
    return redirect(url_for("views.call", call_id=call.id))


@bp.get("/calls/<int:call_id>")
def call(call_id: int) -> str:
    """The screen pop: what the line learned, assisted verification, and the wrap-up."""
    return _call_page(_mine(call_id))


@bp.get("/calls/<int:call_id>/caller")
def caller(call_id: int) -> str:
    """Whether the caller is still on the line, which the call page fetches every few seconds."""
    return render_template("_caller.html", call=_mine(call_id))


def _call_page(found: Call, **shown: object) -> str:
    return render_template(
        "call.html",
        call=found,
        progress=desk().verifier.progress(found.call_sid),
        outcomes=desk().queue.offered(found),
        **shown,
    )


@bp.post("/calls/<int:call_id>/verification")
def start_verification(call_id: int) -> Response:
    """Start verifying the caller by the document they read out."""
    found = _mine(call_id)
    if found.gone:
        return _gone(call_id)
    document_type = request.form.get("document_type", "")
    number = "".join(request.form.get("document_number", "").split())
    if not desk().verifier.well_formed(document_type, number):
        flash("document_malformed")
    elif (progress := desk().verifier.progress(found.call_sid)) is None or progress.outcome != "verified":
        desk().verifier.start(found.call_sid, g.agent.username, document_type, number)
    return redirect(url_for("views.call", call_id=call_id))


@bp.post("/calls/<int:call_id>/answer")
def answer(call_id: int) -> Response:
    """Record the caller's answer to the question being asked."""
    found = _mine(call_id)
    if found.gone:
        return _gone(call_id)
    keys = "".join(request.form.get("answer", "").split())
    if desk().verifier.answer(found.call_sid, g.agent.username, keys) is None:
        flash("answer_malformed")
    return redirect(url_for("views.call", call_id=call_id))


@bp.post("/calls/<int:call_id>/pin")
def send_pin(call_id: int) -> Response:
    """Send the verified caller a temporary PIN by SMS (once per call)."""
    found = _mine(call_id)
    if found.gone:
        return _gone(call_id)
    status = desk().verifier.send_pin(found.call_sid, g.agent.username, found.language)
    flash({"sent": "pin_sent", "already_sent": "pin_already_sent"}.get(status, f"pin_{status}"))
    return redirect(url_for("views.call", call_id=call_id))


@bp.post("/calls/<int:call_id>/user-id")
def show_user_id(call_id: int) -> Response | str:
    """Show the verified caller's user ID, to read out (the one page that shows it)."""
    found = _mine(call_id)
    if found.gone:
        return _gone(call_id)
    try:
        user_id = desk().verifier.user_id(found.call_sid, g.agent.username)
    except PermissionError:
        abort(403)
    return render_template("user_id.html", call=found, user_id=user_id)


@bp.post("/calls/<int:call_id>/wrap-up")
def wrap_up(call_id: int) -> Response | str:
    """Finish the call with the outcome the agent chose and a note; a note with a CPR- or
    document-like number comes back masked for the agent to confirm, and is never saved as typed.
    Whether or not the caller is still there: a call whose caller left is wrapped up all the same."""
    found = _mine(call_id)
    outcome = request.form.get("outcome", "")
    note = request.form.get("note", "").strip()[:MAX_NOTE]
    if outcome not in desk().queue.offered(found):
        return _call_page(found, note=masked(note), outcome_missing=True)
    if has_sensitive_number(note):
        return _call_page(found, note=masked(note), chosen=outcome, note_warning=True)
    if desk().queue.wrap_up(found.id, g.agent.username, outcome, note):
        desk().verifier.forget(found.call_sid)
        flash("wrapped_up")
    return redirect(url_for("views.queue"))


def _mine(call_id: int) -> Call:
    """The call, provided this agent holds it (until it is wrapped up, whatever the caller did)."""
    found = desk().queue.get(call_id)
    if found is None or found.agent != g.agent.username or found.status not in HELD:
        raise NotHeld(call_id)
    return found


def _gone(call_id: int) -> Response:
    """The caller has hung up: say so, and back to the call, for its wrap-up."""
    flash("caller_gone")
    return redirect(url_for("views.call", call_id=call_id))
