"""The journeys of the brief, end to end: each test is one or more whole calls to the real app.

Tests assert what the caller hears (prompt keys and words) and what the line did (SMS, PINs in
the demo back end, escalations an agent sees), in Danish and in English.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from ivr.hours import describe
from ivr.ports import Document, DocumentType
from ivr.prompts import OpeningTimes, Spelled
from ivr.store import masked
from tests.calls import LANGUAGES, spelled
from tests.conftest import BASE

languages = pytest.mark.parametrize("language", LANGUAGES)
NEVER_ASKS = {
    "da": "MitID Support beder dig aldrig om koden",
    "en": "MitID Support will never ask you for this code",
    "kl": "MitID Support kodemik tassannga aperisanngilaq",
}
UNKNOWN_PASSPORT = Document(DocumentType.PASSPORT, "999999990")
UNKNOWN_LICENCE = Document(DocumentType.DRIVING_LICENCE, "99999990")


def sms_pattern(call, language: str) -> re.Pattern[str]:
    """The language's PIN text message, with its code as a group of exactly 8 digits."""
    template = call.catalog[language].sms["temporary_pin"]
    code, expires = (re.escape(part) for part in template.split("{code}"))
    return re.compile(code + r"(\d{8})" + expires.replace(re.escape("{expires}"), r"(.+?)"))


# -- 1. forgotten user ID ---------------------------------------------------------------------------


@languages
def test_forgotten_user_id_whole_call(dial, cases, language):
    person = cases["ordinary"]
    call = dial(language).choose_language().identify(person, "user_id").answer_questions(person)
    assert call.outline == [
        "welcome", "choose_language", "choose_language", "choose_language", "main_menu", "document_number",
        "confirm_document", "questions_intro", "question", "question", "question",
        "user_id_is", "user_id_again",
    ]  # fmt: skip
    assert call.hears("user_id_is", user_id=Spelled("mette.hansen85"))


@languages
def test_awkward_user_id_is_spelled_with_the_prompt_files_names(dial, cases, language):
    person = cases["exotic_user_id"]
    call = dial(language).choose_language().identify(person, "user_id").answer_questions(person)
    spelling = spelled("søren.ærø å{1}!", language)
    assert f": {spelling}." in call.heard
    assert len(spelling.split(", ")) == len("søren.ærø å{1}!")
    assert call.text("user_id_is", user_id=Spelled("søren.ærø å{1}!")) in call.heard

    call.press("1")
    assert call.said == ["user_id_is", "user_id_again"]
    assert f": {spelling}." in call.heard

    call.press("2")
    assert call.said == ["goodbye"]
    assert call.hung_up


@languages
def test_document_number_is_read_back_and_can_be_keyed_again(dial, cases, language):
    person = cases["ordinary"]
    call = dial(language).choose_language().press("1").press("100000009#")
    assert call.hears("confirm_document", document_number=Spelled("100000009"))
    call.press("2")
    assert call.said == ["document_number"]
    call.press("100000001#").press("1").answer_questions(person)
    assert call.hears("user_id_is", user_id=Spelled(person.account.user_id))


@languages
@pytest.mark.parametrize(("case", "document"), [("passport_and_licence", 1), ("licence_only", 0)])
def test_driving_licence_identifies_the_caller(dial, cases, language, case, document):
    person = cases[case]
    assert person.person.documents[document].type is DocumentType.DRIVING_LICENCE
    call = dial(language).choose_language().identify(person, "user_id", document=document)
    assert call.state.collected["document_type"] == "driving_licence"
    call.answer_questions(person)
    assert call.hears("user_id_is", user_id=Spelled(person.account.user_id))


# -- 2. temporary PIN ---------------------------------------------------------------------------------


@languages
@pytest.mark.parametrize("case", ["ordinary", "greenlandic"])
def test_temporary_pin_goes_by_sms_to_the_registered_mobile(app, dial, cases, records, language, case):
    person = cases[case]
    mobile = person.account.mobile
    call = dial(language, caller="+4560000001").choose_language()
    call.identify(person, "temporary_pin").answer_questions(person)

    assert call.said == ["pin_sent", "goodbye"]
    assert call.hung_up
    assert call.hears("pin_sent", mobile_last_digits=Spelled(mobile[-2:]))
    assert spelled(mobile[-3:], language) not in call.heard

    (sms,) = records.sms(call)
    assert sms["to"] == masked(mobile) and mobile != call.caller
    assert (sms["status"], sms["body"]) == ("sent", "temporary_pin")
    (text,) = records.texts_to(mobile)
    assert NEVER_ASKS[language] in text
    match = sms_pattern(call, language).fullmatch(text)
    assert match, f"not the {language} PIN text: {text}"
    code = match.group(1)
    assert code not in call.heard
    assert app.extensions["ivr"].services.backend.verify_temporary_pin(person.person.cpr, code)
    assert len(records.rows("demo_temporary_pins")) == 1


