"""The demo register a running line reads, when `ivr demo build` replaces it (README: "the line
reads whatever register was built last"; on PostgreSQL every line server shares it)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr.adapters import demo_directory
from ivr.adapters.demo_directory import DemoDirectory
from ivr.ports import Document, DocumentType
from tests.postgres import demo_database

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with demo_database(request, tmp_path, 40, NOW) as engine:
        yield engine


def test_a_person_looked_up_is_the_person_the_register_holds(engine: sa.Engine) -> None:
    """By each of their documents and by CPR number, everyone is found with every fact as
    stored (dates, their documents in order, the MitID account), and a number nobody holds
    finds no one."""
    directory = DemoDirectory(engine, lambda: NOW)
    everyone = list(directory)
    assert len(everyone) == 40 and sum(len(p.person.documents) for p in everyone) > 40
    for stored in everyone:
        assert DemoDirectory(engine, lambda: NOW).by_cpr(stored.person.cpr) == stored
        for document in stored.person.documents:
            assert DemoDirectory(engine, lambda: NOW).by_document(document) == stored
    unknown = Document(DocumentType.PASSPORT, "999999999")
    assert directory.by_document(unknown) is None and directory.by_cpr("0101011234") is None


def test_a_person_found_by_document_is_kept_by_cpr_number_too(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MitID back end asks by CPR number for the person the line just found by document:
    the register is not read again (here: a rebuilt register is not seen until the keeping time
    is over)."""
    monkeypatch.setattr(demo_directory, "_KEEP_FOR", 0.5)
    directory = DemoDirectory(engine, lambda: NOW)
    before = directory[20]
    while time.monotonic() % 0.5 > 0.2:  # a whole keeping span ahead
        time.sleep(0.01)
    assert directory.by_document(before.person.documents[0]) == before
    demo_directory.build(engine, 7, 40, NOW)
    assert directory.by_cpr(before.person.cpr) == before  # kept, not read
    time.sleep(0.5)
    assert directory.by_cpr(before.person.cpr) is None or directory.by_cpr(before.person.cpr) != before


def test_a_running_line_reads_the_register_built_last(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person looked up before `ivr demo build` replaced the register is not served from the
    old one once the keeping time is over (a minute; here a moment): by document and by CPR
    number, the line sees what the rebuilt register holds, as it does by position and by
    document number."""
    monkeypatch.setattr(demo_directory, "_KEEP_FOR", 0.2)
    directory = DemoDirectory(engine, lambda: NOW)
    before = directory[20]  # a random person, not one of the fixed cases
    document = before.person.documents[0]
    assert directory.by_document(document) == before
    assert directory.by_cpr(before.person.cpr) == before

    demo_directory.build(engine, 7, 40, NOW)  # another seed: other people
    fresh = DemoDirectory(engine, lambda: NOW)  # as a line started now reads it
    time.sleep(0.25)
    assert fresh.by_document(document) != before
    assert directory.by_document(document) == fresh.by_document(document)
    assert directory.by_cpr(before.person.cpr) == fresh.by_cpr(before.person.cpr)
