"""Named checks of what a caller keys in; flows refer to them by name."""

from __future__ import annotations

from collections.abc import Callable

from ivr.questions import QUESTIONS


def _digits(length: int) -> Callable[[str], bool]:
    return lambda keys: keys.isdigit() and len(keys) == length


CHECKS: dict[str, Callable[[str], bool]] = {
    "passport_number": _digits(9),
    "driving_licence_number": _digits(8),
    # Either: the number's length says which document it is.
    "document_number": lambda keys: keys.isdigit() and len(keys) in (8, 9),
}


def answer_is_well_formed(kind: str, keys: str) -> bool:
    """Whether an answer has the shape the question asks for (never whether it is right)."""
    question = QUESTIONS[kind]
    if not keys.isdigit():
        return False
    return len(keys) == question.digits if question.digits else 1 <= len(keys) <= question.max_digits