EXPIRES = {  # 24 hours after 10:00 UTC on 24 November 2026, on the reader's clock
    ("da", "ordinary"): "25.11.2026 kl. 11:00 (dansk tid)",
    ("en", "ordinary"): "25/11/2026 at 11:00 (Danish time)",
    ("da", "greenlandic"): "25.11.2026 kl. 08:00 (grønlandsk tid)",
    ("en", "greenlandic"): "25/11/2026 at 08:00 (Greenland time)",
    ("kl", "ordinary"): "25.11.2026 nal. 11:00 (Danmarkimi nalunaaqutaq)",
    ("kl", "greenlandic"): "25.11.2026 nal. 08:00 (Kalaallit Nunaanni nalunaaqutaq)",
}


@languages
@pytest.mark.parametrize("case", ["ordinary", "greenlandic"])
def test_the_sms_gives_the_expiry_on_the_readers_clock_in_their_language(
    dial, cases, records, language, case
):
    person = cases[case]
    call = dial(language).choose_language().identify(person, "temporary_pin").answer_questions(person)
    (text,) = records.texts_to(person.account.mobile)
    assert sms_pattern(call, language).fullmatch(text).group(2) == EXPIRES[language, case]


@languages
def test_temporary_pin_by_driving_licence(app, dial, cases, records, language):
    person = cases["licence_only"]
    call = dial(language).choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.said == ["pin_sent", "goodbye"]
    (sms,) = records.sms(call)
    assert sms["to"] == masked(person.account.mobile)
    (text,) = records.texts_to(person.account.mobile)
    code = sms_pattern(call, language).fullmatch(text).group(1)
    assert app.extensions["ivr"].services.backend.verify_temporary_pin(person.person.cpr, code)


# -- 3. cannot be verified ----------------------------------------------------------------------------


@languages
@pytest.mark.parametrize("right", [0, 2])
def test_wrong_answers_hear_cannot_verify_and_goodbye(dial, cases, records, language, right):
    person = cases["ordinary"]
    call = dial(language).choose_language().identify(person, "temporary_pin")
    call.answer_questions(person, right=right)
    assert call.said == ["cannot_verify", "goodbye"]
    assert call.hung_up
    assert records.sms(call) == []
    assert records.rows("demo_temporary_pins") == []


@languages
@pytest.mark.parametrize("unknown", [UNKNOWN_PASSPORT, UNKNOWN_LICENCE])
def test_unknown_document_sounds_exactly_like_wrong_answers(app, dial, cases, language, unknown):
    assert app.extensions["ivr"].services.register.person_by_document(unknown) is None
    person = cases["passport_and_licence"]
    document = 0 if unknown.type is DocumentType.PASSPORT else 1
    wrong = dial(language).choose_language().identify(person, "user_id", document=document)
    wrong.answer_questions(person, right=2)
    stranger = dial(language, caller="+4560000002").choose_language().identify(unknown, "user_id")
    stranger.answer_questions(None)

    assert stranger.outline == wrong.outline
    assert stranger.outline.count("question") == 3
    assert stranger.said == wrong.said == ["cannot_verify", "goodbye"]
    assert stranger.heard == wrong.heard


@languages
def test_locked_identity_hears_the_same_questions_and_words_even_when_right(dial, cases, language):
    person = cases["ordinary"]
    failed = []
    for n in range(3):
        call = dial(language, caller=f"+456000001{n}").choose_language().identify(person, "user_id")
        failed.append(call.answer_questions(person, right=0))
    fourth = dial(language, caller="+4560000019").choose_language().identify(person, "user_id")
    fourth.answer_questions(person)

    assert fourth.outline == failed[0].outline
    assert fourth.outline.count("question") == 3
    assert fourth.said == ["cannot_verify", "goodbye"]
    assert fourth.heard == failed[0].heard


