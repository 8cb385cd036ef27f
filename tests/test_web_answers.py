"""How the web layer answers: TwiML as text/xml, and 400 for a signed request that names no call.

(Signatures and body limits are in test_security.py.)
"""

from __future__ import annotations

import pytest

from tests.calls import sign
from tests.conftest import BASE, TOKEN


def post(app, path: str, form: dict[str, str]):
    url = f"{BASE}{path}"
    return app.test_client().post(path, data=form, headers={"X-Twilio-Signature": sign(TOKEN, url, form)})


@pytest.mark.parametrize(
    "path", ["/voice", "/voice/keys?turn=1", "/voice/wait", "/voice/queue-exit", "/voice/fallback"]
)
def test_every_twiml_answer_is_text_xml(app, path):
    answer = post(app, path, {"CallSid": "CA" + "1" * 32, "From": "+4579000001", "Digits": "1"})
    assert answer.status_code == 200
    assert answer.mimetype == "text/xml"
    assert answer.get_data(as_text=True).startswith("<?xml")


@pytest.mark.parametrize(
    "path", ["/voice", "/voice/keys?turn=1", "/voice/status", "/voice/wait", "/voice/queue-exit"]
)
def test_a_signed_request_without_a_call_sid_is_a_bad_request(app, path):
    answer = post(app, path, {"From": "+4579000001", "Digits": "1"})
    assert answer.status_code == 400


def test_a_request_naming_no_call_is_logged_with_its_path(app, caplog):
    post(app, "/voice/wait", {"From": "+4579000001"})
    messages = [record.getMessage() for record in caplog.records]
    assert "refused a signed request to /voice/wait without a usable CallSid" in messages
