"""The hand-over's states, declared once: checked like the call flow, drawn in the docs."""

from __future__ import annotations

import dataclasses

import pytest

from ivr import handover
from ivr.errors import DefinitionError
from ivr.handover import TRANSITIONS, Status, Transition
from ivr.settings import REPO_ROOT


def test_the_declared_hand_over_passes_its_own_check() -> None:
    handover.check()


def test_a_state_that_cannot_be_reached_is_refused() -> None:
    table = [t for t in TRANSITIONS if t.target != Status.ENDED]
    with pytest.raises(DefinitionError, match="ended cannot be reached"):
        handover.check(table)


def test_a_state_that_can_never_end_is_refused() -> None:
    table = [t for t in TRANSITIONS if t.source != Status.ENDED]
    table += [
        Transition("close", Status.ENDED, Status.WRAPPED_UP, "nobody"),
        Transition("reopen", Status.WRAPPED_UP, Status.ENDED, "nobody"),
    ]
    with pytest.raises(DefinitionError, match="ended, wrapped_up can never end"):
        handover.check(table)


def test_an_event_that_says_two_things_in_one_state_is_refused() -> None:
    twice = dataclasses.replace(TRANSITIONS[0], target=Status.CONNECTED)
    with pytest.raises(DefinitionError, match="'taken' leaves waiting twice"):
        handover.check([*TRANSITIONS, twice])


def test_an_event_whose_moves_could_chain_is_refused() -> None:
    chain = Transition("caller_left", Status.ENDED, Status.WRAPPED_UP, "nobody")
    with pytest.raises(DefinitionError, match="moves into a state it also moves from"):
        handover.check([*TRANSITIONS, chain])


def test_an_agent_holds_a_hand_over_from_taking_it_to_wrapping_it_up_whatever_the_caller_does() -> None:
    assert set(handover.HELD) == {Status.CONNECTING, Status.CONNECTED, Status.ENDED}
    left = handover.sources("caller_left")
    assert left == {Status.ABANDONED: [Status.WAITING], Status.ENDED: [Status.CONNECTING, Status.CONNECTED]}


def test_docs_handover_md_is_generated_from_the_declaration() -> None:
    committed = (REPO_ROOT / "docs" / "handover.md").read_text(encoding="utf-8")
    assert committed == handover.diagram(), "regenerate: ivr flows handover > docs/handover.md"