@languages
def test_lockout_follows_the_person_to_their_other_document(dial, cases, language):
    person = cases["passport_and_licence"]
    for n in range(3):
        call = dial(language, caller=f"+456000002{n}").choose_language().identify(person, "user_id")
        call.answer_questions(person, right=0)
    other = dial(language, caller="+4560000029").choose_language()
    other.identify(person, "user_id", document=1).answer_questions(person)
    assert other.said == ["cannot_verify", "goodbye"]


# -- 4. foreign passport --------------------------------------------------------------------------------


@languages
@pytest.mark.parametrize("intent", ["1", "2"])
def test_foreign_passport_is_sent_to_citizen_service(dial, records, language, intent):
    call = dial(language).choose_language().press(intent).press("1#")
    assert call.said == ["foreign_document", "goodbye"]
    assert call.hung_up
    assert records.escalations(call) == []


# -- 5. to an agent -------------------------------------------------------------------------------------


@languages
def test_0_at_the_main_menu_puts_the_caller_through_with_context(dial, records, language, on_duty):
    call = dial(language).choose_language().press("0")
    assert call.said == ["transfer"]
    assert call.queued
    enqueue = call.twiml.find("Enqueue")
    assert enqueue.attrib["waitUrl"] == f"{BASE}/voice/wait"
    assert enqueue.text == "mitid-support"
    escalation = records.escalation(call)
    assert escalation["language"] == language
    assert escalation["intent"] is None
    assert escalation["verification"] == "not_started"
    assert escalation["reason"] == "caller_request"
    assert escalation["document"] is None

    call.wait_in_queue(position=2)
    assert call.said == ["queue_position"]
    assert call.hears("queue_position", position="2", minutes="6")


@languages
def test_0_at_the_document_prompt_puts_the_caller_through_with_what_they_want(dial, records, language):
    call = dial(language).choose_language().press("2")
    assert call.said == ["document_number"]
    call.press("0#")
    assert call.said == ["transfer"]  # not verified: the agent will have to ask
    assert call.queued
    escalation = records.escalation(call)
    assert (escalation["language"], escalation["intent"]) == (language, "temporary_pin")
    assert escalation["reason"] == "caller_request"


@languages
def test_0_while_keying_the_document_number_puts_the_caller_through(dial, records, language):
    call = dial(language).choose_language().press("1")
    assert call.said == ["document_number"]
    call.press("0#")
    assert call.said == ["transfer"]  # not verified: the agent will have to ask
    assert call.queued
    escalation = records.escalation(call)
    assert (escalation["intent"], escalation["verification"]) == ("user_id", "not_started")
    assert escalation["reason"] == "caller_request"


@languages
def test_0_during_the_questions_tells_the_agent_how_far_it_got(dial, cases, records, language):
    person = cases["ordinary"]
    call = dial(language).choose_language().identify(person, "temporary_pin").press("0#")
    assert call.queued
    escalation = records.escalation(call)
    assert escalation["verification"] == "in_progress"
    assert escalation["document"] == "passport ending 01"
    assert escalation["intent"] == "temporary_pin"


@languages
def test_no_registered_mobile_goes_to_an_agent_with_the_reason(dial, cases, records, language):
    person = cases["no_mobile"]
    call = dial(language).choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.said == ["no_registered_mobile", "transfer", "context_kept"]
    assert call.queued
    escalation = records.escalation(call)
    assert escalation["reason"] == "no_registered_mobile"
    assert escalation["verification"] == "verified"
    assert escalation["intent"] == "temporary_pin"
    assert escalation["document"] == "passport ending 03"
    assert escalation["language"] == language
    assert records.sms(call) == []


@languages
def test_mobile_changed_two_days_ago_gets_no_sms_and_is_told_why(dial, cases, records, language):
    person = cases["mobile_changed_48h"]
    call = dial(language).choose_language().identify(person, "temporary_pin").answer_questions(person)
    assert call.said == ["mobile_recently_changed", "transfer", "context_kept"]
    assert call.hears("mobile_recently_changed", quarantine_days="5")
    assert call.queued
    assert records.escalation(call)["reason"] == "mobile_recently_changed"
    assert records.sms(call) == []
    assert records.rows("demo_temporary_pins") == []


