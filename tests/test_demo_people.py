"""Tests of the deterministic synthetic people behind the embedded register and back end."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections import Counter

import phonenumbers
import pytest

from ivr.adapters.demo_people import DemoPerson, generate_people, person_to_json
from ivr.ports import DocumentType

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
USER_ID = re.compile(r"[a-z0-9æøå{}!#$ ^,*()_+\-=:;?.@]{5,48}")
MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}
JSON_KEYS = {
    "cpr",
    "name",
    "birth_date",
    "sex",
    "documents",
    "address",
    "mother_birth_year",
    "father_birth_year",
    "spouse_birth_date",
    "children_birth_dates",
    "has_mitid",
    "user_id",
    "mobile",
    "mobile_registered_at",
    "backend_fails",
    "case",
}
# case -> (passport, driving licence) promised in the module docstring
CASES = {
    "ordinary": ("100000001", None),
    "passport_and_licence": ("100000002", "20000002"),
    "no_mobile": ("100000003", None),
    "mobile_changed_48h": ("100000004", None),
    "no_mitid": ("100000005", None),
    "greenlandic": ("100000006", None),
    "exotic_user_id": ("100000007", None),
    "licence_only": (None, "20000008"),
    "backend_fails": ("100000009", None),
}


@pytest.fixture(scope="module")
def people() -> list[DemoPerson]:
    return generate_people(now=NOW)


def by_case(people: list[DemoPerson]) -> dict[str, DemoPerson]:
    return {p.case: p for p in people if p.case}


def numbers(p: DemoPerson, kind: DocumentType) -> list[str]:
    return [d.number for d in p.person.documents if d.type is kind]


def decode_birth(cpr: str) -> dt.date:
    """Birth date from a CPR number by the CPR office's century table."""
    day, month, yy, digit = int(cpr[:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    if digit <= 3 or (digit in (4, 9) and yy >= 37):
        century = 1900
    elif digit in (4, 9) or yy <= 57:
        century = 2000
    else:
        century = 1800
    return dt.date(century + yy, month, day)


def test_same_seed_and_now_give_identical_people(people: list[DemoPerson]) -> None:
    again = generate_people(now=NOW)
    assert again == people
    assert [person_to_json(p) for p in again] == [person_to_json(p) for p in people]


def test_other_seed_gives_other_random_people(people: list[DemoPerson]) -> None:
    other = generate_people(seed=7, count=50, now=NOW)
    assert [p.person.cpr for p in other[9:]] != [p.person.cpr for p in people[9:50]]


def test_global_random_state_is_untouched() -> None:
    random.seed(99)
    before = random.getstate()
    generate_people(count=30, now=NOW)
    assert random.getstate() == before


def test_count_is_honoured(people: list[DemoPerson]) -> None:
    assert len(people) == 1000
    assert len(generate_people(count=25, now=NOW)) == 25


@pytest.mark.parametrize(
    "kwargs",
    [
        {"now": NOW.replace(tzinfo=None)},
        {"now": NOW, "count": 3},
        {"now": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_people(**kwargs)


def test_cprs_unique_and_consistent_with_birth_and_sex(people: list[DemoPerson]) -> None:
    cprs = [p.person.cpr for p in people]
    assert len(set(cprs)) == len(cprs)
    for p in people:
        assert re.fullmatch(r"\d{10}", p.person.cpr)
        assert decode_birth(p.person.cpr) == p.person.birth_date
        assert p.person.sex == ("male" if int(p.person.cpr[-1]) % 2 else "female")


def test_document_numbers_unique_with_right_lengths(people: list[DemoPerson]) -> None:
    docs = [d for p in people for d in p.person.documents]
    assert len({d.number for d in docs}) == len(docs)
    for d in docs:
        digits = 9 if d.type is DocumentType.PASSPORT else 8
        assert re.fullmatch(rf"\d{{{digits}}}", d.number), d


def test_most_people_have_one_document_some_two_a_few_none(people: list[DemoPerson]) -> None:
    spread = Counter(len(p.person.documents) for p in people)
    assert spread[1] > len(people) / 2
    assert 0 < spread[0] < spread[2] < spread[1]
    assert all(len({d.type for d in p.person.documents}) == len(p.person.documents) for p in people)


def test_user_ids_unique_and_in_alphabet(people: list[DemoPerson]) -> None:
    ids = [p.account.user_id for p in people if p.account]
    assert len(set(ids)) == len(ids) > 900
    for user_id in ids:
        assert USER_ID.fullmatch(user_id), user_id


def test_mobiles_are_valid_and_registered_before_now(people: list[DemoPerson]) -> None:
    accounts = [(p, p.account) for p in people if p.account and p.account.mobile]
    assert len(accounts) > 900
    for p, account in accounts:
        mobile = account.mobile or ""
        greenland = p.person.address.postcode.startswith("39")
        assert re.fullmatch(r"\+299\d{6}" if greenland else r"\+45\d{8}", mobile)
        parsed = phonenumbers.parse(mobile)
        assert phonenumbers.is_valid_number(parsed), mobile
        assert phonenumbers.number_type(parsed) in MOBILE_TYPES, mobile
        registered = account.mobile_registered_at
        assert registered is not None and registered.utcoffset() == dt.timedelta(0)
        assert registered < NOW


def test_addresses_are_plausible(people: list[DemoPerson]) -> None:
    for p in people:
        a = p.person.address
        assert a.street and a.city
        assert re.fullmatch(r"\d{4}", a.postcode)
        assert re.fullmatch(r"[1-9]\d*[A-Z]?", a.house_number)
        assert p.person.birth_date < a.moved_in < NOW.date()
    assert any(not p.person.address.house_number.isdigit() for p in people[9:])


def test_relatives_are_plausible(people: list[DemoPerson]) -> None:
    for p in people:
        person = p.person
        birth = person.birth_date
        for year in (person.mother_birth_year, person.father_birth_year):
            assert year is None or birth.year - 55 <= year <= birth.year - 14
        assert 0 <= len(person.children_birth_dates) <= 4
        for child in person.children_birth_dates:
            assert birth.replace(year=birth.year + 18, day=min(birth.day, 28)) <= child
            assert child < NOW.date()
    assert 0.4 < sum(p.person.spouse_birth_date is not None for p in people) / len(people) < 0.6
    assert any(p.person.mother_birth_year is None for p in people)
    assert any(p.person.father_birth_year is None for p in people)


def test_awkward_cases_come_first_with_promised_documents(people: list[DemoPerson]) -> None:
    assert [p.case for p in people[: len(CASES)]] == list(CASES)
    assert all(p.case is None for p in people[len(CASES) :])
    for p in people[: len(CASES)]:
        passport, licence = CASES[p.case or ""]
        assert numbers(p, DocumentType.PASSPORT) == ([passport] if passport else [])
        assert numbers(p, DocumentType.DRIVING_LICENCE) == ([licence] if licence else [])


def test_awkward_cases_can_be_asked_every_question(people: list[DemoPerson]) -> None:
    for p in people[: len(CASES)]:
        person = p.person
        assert person.mother_birth_year and person.father_birth_year, p.case
        assert person.spouse_birth_date and person.children_birth_dates, p.case


def test_awkward_cases_have_their_special_properties(people: list[DemoPerson]) -> None:
    cases = by_case(people)
    ordinary = cases["ordinary"].account
    assert ordinary and ordinary.mobile and ordinary.mobile_registered_at
    assert NOW - ordinary.mobile_registered_at > dt.timedelta(days=120)
    no_mobile = cases["no_mobile"].account
    assert no_mobile and no_mobile.mobile is None and no_mobile.mobile_registered_at is None
    assert cases["no_mitid"].account is None
    greenlandic = cases["greenlandic"]
    assert (greenlandic.person.address.postcode, greenlandic.person.address.city) == (
        "3900",
        "Nuuk",
    )
    assert greenlandic.account and greenlandic.account.mobile == "+299551236"
    exotic = cases["exotic_user_id"].account
    assert exotic and exotic.user_id == "søren.ærø å{1}!"
    assert USER_ID.fullmatch(exotic.user_id)
    assert {"æ", "ø", "å", " "} <= set(exotic.user_id)
    assert [p.case for p in people if p.backend_fails] == ["backend_fails"]


@pytest.mark.parametrize("now", [NOW, dt.datetime(2030, 7, 4, 8, 30, tzinfo=dt.UTC)])
def test_mobile_changed_48_hours_before_now(now: dt.datetime) -> None:
    account = by_case(generate_people(count=9, now=now))["mobile_changed_48h"].account
    assert account and account.mobile
    assert account.mobile_registered_at == now - dt.timedelta(hours=48)


def test_person_to_json_shape(people: list[DemoPerson]) -> None:
    for p in people:
        data = json.loads(json.dumps(person_to_json(p), ensure_ascii=False))
        assert set(data) == JSON_KEYS
        assert set(data["address"]) == {"street", "house_number", "postcode", "city", "moved_in"}
        assert data["has_mitid"] is (p.account is not None)
    exotic = person_to_json(by_case(people)["exotic_user_id"])
    assert exotic["documents"] == [{"type": "passport", "number": "100000007"}]
    assert exotic["birth_date"] == "1983-04-16" and exotic["case"] == "exotic_user_id"
    assert exotic["mobile_registered_at"] == (NOW - dt.timedelta(days=400)).isoformat()
    failing = person_to_json(by_case(people)["backend_fails"])
    assert failing["backend_fails"] is True and failing["children_birth_dates"] == ["1999-09-09"]
    no_mitid = person_to_json(by_case(people)["no_mitid"])
    assert no_mitid["user_id"] is None and no_mitid["mobile_registered_at"] is None
