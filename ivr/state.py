"""A call's state: a small serialisable value, persisted after every webhook."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class Verification(BaseModel):
    """How far identification got. Holds no answer, only counts."""

    model_config = ConfigDict(extra="forbid")

    identity_keys: list[str]
    """Pseudonyms of the claimed document and, when the register knows it, of the person."""
    questions: list[str]
    guesses: list[int] = []
    """The guesses taken on the identity keys (none: locked or used up, so it cannot pass)."""
    asked: int = 0
    correct: int = 0
    can_pass: bool
    outcome: Literal["verified", "not_verified"] | None = None

    @property
    def current_question(self) -> str:
        return self.questions[self.asked]


class CallState(BaseModel):
    """Where one call is: flow step, language, tries, and what the caller has told us."""

    model_config = ConfigDict(extra="forbid")

    call_sid: str
    caller_key: str
    """Pseudonym of the calling number: the call is bound to it."""
    caller_withheld: bool = False
    step: str
    language: str = "da"
    offered: list[str] = []
    """The order the language menu offers the languages in (empty: the call's first, then the rest)."""
    turn: int = 0
    tries: int = 0
    inputs: int = 0
    told_keys: bool = False
    """The caller has been told what `*` and `0` do (after their first silence)."""
    collected: dict[str, str] = {}
    verification: Verification | None = None
    escalation_reason: str | None = None
    pin_issued: bool = False
    ended: bool = False

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("document_number",)
    """Kept only while the call needs them (read back, looked up again), then scrubbed."""

    def scrubbed(self) -> CallState:
        """The state with the caller's secrets removed, for a call that has ended."""
        kept = {k: v for k, v in self.collected.items() if k not in self.SECRET_FIELDS}
        return self.model_copy(update={"collected": kept, "ended": True})
