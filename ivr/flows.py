"""Call flows as checked data: the pydantic model of `call_flows/*.yaml` and its checks.

A flow is a set of named steps. Every exit of every step is named in the file, so a reviewer
can see where silence, a wrong key, too many tries or a back-end failure leads. Behaviour is
referred to by name (`action: start_verification`, `check: document_number`), never by code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr.errors import DefinitionError

# libyaml's loader when PyYAML has it (ten times faster: definitions are read at every start)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DTMF_KEYS = frozenset("0123456789*#")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Frozen):
    """What every menu and input step does unless it says otherwise."""

    max_tries: int = Field(3, ge=1, le=5)
    timeout_seconds: int = Field(6, ge=2, le=20)
    agent_key: str = Field("0", pattern=r"^[0-9*#]$")
    repeat_key: str = Field("*", pattern=r"^[0-9*#]$")
    no_input_prompt: str
    no_input_again_prompt: str | None = None
    """Said instead of `no_input_prompt` after the call's first silence: what `*` and `0` do (in
    no_input_prompt) is told once."""
    invalid_prompt: str
    agent_step: str
    too_many_tries_step: str
    context_prompt: str | None = None
    """Said after the hand-over words when the caller has told us something."""
    max_turns: int = Field(60, ge=10)


class Choice(_Frozen):
    next: str
    language: str | None = None
    set: dict[str, str] = {}


class _Listening(_Frozen):
    say: tuple[str, ...] = ()
    max_tries: int | None = Field(None, ge=1, le=5)
    on_no_input: str | None = None
    invalid_prompt: str | None = None
    """Said instead of the default after keys that do not fit: what this step needs."""


class MenuStep(_Listening):
    type: Literal["menu"]
    options: dict[str, Choice]
    say_in_every_language: bool = False


class InputStep(_Listening):
    type: Literal["input"]
    store: str
    check: str
    finish_on_key: str = "#"
    max_digits: int = Field(20, ge=1, le=40)
    next: str
    set_by_length: dict[int, dict[str, str]] = {}
    """What a number of each length tells (9 digits: a passport), kept beside it."""
    options: dict[str, Choice] = {}
    """Single keys that choose a way out instead of a number (`1#`: no such document)."""


class QuestionStep(_Listening):
    type: Literal["question"]
    next: str


class ActionStep(_Frozen):
    type: Literal["action"]
    action: str
    outcomes: dict[str, str]


class BranchStep(_Frozen):
    type: Literal["branch"]
    by: str
    cases: dict[str, str]


class SayStep(_Frozen):
    type: Literal["say"]
    say: tuple[str, ...]
    next: str


class HangupStep(_Frozen):
    type: Literal["hangup"]
    say: tuple[str, ...] = ()
    say_in_every_language: bool = False


class AgentStep(_Frozen):
    type: Literal["agent"]
    say: tuple[str, ...] = ()
    reason: str | None = None


Step = Annotated[
    MenuStep | InputStep | QuestionStep | ActionStep | BranchStep | SayStep | HangupStep | AgentStep,
    Field(discriminator="type"),
]
ListeningStep = MenuStep | InputStep | QuestionStep


class Flow(_Frozen):
    name: str
    start: str
    defaults: Defaults
    steps: dict[str, Step]

    def tries_allowed(self, step: ListeningStep) -> int:
        return step.max_tries or self.defaults.max_tries


def exits(flow: Flow, name: str) -> Iterator[str]:
    """Every step this one can lead to, the defaults' exits included."""
    step = flow.steps[name]
    match step:
        case MenuStep() | InputStep() | QuestionStep():
            yield flow.defaults.agent_step
            yield flow.defaults.too_many_tries_step
            if step.on_no_input:
                yield step.on_no_input
            if isinstance(step, MenuStep | InputStep):
                yield from (choice.next for choice in step.options.values())
            if not isinstance(step, MenuStep):
                yield step.next
        case ActionStep():
            yield from step.outcomes.values()
        case BranchStep():
            yield from step.cases.values()
        case SayStep():
            yield step.next
        case HangupStep() | AgentStep():
            return


