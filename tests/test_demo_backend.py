"""Tests of the embedded CPR register and MitID back end (the register and temporary PINs on SQLite)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr import migrations
from ivr.adapters import demo_directory
from ivr.adapters.demo_backend import DemoMitIdBackend
from ivr.adapters.demo_directory import DemoDirectory
from ivr.adapters.demo_people import generate_people
from ivr.adapters.demo_register import DemoRegister
from ivr.errors import BackendError
from ivr.ports import Document, DocumentType, IssuedPin
from tests.postgres import demo_database

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
VALIDITY = dt.timedelta(minutes=15)
MIDNIGHT = NOW.replace(hour=0)
PEOPLE = generate_people(count=40, now=MIDNIGHT)  # the register is generated as of its day's start
CASES = {p.case: p for p in PEOPLE if p.case}
CPR = CASES["ordinary"].person.cpr
KEY = b"demo-backend-test-key"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with demo_database(request, tmp_path, len(PEOPLE), NOW) as engine:
        yield engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory(engine: sa.Engine, clock: Clock) -> DemoDirectory:
    return DemoDirectory(engine, clock)


@pytest.fixture
def backend(engine: sa.Engine, clock: Clock, directory: DemoDirectory) -> DemoMitIdBackend:
    return DemoMitIdBackend(directory, engine, clock, VALIDITY, KEY)


def rows(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT * FROM demo_temporary_pins ORDER BY id")))


def issue(backend: DemoMitIdBackend, key: str, cpr: str = CPR) -> IssuedPin:
    pin = backend.issue_temporary_pin(cpr, key)
    assert pin is not None
    return pin


def test_register_finds_people_by_either_document(directory: DemoDirectory) -> None:
    register = DemoRegister(directory)
    both = CASES["passport_and_licence"].person
    assert register.person_by_document(Document(DocumentType.PASSPORT, "100000002")) == both
    assert register.person_by_document(Document(DocumentType.DRIVING_LICENCE, "20000002")) == both
    licence_only = register.person_by_document(Document(DocumentType.DRIVING_LICENCE, "20000008"))
    assert licence_only == CASES["licence_only"].person
    for demo in PEOPLE:
        for document in demo.person.documents:
            assert register.person_by_document(document) == demo.person


@pytest.mark.parametrize(
    "document",
    [
        Document(DocumentType.PASSPORT, "999999999"),
        Document(DocumentType.DRIVING_LICENCE, "100000001"),
        Document(DocumentType.PASSPORT, "20000002"),
        Document(DocumentType.PASSPORT, ""),
    ],
)
def test_register_unknown_document_is_none(document: Document, directory: DemoDirectory) -> None:
    assert DemoRegister(directory).person_by_document(document) is None


def test_the_built_register_holds_exactly_the_generated_people(directory: DemoDirectory) -> None:
    assert len(directory) == len(PEOPLE)
    assert list(directory) == PEOPLE
    assert directory[0] == PEOPLE[0] and directory[-1] == PEOPLE[-1]
    assert directory[3:5] == PEOPLE[3:5]
    with pytest.raises(IndexError):
        directory[len(PEOPLE)]
    assert directory.cases() == CASES
    assert directory.by_cpr(CPR) == CASES["ordinary"]
    assert directory.by_document_number("20000002") == CASES["passport_and_licence"]
    assert directory.by_document_number("999999999") is None


def test_the_48_hour_mobile_stays_48_hours_old(directory: DemoDirectory, clock: Clock) -> None:
    clock.now = NOW + dt.timedelta(days=30)
    account = directory.cases()["mobile_changed_48h"].account
    midnight = dt.datetime.combine(clock.now.date(), dt.time(), tzinfo=dt.UTC)
    assert account is not None and account.mobile_registered_at == midnight - dt.timedelta(hours=48)


def test_a_register_is_built_once_and_replaced_only_on_demand(engine: sa.Engine, clock: Clock) -> None:
    later = NOW + dt.timedelta(days=3)
    kept = demo_directory.ensure_built(engine, 7, 25, later)  # one is there: it is kept
    assert (kept.seed, kept.people, kept.as_of) == (2026, len(PEOPLE), NOW.date())
    assert len(DemoDirectory(engine, clock)) == len(PEOPLE)
    other = demo_directory.build(engine, 7, 25, later)
    assert (other.seed, other.people, other.as_of) == (7, 25, later.date())
    clock.now = later
    assert list(DemoDirectory(engine, clock)) == generate_people(seed=7, count=25, now=later.replace(hour=0))


def test_account_lookup(backend: DemoMitIdBackend) -> None:
    assert backend.account(CPR) == CASES["ordinary"].account
    assert backend.account(CASES["no_mitid"].person.cpr) is None
    assert backend.account("0101010000") is None
    with pytest.raises(BackendError):
        backend.account(CASES["backend_fails"].person.cpr)


def test_table_is_created_with_its_columns(backend: DemoMitIdBackend, engine: sa.Engine) -> None:
    columns = {c["name"] for c in sa.inspect(engine).get_columns("demo_temporary_pins")}
    assert columns == {
        "id",
        "cpr_hash",
        "request_key",
        "code_hash",
        "salt",
        "issued_at",
        "expires_at",
        "superseded",
    }


def test_pin_is_eight_digits_and_verifies(backend: DemoMitIdBackend) -> None:
    pin = issue(backend, "call-1")
    assert re.fullmatch(r"\d{8}", pin.code)
    assert pin.expires_at == NOW + VALIDITY
    assert backend.verify_temporary_pin(CPR, pin.code)
    assert not backend.verify_temporary_pin(CPR, f"{(int(pin.code) + 1) % 10**8:08d}")
    assert not backend.verify_temporary_pin(CASES["passport_and_licence"].person.cpr, pin.code)


def test_codes_are_not_repeatable(tmp_path: Path, clock: Clock) -> None:
    codes = set()
    for name in ("a", "b", "c"):
        engine = sa.create_engine(f"sqlite:///{tmp_path}/{name}.db")
        migrations.upgrade(engine, migrations.DEMO)
        demo_directory.build(engine, 2026, len(PEOPLE), NOW)
        backend = DemoMitIdBackend(DemoDirectory(engine, clock), engine, clock, VALIDITY, KEY)
        codes.add(issue(backend, "call-1").code)
        engine.dispose()
    assert len(codes) == 3


def test_only_hashes_are_stored(backend: DemoMitIdBackend, engine: sa.Engine) -> None:
    pin = issue(backend, "call-1")
    (row,) = rows(engine)
    # Keyed: a plain SHA-256 of a CPR number is reversed by trying the few million there are.
    assert row.cpr_hash == hmac.new(KEY, CPR.encode(), hashlib.sha256).hexdigest()
    assert row.cpr_hash != hashlib.sha256(CPR.encode()).hexdigest()
    for value in row:
        texts = [str(value)] + ([value.hex(), value.decode("latin-1")] if isinstance(value, bytes) else [])
        for text in texts:
            assert pin.code not in text
            assert CPR not in text
    assert len(row.salt) >= 16


def test_salts_differ_per_row(backend: DemoMitIdBackend, engine: sa.Engine) -> None:
    issue(backend, "a")
    issue(backend, "b")
    first, second = rows(engine)
    assert first.salt != second.salt


def test_pin_expires(backend: DemoMitIdBackend, clock: Clock) -> None:
    pin = issue(backend, "call-1")
    clock.now = NOW + VALIDITY - dt.timedelta(seconds=1)
    assert backend.verify_temporary_pin(CPR, pin.code)
    clock.now = NOW + VALIDITY
    assert not backend.verify_temporary_pin(CPR, pin.code)


def test_new_pin_supersedes_earlier(backend: DemoMitIdBackend, engine: sa.Engine, clock: Clock) -> None:
    other_cpr = CASES["passport_and_licence"].person.cpr
    other = issue(backend, "other", other_cpr)
    first = issue(backend, "call-1")
    clock.now = NOW + dt.timedelta(minutes=1)
    second = issue(backend, "call-2")
    assert not backend.verify_temporary_pin(CPR, first.code)
    assert backend.verify_temporary_pin(CPR, second.code)
    assert backend.verify_temporary_pin(other_cpr, other.code)
    assert [bool(r.superseded) for r in rows(engine)] == [False, True, False]


def test_same_request_key_issues_nothing(backend: DemoMitIdBackend, engine: sa.Engine) -> None:
    first = issue(backend, "CA123:pin")
    assert backend.issue_temporary_pin(CPR, "CA123:pin") is None
    assert len(rows(engine)) == 1
    assert backend.verify_temporary_pin(CPR, first.code)


def test_concurrent_same_request_key_issues_once(engine: sa.Engine, clock: Clock) -> None:
    people = DemoDirectory(engine, clock)
    backends = [DemoMitIdBackend(people, engine, clock, VALIDITY, KEY) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[IssuedPin | None] = []

    def call(b: DemoMitIdBackend) -> None:
        barrier.wait()
        results.append(b.issue_temporary_pin(CPR, "same-key"))

    threads = [threading.Thread(target=call, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r is None for r in results) == [False, True]
    assert len(rows(engine)) == 1


def test_pins_survive_a_new_backend_on_the_same_database(
    backend: DemoMitIdBackend, engine: sa.Engine, clock: Clock
) -> None:
    pin = issue(backend, "call-1")
    again = DemoMitIdBackend(DemoDirectory(engine, clock), engine, clock, VALIDITY, KEY)
    assert again.verify_temporary_pin(CPR, pin.code)
    assert again.issue_temporary_pin(CPR, "call-1") is None


def test_clock_in_another_time_zone(engine: sa.Engine, clock: Clock) -> None:
    clock.now = NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))
    backend = DemoMitIdBackend(DemoDirectory(engine, clock), engine, clock, VALIDITY, KEY)
    pin = issue(backend, "call-1")
    assert pin.expires_at == NOW + VALIDITY
    clock.now = NOW + VALIDITY - dt.timedelta(seconds=1)
    assert backend.verify_temporary_pin(CPR, pin.code)


@pytest.mark.parametrize("case", ["no_mitid", "backend_fails"])
def test_issue_raises_without_a_working_account(
    case: str, backend: DemoMitIdBackend, engine: sa.Engine
) -> None:
    with pytest.raises(BackendError):
        backend.issue_temporary_pin(CASES[case].person.cpr, "call-1")
    assert rows(engine) == []


def test_issue_raises_for_unknown_cpr(backend: DemoMitIdBackend, engine: sa.Engine) -> None:
    with pytest.raises(BackendError):
        backend.issue_temporary_pin("0101010000", "call-1")
    assert rows(engine) == []


def test_verify_without_any_pin_is_false(backend: DemoMitIdBackend) -> None:
    assert not backend.verify_temporary_pin(CPR, "12345678")


def test_non_positive_validity_is_refused(engine: sa.Engine, clock: Clock) -> None:
    with pytest.raises(ValueError):
        DemoMitIdBackend(DemoDirectory(engine, clock), engine, clock, dt.timedelta(0), KEY)
