"""Broken call flows and prompts never reach a caller: loading them fails, naming file and step."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr import create_app, definitions
from ivr.actions import outcomes
from ivr.checks import CHECKS
from ivr.errors import DefinitionError
from ivr.flows import InputStep, MenuStep, QuestionStep, check_flow, exits, load_flow
from ivr.prompts import load_catalog
from ivr.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FLOW_FILES = sorted((REPO / "call_flows").glob("*.yaml"))

Data = dict[str, Any]


@dataclass
class Definitions:
    """A writable copy of the repository's call flows and prompts."""

    flows: Path
    prompts: Path

    @property
    def support(self) -> Path:
        return self.flows / "support.yaml"

    def prompt_file(self, code: str) -> Path:
        return self.prompts / f"{code}.yaml"

    def edit(self, path: Path, change: Callable[[Data], object]) -> Path:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    def load(self) -> None:
        definitions.load(self.flows, self.prompts, "support")


@pytest.fixture
def copy(tmp_path: Path) -> Definitions:
    flows, prompts = tmp_path / "call_flows", tmp_path / "prompts"
    shutil.copytree(REPO / "call_flows", flows)
    shutil.copytree(REPO / "prompts", prompts)
    return Definitions(flows, prompts)


def refused(copy: Definitions) -> str:
    with pytest.raises(DefinitionError) as caught:
        copy.load()
    return str(caught.value)


def steps(data: Data) -> Data:
    result: Data = data["steps"]
    return result


def test_the_unchanged_copy_loads(copy: Definitions) -> None:
    flow, catalog = definitions.load(copy.flows, copy.prompts, "support")
    assert flow.name == "support"
    assert set(catalog) == {"da", "en", "kl"}


# -- broken flows -----------------------------------------------------------------------------------


def unknown_next(data: Data) -> None:
    steps(data)["choose_language"]["options"]["1"]["next"] = "main_meny"


def unreachable(data: Data) -> None:
    steps(data)["orphan"] = {"type": "hangup", "say": ["goodbye"]}


def say_loop(data: Data) -> None:
    steps(data)["main_menu"]["options"]["2"]["next"] = "loop_a"
    steps(data)["loop_a"] = {"type": "say", "say": ["goodbye"], "next": "loop_b"}
    steps(data)["loop_b"] = {"type": "say", "say": ["goodbye"], "next": "loop_a"}


def unknown_action(data: Data) -> None:
    steps(data)["opening_hours"]["action"] = "check_opening_hourz"


def missing_outcome(data: Data) -> None:
    del steps(data)["start_verification"]["outcomes"]["failed"]


def extra_outcome(data: Data) -> None:
    steps(data)["tell_user_id"]["outcomes"]["maybe"] = "goodbye"


def unknown_check(data: Data) -> None:
    steps(data)["document_number"]["check"] = "passport_nr"


def option_0(data: Data) -> None:
    steps(data)["main_menu"]["options"]["0"] = {"next": "goodbye"}


def option_star(data: Data) -> None:
    steps(data)["confirm_document"]["options"]["*"] = {"next": "goodbye"}


def input_option_star(data: Data) -> None:
    steps(data)["document_number"]["options"]["*"] = {"next": "goodbye"}


def option_two_keys(data: Data) -> None:
    steps(data)["confirm_document"]["options"]["12"] = {"next": "goodbye"}


def branch_misses_a_value(data: Data) -> None:
    del steps(data)["verified"]["cases"]["temporary_pin"]


def branch_has_a_value_never_set(data: Data) -> None:
    steps(data)["verified"]["cases"]["unlock_door"] = "goodbye"


def unknown_language(data: Data) -> None:
    steps(data)["choose_language"]["options"]["4"] = {"language": "fo", "next": "main_menu"}


def unknown_field(data: Data) -> None:
    steps(data)["main_menu"]["colour"] = "red"


def wrong_type(data: Data) -> None:
    steps(data)["question"]["type"] = "quiz"


def unknown_start(data: Data) -> None:
    data["start"] = "welcome_back"


def silent_menu(data: Data) -> None:
    steps(data)["confirm_document"]["say"] = []