@languages
@pytest.mark.parametrize("intent", ["user_id", "temporary_pin"])
def test_no_mitid_is_told_so(dial, cases, records, language, intent):
    person = cases["no_mitid"]
    call = dial(language).choose_language().identify(person, intent).answer_questions(person)
    assert call.said == ["no_mitid", "goodbye"]
    assert call.hung_up
    assert records.sms(call) == []


@languages
@pytest.mark.parametrize("intent", ["user_id", "temporary_pin"])
def test_back_end_failure_apologises_and_goes_to_an_agent(dial, cases, records, language, intent):
    person = cases["backend_fails"]
    call = dial(language).choose_language().identify(person, intent).answer_questions(person)
    assert call.said == ["backend_failure", "transfer", "context_kept"]
    assert call.queued
    escalation = records.escalation(call)
    assert escalation["reason"] == "backend_failure"
    assert escalation["verification"] == "verified"
    assert escalation["language"] == language
    assert records.sms(call) == []


# -- 6. closed ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 11, 29, 11, 0, tzinfo=dt.UTC),  # a Sunday, noon in Copenhagen
        dt.datetime(2026, 12, 25, 10, 0, tzinfo=dt.UTC),  # Christmas Day, a Friday, 11:00
    ],
    ids=["sunday", "christmas"],
)
def test_closed_line_says_the_hours_in_every_language_and_hangs_up(app, clock, dial, moment):
    clock.now = moment
    call = dial()
    hours = OpeningTimes(tuple(describe(app.extensions["ivr.settings"].opening_hours)))
    assert call.said == ["closed", "closed_help"] * 3
    for language in ("da", "en"):
        assert call.hears("closed", language, hours=hours)
        assert call.hears("closed_help", language)
    assert "09:00" in call.heard and "17:00" in call.heard
    # Greenlandic is played: the hours from recorded pieces, the days by name, the hours as numbers
    played = call.played
    assert played[0] == "kl/closed.0" and played[-2:] == ["kl/closed.1", "kl/closed_help"]
    assert played[1:4] == ["kl/day_mon", "kl/hours_days.1", "kl/day_thu"]
    assert {"kl/num_9", "kl/num_17", "kl/num_16", "kl/day_sat", "kl/num_10", "kl/num_14"} <= set(played)
    assert call.hung_up
    assert not call.listening


@pytest.mark.parametrize(
    ("caller", "first"),
    [("+4520000077", "da"), ("+299321000", "da"), ("+442071838750", "en"), ("+14155550100", "en")],
)
def test_the_calling_number_decides_which_language_is_offered_first(dial, caller, first):
    """Danish first from a Danish or Greenlandic number, English first from any other; every
    language offered, Greenlandic next from a Greenlandic number, else last."""
    call = dial(caller=caller)
    other = "en" if first == "da" else "da"
    assert call.said == ["welcome", "choose_language", "choose_language", "choose_language"]
    order = [first, "kl", other] if caller.startswith("+299") else [first, other, "kl"]
    expected = [call.text("welcome", first), *(call.text("choose_language", lang) for lang in order)]
    assert call.heard == " ".join(expected)
    call.press({"da": "1", "en": "2"}[other])
    assert call.said == ["main_menu"]
    assert call.hears("main_menu", other)
    assert call.state.language == other


def test_an_ordinary_weekday_morning_is_open(dial):
    call = dial()
    assert call.said == ["welcome", "choose_language", "choose_language", "choose_language"]
    assert call.listening


@languages
def test_a_caller_without_a_spouse_passes_by_keying_zeros_for_none(app, dial, records, language):
    """Everyone may be asked about a spouse; who has none keys eight zeros, and that is right."""
    emma = Document(DocumentType.DRIVING_LICENCE, "23767568")  # a demo person with no spouse
    person = next(p for p in app.extensions["ivr.people"] if emma in p.person.documents)
    assert person.person.spouse_birth_date is None
    asked_about_spouse = 0
    for _ in range(20):  # the spouse question comes up in 3 of 7 calls: missed 20 times, 1 in 70,000
        call = dial(language).choose_language().identify(person, "user_id")
        while call.asked:
            if call.current_question() == "spouse_birth_date":
                asked_about_spouse += 1
                call.press("00000000")
            else:
                call.answer(person)
        assert call.said == ["user_id_is", "user_id_again"], call.heard
    assert asked_about_spouse >= 1
