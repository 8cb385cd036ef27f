"""The bank of knowledge questions: register facts that are not printed on the document.

Name, birth date and sex are on every passport and driving licence, so no question uses them.
Each question reads one fact off a `Person` and says how many keys the answer takes.
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
        Question("mother_birth_year", lambda p: _year(p.mother_birth_year), digits=4),
        Question("father_birth_year", lambda p: _year(p.father_birth_year), digits=4),
        Question("spouse_birth_date", lambda p: _date(p.spouse_birth_date), digits=8),
        Question("eldest_child_birth_year", _eldest_child_year, digits=4),
    )
}


def answerable(person: Person) -> list[str]:
    """The kinds of question this person's register data can answer."""
    return [kind for kind, q in QUESTIONS.items() if q.fact(person)]


def choose(person: Person | None, count: int, rng: random.Random) -> tuple[list[str], bool]:
    """Pick `count` questions at random; also whether this caller can pass at all.

    A caller the line cannot verify (unknown document, too few facts) is asked just as many
    questions, drawn from the whole bank, so that nothing they hear gives the case away.
    """
    kinds = answerable(person) if person else []
    if len(kinds) >= count:
        return rng.sample(kinds, count), True
    return rng.sample(sorted(QUESTIONS), count), False


def is_right(kind: str, person: Person, answer: str) -> bool:
    """Whether the answer matches the register (digits compared exactly)."""
    fact = QUESTIONS[kind].fact(person)
    if kind == "house_number":
        answer = answer.lstrip("0")
    return fact is not None and hmac.compare_digest(fact, answer)