def unknown_prompt(data: Data) -> None:
    steps(data)["pin_sent"]["say"] = ["pin_sendt", "goodbye"]


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        (unknown_next, "step 'choose_language' leads to unknown step 'main_meny'"),
        (unreachable, "step 'orphan' is unreachable"),
        (say_loop, "step 'loop_a' can never reach a goodbye or an agent"),
        (unknown_action, "step 'opening_hours': unknown action 'check_opening_hourz'"),
        (
            missing_outcome,
            "step 'start_verification': outcomes must be exactly "
            "['ask', 'failed', 'hidden_number_limited', 'phone_limited']",
        ),
        (extra_outcome, "step 'tell_user_id': outcomes must be exactly"),
        (unknown_check, "step 'document_number': unknown check 'passport_nr'"),
        (option_0, "step 'main_menu': option key '0'"),
        (option_star, "step 'confirm_document': option key '*'"),
        (input_option_star, "step 'document_number': option key '*'"),
        (option_two_keys, "step 'confirm_document': option key '12'"),
        (branch_misses_a_value, "step 'verified': cases must be exactly"),
        (branch_has_a_value_never_set, "step 'verified': cases must be exactly"),
        (unknown_language, "step 'choose_language': unknown language 'fo'"),
        (unknown_start, "unknown step 'welcome_back'"),
        (silent_menu, "step 'confirm_document': a menu needs a prompt"),
        (unknown_prompt, "prompt 'pin_sendt' is missing"),
    ],
)
def test_a_broken_flow_is_refused_naming_file_and_step(
    copy: Definitions, breakage: Callable[[Data], None], named: str
) -> None:
    copy.edit(copy.support, breakage)
    message = refused(copy)
    assert named in message
    if "prompt" not in named:
        assert f"{copy.support}: " in message


def two_key_agent(data: Data) -> None:
    data["defaults"]["agent_key"] = "00"  # a one-key menu could never send it


def no_tries(data: Data) -> None:
    steps(data)["confirm_document"]["max_tries"] = 0


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        (unknown_field, "steps.main_menu"),
        (wrong_type, "steps.question"),
        (two_key_agent, "defaults.agent_key"),
        (no_tries, "steps.confirm_document.menu.max_tries"),
    ],
)
def test_a_flow_that_does_not_fit_the_model_is_refused(
    copy: Definitions, breakage: Callable[[Data], None], where: str
) -> None:
    copy.edit(copy.support, breakage)
    message = refused(copy)
    assert str(copy.support) in message
    assert where in message
    if breakage is unknown_field:
        assert "colour" in message and "Extra inputs are not permitted" in message


def test_a_flow_with_a_yaml_syntax_error_is_refused_naming_file_and_line(copy: Definitions) -> None:
    lines = copy.support.read_text(encoding="utf-8").splitlines()
    at = lines.index("  main_menu:")
    lines[at + 1] = "    type: [menu"
    copy.support.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = refused(copy)
    assert str(copy.support) in message
    assert re.search(rf"line {at + 2}\b", message), message


def test_every_flow_file_is_checked_not_only_the_one_in_use(copy: Definitions) -> None:
    other = copy.flows / "holiday.yaml"
    shutil.copy(copy.support, other)
    copy.edit(other, unknown_next)
    message = refused(copy)
    assert f"{other}: step 'choose_language'" in message


def test_a_missing_flow_is_refused(copy: Definitions) -> None:
    with pytest.raises(DefinitionError, match="no flow file nightline.yaml"):
        definitions.load(copy.flows, copy.prompts, "nightline")


def test_every_problem_is_listed_at_once(copy: Definitions) -> None:
    def three_breakages(data: Data) -> None:
        unknown_action(data)
        unknown_check(data)
        option_0(data)

    copy.edit(copy.support, three_breakages)
    message = refused(copy)
    for step in ("opening_hours", "document_number", "main_menu"):
        assert f"step '{step}'" in message


# -- broken prompts ---------------------------------------------------------------------------------


def drop_prompt(key: str) -> Callable[[Data], None]:
    return lambda data: data["prompts"].pop(key)


@pytest.mark.parametrize(
    ("code", "breakage", "named"),
    [
        ("en", drop_prompt("main_menu"), "prompt 'main_menu' is missing"),
        ("da", drop_prompt("question_postcode"), "prompt 'question_postcode' is missing"),
        ("en", drop_prompt("queue_position"), "prompt 'queue_position' is missing"),
        ("en", lambda d: d["prompts"].update(extra_only_here="Hi"), "prompt 'extra_only_here' is missing"),
        ("da", lambda d: d["sms"].pop("temporary_pin"), "sms 'temporary_pin' is missing"),
        (
            "en",
            lambda d: d["prompts"].update(confirm_document="You entered: {document}."),
            "prompt 'confirm_document' has slots ['document'], da has ['document_number']",
        ),
        (
            "en",
            lambda d: d["sms"].update(temporary_pin="Your code."),
            "sms 'temporary_pin' has slots [], da has ['code', 'expires']",
        ),
        ("da", lambda d: d["characters"].pop("ø"), "no spoken name for characters 'ø'"),
        ("en", lambda d: d["characters"].pop("#"), "no spoken name for characters '#'"),
        ("en", lambda d: d["weekdays"].pop("sun"), "weekdays must name exactly"),
    ],
)
def test_broken_prompts_are_refused_naming_file_and_key(
    copy: Definitions, code: str, breakage: Callable[[Data], None], named: str
) -> None:
    copy.edit(copy.prompt_file(code), breakage)
    message = refused(copy)
    # every message names the file it is about, even when the other file is the odd one out
    wrong = {"da": "en", "en": "da"}[code]
    expected = f"prompts/{wrong if 'extra_only_here' in named else code}.yaml: {named}"
    assert expected in message


