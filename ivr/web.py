"""The web layer: Twilio webhooks in, TwiML out.

Every route checks `X-Twilio-Signature` first, against the configured public URL (Twilio signs
the URL it called, which behind a proxy is not `request.url`): a request with no or a malformed
signature header is refused before its body is read, one over MAX_BODY gets 413 unread, and a
bad signature gets 403 and changes nothing. A known call answers only to its own number.
Anything else gets 200 with TwiML, an apology in the worst case, never Twilio's own
"application error"; and only the routes that carry the call's flow can escalate it.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, request, send_file
from pydantic import ValidationError
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import HTTPException

from ivr.agent_line import AgentLine
from ivr.audio import MIME, Library
from ivr.errors import without_values
from ivr.line import CallerMismatch, Line
from ivr.twilio_form import CallForm, MessageStatusForm

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
SIGNATURE = re.compile(r"^[A-Za-z0-9+/]{27}=$")  # base64 of an HMAC-SHA1
MEDIA_MAX_AGE = 365 * 24 * 3600  # the URLs carry the file's hash: a changed file is a new URL
FLOW_ROUTES = frozenset({"voice.incoming_call", "voice.keys", "voice.fallback"})


def register(app: Flask) -> None:
    """Mount the webhooks on the app (the table at the end of this module)."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.register_blueprint(voice)
    app.register_blueprint(sms)
    app.register_blueprint(media)


def _agent_line() -> AgentLine:
    agent_line: AgentLine = current_app.extensions["ivr.agent_line"]
    return agent_line


def _line() -> Line:
    line: Line = current_app.extensions["ivr"]
    return line


def _twiml(body: str) -> Response:
    return Response(body, mimetype="text/xml")


def _form() -> CallForm:
    try:
        return CallForm.parse(request.form.to_dict())
    except ValidationError:
        log.warning("refused a signed request to %s without a usable CallSid", request.path)
        abort(400)