def prompt_keys(flow: Flow) -> set[str]:
    """Every prompt key the flow itself names."""
    keys = {flow.defaults.no_input_prompt, flow.defaults.invalid_prompt}
    if flow.defaults.context_prompt:
        keys.add(flow.defaults.context_prompt)
    if flow.defaults.no_input_again_prompt:
        keys.add(flow.defaults.no_input_again_prompt)
    for step in flow.steps.values():
        keys.update(getattr(step, "say", ()))
        invalid: str | None = getattr(step, "invalid_prompt", None)
        if invalid:
            keys.add(invalid)
    return keys


def load_flow(path: Path) -> Flow:
    """Parse one flow file, naming the file in any error."""
    try:
        return Flow.model_validate(yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise DefinitionError(f"{path}: {error}") from error


def check_flow(
    flow: Flow,
    *,
    actions: Mapping[str, frozenset[str]],
    checks: frozenset[str],
    languages: frozenset[str],
) -> list[str]:
    """Every problem with the flow's shape, as sentences naming the step; empty when sound."""
    problems: list[str] = []
    d = flow.defaults
    for target in (flow.start, d.agent_step, d.too_many_tries_step):
        if target not in flow.steps:
            problems.append(f"defaults/start name unknown step {target!r}")
    for name, step in flow.steps.items():
        problems += [
            f"step {name!r} leads to unknown step {t!r}" for t in exits(flow, name) if t not in flow.steps
        ]
        problems += _check_step(flow, name, step, actions, checks, languages)
    if problems:
        return problems
    reachable = _reachable(flow, [flow.start])
    problems += [f"step {n!r} is unreachable from {flow.start!r}" for n in flow.steps if n not in reachable]
    ends = {n for n, s in flow.steps.items() if isinstance(s, HangupStep | AgentStep)}
    problems += [
        f"step {n!r} can never reach a goodbye or an agent"
        for n in flow.steps
        if not _reachable(flow, [n]) & ends
    ]
    return problems


def _check_step(
    flow: Flow,
    name: str,
    step: Step,
    actions: Mapping[str, frozenset[str]],
    checks: frozenset[str],
    languages: frozenset[str],
) -> list[str]:
    reserved = {flow.defaults.agent_key, flow.defaults.repeat_key}
    match step:
        case MenuStep():
            bad = [k for k in step.options if len(k) != 1 or k not in DTMF_KEYS or k in reserved]
            langs = [c.language for c in step.options.values() if c.language not in (None, *languages)]
            return (
                [f"step {name!r}: option key {k!r} is not a free single key" for k in bad]
                + [f"step {name!r}: unknown language {lang!r}" for lang in langs]
                + ([f"step {name!r}: a menu needs a prompt"] if not step.say else [])
            )
        case InputStep():
            bad = [k for k in step.options if len(k) != 1 or k not in DTMF_KEYS or k in reserved]
            return [f"step {name!r}: option key {k!r} is not a free single key" for k in bad] + (
                [f"step {name!r}: unknown check {step.check!r}"] if step.check not in checks else []
            )
        case ActionStep():
            declared = actions.get(step.action)
            if declared is None:
                return [f"step {name!r}: unknown action {step.action!r}"]
            if set(step.outcomes) != declared:
                return [f"step {name!r}: outcomes must be exactly {sorted(declared)}"]
        case BranchStep():
            sets = [
                c.set
                for s in flow.steps.values()
                if isinstance(s, MenuStep | InputStep)
                for c in s.options.values()
            ]
            sets += [
                v for s in flow.steps.values() if isinstance(s, InputStep) for v in s.set_by_length.values()
            ]
            values = {found[step.by] for found in sets if step.by in found}
            if values != set(step.cases):
                return [
                    f"step {name!r}: cases must be exactly the values set for {step.by!r}: {sorted(values)}"
                ]
    return []


def _reachable(flow: Flow, start: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen or name not in flow.steps:
            continue
        seen.add(name)
        todo.extend(exits(flow, name))
    return seen
