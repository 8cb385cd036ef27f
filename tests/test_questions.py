"""The bank of knowledge questions: facts from the register that are not printed on the document."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from ivr.checks import answer_is_well_formed
from ivr.ports import Address, Document, DocumentType, Person
from ivr.questions import QUESTIONS, choose, is_right

FULL = Person(
    cpr="0503851234",
    name="Mette Hansen",
    birth_date=dt.date(1985, 3, 5),
    sex="female",
    address=Address("Nørrebrogade", "12B", "2200", "København N", dt.date(2015, 8, 1)),
    documents=(Document(DocumentType.PASSPORT, "100000001"),),
    mother_birth_year=1958,
    father_birth_year=1955,
    spouse_birth_date=dt.date(1983, 6, 17),
    children_birth_dates=(dt.date(2015, 1, 22), dt.date(2012, 9, 3)),
)
# Only the address is known: three kinds of question in all.
SPARSE = dataclasses.replace(
    FULL, mother_birth_year=None, father_birth_year=None, spouse_birth_date=None, children_birth_dates=()
)


def facts(person: Person) -> dict[str, str | None]:
    return {kind: q.fact(person) for kind, q in QUESTIONS.items()}


def test_the_bank_has_at_least_six_kinds() -> None:
    assert len(QUESTIONS) >= 6
    assert all(kind == q.kind for kind, q in QUESTIONS.items())


def test_no_question_uses_what_is_printed_on_the_document() -> None:
    """Name, birth date and sex are on every passport and licence: they must not change a fact."""
    twin = dataclasses.replace(
        FULL, name="Jens Andersen", birth_date=dt.date(1990, 1, 30), sex="male", cpr="3001901111"
    )
    assert facts(twin) == facts(FULL)
    assert all(value is not None for value in facts(FULL).values())


def test_facts_are_read_as_the_caller_keys_them() -> None:
    assert facts(FULL) == {
        "postcode": "2200",
        "house_number": "12",
        "moved_in_year": "2015",
        "mother_birth_year": "1958",
        "father_birth_year": "1955",
        "spouse_birth_date": "17061983",
        "eldest_child_birth_year": "2012",
    }


@pytest.mark.parametrize("kind", sorted(QUESTIONS))
def test_every_fact_has_the_shape_its_question_asks_for(kind: str) -> None:
    fact = QUESTIONS[kind].fact(FULL)
    assert fact is not None
    assert answer_is_well_formed(kind, fact)


@pytest.mark.parametrize("seed", range(20))
def test_choose_asks_distinct_questions_from_the_whole_bank(seed: int) -> None:
    kinds = choose(3, random.Random(seed))
    assert len(set(kinds)) == 3
    assert set(kinds) <= set(QUESTIONS)


def test_choose_asks_every_kind_equally_often() -> None:
    rng = random.Random(7)
    draws = [kind for _ in range(7000) for kind in choose(3, rng)]
    for kind in QUESTIONS:  # 3 of 7 kinds a call: each kind in 3/7 of the calls
        assert abs(draws.count(kind) / 7000 - 3 / 7) < 0.03, kind


def test_choose_is_repeatable_with_the_same_random_source() -> None:
    assert choose(3, random.Random(42)) == choose(3, random.Random(42))


@pytest.mark.parametrize("kind", [k for k, q in QUESTIONS.items() if q.may_be_none])
def test_none_is_the_right_answer_exactly_when_the_register_has_no_such_fact(kind: str) -> None:
    none = QUESTIONS[kind].none
    assert none is not None and set(none) == {"0"} and len(none) == QUESTIONS[kind].digits
    assert none != "0"  # a lone 0 is the agent key
    assert is_right(kind, SPARSE, none)
    assert not is_right(kind, FULL, none)
    assert answer_is_well_formed(kind, none)


@pytest.mark.parametrize("kind", [k for k, q in QUESTIONS.items() if not q.may_be_none])
def test_facts_every_person_has_cannot_be_answered_none(kind: str) -> None:
    assert QUESTIONS[kind].none is None
    for zeros in ("0000", "00000000"):
        assert not is_right(kind, SPARSE, zeros)


@pytest.mark.parametrize(
    ("kind", "answer", "right"),
    [
        ("postcode", "2200", True),
        ("postcode", "2201", False),
        ("postcode", "22000", False),
        ("postcode", "", False),
        ("moved_in_year", "2015", True),
        ("moved_in_year", "15", False),
        ("mother_birth_year", "1958", True),
        ("father_birth_year", "1958", False),
        ("spouse_birth_date", "17061983", True),
        ("spouse_birth_date", "1761983", False),
        ("spouse_birth_date", "19830617", False),
        ("eldest_child_birth_year", "2012", True),
        ("eldest_child_birth_year", "2015", False),
        ("house_number", "12", True),
        ("house_number", "012", True),
        ("house_number", "0012", True),
        ("house_number", "120", False),
        ("house_number", "1", False),
        ("house_number", "", False),
    ],
)
def test_is_right_compares_exactly(kind: str, answer: str, right: bool) -> None:
    assert is_right(kind, FULL, answer) is right


@pytest.mark.parametrize(("house", "fact"), [("12B", "12"), ("7", "7"), ("101A", "101"), ("B", None)])
def test_house_number_is_the_number_without_its_letter(house: str, fact: str | None) -> None:
    person = dataclasses.replace(FULL, address=dataclasses.replace(FULL.address, house_number=house))
    assert QUESTIONS["house_number"].fact(person) == fact
    if fact is not None:
        assert is_right("house_number", person, fact)
        assert is_right("house_number", person, "0" + fact)


@pytest.mark.parametrize("kind", ["mother_birth_year", "spouse_birth_date", "eldest_child_birth_year"])
def test_a_missing_fact_is_right_only_as_none(kind: str) -> None:
    assert QUESTIONS[kind].fact(SPARSE) is None
    for answer in ("", "0", "000", "1958"):
        assert not is_right(kind, SPARSE, answer)
    assert is_right(kind, SPARSE, QUESTIONS[kind].none or "")
