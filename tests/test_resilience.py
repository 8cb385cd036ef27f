"""Resilience, end to end: a process that dies mid-call, errors nobody expected, Twilio's fallback
URL and the end-of-call status callback.
"""

from __future__ import annotations

import pytest

from ivr import actions, create_app
from ivr.ports import DocumentType
from ivr.twiml import Renderer
from tests.calls import LANGUAGES, Call, Records
from tests.conftest import BASE

languages = pytest.mark.parametrize("language", LANGUAGES)


def other(language: str) -> str:
    return next(lang for lang in LANGUAGES if lang != language)


def restart(call: Call, settings, clock) -> None:
    """The process serving the call dies; a new one starts on the same settings and data."""
    call.app.extensions["ivr"].store.engine.dispose()
    call.app = create_app(settings, clock=clock)


# -- a process killed mid-call ------------------------------------------------------------------------


@languages
def test_a_new_process_continues_the_questions_where_they_were(settings, clock, dial, cases, language):
    person = cases["ordinary"]
    call = dial(language).choose_language().identify(person, "temporary_pin")
    question = call.current_question()
    restart(call, settings, clock)

    call.silence()
    assert call.said == ["no_input", f"question_{question}"]
    call.answer_questions(person)
    assert call.said == ["pin_sent", "goodbye"]
    assert len(Records(call.app).sms(call)) == 1


@languages
def test_answers_given_before_the_restart_still_count(settings, clock, dial, cases, language):
    person = cases["passport_and_licence"]
    call = dial(language).choose_language().identify(person, "user_id", document=1)
    first = call.current_question()
    call.answer(person)
    assert call.current_question() != first
    restart(call, settings, clock)

    call.answer_questions(person)
    assert call.said == ["user_id_is", "user_id_again"]
    restart(call, settings, clock)
    call.press("1")
    assert call.said == ["user_id_is", "user_id_again"]


# -- errors nobody expected -----------------------------------------------------------------------------


def boom(*args, **kwargs):
    raise RuntimeError("something nobody planned for")


@languages
@pytest.mark.parametrize("breaks", ["register", "back end"])
def test_an_unexpected_error_apologises_in_the_callers_language_and_queues(
    app, dial, cases, records, monkeypatch, language, breaks
):
    services = app.extensions["ivr"].services
    person = cases["ordinary"]
    call = dial(language).choose_language().press("2").give_document(person.person.documents[0])
    with monkeypatch.context() as patch:
        if breaks == "register":
            patch.setattr(services.register, "person_by_document", boom)
        else:
            patch.setattr(services.backend, "account", boom)
        call.press("1").answer_questions(person)

    assert call.status == 200
    assert call.said == ["apology", "transfer"]
    assert call.hears("apology") and not call.hears("apology", other(language))
    assert call.queued
    assert "application_error" in records.audit(call)
    escalation = records.escalation(call)
    assert (escalation["reason"], escalation["language"]) == ("application_error", language)
    assert records.sms(call) == []


def test_an_error_before_a_language_is_chosen_apologises_in_every_language(dial, monkeypatch):
    monkeypatch.setattr(actions, "is_open", boom)
    call = dial()
    assert call.status == 200
    assert call.said == ["apology", "transfer"] * 3
    assert all(call.hears("apology", language) for language in LANGUAGES)
    assert call.queued


def test_an_error_at_the_language_menu_apologises_in_every_language(dial, monkeypatch):
    call = dial("en")
    monkeypatch.setattr(Renderer, "reply", boom)
    call.choose_language()
    assert call.said == ["apology", "transfer"] * 3
    assert call.queued


@languages
def test_a_retry_of_the_failed_webhook_hears_the_apology_again(app, dial, cases, monkeypatch, language):
    call = dial(language).reach("confirm_document", cases["ordinary"])
    failed = call.pressing("1")
    with monkeypatch.context() as patch:
        patch.setattr(app.extensions["ivr"].services.register, "person_by_document", boom)
        call.send(failed)
    apology = call.body
    call.send(failed)
    assert call.body == apology
    assert call.said == ["apology", "transfer"]
    assert call.queued


@languages
def test_the_call_goes_on_normally_after_the_error_is_gone(app, dial, cases, monkeypatch, language):
    person = cases["ordinary"]
    with monkeypatch.context() as patch:
        patch.setattr(app.extensions["ivr"].services.register, "person_by_document", boom)
        dial(language).reach("confirm_document", person).press("1")
    call = dial(language).choose_language().identify(person, "user_id").answer_questions(person)
    assert call.said == ["user_id_is", "user_id_again"]


# -- Twilio's fallback URL ------------------------------------------------------------------------------


@languages
def test_fallback_url_apologises_in_the_callers_language_and_queues(dial, records, language):
    call = dial(language).choose_language().press("1")
    call.post(f"{BASE}/voice/fallback", ErrorCode="11200", ErrorUrl=f"{BASE}/voice/keys?turn=3")
    assert call.status == 200
    assert call.said == ["apology", "transfer"]
    assert call.hears("apology") and not call.hears("apology", other(language))
    enqueue = call.twiml.find("Enqueue")
    assert enqueue is not None and enqueue.attrib["waitUrl"] == f"{BASE}/voice/wait"
    escalation = records.escalation(call)
    assert (escalation["intent"], escalation["reason"]) == ("user_id", "twilio_fallback")
    assert "twilio_fallback" in records.audit(call)


def test_fallback_for_a_call_the_line_never_saw_apologises_in_every_language(app, records):
    call = Call(app, "test-auth-token", BASE).post(f"{BASE}/voice/fallback", ErrorCode="11205")
    assert call.status == 200
    assert call.said == ["apology", "transfer"] * 3
    assert call.queued
    escalation = records.escalation(call)  # the agent still gets the call, with what little we know
    assert (escalation["reason"], escalation["verification"], escalation["intent"]) == (
        "twilio_fallback",
        "not_started",
        None,
    )


# -- the end of a call ----------------------------------------------------------------------------------


@languages
def test_after_the_call_completes_its_state_holds_no_document_number(dial, cases, language):
    person = cases["passport_and_licence"]
    call = dial(language).reach("question", person)
    assert call.state.collected["document_number"] == "100000002"
    call.hang_up()
    state = call.state
    assert "document_number" not in state.collected
    assert state.collected["document_type"] == DocumentType.PASSPORT
    assert state.ended


@languages
def test_keys_arriving_after_the_call_completed_change_nothing(dial, cases, records, language):
    call = dial(language).reach("confirm_document", cases["ordinary"])
    late = call.pressing("1")
    call.hang_up()
    before = records.session(call)
    call.send(late)
    assert call.status == 200
    assert not call.listening
    assert records.session(call) == before
    assert "verification_started" not in records.audit(call)