def check_signature() -> None:
    """Refuse any request Twilio did not sign for exactly this URL and these parameters."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if not SIGNATURE.match(signature):
        log.warning("refused a request to %s with no or a malformed signature", request.path)
        abort(403)
    if request.content_length is None or request.content_length > MAX_BODY:
        abort(413 if request.content_length else 411)
    validator: RequestValidator = current_app.extensions["ivr.validator"]
    base = current_app.extensions["ivr.public_base_url"]
    url = base + request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    if not signed(validator, url, request.form, signature):
        log.warning("refused a request to %s with a wrong signature", request.path)
        abort(403)


def signed(validator: RequestValidator, url: str, form: Any, signature: str) -> bool:
    """Whether Twilio signed this URL and form: one HMAC for the URL as configured, as Twilio
    signs it; only when that does not match, the SDK's check of the URL with and without its
    port (Twilio is not consistent about a default port), which costs two more."""
    expected = validator.compute_signature(url, form)
    return hmac.compare_digest(expected, signature) or validator.validate(url, form, signature)


def incoming_call() -> Response:
    """Answer a new call (from an agent's registered phone: the agent line)."""
    form = _form()
    agent = _agent_line().agent_for(form.caller)
    if agent is not None:
        return _twiml(_agent_line().answer(agent))
    return _twiml(_line().answer(form.call_sid, form.caller))


def dial_ended() -> Response:
    """Twilio ends the `<Dial>` to the agent: how it went decides what the caller hears next."""
    form = _form()
    return _twiml(_line().dial_ended(form.call_sid, form.caller, form.dial_call_status))


def agent_code() -> Response:
    """An agent phoning in keyed their agent code (empty on silence)."""
    form = _form()
    return _twiml(_agent_line().code(form.call_sid, form.caller, form.digits))


def agent_dequeued() -> Response:
    """Twilio asks, for the caller an agent's phone took from the queue, what they hear first."""
    form = _form()
    agent = request.args.get("agent", "")[:64]
    return _twiml(_line().dequeued(form.call_sid, form.caller, agent))


def keys() -> Response:
    """Take what the caller keyed at a menu or input (empty on silence)."""
    form = _form()
    turn = request.args.get("turn", type=int)
    return _twiml(_line().keys(form.call_sid, turn, form.digits, form.caller))


def status() -> Response:
    """Take a call status callback."""
    form = _form()
    _line().status(form.call_sid, form.call_status, form.call_duration, form.caller)
    return Response(status=204)


def wait() -> Response:
    """Tell a queued caller their place and an estimate (Twilio's Enqueue waitUrl)."""
    form = _form()
    unrecorded = request.args.get("unrecorded") == "1"  # part of the signed URL: Twilio's own
    return _twiml(_line().wait(form.call_sid, form.queue_position, form.caller, form.queue_sid, unrecorded))


def queue_exit() -> Response:
    """The caller left the queue (Enqueue action)."""
    form = _form()
    return _twiml(_line().queue_exit(form.call_sid, form.caller, form.queue_result))


def connect() -> Response:
    """Put the caller through to the agent who took the call."""
    form = _form()
    return _twiml(_line().connect(form.call_sid, form.caller))


def whisper() -> Response:
    """The agent's leg, before the caller is put through: the call's context for the agent."""
    _form()  # the agent's leg: its own CallSid and numbers; `call` names the caller's call
    call_sid = request.args.get("call", "")
    if not 0 < len(call_sid) <= 64:
        abort(400)
    return _twiml(_line().whisper(call_sid))


def fallback() -> Response:
    """Twilio's Fallback URL: the primary failed, so apologise and queue for an agent."""
    form = _form()
    log.warning("Twilio called the fallback URL (Twilio error %s)", form.error_code)
    return _twiml(_line().apology(form.call_sid, form.caller, "twilio_fallback"))


def media_file(code: str, name: str) -> Response:
    """A recording found in the audio folder at start-up; nothing else, whatever the path says.
    A URL naming another version (`?v=`, the file's hash) is not this file: during a rolling
    update a server with the old recording must not let caches keep it under the new URL."""
    library: Library = current_app.extensions["ivr.audio"]
    recording = library.recording(code, name)
    if recording is None or request.args.get("v", recording.version) != recording.version:
        abort(404)
    path = recording.path
    # The ETag is the file's hash, the same on every machine (not its modification time).
    response = send_file(path, mimetype=MIME[path.suffix], conditional=True, etag=recording.version)
    response.headers["Cache-Control"] = f"public, max-age={MEDIA_MAX_AGE}, immutable"
    return response


def sms_status() -> Response:
    """Twilio's delivery report for an SMS the line sent."""
    try:
        form = MessageStatusForm.model_validate(request.form.to_dict())
    except ValidationError:
        abort(400)
    if not _line().outbox.record_delivery(form.message_sid, form.message_status):
        log.warning("a delivery report for an SMS the line does not know")
    return Response(status=204)


def wrong_caller(error: CallerMismatch) -> Response:
    """A request for a known call from another number: refused, and written down."""
    log.warning("refused a request to %s for a call from another number", request.path)
    _line().note(str(error), "caller_mismatch", route=request.path)
    return Response(status=403)


# Twilio's `QueueResult`s after which a caller may be on their way to an agent.
ON_TO_CONNECT = frozenset({"leave", "error", "system-shutdown"})


def unexpected(error: Exception) -> Response | HTTPException:
    """Whatever broke, the caller is told something; only the flow's own routes escalate."""
    if isinstance(error, HTTPException):
        return error
    log.error("webhook %s failed: %s", request.path, without_values(error))
    line = _line()
    if request.endpoint == "voice.wait":
        return _twiml(line.renderer.hold(line.engine.languages))
    if request.endpoint == "voice.status":  # (Twilio does not retry it; the sweep makes it good)
        return Response(status=204)
    if request.endpoint == "voice.queue_exit" and request.form.get("QueueResult") in ON_TO_CONNECT:
        return _twiml(line.renderer.to_connect())  # /voice/connect decides, or puts them back
    if request.endpoint == "voice.connect":  # the caller waits on: back to the queue
        return _twiml(line.renderer.apology(line.engine.languages, to_agent=True))
    if request.endpoint == "voice.whisper":  # the agent is put through without the context
        return _twiml(line.renderer.nothing())
    if request.endpoint not in FLOW_ROUTES:
        return _twiml(line.renderer.goodbye(line.engine.languages[0]))
    try:
        form = CallForm.parse(request.form.to_dict())
    except ValidationError:  # no usable CallSid, so no call to hand over: an apology all the same
        return _twiml(line.renderer.apology(line.engine.languages, to_agent=True))
    try:
        return _twiml(line.apology(form.call_sid, form.caller, "application_error"))
    except CallerMismatch as mismatch:
        return wrong_caller(mismatch)


# The routes: plain functions, mounted here rather than by decorators (which would also keep
# them out of the mutation run; see the README's "Mutation testing").
voice = Blueprint("voice", __name__, url_prefix="/voice")
sms = Blueprint("sms", __name__, url_prefix="/sms")
media = Blueprint("media", __name__, url_prefix="/media")
"""The prompts' audio, for Twilio's <Play>: public and unsigned (Twilio signs no GET of media)."""
for rule, endpoint, view in (
    ("", "incoming_call", incoming_call),
    ("/dial-ended", "dial_ended", dial_ended),
    ("/agent/code", "agent_code", agent_code),
    ("/agent/dequeued", "agent_dequeued", agent_dequeued),
    ("/keys", "keys", keys),
    ("/status", "status", status),
    ("/wait", "wait", wait),
    ("/queue-exit", "queue_exit", queue_exit),
    ("/connect", "connect", connect),
    ("/whisper", "whisper", whisper),
    ("/fallback", "fallback", fallback),
):
    voice.add_url_rule(rule, endpoint, view, methods=["POST"])
sms.add_url_rule("/status", "sms_status", sms_status, methods=["POST"])
media.add_url_rule("/<code>/<name>", "media_file", media_file, methods=["GET"])
voice.before_request(check_signature)
sms.before_request(check_signature)
voice.register_error_handler(CallerMismatch, wrong_caller)
voice.register_error_handler(Exception, unexpected)
