"""Security, end to end: signatures, replays, velocity limits, and what is never written down.

A request Twilio did not sign for exactly this URL and form gets 403 and changes nothing; a
replayed webhook gets the answer it already had; a busy calling number cannot pass; and no
document number, CPR number, answer, PIN, user ID or phone number reaches a log, the audit
trail, the escalations or a URL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import xml.etree.ElementTree as ET

import pytest

from ivr.ports import Document, DocumentType
from ivr.questions import QUESTIONS
from tests.calls import LANGUAGES, Call, Request, sign, spelled
from tests.conftest import BASE, TOKEN

languages = pytest.mark.parametrize("language", LANGUAGES)


def spoil_unsigned(request: Request) -> Request:
    return dataclasses.replace(request, signature="")


def spoil_forged(request: Request) -> Request:
    return dataclasses.replace(request, signature=sign("not-the-auth-token", request.url, request.form))


def spoil_digits(request: Request) -> Request:
    return dataclasses.replace(request, form={**request.form, "Digits": "2"})


def spoil_caller(request: Request) -> Request:
    return dataclasses.replace(request, form={**request.form, "From": "+4599999999"})


def spoil_query(request: Request) -> Request:
    return dataclasses.replace(request, url=re.sub(r"turn=\d+", "turn=99", request.url))


def spoil_base_url(request: Request) -> Request:
    """Correctly signed, but for another host: Twilio did not call this line."""
    other = request.url.replace(BASE, "https://attacker.example.test")
    return dataclasses.replace(request, signature=sign(TOKEN, other, request.form))


SPOILERS = [spoil_unsigned, spoil_forged, spoil_digits, spoil_caller, spoil_query, spoil_base_url]
spoilers = pytest.mark.parametrize("spoil", SPOILERS, ids=lambda f: f.__name__.removeprefix("spoil_"))


# -- signatures --------------------------------------------------------------------------------------------


@spoilers
def test_a_bad_signature_is_refused_and_changes_nothing(dial, cases, records, spoil):
    call = dial("en").reach("confirm_document", cases["ordinary"])
    before = records.everything()
    genuine = call.pressing("1")  # would start verification: attempts, audit, state
    call.send(spoil(genuine))
    assert call.status == 403
    assert call.twiml is None
    assert records.everything() == before

    call.send(genuine)  # Twilio's own request still goes through afterwards
    assert call.status == 200
    assert call.said[0] == "questions_intro"
    assert call.asked


@pytest.mark.parametrize("spoil", [spoil_unsigned, spoil_forged, spoil_caller, spoil_base_url])
@pytest.mark.parametrize("path", ["/voice", "/voice/status", "/voice/wait", "/voice/fallback"])
def test_every_webhook_checks_the_signature(app, dial, records, spoil, path):
    call = dial("en").choose_language().press("0")  # queued, so every webhook has a call to act on
    before = records.everything()
    call.send(spoil(call.request(BASE + path, CallStatus="completed", CallDuration="5")))
    assert call.status == 403
    assert records.everything() == before


def test_a_new_call_with_a_bad_signature_is_not_answered(app, records):
    call = Call(app, TOKEN, BASE)
    before = records.everything()
    call.send(spoil_forged(call.request(f"{BASE}/voice", CallStatus="ringing")))
    assert call.status == 403
    assert records.everything() == before


def test_twilio_shaped_oddities_are_accepted(app):
    call = Call(app, TOKEN, BASE, language="en", sid="CA-not-hex-at-all_42")
    bare = {"CallSid": call.sid}  # no From, To, AccountSid, Direction or CallStatus
    call.send(Request(f"{BASE}/voice", bare, sign(TOKEN, f"{BASE}/voice", bare)))
    assert call.status == 200
    assert call.said == ["welcome", "choose_language", "choose_language"]

    action = call.gather.attrib["action"]
    form = {"CallSid": call.sid, "Digits": "", "CallerCountry": "DK", "StirVerstat": "TN-Validation-Passed-A"}
    call.send(Request(action, form, sign(TOKEN, action, form)))
    assert call.status == 200
    assert call.said == ["no_input", "no_input", "choose_language", "choose_language"]

    action = call.gather.attrib["action"]
    call.send(Request(action, bare, sign(TOKEN, action, bare)))  # no Digits at all: silence too
    assert call.status == 200
    assert call.said[:2] == ["no_input", "no_input"]


# -- replays -----------------------------------------------------------------------------------------------


@languages
def test_a_replayed_pin_request_sends_no_second_sms_and_issues_no_second_pin(dial, cases, records, language):
    person = cases["ordinary"]
    call = dial(language).choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.said == ["pin_sent", "goodbye"]
    last_request, first_answer = call.requests[-1], call.body

    for _ in range(3):
        call.send(last_request)
        assert call.status == 200
        assert call.body == first_answer
    assert len(records.sms(call)) == 1
    assert len(records.rows("demo_temporary_pins")) == 1


@languages
def test_a_replayed_old_turn_gets_the_stored_reply_and_changes_nothing(dial, records, language):
    call = dial(language).choose_language().press("2")  # temporary PIN
    old_turn = call.requests[-1]
    call.press("100000001#")  # a passport
    assert call.said == ["confirm_document"]
    now_answer, session = call.body, records.session(call)

    call.send(old_turn)
    assert call.body == now_answer
    assert records.session(call) == session
    collected = {"intent": "temporary_pin", "document_type": "passport", "document_number": "100000001"}
    assert call.state.collected == collected
    call.press("1")
    assert call.said[-1].startswith("question_")


# -- velocity --------------------------------------------------------------------------------------------


@languages
def test_sixth_verification_from_one_number_in_an_hour_hears_the_phone_is_blocked(
    clock, dial, cases, records, language
):
    busy = "+4561000000"
    ordinary, lars = cases["ordinary"], cases["passport_and_licence"]
    for _ in range(5):
        call = dial(language, caller=busy).choose_language().identify(ordinary, "user_id")
        assert call.answer_questions(ordinary).said == ["user_id_is", "user_id_again"]

    sixth = dial(language, caller=busy).choose_language().identify(lars, "user_id")
    assert sixth.said == ["phone_limited", "goodbye"]  # no question, not a word about Lars
    assert sixth.hung_up
    assert "verification_refused" in records.audit(sixth)
    # Nothing was counted against the identity the blocked phone claimed: Lars still has all
    # his tries (two wrong, then right, from other numbers).
    for number in ("+4561000011", "+4561000012"):
        dial(language, caller=number).choose_language().identify(lars, "user_id").answer_questions(
            lars, right=0
        )
    third = dial(language, caller="+4561000013").choose_language().identify(lars, "user_id")
    assert third.answer_questions(lars).said == ["user_id_is", "user_id_again"]

    other_number = dial(language, caller="+4561000002").choose_language().identify(ordinary, "user_id")
    assert other_number.answer_questions(ordinary).said == ["user_id_is", "user_id_again"]

    clock.advance(minutes=61)
    later = dial(language, caller=busy).choose_language().identify(ordinary, "user_id")
    assert later.answer_questions(ordinary).said == ["user_id_is", "user_id_again"]


# -- privacy -------------------------------------------------------------------------------------------


def every_journey(app, dial, cases, monkeypatch) -> list[Call]:
    """Whole calls down every journey, with the awkward people, in both languages."""
    calls = []
    for n, person in enumerate(cases.values()):
        language = LANGUAGES[n % 2]
        for document in range(len(person.person.documents)):
            for intent in ("user_id", "temporary_pin"):
                call = dial(language, caller=f"+457000{n:02d}{document}{len(intent):02d}").choose_language()
                calls.append(call.identify(person, intent, document=document).answer_questions(person))
                if call.listening:
                    call.press("1").press("2")  # hear the user ID again, then goodbye
    ordinary = cases["ordinary"]
    for language in LANGUAGES:
        for _ in range(4):  # wrong answers, then a locked identity
            call = dial(language, caller="+4570100001").choose_language().identify(ordinary, "user_id")
            calls.append(call.answer_questions(ordinary, right=1))
        unknown = Document(DocumentType.PASSPORT, "987654321")
        call = dial(language).choose_language().identify(unknown, "temporary_pin")
        calls.append(call.answer_questions(None))
        calls.append(dial(language).choose_language().press("1").press("1#"))  # foreign passport
        call = dial(language).choose_language().press("2").press("1000000#")  # a digit short
        calls.append(call.press("100000001#").press("0"))  # agent at the confirmation
        call = dial(language).choose_language().identify(cases["greenlandic"], "temporary_pin")
        calls.append(call.press("0#"))  # agent during the questions
        calls.append(dial(language).reach("confirm_document", ordinary).hang_up())  # hangs up mid-call
        calls.append(crashing_call(app, dial, cases, monkeypatch, language))
        for spoil in SPOILERS:
            call = dial(language).reach("document_number", ordinary)
            calls.append(call.send(spoil(call.pressing("100000001#"))))
    for call in calls:
        call.hang_up()
    return calls


def crashing_call(app, dial, cases, monkeypatch, language: str) -> Call:
    """A call during which the register fails with an error that quotes the document number."""
    register = app.extensions["ivr"].services.register

    def fails(document):
        raise RuntimeError(f"cannot look up {document.type} {document.number}")

    call = dial(language).reach("confirm_document", cases["passport_and_licence"])
    with monkeypatch.context() as patch:
        patch.setattr(register, "person_by_document", fails)
        call.press("1")
    assert call.queued
    return call


def secrets_of(cases, calls: list[Call], records) -> set[str]:
    """Every secret the calls above involved, in the forms it could be written in."""
    found: set[str] = set()
    for demo in cases.values():
        p = demo.person
        found |= {p.cpr, f"{p.cpr[:6]}-{p.cpr[6:]}", *(d.number for d in p.documents)}
        found |= {answer for q in QUESTIONS.values() if (answer := q.fact(p))}
        if demo.account:
            found.add(demo.account.user_id)
            if demo.account.mobile:
                found |= {demo.account.mobile, demo.account.mobile[-6:]}
    for call in calls:
        found |= {call.caller, call.caller.removeprefix("+45")}
        found |= {r.form.get("Digits", "") for r in call.requests if len(r.form.get("Digits", "")) >= 4}
    found |= {re.search(r"\d{8}", text).group(0) for text in records.texts_to()}
    return {s for s in found if len(s) >= 4}


def test_secrets_never_reach_logs_audit_escalations_or_urls(app, dial, cases, records, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="werkzeug")
    calls = every_journey(app, dial, cases, monkeypatch)
    secrets = secrets_of(cases, calls, records)
    assert len(records.texts_to()) >= 4 and len(records.rows("escalations")) >= 10
    assert len(secrets) > 100

    logged = caplog.text + "".join(str(r.args) + str(r.exc_info) for r in caplog.records)
    audit = [f"{row['event']} {row['detail']}" for row in records.rows("audit_events")]
    escalations = [
        " ".join(str(row[k]) for k in ("language", "intent", "verification", "reason", "document", "step"))
        for row in records.rows("escalations")
    ]
    urls = [url for call in calls for url in call.urls]
    assert "failed: RuntimeError at" in caplog.text  # the crash was logged, only not its message
    for secret in secrets:
        assert secret not in logged, f"{secret!r} was logged"
        assert not [a for a in audit if secret in a], f"{secret!r} is in the audit trail"
        assert not [e for e in escalations if secret in e], f"{secret!r} is in an escalation"
        assert not [u for u in urls if secret in u], f"{secret!r} is in a TwiML URL"
    for row in records.rows("escalations"):
        document = row["document"] or "passport ending 00"
        assert re.fullmatch(r"(passport|driving_licence) ending \d\d", document)


@languages
@pytest.mark.parametrize("step", ["confirm_document", "user_id_again"])
def test_a_call_that_hung_up_keeps_no_document_number_or_user_id(dial, cases, records, language, step):
    person = cases["exotic_user_id"]
    call = dial(language).reach(step, person).hang_up()
    session = records.session(call)
    state = json.dumps(json.loads(session["state"]), ensure_ascii=False)
    reply = " ".join(say.text or "" for say in ET.fromstring(session["reply"]).iter("Say"))
    number, user_id = person.person.documents[0].number, person.account.user_id
    for secret in (number, user_id, spelled(number, language), spelled(user_id, language)):
        assert secret not in state
        assert secret not in reply
