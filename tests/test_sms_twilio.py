"""TwilioSms against a loopback HTTP server that answers like Twilio's REST API."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from ivr.adapters.sms_twilio import TwilioSms
from ivr.errors import BackendError, DeliveryUnknown
from ivr.ports import SmsSender

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0000"
SENDER = "+4512345678"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
TO = "+4522334455"
BODY = "Din midlertidige MitID-adgangskode er 12345678."
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
# Twilio's own OpenAPI description, cut down to the operations the line uses (see its README).
OAI_FILE = Path(__file__).resolve().parent / "data" / "twilio_oai" / "twilio_api_v2010_subset.json"
OAI_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MEMBER_PATH = "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}/Members/{CallSid}.json"
CALL_PATH = "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"


@dataclass
class Seen:
    method: str
    path: str
    authorization: str
    content_type: str
    form: dict[str, list[str]]


@dataclass
class FakeTwilio:
    """What the fake server answers and what it has seen."""

    status: int = 201
    answer: dict[str, object] | None = None
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""
    listing: dict[str, object] | None = None  # what a GET answers (a list of resources)


def _message_resource(form: dict[str, list[str]]) -> dict[str, object]:
    sid = "SM" + secrets.token_hex(16)
    stamp = "Thu, 24 Aug 2023 05:01:45 +0000"
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": form.get("Body", [""])[0],
        "date_created": stamp,
        "date_sent": None,
        "date_updated": stamp,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From", [None])[0],
        "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
        "to": form.get("To", [""])[0],
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            fake.seen.append(
                Seen(
                    "POST",
                    self.path,
                    self.headers.get("Authorization", ""),
                    self.headers.get("Content-Type", ""),
                    form,
                )
            )
            if fake.delay:
                fake.release.wait(fake.delay)
            payload = fake.answer if fake.answer is not None else _message_resource(form)
            raw = json.dumps(payload).encode()
            try:
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except OSError:
                pass  # the client gave up (timeout test)

        def do_GET(self) -> None:
            fake.seen.append(Seen("GET", self.path, self.headers.get("Authorization", ""), "", {}))
            raw = json.dumps(fake.listing or {}).encode()
            self.send_response(200 if fake.listing is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def twilio_server() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def sms(twilio_server: FakeTwilio) -> Iterator[TwilioSms]:
    sender = TwilioSms(ACCOUNT_SID, AUTH_TOKEN, sender=SENDER, api_base_url=twilio_server.base_url)
    try:
        yield sender
    finally:
        sender.close()


def _create_message_schema() -> dict[str, object]:
    spec = json.loads(OAI_FILE.read_text(encoding="utf-8"))
    post = spec["paths"][OAI_PATH]["post"]
    assert post["operationId"] == "CreateMessage"
    schema: dict[str, object] = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return schema


def _assert_matches_create_message(form: dict[str, list[str]]) -> None:
    schema = _create_message_schema()
    properties = schema["properties"]
    assert isinstance(properties, dict)
    unknown = set(form) - set(properties)
    assert not unknown, f"fields not in Twilio's CreateMessage schema: {sorted(unknown)}"
    required = schema.get("required", [])
    assert isinstance(required, list)
    assert set(required) <= set(form), f"missing required fields: {set(required) - set(form)}"


def test_satisfies_the_sms_port(twilio_server: FakeTwilio, sms: TwilioSms) -> None:
    port: SmsSender = sms
    assert port.send(TO, BODY).startswith("SM")


def test_asks_for_delivery_reports_on_the_lines_own_url(twilio_server: FakeTwilio) -> None:
    callback = "https://ivr.example.test/sms/status"
    sms = TwilioSms(
        ACCOUNT_SID, AUTH_TOKEN, sender=SENDER, api_base_url=twilio_server.base_url, status_callback=callback
    )
    try:
        sms.send(TO, BODY)
    finally:
        sms.close()
    [seen] = twilio_server.seen
    assert seen.form == {"To": [TO], "From": [SENDER], "Body": [BODY], "StatusCallback": [callback]}
    _assert_matches_create_message(seen.form)


def test_send_posts_the_message_twilio_expects(twilio_server: FakeTwilio, sms: TwilioSms) -> None:
    sid = sms.send(TO, BODY)

    assert sid.startswith("SM") and len(sid) == 34
    [seen] = twilio_server.seen
    assert seen.path == MESSAGES_PATH
    assert seen.content_type.startswith("application/x-www-form-urlencoded")
    expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert seen.authorization == f"Basic {expected_auth}"
    assert seen.form == {"To": [TO], "From": [SENDER], "Body": [BODY]}
    _assert_matches_create_message(seen.form)


def test_send_through_a_messaging_service(twilio_server: FakeTwilio) -> None:
    sms = TwilioSms(
        ACCOUNT_SID,
        AUTH_TOKEN,
        messaging_service_sid=SERVICE_SID,
        api_base_url=twilio_server.base_url + "/",
    )
    try:
        sms.send(TO, BODY)
    finally:
        sms.close()

    [seen] = twilio_server.seen
    assert seen.path == MESSAGES_PATH
    assert seen.form == {"To": [TO], "MessagingServiceSid": [SERVICE_SID], "Body": [BODY]}
    _assert_matches_create_message(seen.form)


def test_the_openapi_description_is_where_the_tests_expect_it() -> None:
    schema = _create_message_schema()
    assert schema["required"] == ["To"]


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if "$ref" in node else set()
        return own.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


def test_the_extract_keeps_the_operations_the_line_uses_with_their_licence() -> None:
    spec = json.loads(OAI_FILE.read_text(encoding="utf-8"))
    operations = {
        (path, method): operation["operationId"]
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert operations == {
        (OAI_PATH, "post"): "CreateMessage",
        (MEMBER_PATH, "post"): "UpdateMember",
        (CALL_PATH, "post"): "UpdateCall",
    }
    for path, method in operations:
        form = spec["paths"][path][method]["requestBody"]["content"]["application/x-www-form-urlencoded"]
        assert form["schema"]["properties"], path
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec):
        assert ref.removeprefix("#/components/schemas/") in schemas, f"dangling {ref}"
    licence = (OAI_FILE.parent / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Twilio" in licence


@pytest.mark.parametrize(
    ("sender", "service"), [(None, None), (SENDER, SERVICE_SID)], ids=["neither", "both"]
)
def test_exactly_one_origin_is_required(sender: str | None, service: str | None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TwilioSms(ACCOUNT_SID, AUTH_TOKEN, sender=sender, messaging_service_sid=service)


def _assert_private(error: BackendError) -> None:
    told = "".join(traceback.format_exception(error))
    for secret in (TO, TO[1:], "12345678", BODY):
        assert secret not in told
    assert error.__cause__ is None and error.__suppress_context__


def test_twilio_refusal_is_a_backend_error_without_number_or_body(
    twilio_server: FakeTwilio, sms: TwilioSms
) -> None:
    twilio_server.status = 400
    twilio_server.answer = {
        "code": 21211,
        "message": f"The 'To' number {TO} is not a valid phone number. Body: {BODY}",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }

    with pytest.raises(BackendError) as caught:
        sms.send(TO, BODY)

    assert "400" in str(caught.value) and "21211" in str(caught.value)
    _assert_private(caught.value)


def test_connection_refused_is_a_backend_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sms = TwilioSms(ACCOUNT_SID, AUTH_TOKEN, sender=SENDER, api_base_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(BackendError, match="ConnectionError") as caught:
            sms.send(TO, BODY)
    finally:
        sms.close()
    assert not isinstance(caught.value, DeliveryUnknown)  # never reached Twilio: surely not sent
    _assert_private(caught.value)


def test_timeout_is_honoured(twilio_server: FakeTwilio) -> None:
    twilio_server.delay = 5.0
    sms = TwilioSms(ACCOUNT_SID, AUTH_TOKEN, sender=SENDER, api_base_url=twilio_server.base_url, timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryUnknown, match="did not answer in time") as caught:
            sms.send(TO, BODY)  # Twilio may have taken it: not a plain failure
    finally:
        sms.close()
    assert time.monotonic() - started < 2.0
    _assert_private(caught.value)


def test_unreadable_answer_is_a_backend_error(twilio_server: FakeTwilio, sms: TwilioSms) -> None:
    twilio_server.answer = {"status": "queued"}

    with pytest.raises(BackendError, match="no message SID"):
        sms.send(TO, BODY)
