"""The engine on its own: no server, no database, just the real flow, the catalog and call states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr import definitions
from ivr.checks import CHECKS
from ivr.engine import ActionNeeded, Engine, Listen, Reply, Result, Utterance
from ivr.flows import Flow, check_flow
from ivr.prompts import Spelled
from ivr.questions import QUESTIONS
from ivr.state import CallState, Verification

REPO = Path(__file__).resolve().parent.parent
FLOW, CATALOG = definitions.load(REPO / "call_flows", REPO / "prompts", "support")
LANGUAGES = tuple(CATALOG)
TIMEOUT = FLOW.defaults.timeout_seconds


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(FLOW, LANGUAGES, CHECKS)


def at(step: str, **fields: Any) -> CallState:
    """A call standing at `step` (English unless told otherwise)."""
    return CallState(call_sid="CA-test", caller_key="caller", step=step, **{"language": "en", **fields})


def reply(result: Result) -> Reply:
    assert isinstance(result, Reply), f"expected words for the caller, got {result}"
    return result


def action(result: Result, name: str) -> ActionNeeded:
    assert isinstance(result, ActionNeeded), f"expected action {name!r}, got {result}"
    assert result.action == name
    return result


def keys(engine: Engine, state: CallState, *entries: str) -> Result:
    """Key each entry in turn at whatever step the call is at; the last result."""
    result: Result = reply(engine.on_keys(state, entries[0]))
    for entry in entries[1:]:
        result = engine.on_keys(reply(result).state, entry)
    return result


def said(result: Reply) -> list[str]:
    return [u.key for u in result.speech]


def menu(result: Result, step: str, timeout: int = TIMEOUT) -> Reply:
    """The call waits at menu `step` for one key."""
    answer = reply(result)
    assert answer.state.step == step
    assert answer.listen == Listen(1, "", timeout)
    assert answer.end is None
    return answer


# -- the start of a call ----------------------------------------------------------------------------


def test_a_call_begins_by_asking_whether_the_line_is_open(engine: Engine) -> None:
    pending = action(engine.begin(at("opening_hours", language="da")), "check_opening_hours")
    assert pending.state.step == "opening_hours"
    assert pending.speech == ()


def test_open_line_offers_the_language_menu_in_every_language(engine: Engine) -> None:
    pending = action(engine.begin(at("opening_hours", language="da")), "check_opening_hours")
    answer = menu(engine.on_outcome(pending, "open", {}), "choose_language")
    languages = [Utterance("choose_language", lang) for lang in LANGUAGES]
    assert answer.speech == (Utterance("welcome"), *languages)
    assert set(LANGUAGES) == {"da", "en", "kl"}


def test_the_language_the_number_suggests_is_offered_first(engine: Engine) -> None:
    pending = action(engine.begin(at("opening_hours", language="en")), "check_opening_hours")
    answer = menu(engine.on_outcome(pending, "open", {}), "choose_language")
    order = [u.language for u in answer.speech if u.key == "choose_language"]
    assert order == ["en", "da", "kl"]
    assert answer.speech[0] == Utterance("welcome")  # in the call's language: English


def test_closed_line_says_so_in_every_language_and_hangs_up(engine: Engine) -> None:
    pending = action(engine.begin(at("opening_hours", language="da")), "check_opening_hours")
    answer = reply(engine.on_outcome(pending, "closed", {"hours": "never"}))
    assert answer.end == "hangup"
    assert answer.listen is None
    assert answer.speech == tuple(
        Utterance(key, lang) for lang in LANGUAGES for key in ("closed", "closed_help")
    )
    assert answer.slots["hours"] == "never"


def test_pressing_2_chooses_english_and_reaches_the_main_menu(engine: Engine) -> None:
    answer = menu(engine.on_keys(at("choose_language", language="da"), "2"), "main_menu")
    assert answer.state.language == "en"
    assert answer.speech == (Utterance("main_menu"),)  # None: in the call's language


def test_pressing_1_chooses_danish(engine: Engine) -> None:
    answer = menu(engine.on_keys(at("choose_language", language="en"), "1"), "main_menu")
    assert answer.state.language == "da"


# -- no input, invalid input, repeat, agent ---------------------------------------------------------


@pytest.mark.parametrize(("entry", "apology"), [("", "no_input"), ("9", "invalid_input")])
def test_a_failed_try_apologises_then_repeats_the_menu(engine: Engine, entry: str, apology: str) -> None:
    answer = menu(engine.on_keys(at("main_menu"), entry), "main_menu")
    assert said(answer) == [apology, "main_menu"]
    assert answer.state.tries == 1


def test_language_menu_apologises_in_every_language(engine: Engine) -> None:
    answer = menu(engine.on_keys(at("choose_language", language="da"), ""), "choose_language")
    assert answer.speech == (
        *(Utterance("no_input", lang) for lang in LANGUAGES),
        *(Utterance("choose_language", lang) for lang in LANGUAGES),
    )


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        (("", "", ""), "repeated_no_input"),
        (("7", "8", "9"), "repeated_invalid_input"),
        (("", "7", "9"), "repeated_invalid_input"),
    ],
)
def test_third_failure_goes_to_an_agent(engine: Engine, entries: tuple[str, ...], reason: str) -> None:
    second = reply(keys(engine, at("main_menu"), *entries[:2]))
    assert second.state.tries == 2 and second.listen is not None
    answer = reply(engine.on_keys(second.state, entries[2]))
    assert answer.end == "agent"
    assert answer.state.step == "too_many_tries"
    assert said(answer) == ["too_many_tries", "transfer"]  # nothing told yet: no word of context
    assert answer.state.escalation_reason == reason


def test_star_repeats_the_menu_without_counting_a_try(engine: Engine) -> None:
    failed = reply(engine.on_keys(at("main_menu"), ""))
    answer = menu(engine.on_keys(failed.state, "*"), "main_menu")
    assert said(answer) == ["main_menu"]
    assert answer.state.tries == 1
    for _ in range(5):
        answer = menu(engine.on_keys(answer.state, "*"), "main_menu")
    assert answer.state.tries == 1
    assert answer.end is None


def test_star_repeats_an_input_step_too(engine: Engine) -> None:
    answer = reply(engine.on_keys(at("document_number"), "12*"))
    assert answer.state.step == "document_number"
    assert said(answer) == ["document_number"]
    assert answer.state.tries == 0


@pytest.mark.parametrize("step", ["choose_language", "main_menu", "confirm_document"])
def test_0_at_any_menu_puts_the_caller_through_to_an_agent(engine: Engine, step: str) -> None:
    answer = reply(engine.on_keys(at(step, collected={"document_type": "passport"}), "0"))
    assert answer.end == "agent"
    assert answer.state.step == "agent_requested"
    assert answer.state.escalation_reason == "caller_request"
    assert said(answer) == ["transfer"]  # not verified: the agent will have to ask again


def test_a_caller_who_told_nothing_is_not_told_the_agent_knows_it(engine: Engine) -> None:
    answer = reply(engine.on_keys(at("main_menu"), "0"))
    assert said(answer) == ["transfer"]


def test_only_a_caller_verified_on_the_call_is_told_they_need_not_repeat_anything(engine: Engine) -> None:
    """The agent then sees "verified by the line" and can act at once: the sentence is true."""
    verified = Verification.model_construct(questions=["postcode"], asked=1, outcome="verified")
    at_menu = at("main_menu", collected={"intent": "temporary_pin"})
    assert said(reply(engine.on_keys(at_menu.model_copy(update={"verification": verified}), "0"))) == [
        "transfer",
        "context_kept",
    ]
    unfinished = Verification.model_construct(questions=["postcode"], asked=0, outcome=None)
    assert said(reply(engine.on_keys(at_menu.model_copy(update={"verification": unfinished}), "0"))) == [
        "transfer"
    ]


def test_0_while_keying_a_document_number_is_also_the_way_out(engine: Engine) -> None:
    answer = reply(engine.on_keys(at("document_number", collected={"intent": "user_id"}), "0"))
    assert answer.state.escalation_reason == "caller_request"


def test_every_menu_step_is_bounded_by_max_turns(engine: Engine) -> None:
    state = at("main_menu")
    for _ in range(FLOW.defaults.max_turns):
        state = menu(engine.on_keys(state, "*"), "main_menu").state
    answer = reply(engine.on_keys(state, "*"))
    assert answer.end == "agent"
    assert answer.state.escalation_reason == "call_too_long"


# -- the identification steps -----------------------------------------------------------------------


def test_main_menu_choice_is_collected_and_leads_to_the_document_number(engine: Engine) -> None:
    answer = reply(engine.on_keys(at("main_menu"), "2"))
    assert answer.state.step == "document_number"
    assert answer.state.collected == {"intent": "temporary_pin"}
    assert answer.listen == Listen(None, "#", TIMEOUT)
    assert said(answer) == ["document_number"]


@pytest.mark.parametrize(
    ("number", "document_type"), [("100000001", "passport"), ("20000002", "driving_licence")]
)
def test_the_numbers_length_says_which_document_it_is(
    engine: Engine, number: str, document_type: str
) -> None:
    answer = menu(
        engine.on_keys(at("document_number", collected={"intent": "user_id"}), number), "confirm_document"
    )
    assert answer.state.collected == {
        "intent": "user_id",
        "document_type": document_type,
        "document_number": number,
    }


def test_input_step_stores_the_digits_and_reads_them_back_spelled(engine: Engine) -> None:
    state = at("document_number", collected={"intent": "user_id"})
    answer = menu(engine.on_keys(state, "100000001"), "confirm_document")
    assert answer.state.collected["document_number"] == "100000001"
    assert answer.slots["document_number"] == Spelled("100000001")
    assert (
        CATALOG["en"].text("confirm_document", answer.slots).startswith("1, 0, 0, 0, 0, 0, 0, 0, 1. Right?")
    )


@pytest.mark.parametrize("entry", ["1234567", "1234567890", "12345678a", "2", "11"])
def test_a_document_number_of_neither_length_is_invalid(engine: Engine, entry: str) -> None:
    answer = reply(engine.on_keys(at("document_number"), entry))
    assert answer.state.step == "document_number"
    assert said(answer) == ["document_number_invalid", "document_number"]  # the lengths, then again
    assert answer.state.collected == {}
    assert (
        CATALOG["en"].text("document_number_invalid")
        == "A passport number has 9 digits, a driving licence number 8."
    )


@pytest.mark.parametrize("document_type", ["passport", "driving_licence"])
def test_entering_the_number_again_asks_for_a_number_again(engine: Engine, document_type: str) -> None:
    state = at("confirm_document", collected={"document_type": document_type, "document_number": "1"})
    answer = reply(engine.on_keys(state, "2"))
    assert answer.state.step == "document_number"
    assert said(answer) == ["document_number"]


def test_confirming_the_document_starts_verification(engine: Engine) -> None:
    state = at("confirm_document", collected={"document_type": "passport", "document_number": "100000001"})
    pending = action(engine.on_keys(state, "1"), "start_verification")
    assert pending.keys == ""


def test_foreign_document_hears_citizen_service_and_goodbye(engine: Engine) -> None:
    answer = reply(engine.on_keys(at("document_number", collected={"intent": "user_id"}), "1"))
    assert answer.end == "hangup"
    assert said(answer) == ["foreign_document", "goodbye"]


# -- knowledge questions ----------------------------------------------------------------------------


def verifying(kinds: list[str], asked: int = 0) -> Verification:
    """A verification in progress; only what the engine reads (the actions own the rest)."""
    fields: dict[str, Any] = {"questions": kinds, "asked": asked, "correct": 0, "can_pass": True}
    return Verification.model_construct(**fields)


def test_questions_start_with_the_intro_then_the_first_question(engine: Engine) -> None:
    state = at("start_verification", verification=verifying(["postcode", "house_number", "moved_in_year"]))
    pending = ActionNeeded(state, "start_verification", "", (), {})
    answer = reply(engine.on_outcome(pending, "ask", {}))
    assert answer.state.step == "question"
    assert said(answer) == ["questions_intro", "question_postcode"]
    assert answer.listen == Listen(4, "#", TIMEOUT + 4)


@pytest.mark.parametrize("kind", sorted(QUESTIONS))
def test_each_question_uses_its_own_prompt_and_length(engine: Engine, kind: str) -> None:
    state = at("check_answer", verification=verifying(["postcode", kind], asked=1))
    pending = ActionNeeded(state, "check_answer", "2200", (), {})
    answer = reply(engine.on_outcome(pending, "next_question", {}))
    assert said(answer) == [f"question_{kind}"]
    assert answer.listen is not None
    assert answer.listen.num_digits == QUESTIONS[kind].digits
    assert answer.listen.finish_on_key == "#"


def test_a_well_formed_answer_goes_to_the_check_with_the_keys(engine: Engine) -> None:
    state = at("question", verification=verifying(["postcode", "house_number"]))
    pending = action(engine.on_keys(state, "2200"), "check_answer")
    assert pending.keys == "2200"


@pytest.mark.parametrize(("kind", "entry"), [("postcode", "220"), ("house_number", "12345")])
def test_a_malformed_answer_is_invalid_input(engine: Engine, kind: str, entry: str) -> None:
    state = at("question", verification=verifying([kind]))
    answer = reply(engine.on_keys(state, entry))
    assert answer.state.step == "question"
    assert said(answer) == ["invalid_input", f"question_{kind}"]


def test_a_back_end_failure_goes_to_an_agent_with_the_reason(engine: Engine) -> None:
    pending = ActionNeeded(at("start_verification"), "start_verification", "", (), {})
    answer = reply(engine.on_outcome(pending, "failed", {}))
    assert answer.end == "agent"
    assert answer.state.escalation_reason == "backend_failure"
    assert said(answer) == ["backend_failure", "transfer"]


# -- the end of the journeys ------------------------------------------------------------------------


def test_verified_caller_branches_on_what_they_asked_for(engine: Engine) -> None:
    state = at("finish_verification", collected={"intent": "temporary_pin"})
    pending = ActionNeeded(state, "finish_verification", "", (), {})
    action(engine.on_outcome(pending, "verified", {}), "send_temporary_pin")


def test_an_issued_pin_is_delivered_before_the_caller_hears_anything(engine: Engine) -> None:
    pending = ActionNeeded(at("send_temporary_pin"), "send_temporary_pin", "", (), {})
    action(engine.on_outcome(pending, "issued", {"mobile_last_digits": Spelled("51")}), "deliver_sms")


def test_an_sms_that_did_not_go_is_handed_to_an_agent(engine: Engine) -> None:
    verified = Verification.model_construct(questions=["postcode"], asked=1, outcome="verified")
    pending = ActionNeeded(
        at("deliver_pin", collected={"intent": "temporary_pin"}, verification=verified),
        "deliver_sms",
        "",
        (),
        {},
    )
    answer = reply(engine.on_outcome(pending, "failed", {}))
    assert answer.end == "agent"
    assert answer.state.escalation_reason == "sms_failed"
    assert said(answer) == ["sms_failed", "transfer", "context_kept"]


def test_pin_sent_reports_the_last_digits_and_hangs_up(engine: Engine) -> None:
    pending = ActionNeeded(at("deliver_pin"), "deliver_sms", "", (), {"mobile_last_digits": Spelled("51")})
    answer = reply(engine.on_outcome(pending, "sent", {}))
    assert answer.end == "hangup"
    assert said(answer) == ["pin_sent", "goodbye"]
    assert CATALOG["en"].text("pin_sent", answer.slots).endswith("ending in 5, 1.")


def test_user_id_is_spelled_and_offered_again(engine: Engine) -> None:
    pending = ActionNeeded(at("tell_user_id"), "look_up_user_id", "", (), {})
    answer = menu(engine.on_outcome(pending, "found", {"user_id": Spelled("ab1")}), "user_id_again")
    assert said(answer) == ["user_id_is", "user_id_again"]
    assert answer.slots["user_id"] == Spelled("ab1")
    action(engine.on_keys(answer.state, "1"), "look_up_user_id")


def test_silence_after_the_user_id_says_goodbye_at_once(engine: Engine) -> None:
    answer = reply(engine.on_keys(at("user_id_again"), ""))
    assert answer.end == "hangup"
    assert said(answer) == ["goodbye"]


def test_a_wrong_key_after_the_user_id_still_reprompts(engine: Engine) -> None:
    answer = menu(engine.on_keys(at("user_id_again"), "9"), "user_id_again")
    assert said(answer) == ["invalid_input", "user_id_again"]
    assert "user_id" not in answer.slots  # never kept, so never said without a fresh look-up


def test_keys_after_the_call_ended_hear_the_end_again(engine: Engine) -> None:
    answer = reply(engine.on_keys(at("goodbye"), "1"))
    assert answer.end == "hangup"
    assert said(answer) == ["goodbye"]


# -- a hand-written toy flow ------------------------------------------------------------------------

TOY: dict[str, Any] = {
    "name": "toy",
    "start": "hello",
    "defaults": {
        "max_tries": 2,
        "no_input_prompt": "no_input",
        "invalid_prompt": "invalid_input",
        "agent_step": "agent",
        "too_many_tries_step": "agent",
    },
    "steps": {
        "hello": {"type": "say", "say": ["hello", "welcome"], "next": "pick"},
        "pick": {
            "type": "menu",
            "say": ["pick"],
            "options": {
                "1": {"set": {"colour": "red"}, "next": "which"},
                "2": {"set": {"colour": "blue"}, "next": "which"},
                "3": {"next": "which"},
            },
        },
        "which": {"type": "branch", "by": "colour", "cases": {"red": "red", "blue": "blue"}},
        "red": {"type": "say", "say": ["red"], "next": "bye"},
        "blue": {"type": "say", "say": ["blue"], "next": "also"},
        "also": {"type": "say", "say": ["also"], "next": "bye"},
        "bye": {"type": "hangup", "say": ["goodbye"]},
        "agent": {"type": "agent", "say": ["transfer"]},
    },
}


@pytest.fixture
def toy() -> Engine:
    flow = Flow.model_validate(TOY)
    assert check_flow(flow, actions={}, checks=frozenset(), languages=frozenset({"en"})) == []
    return Engine(flow, ("en",), {})


def test_say_steps_chain_into_the_first_menu(toy: Engine) -> None:
    answer = menu(toy.begin(at("hello")), "pick")
    assert said(answer) == ["hello", "welcome", "pick"]


@pytest.mark.parametrize(("entry", "words"), [("1", ["red", "goodbye"]), ("2", ["blue", "also", "goodbye"])])
def test_a_branch_then_say_chain_ends_in_one_reply(toy: Engine, entry: str, words: list[str]) -> None:
    answer = reply(toy.on_keys(at("pick"), entry))
    assert answer.end == "hangup"
    assert said(answer) == words
    assert answer.state.step == "bye"


def test_a_branch_on_a_value_never_set_goes_to_an_agent(toy: Engine) -> None:
    answer = reply(toy.on_keys(at("pick"), "3"))
    assert answer.end == "agent"
    assert answer.state.escalation_reason == "flow_error"


def test_the_flow_defaults_set_how_many_tries(toy: Engine) -> None:
    answer = reply(keys(toy, at("pick"), "", ""))
    assert answer.end == "agent"
    assert answer.state.escalation_reason == "repeated_no_input"
