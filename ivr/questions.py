"""The bank of knowledge questions: register facts that are not printed on the document.

Name, birth date and sex are on every passport and driving licence, so no question uses them.
Each question reads one fact off a `Person` and says how many keys the answer takes.

Every question can be asked of everyone: where the register may hold no such fact (no spouse,
no children, a parent unknown), the caller keys zeros in every place ("0000", "00000000") for
"none", and that is the right answer exactly when the register holds none. (A lone `0` would be
the agent key, and no year or date is all zeros.) So which questions a caller is asked says nothing about
whether their document exists or which facts the register has about them.
"""

from __future__ import annotations

import datetime as dt
import hmac
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from ivr.ports import Person


@dataclass(frozen=True)
class Question:
    kind: str
    fact: Callable[[Person], str | None]
    digits: int | None
    max_digits: int = 8
    may_be_none: bool = False
    """The register may hold no such fact; the caller then keys `none`: zeros in every place."""

    @property
    def none(self) -> str | None:
        """What "none" is keyed as, for a question whose fact may be missing."""
        return "0" * self.digits if self.may_be_none and self.digits else None


def _date(value: dt.date | None) -> str | None:
    return value.strftime("%d%m%Y") if value else None


def _year(value: int | None) -> str | None:
    return str(value) if value else None


def _house_number(person: Person) -> str | None:
    match = re.match(r"\d+", person.address.house_number)
    return match.group(0) if match else None


def _eldest_child_year(person: Person) -> str | None:
    return str(min(person.children_birth_dates).year) if person.children_birth_dates else None


QUESTIONS: dict[str, Question] = {
    q.kind: q
    for q in (
        Question("postcode", lambda p: p.address.postcode, digits=4),
        Question("house_number", _house_number, digits=None, max_digits=4),
        Question("moved_in_year", lambda p: str(p.address.moved_in.year), digits=4),
        Question("mother_birth_year", lambda p: _year(p.mother_birth_year), digits=4, may_be_none=True),
        Question("father_birth_year", lambda p: _year(p.father_birth_year), digits=4, may_be_none=True),
        Question("spouse_birth_date", lambda p: _date(p.spouse_birth_date), digits=8, may_be_none=True),
        Question("eldest_child_birth_year", _eldest_child_year, digits=4, may_be_none=True),
    )
}


def choose(count: int, rng: random.Random) -> list[str]:
    """`count` different kinds of question, uniformly from the whole bank, whoever is asking."""
    return rng.sample(sorted(QUESTIONS), count)


def expected(kind: str, person: Person) -> str | None:
    """What the person would key: the fact, the question's `none` where the register has none,
    or None where the question cannot be answered at all."""
    question = QUESTIONS[kind]
    fact = question.fact(person)
    return question.none if fact is None else fact


def is_right(kind: str, person: Person, answer: str) -> bool:
    """Whether the answer matches the register (digits compared exactly)."""
    truth = expected(kind, person)
    if kind == "house_number":
        answer = answer.lstrip("0")
    return truth is not None and hmac.compare_digest(truth, answer)
