"""The demo register's people, kept in the demo database: built once from the seed, then read.

`build` generates the people (`demo_people.iter_people`: the fixed awkward cases, then random
ones, deterministic for a seed and a day) into the tables `demo_register`, `demo_people` and
`demo_documents` (`demo_tables.py`, made by the demo migrations), in one transaction that
replaces any register built before. `ensure_built` builds it when there is none, at the first
start; `ivr demo build --people N` builds another size. The line then looks people up by
document and by CPR number through the indexes, so its start-up and memory do not grow with the
register: a million people cost what a thousand do.

A mobile's registration is kept as an age, not a date: counted back from today's midnight (UTC),
as when the people were generated at every start, so the 48-hour case stays two days old.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import logging
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, overload

import sqlalchemy as sa

from ivr.adapters import demo_tables
from ivr.adapters.demo_people import DemoPerson
from ivr.ports import Address, Document, DocumentType, MitIdAccount, Person
from ivr.store import short_read, sql

log = logging.getLogger(__name__)
_BATCH = 5000
_KEPT = 4096
"""People a running line keeps once looked up (the callers of the last minute or so)."""
_KEEP_FOR = 60.0
"""Seconds a person looked up is kept (a register built meanwhile is read after at most this)."""
_SMALL = 10_000
"""Registers up to this size are generated once per process and kept (tests build many data
directories); larger ones are streamed into the database and never held."""
_PEOPLE, _DOCS, _REGISTER = demo_tables.people, demo_tables.documents, demo_tables.register


@dataclass(frozen=True)
class Built:
    """What the register in a database holds."""

    seed: int
    people: int
    as_of: dt.date
    built_at: dt.datetime


def built(engine: sa.Engine) -> Built | None:
    """The register this database holds, or None when none was built."""
    with engine.connect().execution_options(read_only=True) as connection:
        row = connection.execute(sa.select(_REGISTER).where(_REGISTER.c.id == 1)).first()
    return None if row is None else Built(row.seed, row.people, row.as_of, row.built_at)


def ensure_built(engine: sa.Engine, seed: int, count: int, now: dt.datetime) -> Built:
    """The register in this database; built first (seed, count, as of `now`) if there is none.
    Two processes starting at once build it once: the second waits, then finds it."""
    found = built(engine)
    if found is not None:
        return found
    level = logging.INFO if count > _SMALL else logging.DEBUG  # a big one takes a while: say why
    log.log(level, "building the demo register once: %s people, seed %s", f"{count:,}", seed)
    return build(engine, seed, count, now, replace=False)


def build(engine: sa.Engine, seed: int, count: int, now: dt.datetime, *, replace: bool = True) -> Built:
    """Generate `count` people from `seed` as of `now`'s day into the database, in one
    transaction, replacing any register there (unless `replace` is false and one is there)."""
    as_of = now.astimezone(dt.UTC).date()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # SQLite: the write transaction serialises
            key = zlib.crc32(b"ivr demo register")
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        found = connection.execute(sa.select(_REGISTER).where(_REGISTER.c.id == 1)).first()
        if found is not None and not replace:
            return Built(found.seed, found.people, found.as_of, found.built_at)
        for table in (_DOCS, _PEOPLE, _REGISTER):
            connection.execute(sa.delete(table))
        people, documents = [], []
        for position, demo in enumerate(_people(seed, count, as_of)):
            people.append(_row(position, demo, now))
            for d in demo.person.documents:
                documents.append({"number": d.number, "type": d.type.value, "position": position})
            if len(people) >= _BATCH:
                _insert(connection, people, documents)
        _insert(connection, people, documents)
        info = Built(seed, count, as_of, now)
        row = {"id": 1, "seed": seed, "people": count, "as_of": as_of, "built_at": now}
        connection.execute(sa.insert(_REGISTER).values(row))
    return info


def _people(seed: int, count: int, as_of: dt.date) -> Iterable[DemoPerson]:
    if count <= _SMALL:
        return _generated(seed, count, as_of)
    from ivr.adapters.demo_people import iter_people

    return iter_people(seed, count, now=_midnight(as_of))


@functools.lru_cache(maxsize=4)
def _generated(seed: int, count: int, as_of: dt.date) -> tuple[DemoPerson, ...]:
    from ivr.adapters.demo_people import iter_people

    return tuple(iter_people(seed, count, now=_midnight(as_of)))


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _insert(connection: sa.Connection, people: list[dict[str, Any]], documents: list[dict[str, Any]]) -> None:
    """Insert a batch and empty the lists."""
    if people:
        connection.execute(sa.insert(_PEOPLE), people)
    if documents:
        connection.execute(sa.insert(_DOCS), documents)
    people.clear()
    documents.clear()


def _row(position: int, demo: DemoPerson, now: dt.datetime) -> dict[str, Any]:
    person, account, address = demo.person, demo.account, demo.person.address
    registered = account.mobile_registered_at if account else None
    as_of = _midnight(now.astimezone(dt.UTC).date())
    return {
        "position": position,
        "cpr": person.cpr,
        "case": demo.case,
        "name": person.name,
        "birth_date": person.birth_date,
        "sex": person.sex,
        "street": address.street,
        "house_number": address.house_number,
        "postcode": address.postcode,
        "city": address.city,
        "moved_in": address.moved_in,
        "mother_birth_year": person.mother_birth_year,
        "father_birth_year": person.father_birth_year,
        "spouse_birth_date": person.spouse_birth_date,
        "children_birth_dates": " ".join(day.isoformat() for day in person.children_birth_dates),
        "user_id": account.user_id if account else None,
        "mobile": account.mobile if account else None,
        "mobile_age_seconds": None if registered is None else round((as_of - registered).total_seconds()),
        "backend_fails": demo.backend_fails,
    }


_PERSON = (
    "SELECT "
    + ", ".join(f'p."{column.name}"' for column in _PEOPLE.c)
    + ", d.type, d.number FROM demo_people p LEFT JOIN demo_documents d ON d.position = p.position"
)
_BY = {
    "cpr": _PERSON + " WHERE p.cpr = ? ORDER BY d.type DESC",
    "document": _PERSON
    + " WHERE p.position = (SELECT position FROM demo_documents WHERE type = ? AND number = ?)"
    + " ORDER BY d.type DESC",
}
"""A person and their documents (passport before driving licence, as `_where` orders them)."""
_DATES = frozenset(c.name for c in _PEOPLE.c if isinstance(c.type, sa.Date))


def _row_read(values: Sequence[Any]) -> SimpleNamespace:
    """A `demo_people` row read by `sql`, with the values Core would give (SQLite keeps dates as
    text and booleans as integers)."""
    row = dict(zip((column.name for column in _PEOPLE.c), values, strict=True))
    for name in _DATES:
        if isinstance(row[name], str):
            row[name] = dt.date.fromisoformat(row[name])
    row["backend_fails"] = bool(row["backend_fails"])
    return SimpleNamespace(**row)


class DemoDirectory(Sequence[DemoPerson]):
    """The people of the register in a database, in their order, read on demand (never all
    held): by position, by document, by CPR number or by case. A mobile's registration date is
    its age before the clock's day (midnight UTC)."""

    def __init__(self, engine: sa.Engine, clock: Any) -> None:
        self._engine = engine
        self._clock = clock
        info = built(engine)
        self._count = info.people if info else 0
        # A call asks for its caller's entry at each of its questions, and the MitID back end
        # for the same person by CPR number, as a line asks a real register: a person looked up
        # is kept (by the document asked for and by CPR number) for up to _KEEP_FOR, so the
        # call pays the database about once, and a register `ivr demo build` replaces under a
        # running line is read within that time.
        self._kept: collections.OrderedDict[tuple[str, ...], tuple[tuple[dt.date, int], DemoPerson | None]]
        self._kept = collections.OrderedDict()
        self._keeping = threading.Lock()

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> DemoPerson: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[DemoPerson]: ...
    def __getitem__(self, index: int | slice) -> DemoPerson | Sequence[DemoPerson]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        position = index + self._count if index < 0 else index
        found = self._where(_PEOPLE.c.position == position) if 0 <= position < self._count else []
        if not found:
            raise IndexError(index)
        return found[0]

    def __iter__(self) -> Iterator[DemoPerson]:
        for start in range(0, self._count, _BATCH):
            yield from self._where(_PEOPLE.c.position >= start, _PEOPLE.c.position < start + _BATCH)

    def by_document(self, document: Document) -> DemoPerson | None:
        """The person holding this document, or None."""
        return self._found(("document", document.type.value, document.number))

    def by_cpr(self, cpr: str) -> DemoPerson | None:
        """The person with this CPR number, or None."""
        return self._found(("cpr", cpr))

    def _found(self, key: tuple[str, ...]) -> DemoPerson | None:
        """The person for `key` (see `_BY`): kept while fresh, else read and kept."""
        fresh = self._freshness()
        with self._keeping:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == fresh:
                self._kept.move_to_end(key)
                return kept[1]
        person = self._look_up(key)
        with self._keeping:
            also = [("cpr", person.person.cpr)] if person is not None else []
            for each in dict.fromkeys([key, *also]):  # a look-up by CPR number is kept once
                self._kept[each] = (fresh, person)
                self._kept.move_to_end(each)
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return person

    def _freshness(self) -> tuple[dt.date, int]:
        """What a kept person is valid for: the clock's day (a mobile's age counts from it), and
        the current span of _KEEP_FOR seconds."""
        return self._clock().astimezone(dt.UTC).date(), int(time.monotonic() // _KEEP_FOR)

    def _look_up(self, key: tuple[str, ...]) -> DemoPerson | None:
        """One statement (the person joined to their documents) on the driver: a line's webhook
        asks for this, so it skips SQLAlchemy's statement layer, which cost ten times the query."""
        kind, *params = key
        with short_read(self._engine) as connection:
            rows = sql(connection, _BY[kind], params).fetchall()
        if not rows:
            return None
        documents = tuple(Document(DocumentType(row[-2]), row[-1]) for row in rows if row[-1] is not None)
        return _person(_row_read(rows[0][:-2]), documents, self._clock())

    def by_document_number(self, number: str) -> DemoPerson | None:
        """The person holding a document of this number, of either type, or None."""
        held = sa.select(_DOCS.c.position).where(_DOCS.c.number == number).limit(1)
        found = self._where(_PEOPLE.c.position == held.scalar_subquery())
        return found[0] if found else None

    def cases(self) -> dict[str, DemoPerson]:
        """The fixed awkward people by their case label."""
        return {p.case: p for p in self._where(_PEOPLE.c.case.isnot(None)) if p.case}

    def _where(self, *where: Any) -> list[DemoPerson]:
        """The people matching, in order, with their documents."""
        now = self._clock()
        with self._engine.connect().execution_options(read_only=True) as connection:
            rows = connection.execute(sa.select(_PEOPLE).where(*where).order_by(_PEOPLE.c.position)).all()
            if not rows:
                return []
            positions = [row.position for row in rows]
            held: dict[int, list[Document]] = {}
            docs = sa.select(_DOCS).where(_DOCS.c.position.in_(positions))
            for doc in connection.execute(docs.order_by(_DOCS.c.position, _DOCS.c.type.desc())):
                held.setdefault(doc.position, []).append(Document(DocumentType(doc.type), doc.number))
        return [_person(row, tuple(held.get(row.position, ())), now) for row in rows]


def _person(row: Any, documents: tuple[Document, ...], now: dt.datetime) -> DemoPerson:
    address = Address(row.street, row.house_number, row.postcode, row.city, row.moved_in)
    children = tuple(dt.date.fromisoformat(day) for day in row.children_birth_dates.split())
    person = Person(
        row.cpr,
        row.name,
        row.birth_date,
        row.sex,
        address,
        documents,
        row.mother_birth_year,
        row.father_birth_year,
        row.spouse_birth_date,
        children,
    )
    account = None
    if row.user_id is not None:
        age = row.mobile_age_seconds
        registered = (
            None if age is None else _midnight(now.astimezone(dt.UTC).date()) - dt.timedelta(seconds=age)
        )
        account = MitIdAccount(row.cpr, row.user_id, row.mobile, registered)
    return DemoPerson(person, account, backend_fails=row.backend_fails, case=row.case)
