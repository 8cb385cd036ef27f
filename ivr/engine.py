"""The engine: given a call's state and what the caller keyed, decide what happens next.

Pure: no HTTP, no SQL, no clock. Where a step needs the outside world (an `action` step) the
engine stops and returns `ActionNeeded`; the caller of the engine runs the action and hands the
outcome back with `on_outcome`. Everything else ends in a `Reply`: words to say, then either
listening for keys, a goodbye, or the agents' queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from ivr.checks import answer_is_well_formed
from ivr.flows import (
    ActionStep,
    AgentStep,
    BranchStep,
    Flow,
    HangupStep,
    InputStep,
    ListeningStep,
    MenuStep,
    QuestionStep,
    SayStep,
)
from ivr.prompts import Slot, Spelled
from ivr.questions import QUESTIONS
from ivr.state import CallState


@dataclass(frozen=True)
class Utterance:
    key: str
    language: str | None = None
    """None: the call's language."""


@dataclass(frozen=True)
class Listen:
    num_digits: int | None
    finish_on_key: str
    timeout: int


@dataclass(frozen=True)
class Reply:
    state: CallState
    speech: tuple[Utterance, ...]
    slots: Mapping[str, Slot] = field(default_factory=dict)
    listen: Listen | None = None
    end: Literal["hangup", "agent"] | None = None


@dataclass(frozen=True)
class ActionNeeded:
    state: CallState
    action: str
    keys: str
    speech: tuple[Utterance, ...]
    slots: Mapping[str, Slot]


Result = Reply | ActionNeeded


