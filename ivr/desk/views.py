"""The agent's pages: the queue, taking a call, the call (context, verification, wrap-up)."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ivr.desk.accounts import LANGUAGES
from ivr.desk.context import desk
from ivr.desk.notes import MAX_NOTE, has_sensitive_number, masked
from ivr.desk.queue import OUTCOMES, Call
from ivr.errors import BackendError

bp = Blueprint("views", __name__)


def register(app: Flask) -> None:
    app.register_blueprint(bp)


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
    if status not in ("available", "away") or g.agent.status == "busy":
        abort(400)
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
        flash("taken_by_other" if chosen is not None else "nobody_waiting")
        return redirect(url_for("views.queue"))
    try:
        d.call_control.put_through(call.call_sid)
    except BackendError:
        d.queue.release(call.id, me, "call control refused")
        flash("put_through_failed")
        return redirect(url_for("views.queue"))
    return redirect(url_for("views.call", call_id=call.id))


@bp.get("/calls/<int:call_id>")
def call(call_id: int) -> str:
    """The screen pop: what the line learned, assisted verification, and the wrap-up."""
    found = _mine(call_id)
    return render_template(
        "call.html", call=found, progress=desk().verifier.progress(found.call_sid), outcomes=OUTCOMES
    )


@bp.post("/calls/<int:call_id>/verification")
def start_verification(call_id: int) -> Response:
    """Start verifying the caller by the document they read out."""
    found = _mine(call_id)
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
    keys = "".join(request.form.get("answer", "").split())
    if desk().verifier.answer(found.call_sid, g.agent.username, keys) is None:
        flash("answer_malformed")
    return redirect(url_for("views.call", call_id=call_id))


@bp.post("/calls/<int:call_id>/pin")
def send_pin(call_id: int) -> Response:
    """Send the verified caller a temporary PIN by SMS (once per call)."""
    found = _mine(call_id)
    status = desk().verifier.send_pin(found.call_sid, g.agent.username, found.language)
    flash({"sent": "pin_sent", "already_sent": "pin_already_sent"}.get(status, f"pin_{status}"))
    return redirect(url_for("views.call", call_id=call_id))


@bp.post("/calls/<int:call_id>/user-id")
def show_user_id(call_id: int) -> str:
    """Show the verified caller's user ID, to read out (the one page that shows it)."""
    found = _mine(call_id)
    try:
        user_id = desk().verifier.user_id(found.call_sid, g.agent.username)
    except PermissionError:
        abort(403)
    return render_template("user_id.html", call=found, user_id=user_id)


@bp.post("/calls/<int:call_id>/wrap-up")
def wrap_up(call_id: int) -> Response | str:
    """Finish the call with an outcome and a note; a note with a CPR- or document-like number
    comes back masked for the agent to confirm, and is never saved as typed."""
    found = _mine(call_id)
    outcome = request.form.get("outcome", "")
    note = request.form.get("note", "").strip()[:MAX_NOTE]
    if outcome not in OUTCOMES:
        abort(400)
    if has_sensitive_number(note):
        progress = desk().verifier.progress(found.call_sid)
        return render_template(
            "call.html",
            call=found,
            progress=progress,
            outcomes=OUTCOMES,
            note=masked(note),
            chosen=outcome,
            note_warning=True,
        )
    if desk().queue.wrap_up(found.id, g.agent.username, outcome, note):
        desk().verifier.forget(found.call_sid)
        flash("wrapped_up")
    return redirect(url_for("views.queue"))


def _mine(call_id: int) -> Call:
    """The call, provided it is this agent's call in progress."""
    found = desk().queue.get(call_id)
    if found is None or found.agent != g.agent.username or found.status not in ("connecting", "connected"):
        abort(404)
    return found
