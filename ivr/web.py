"""The web layer: Twilio webhooks in, TwiML out.

Every route checks `X-Twilio-Signature` first, against the configured public URL (Twilio signs
the URL it called, which behind a proxy is not `request.url`). A bad signature gets 403 and
changes nothing; anything else gets 200 with TwiML, an apology in the worst case, never
Twilio's own "application error".
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from pydantic import ValidationError
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import HTTPException

from ivr.errors import without_values
from ivr.line import Line
from ivr.twilio_form import CallForm

log = logging.getLogger(__name__)
voice = Blueprint("voice", __name__, url_prefix="/voice")


def _line() -> Line:
    line: Line = current_app.extensions["ivr"]
    return line


def _twiml(body: str) -> Response:
    return Response(body, mimetype="text/xml")


def _form() -> CallForm:
    return CallForm.model_validate(request.form.to_dict())


@voice.before_request
def check_signature() -> None:
    """Refuse any request Twilio did not sign for exactly this URL and these parameters."""
    validator: RequestValidator = current_app.extensions["ivr.validator"]
    base = current_app.extensions["ivr.public_base_url"]
    url = base + request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not validator.validate(url, request.form, signature):
        log.warning("refused a request to %s with a missing or wrong signature", request.path)
        abort(403)


@voice.post("")
def incoming_call() -> Response:
    """Answer a new call."""
    form = _form()
    return _twiml(_line().answer(form.call_sid, form.caller))


@voice.post("/keys")
def keys() -> Response:
    """Take what the caller keyed at a menu or input (empty on silence)."""
    form = _form()
    turn = request.args.get("turn", type=int)
    return _twiml(_line().keys(form.call_sid, turn, form.digits))


@voice.post("/status")
def status() -> Response:
    """Take a call status callback."""
    form = _form()
    _line().status(form.call_sid, form.call_status, form.call_duration)
    return Response(status=204)


@voice.post("/wait")
def wait() -> Response:
    """Tell a queued caller their place and an estimate (Twilio's Enqueue waitUrl)."""
    form = _form()
    return _twiml(_line().wait(form.call_sid, form.queue_position))


@voice.post("/queue-exit")
def queue_exit() -> Response:
    """The caller left the queue (Enqueue action)."""
    return _twiml(_line().queue_exit(_form().call_sid))


@voice.post("/fallback")
def fallback() -> Response:
    """Twilio's Fallback URL: the primary failed, so apologise and queue for an agent."""
    return _twiml(_line().apology(request.form.get("CallSid")))


@voice.errorhandler(Exception)
def unexpected(error: Exception) -> Response | HTTPException:
    """Whatever broke, the caller hears an apology and is put through to an agent."""
    if isinstance(error, HTTPException):
        return error
    if isinstance(error, ValidationError):
        log.warning("a signed request had an unusable form (%d errors)", error.error_count())
    else:
        log.error("webhook failed: %s", without_values(error))
    return _twiml(_line().apology(request.form.get("CallSid")))