@dataclass(frozen=True)
class Engine:
    flow: Flow
    languages: tuple[str, ...]
    checks: Mapping[str, Callable[[str], bool]]

    def begin(self, state: CallState) -> Result:
        """The call has just been answered."""
        return self._enter(self.flow.start, state, (), {}, "")

    def on_keys(self, state: CallState, keys: str) -> Result:
        """The caller keyed `keys` ("" for silence) at the current step."""
        step = self.flow.steps[state.step]
        if not isinstance(step, MenuStep | InputStep | QuestionStep):
            return self._enter(state.step, state, (), {}, "")
        d = self.flow.defaults
        state = state.model_copy(update={"inputs": state.inputs + 1})
        if state.inputs > d.max_turns:
            return self._escalate(state, "call_too_long")
        if not keys:
            return self._failed(state, step, "no_input")
        if d.repeat_key in keys:
            return self._listen(state, step, (), {})
        if keys == d.agent_key:
            return self._enter(d.agent_step, state, (), {}, "")
        match step:
            case MenuStep():
                choice = step.options.get(keys)
                if choice is None:
                    return self._failed(state, step, "invalid_input")
                update: dict[str, object] = {"collected": {**state.collected, **choice.set}}
                if choice.language:
                    update["language"] = choice.language
                return self._enter(choice.next, state.model_copy(update=update), (), {}, "")
            case InputStep():
                way_out = step.options.get(keys)
                if way_out is not None:
                    collected = {**state.collected, **way_out.set}
                    return self._enter(
                        way_out.next, state.model_copy(update={"collected": collected}), (), {}, ""
                    )
                if not self.checks[step.check](keys):
                    return self._failed(state, step, "invalid_input")
                collected = {**state.collected, **step.set_by_length.get(len(keys), {}), step.store: keys}
                return self._enter(step.next, state.model_copy(update={"collected": collected}), (), {}, "")
            case QuestionStep():
                assert state.verification is not None
                if not answer_is_well_formed(state.verification.current_question, keys):
                    return self._failed(state, step, "invalid_input")
                return self._enter(step.next, state, (), {}, keys)

    def on_outcome(self, pending: ActionNeeded, outcome: str, slots: Mapping[str, Slot]) -> Result:
        """An action finished with `outcome`; `slots` are words it found for the next prompts."""
        step = self.flow.steps[pending.state.step]
        assert isinstance(step, ActionStep)
        merged = {**pending.slots, **slots}
        return self._enter(step.outcomes[outcome], pending.state, pending.speech, merged, "")

    def _enter(
        self,
        name: str,
        state: CallState,
        speech: tuple[Utterance, ...],
        slots: Mapping[str, Slot],
        keys: str,
    ) -> Result:
        while True:
            step = self.flow.steps[name]
            state = state.model_copy(update={"step": name, "tries": 0})
            match step:
                case SayStep():
                    speech += tuple(Utterance(k) for k in step.say)
                    name = step.next
                case BranchStep():
                    value = state.collected.get(step.by)
                    if value not in step.cases:
                        return self._escalate(state, "flow_error", speech)
                    name = step.cases[value]
                case ActionStep():
                    return ActionNeeded(state, step.action, keys, speech, slots)
                case HangupStep() | AgentStep():
                    speech += self._utter(step.say, getattr(step, "say_in_every_language", False), state)
                    end: Literal["hangup", "agent"] = "hangup"
                    if isinstance(step, AgentStep):
                        end = "agent"
                        verified = state.verification is not None and state.verification.outcome == "verified"
                        if self.flow.defaults.context_prompt and verified:
                            speech += (Utterance(self.flow.defaults.context_prompt),)
                        reason = step.reason or state.escalation_reason or "unspecified"
                        state = state.model_copy(update={"escalation_reason": reason})
                    return Reply(state, speech, self._slots(state, slots), end=end)
                case MenuStep() | InputStep() | QuestionStep():
                    return self._listen(state, step, speech, slots)

    def _listen(
        self,
        state: CallState,
        step: ListeningStep,
        speech: tuple[Utterance, ...],
        slots: Mapping[str, Slot],
    ) -> Reply:
        timeout = self.flow.defaults.timeout_seconds
        match step:
            case MenuStep():
                prompt, listen = (
                    self._utter(step.say, step.say_in_every_language, state),
                    Listen(1, "", timeout),
                )
            case InputStep():
                prompt = tuple(Utterance(k) for k in step.say)
                listen = Listen(None, step.finish_on_key, timeout)
            case QuestionStep():
                assert state.verification is not None
                kind = state.verification.current_question
                prompt = (*(Utterance(k) for k in step.say), Utterance(f"question_{kind}"))
                listen = Listen(QUESTIONS[kind].digits, "#", timeout + 4)
        return Reply(state, speech + prompt, self._slots(state, slots), listen=listen)

    def _failed(
        self, state: CallState, step: ListeningStep, kind: Literal["no_input", "invalid_input"]
    ) -> Result:
        d = self.flow.defaults
        state = state.model_copy(update={"tries": state.tries + 1})
        if kind == "no_input" and step.on_no_input:
            return self._enter(step.on_no_input, state, (), {}, "")
        if state.tries >= self.flow.tries_allowed(step):
            return self._escalate(state, f"repeated_{kind}")
        sorry = step.invalid_prompt or d.invalid_prompt
        if kind == "no_input":
            told = state.told_keys and d.no_input_again_prompt
            sorry = d.no_input_again_prompt if told and d.no_input_again_prompt else d.no_input_prompt
            state = state.model_copy(update={"told_keys": True})
        every = isinstance(step, MenuStep) and step.say_in_every_language
        return self._listen(state, step, self._utter((sorry,), every, state), {})

    def _escalate(self, state: CallState, reason: str, speech: tuple[Utterance, ...] = ()) -> Result:
        state = state.model_copy(update={"escalation_reason": reason})
        return self._enter(self.flow.defaults.too_many_tries_step, state, speech, {}, "")

    def _utter(self, keys: Iterable[str], in_every_language: bool, state: CallState) -> tuple[Utterance, ...]:
        """The prompts in the call's language, or in each language in turn (before one is chosen),
        the call's language first: before the choice, the one its calling number suggests."""
        if in_every_language:
            first = [lang for lang in [state.language, *state.offered] if lang in self.languages]
            first = list(dict.fromkeys(first))
            order = first + [lang for lang in self.languages if lang not in first]
            return tuple(Utterance(k, lang) for lang in order for k in keys)
        return tuple(Utterance(k) for k in keys)

    @cached_property
    def _keyed_fields(self) -> frozenset[str]:
        """What callers key in (document numbers): said back digit by digit."""
        return frozenset(s.store for s in self.flow.steps.values() if isinstance(s, InputStep))

    def _slots(self, state: CallState, slots: Mapping[str, Slot]) -> dict[str, Slot]:
        spelled = {k: Spelled(v) for k, v in state.collected.items() if k in self._keyed_fields}
        return {**spelled, **slots}
