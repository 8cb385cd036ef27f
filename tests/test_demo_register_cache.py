"""The demo register a running line reads, when `ivr demo build` replaces it (README: "the line
reads whatever register was built last"; on PostgreSQL every line server shares it)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr import migrations
from ivr.adapters import demo_directory
from ivr.adapters.demo_directory import DemoDirectory

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/t.db")
    migrations.upgrade(engine, migrations.DEMO)
    demo_directory.build(engine, 2026, 40, NOW)
    yield engine
    engine.dispose()


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
