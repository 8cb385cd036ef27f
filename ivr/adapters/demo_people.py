"""Deterministic synthetic people for the embedded CPR register and MitID back end.

`generate_people(seed, count, now=...)` (`iter_people`: one at a time) gives the same list for
the same seed and `now`. The first nine people are fixed awkward cases (documents end in the
case's number, 1-9):

| Case | Name, CPR | Document(s) | What is special |
|---|---|---|---|
| a `ordinary` | Mette Hansen, 050385-1234 | passport 100000001 | mobile +45 20 12 34 51 |
| b `passport_and_licence` | Lars Nielsen, 121178-1235 | passport 100000002 + licence 20000002 | |
| c `no_mobile` | Karen Pedersen, 220749-0412 | passport 100000003 | MitID, no mobile |
| d `mobile_changed_48h` | Jens Andersen, 300190-1111 | passport 100000004 | mobile set now-48h |
| e `no_mitid` | Birgitte Christensen, 140962-2222 | passport 100000005 | no MitID at all |
| f `greenlandic` | Aviaja Kleist, 210695-3336 | passport 100000006 | 3900 Nuuk, +299 55 12 36 |
| g `exotic_user_id` | Søren Ærbøl, 160483-1357 | passport 100000007 | user ID `søren.ærø å{1}!` |
| h `licence_only` | Henrik Larsen, 080801-4001 | licence 20000008 | only a driving licence |
| i `backend_fails` | Ida Madsen, 101070-1010 | passport 100000009 | back end raises BackendError |

"licence" is a driving licence. Mobiles of a, b, d, g, h, i are +45 20 12 34 5N (N = case's
number); c has none, e has no MitID. Those with a mobile registered it 400 days before `now`,
except d (48 hours before `now`). Lars Nielsen's spouse was born on 29 February 1980.

Every awkward person has a mother's and father's birth year, a spouse and at least one child, so
every kind of knowledge question can be asked. Fixed dates all lie before 2024, so `now` must be
on or after 2024-01-01. Mobiles are valid Danish/Greenlandic mobile numbers and may belong to
real people: never point a real SMS sender at demo people.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from ivr.ports import Address, Document, DocumentType, MitIdAccount, Person

if TYPE_CHECKING:
    from faker import Faker

EARLIEST_NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
USER_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzæøå0123456789{}!#$ ^,*()_+-=:;?.@"
_GREENLAND_TOWNS = [("3900", "Nuuk"), ("3911", "Sisimiut"), ("3952", "Ilulissat")]
_GREENLAND_STREETS = ("Aqqusinersuaq", "Imaneq", "Qullilerfik", "Hans Egedesvej", "Issortarfimmut")
_P, _L = DocumentType.PASSPORT, DocumentType.DRIVING_LICENCE
_DOCUMENT_SETS: tuple[tuple[DocumentType, ...], ...] = ((_P, _L), (_P,), (_L,), ())
_USER_ID_FORMATS = ("{f}{yy}", "{f}.{l}", "{i}{l}{n}", "{f}_{l3}{n}", "{l}-{f}@{yy}", "{f} {n}!")
_D = dt.date


@dataclass(frozen=True)
class DemoPerson:
    """A synthetic person: register entry, MitID account (or None) and demo behaviour."""

    person: Person
    account: MitIdAccount | None
    backend_fails: bool = False
    case: str | None = None


@dataclass
class _Used:
    """Values already handed out, so that every generated one is unique."""

    cprs: set[str] = field(default_factory=set)
    docs: set[str] = field(default_factory=set)
    user_ids: set[str] = field(default_factory=set)
    mobiles: set[str] = field(default_factory=set)


class _Case(NamedTuple):
    """One fixed awkward case, as written in `_FIXED`."""

    label: str
    name: str
    cpr: str
    birth: dt.date
    sex: str
    passport: str | None
    licence: str | None
    user_id: str | None
    mobile: str | None
    address: tuple[str, str, str, str]  # street, house number, postcode, city
    moved_in: dt.date
    mother: int
    father: int
    spouse: dt.date
    children: tuple[dt.date, ...]


# fmt: off
_FIXED = tuple(_Case(*row) for row in (
    ("ordinary", "Mette Hansen", "0503851234", _D(1985, 3, 5), "female", "100000001", None,
     "mette.hansen85", "+4520123451", ("Nørrebrogade", "12", "2200", "København N"),
     _D(2015, 8, 1), 1958, 1955, _D(1983, 6, 17), (_D(2012, 9, 3), _D(2015, 1, 22))),
    ("passport_and_licence", "Lars Nielsen", "1211781235", _D(1978, 11, 12), "male", "100000002",
     "20000002", "larsn1978", "+4520123452", ("Vestergade", "7B", "8000", "Aarhus C"),
     _D(2009, 4, 15), 1950, 1947, _D(1980, 2, 29), (_D(2008, 5, 10),)),
    ("no_mobile", "Karen Pedersen", "2207490412", _D(1949, 7, 22), "female", "100000003", None,
     "karenp49", None, ("Algade", "3", "4000", "Roskilde"),
     _D(1988, 10, 1), 1921, 1918, _D(1947, 12, 1), (_D(1972, 3, 14), _D(1975, 11, 30))),
    ("mobile_changed_48h", "Jens Andersen", "3001901111", _D(1990, 1, 30), "male", "100000004",
     None, "jens.andersen", "+4520123454", ("Kongensgade", "45", "5000", "Odense C"),
     _D(2018, 2, 1), 1963, 1961, _D(1991, 8, 9), (_D(2019, 12, 24),)),
    ("no_mitid", "Birgitte Christensen", "1409622222", _D(1962, 9, 14), "female", "100000005",
     None, None, None, ("Strandvejen", "101", "2900", "Hellerup"),
     _D(1996, 6, 1), 1938, 1935, _D(1960, 4, 4), (_D(1990, 10, 10),)),
    ("greenlandic", "Aviaja Kleist", "2106953336", _D(1995, 6, 21), "female", "100000006", None,
     "aviaja.kleist", "+299551236", ("Aqqusinersuaq", "4", "3900", "Nuuk"),
     _D(2017, 9, 1), 1970, 1968, _D(1994, 2, 11), (_D(2020, 7, 7),)),
    ("exotic_user_id", "Søren Ærbøl", "1604831357", _D(1983, 4, 16), "male", "100000007", None,
     "søren.ærø å{1}!", "+4520123457", ("Åboulevarden", "22", "8000", "Aarhus C"),
     _D(2011, 11, 11), 1957, 1954, _D(1985, 9, 9), (_D(2014, 2, 14),)),
    ("licence_only", "Henrik Larsen", "0808014001", _D(2001, 8, 8), "male", None, "20000008",
     "henrik2001", "+4520123458", ("Jernbanegade", "9", "6700", "Esbjerg"),
     _D(2020, 3, 1), 1975, 1972, _D(2000, 5, 5), (_D(2022, 3, 14),)),
    ("backend_fails", "Ida Madsen", "1010701010", _D(1970, 10, 10), "female", "100000009", None,
     "ida.madsen", "+4520123459", ("Torvet", "1", "9000", "Aalborg"),
     _D(2005, 5, 5), 1944, 1940, _D(1968, 8, 18), (_D(1999, 9, 9),)),
))
# fmt: on


def generate_people(seed: int = 2026, count: int = 1000, *, now: dt.datetime) -> list[DemoPerson]:
    """The fixed awkward cases followed by random people, `count` in all, deterministic."""
    return list(iter_people(seed, count, now=now))


def iter_people(seed: int = 2026, count: int = 1000, *, now: dt.datetime) -> Iterator[DemoPerson]:
    """`generate_people`, one person at a time (a million people are built without holding
    them all: only their unique values are kept, to draw no value twice)."""
    if now.tzinfo is None or now < EARLIEST_NOW:
        raise ValueError("now must be timezone-aware and on or after 2024-01-01")
    if count < len(_FIXED):
        raise ValueError(f"count must be at least {len(_FIXED)}")
    now = now.astimezone(dt.UTC)
    used = _Used()
    for case in _FIXED:
        yield _fixed_person(case, now, used)
    from faker import Faker  # only when building: the line itself reads the built register

    fake = Faker("da_DK")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    for _ in range(count - len(_FIXED)):
        yield _random_person(fake, rng, now, used)


def _fixed_person(case: _Case, now: dt.datetime, used: _Used) -> DemoPerson:
    """One awkward case from `_FIXED`, recording its unique values in `used`."""
    pairs = ((_P, case.passport), (_L, case.licence))
    docs = tuple(Document(kind, number) for kind, number in pairs if number)
    address = Address(*case.address, case.moved_in)
    facts = (case.mother, case.father, case.spouse, case.children)
    person = Person(case.cpr, case.name, case.birth, case.sex, address, docs, *facts)
    age = dt.timedelta(hours=48 if case.label == "mobile_changed_48h" else 24 * 400)
    registered = now - age if case.mobile else None
    account = None
    if case.user_id is not None:
        account = MitIdAccount(case.cpr, case.user_id, case.mobile, registered)
    used.cprs.add(case.cpr)
    used.docs.update(d.number for d in docs)
    used.user_ids.update(v for v in (case.user_id,) if v)
    used.mobiles.update(v for v in (case.mobile,) if v)
    failing = case.label == "backend_fails"
    return DemoPerson(person, account, backend_fails=failing, case=case.label)


def _random_person(fake: Faker, rng: random.Random, now: dt.datetime, used: _Used) -> DemoPerson:
    """One random adult with register facts, documents and (usually) a MitID."""
    today = now.date()
    sex = rng.choice(("male", "female"))
    birth = today - dt.timedelta(days=rng.randint(18 * 366, 95 * 365))
    cpr = _unique(used.cprs, lambda: _cpr(rng, birth, sex))
    first = fake.first_name_male() if sex == "male" else fake.first_name_female()
    name = f"{first} {fake.last_name()}"
    greenlandic = rng.random() < 0.02
    address = _address(fake, rng, birth, today, greenlandic)
    docs = _documents(rng, used)
    person = Person(cpr, name, birth, sex, address, docs, *_relatives(rng, birth, today))
    account = None if rng.random() < 0.05 else _account(rng, person, now, greenlandic, used)
    return DemoPerson(person, account)


def _unique(used: set[str], make: Callable[[], str]) -> str:
    """Call `make()` until it returns a value not yet in `used`; record and return it."""
    value = make()
    while value in used:
        value = make()
    used.add(value)
    return value


def _cpr(rng: random.Random, birth: dt.date, sex: str) -> str:
    """A DDMMYYSSSS number whose century digit and parity match birth date and sex."""
    if 1900 <= birth.year <= 1999:
        century = rng.choice("0123")
    elif 2000 <= birth.year <= 2036:
        century = rng.choice("49")
    elif 2037 <= birth.year <= 2057:
        century = rng.choice("5678")
    else:
        raise ValueError("birth year outside what a CPR number can encode")
    parity = rng.choice("13579" if sex == "male" else "02468")
    return f"{birth:%d%m%y}{century}{rng.randrange(100):02d}{parity}"


def _random_day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    """A day in [start, end] (start when the range is empty)."""
    return start + dt.timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _years(day: dt.date, years: float) -> dt.date:
    """`day` plus about `years` years."""
    return day + dt.timedelta(days=round(years * 365.25))


def _address(fake: Faker, rng: random.Random, birth: dt.date, today: dt.date, greenlandic: bool) -> Address:
    """A Danish address (or a Greenlandic one) moved into after birth, before today."""
    if greenlandic:
        street = rng.choice(_GREENLAND_STREETS)
        postcode, city = rng.choice(_GREENLAND_TOWNS)
    else:
        street, postcode, city = fake.street_name(), fake.postcode(), fake.city()
        while postcode.startswith("39"):  # 39xx are Greenland's postcodes
            postcode = fake.postcode()
    number = str(rng.randint(1, 180)) + (rng.choice("ABCD") if rng.random() < 0.1 else "")
    moved_in = _random_day(rng, birth + dt.timedelta(days=1), today - dt.timedelta(days=1))
    return Address(street, number, postcode, city, moved_in)


def _documents(rng: random.Random, used: _Used) -> tuple[Document, ...]:
    """Mostly one document, some both, a few none; numbers unique across people."""
    kinds = rng.choices(_DOCUMENT_SETS, weights=(20, 45, 30, 5))[0]
    return tuple(Document(kind, _unique(used.docs, partial(_doc_number, rng, kind))) for kind in kinds)


def _doc_number(rng: random.Random, kind: DocumentType) -> str:
    """A passport number of 9 digits or a driving-licence number of 8 digits."""
    digits = 9 if kind is DocumentType.PASSPORT else 8
    return str(rng.randrange(10 ** (digits - 1), 10**digits))


def _relatives(rng: random.Random, birth: dt.date, today: dt.date) -> tuple[Any, ...]:
    """Mother's and father's birth years, spouse's birth date and children's birth dates."""
    mother = None if rng.random() < 0.1 else birth.year - rng.randint(18, 42)
    father = None if rng.random() < 0.15 else birth.year - rng.randint(18, 50)
    spouse = None
    if rng.random() < 0.5:
        spouse = min(_years(birth, rng.uniform(-8, 8)), _years(today, -18))
    window = (_years(birth, 18), min(today - dt.timedelta(days=1), _years(birth, 50)))
    count = rng.choices((0, 1, 2, 3, 4), weights=(30, 20, 30, 15, 5))[0]
    if window[0] >= window[1]:
        count = 0
    children = tuple(sorted(_random_day(rng, *window) for _ in range(count)))
    return mother, father, spouse, children


def _account(
    rng: random.Random, person: Person, now: dt.datetime, greenlandic: bool, used: _Used
) -> MitIdAccount:
    """A MitID with a unique user ID and (usually) a mobile registered months or years ago."""
    user_id = _unique(used.user_ids, lambda: _user_id(rng, person))
    if rng.random() < 0.03:
        return MitIdAccount(person.cpr, user_id, None, None)
    mobile = _unique(used.mobiles, lambda: _mobile(rng, greenlandic))
    oldest = min(3650, (now.date() - _years(person.birth_date, 15)).days)
    registered = now - dt.timedelta(days=rng.randint(30, oldest), seconds=rng.randrange(86400))
    return MitIdAccount(person.cpr, user_id, mobile, registered)


def _user_id(rng: random.Random, person: Person) -> str:
    """A lower-case user ID of 5-48 allowed characters, loosely based on the name."""
    first, *_, last = person.name.lower().split()
    yy, n = f"{person.birth_date:%y}", str(rng.randint(1, 999))
    raw = rng.choice(_USER_ID_FORMATS).format(f=first, l=last, i=first[0], l3=last[:3], yy=yy, n=n)
    clean = "".join(c for c in raw if c in USER_ID_ALPHABET).strip()[:44]
    return clean + str(rng.randint(10, 99)) if len(clean) < 5 or rng.random() < 0.3 else clean


def _mobile(rng: random.Random, greenlandic: bool) -> str:
    """A valid Danish (+45, 8 digits) or Greenlandic (+299, 6 digits) mobile number."""
    if greenlandic:
        return f"+299{rng.choice('245')}{rng.randrange(10**5):05d}"
    prefix = f"{rng.choice('2457')}{rng.randrange(10)}{rng.randint(1, 9)}"  # mobile ranges
    return f"+45{prefix}{rng.randrange(10**5):05d}"


def _iso(value: dt.date | None) -> str | None:
    """ISO text of a date or datetime, or None."""
    return None if value is None else value.isoformat()


def person_to_json(p: DemoPerson) -> dict[str, Any]:
    """The person as a JSON-serialisable dict (ISO dates), for listing the demo data."""
    person, account = p.person, p.account
    a = person.address
    return {
        "cpr": person.cpr,
        "name": person.name,
        "birth_date": _iso(person.birth_date),
        "sex": person.sex,
        "documents": [{"type": d.type.value, "number": d.number} for d in person.documents],
        "address": {
            "street": a.street,
            "house_number": a.house_number,
            "postcode": a.postcode,
            "city": a.city,
            "moved_in": _iso(a.moved_in),
        },
        "mother_birth_year": person.mother_birth_year,
        "father_birth_year": person.father_birth_year,
        "spouse_birth_date": _iso(person.spouse_birth_date),
        "children_birth_dates": [_iso(c) for c in person.children_birth_dates],
        "has_mitid": account is not None,
        "user_id": account.user_id if account else None,
        "mobile": account.mobile if account else None,
        "mobile_registered_at": _iso(account.mobile_registered_at) if account else None,
        "backend_fails": p.backend_fails,
        "case": p.case,
    }
