"""Bad input at every listening step of call_flows/support.yaml, as a caller would give it.

Silence and wrong keys get an apology and the step again; the third failure goes to an agent;
`*` repeats without counting; `0` is always a way out; and no call can go on for ever.
"""

from __future__ import annotations

import pytest

from ivr.flows import ListeningStep
from ivr.prompts import Spelled
from tests.calls import LANGUAGES, Call

languages = pytest.mark.parametrize("language", LANGUAGES)
# Every step that listens for keys, in the order a caller meets them.
LISTENING_STEPS = [
    "choose_language",
    "main_menu",
    "document_number",
    "confirm_document",
    "question",
    "user_id_again",
]
steps = pytest.mark.parametrize("step", LISTENING_STEPS)
# After the user ID is said, silence means the caller has it: goodbye (the flow's on_no_input).
SILENCE_REPROMPTS = [s for s in LISTENING_STEPS if s != "user_id_again"]


def at(dial, cases, language: str, step: str) -> Call:
    """A call by the ordinary demo person, standing at `step`."""
    return dial(language).reach(step, cases["ordinary"])


def apology(call: Call, key: str) -> list[str]:
    """The apology a step starts its reprompt with (the language menu says it in each language;
    a number of the wrong length is told the lengths)."""
    if key == "invalid_input" and call.step == "document_number":
        return ["document_number_invalid"]
    return [key] * (len(LANGUAGES) if call.step == "choose_language" else 1)


def test_these_are_all_the_listening_steps_of_the_flow(app):
    flow = app.extensions["ivr"].engine.flow
    listening = {name for name, step in flow.steps.items() if isinstance(step, ListeningStep)}
    assert listening == set(LISTENING_STEPS)


def handover(step: str) -> list[str]:
    """What a caller put through to an agent at `step` hears: that the agent can act without
    asking again only once the caller was verified (at the user ID, after the questions)."""
    return ["transfer", "context_kept"] if step == "user_id_again" else ["transfer"]


@languages
@pytest.mark.parametrize("step", SILENCE_REPROMPTS)
def test_silence_gets_no_input_and_the_step_again(dial, cases, language, step):
    call = at(dial, cases, language, step)
    words = call.step_words()
    call.silence()
    assert call.said == apology(call, "no_input") + words
    assert call.step == step
    assert call.listening


@languages
def test_star_and_zero_are_told_after_the_first_silence_only(dial, cases, language):
    call = at(dial, cases, language, "main_menu")
    call.silence()
    assert call.said == ["no_input", "main_menu"]  # star repeats, 0 for an agent
    call.press("1")
    call.silence()
    assert call.said == ["no_input_again", "document_number"]  # not told twice
    assert len(call.text("no_input_again").split()) < len(call.text("no_input").split()) / 2


@languages
def test_silence_after_the_user_id_says_goodbye(dial, cases, language):
    call = at(dial, cases, language, "user_id_again").silence()
    assert call.said == ["goodbye"]
    assert call.hung_up


@languages
@steps
def test_a_wrong_key_gets_invalid_input_and_the_step_again(dial, cases, language, step):
    call = at(dial, cases, language, step)
    words = call.step_words()
    call.press(call.wrong_keys())
    assert call.said == apology(call, "invalid_input") + words
    assert call.step == step
    assert call.listening
    if step == "user_id_again":  # the user ID is not kept, so a reprompt offers it again
        assert call.text("user_id_is", user_id=Spelled("x")).split(":")[0] not in call.heard


@languages
@pytest.mark.parametrize("step", SILENCE_REPROMPTS)
def test_third_silence_goes_to_an_agent(dial, cases, records, language, step):
    call = at(dial, cases, language, step)
    call.silence().silence()
    assert call.listening
    call.silence()
    assert call.said == ["too_many_tries", *handover(step)]
    assert call.queued
    assert records.escalation(call)["reason"] == "repeated_no_input"


@languages
@steps
def test_third_wrong_key_goes_to_an_agent(dial, cases, records, language, step):
    call = at(dial, cases, language, step)
    for _ in range(2):
        call.press(call.wrong_keys())
        assert call.listening
    call.press(call.wrong_keys())
    assert call.said == ["too_many_tries", *handover(step)]
    assert call.queued
    assert records.escalation(call)["reason"] == "repeated_invalid_input"


@languages
@steps
def test_star_repeats_the_step_without_counting_a_try(dial, cases, records, language, step):
    call = at(dial, cases, language, step)
    words = call.step_words()
    call.press(call.wrong_keys()).press(call.wrong_keys())
    for _ in range(4):
        call.press("*")
        assert call.said == words
        assert call.step == step
    call.press(call.wrong_keys())
    assert call.queued
    assert records.escalation(call)["reason"] == "repeated_invalid_input"


@languages
@steps
def test_0_at_any_step_puts_the_caller_through_to_an_agent(dial, cases, records, language, step):
    call = at(dial, cases, language, step)
    call.press("0#")
    assert call.said == handover(step)
    assert call.queued
    assert records.escalation(call)["reason"] == "caller_request"


@languages
@pytest.mark.parametrize(
    ("keys", "then"),
    [("1234567#", "100000001#"), ("1234567890#", "20000002#"), ("12#", "100000001#")],
    ids=["7-digits", "10-digits", "2-digits"],
)
def test_a_document_number_of_neither_length_is_invalid(dial, language, keys, then):
    """9 digits is a passport, 8 a driving licence, 1 the way out; anything else is asked again."""
    call = dial(language).choose_language().press("1")
    words = call.step_words()
    call.press(keys)
    assert call.said == ["document_number_invalid", *words]  # the lengths it takes, then the prompt
    call.press(then)
    assert call.said == ["confirm_document"]


@languages
def test_star_for_ever_ends_with_an_agent(app, dial, records, language):
    call = dial(language).choose_language()
    cap = app.extensions["ivr"].engine.flow.defaults.max_turns
    presses = press_until_it_stops_listening(call, "*", limit=cap + 5)
    assert presses <= cap + 1
    assert call.said == ["too_many_tries", "transfer"]
    assert call.queued
    assert records.escalation(call)["reason"] == "call_too_long"


@languages
def test_hearing_the_user_id_again_for_ever_ends_with_an_agent(app, dial, cases, records, language):
    call = at(dial, cases, language, "user_id_again")
    cap = app.extensions["ivr"].engine.flow.defaults.max_turns
    presses = press_until_it_stops_listening(call, "1", limit=cap + 5)
    assert presses < cap
    assert call.queued
    assert records.escalation(call)["reason"] == "call_too_long"


def press_until_it_stops_listening(call: Call, keys: str, limit: int) -> int:
    """Keep pressing `keys`; how many presses it took until the line stopped listening."""
    for presses in range(1, limit + 1):
        call.press(keys)
        if not call.listening:
            return presses
    raise AssertionError(f"still listening after {limit} presses of {keys!r}")