def test_a_prompt_file_with_an_unknown_field_is_refused(copy: Definitions) -> None:
    copy.edit(copy.prompt_file("en"), lambda d: d.update(colour="red"))
    message = refused(copy)
    assert str(copy.prompt_file("en")) in message
    assert "colour" in message and "Extra inputs are not permitted" in message


def test_a_prompt_file_with_a_yaml_syntax_error_is_refused(copy: Definitions) -> None:
    path = copy.prompt_file("da")
    path.write_text(path.read_text(encoding="utf-8") + 'broken: "unterminated\n', encoding="utf-8")
    assert str(path) in refused(copy)


def test_a_prompt_file_must_carry_its_own_language_code(copy: Definitions) -> None:
    copy.edit(copy.prompt_file("en"), lambda d: d.update(code="kl"))
    message = refused(copy)
    assert str(copy.prompt_file("en")) in message and "'kl'" in message


def test_no_prompt_files_at_all_is_refused(copy: Definitions) -> None:
    shutil.rmtree(copy.prompts)
    copy.prompts.mkdir()
    assert "no prompt files" in refused(copy)


# -- the line refuses to start ----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["flow", "prompts"])
def test_create_app_refuses_to_start_with_broken_definitions(
    copy: Definitions, tmp_path: Path, which: str
) -> None:
    if which == "flow":
        copy.edit(copy.support, unknown_check)
    else:
        copy.edit(copy.prompt_file("en"), drop_prompt("goodbye"))
    settings = Settings(
        data_dir=tmp_path / "data", flows_dir=copy.flows, prompts_dir=copy.prompts, secret_key="k" * 32
    )
    with pytest.raises(DefinitionError, match="document_number|goodbye"):
        create_app(settings)


def test_create_app_starts_with_the_copied_definitions(copy: Definitions, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", flows_dir=copy.flows, prompts_dir=copy.prompts, secret_key="k" * 32
    )
    assert create_app(settings).extensions["ivr"].engine.flow.name == "support"


# -- every flow file in the repository --------------------------------------------------------------


def test_there_is_at_least_one_flow_file() -> None:
    assert [p.name for p in FLOW_FILES] == ["support.yaml"] or len(FLOW_FILES) > 1


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_every_flow_file_is_sound(path: Path) -> None:
    """Every step reachable, every listening step handles silence and wrong keys, prompts exist."""
    flow = load_flow(path)
    catalog = load_catalog(REPO / "prompts")
    actions = outcomes()
    assert check_flow(flow, actions=actions, checks=frozenset(CHECKS), languages=frozenset(catalog)) == []

    seen, todo = set(), [flow.start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += exits(flow, name)
    assert seen == set(flow.steps), "every step is reachable from the start"

    d = flow.defaults
    assert d.agent_step in flow.steps and d.too_many_tries_step in flow.steps
    assert {d.agent_key, d.repeat_key}.isdisjoint(
        key for s in flow.steps.values() if isinstance(s, MenuStep) for key in s.options
    )
    listening = [s for s in flow.steps.values() if isinstance(s, MenuStep | InputStep | QuestionStep)]
    assert listening and all(flow.tries_allowed(s) >= 1 for s in listening)

    needed = definitions.needed_prompts(flow)
    assert {d.no_input_prompt, d.invalid_prompt} <= needed
    for code, language in catalog.items():
        missing = needed - language.prompts.keys()
        assert not missing, f"prompts/{code}.yaml lacks {sorted(missing)}"


# -- short prompts --------------------------------------------------------------------------------

MAX_PROMPT_WORDS = 25


def prompt_words(text: str) -> int:
    """Words in a prompt, a slot (`{document_number}`) counting as one, whatever fills it."""
    return len(re.sub(r"\{\w+\}", "slot", text).split())


def test_the_closed_message_with_the_default_hours_filled_in_is_short_too() -> None:
    """The hours fill one slot with many words: counted as the caller hears them."""
    from ivr.hours import OpeningHours, describe
    from ivr.prompts import OpeningTimes, load_catalog

    hours = OpeningTimes(tuple(describe(OpeningHours())))
    for code, lang in load_catalog(REPO / "prompts").items():
        said = lang.text("closed", {"hours": hours})
        assert len(said.split()) <= MAX_PROMPT_WORDS, f"{code}: {said}"


def test_prompt_words_count_a_slot_as_one_word() -> None:
    assert prompt_words("You keyed {document_number}. Right? Press 1.") == 6


@pytest.mark.parametrize("path", sorted((REPO / "prompts").glob("*.yaml")), ids=lambda p: p.name)
def test_no_prompt_is_longer_than_25_words(path: Path) -> None:
    prompts = yaml.safe_load(path.read_text(encoding="utf-8"))["prompts"]
    long = {key: prompt_words(text) for key, text in prompts.items() if prompt_words(text) > MAX_PROMPT_WORDS}
    assert long == {}, f"{path.name}: prompts over {MAX_PROMPT_WORDS} words: {long}"
