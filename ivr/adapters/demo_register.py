"""The embedded CPR register: synthetic people from `demo_people`, looked up by document."""

from __future__ import annotations

from collections.abc import Sequence

from ivr.adapters.demo_people import DemoPerson
from ivr.ports import Document, Person


class DemoRegister:
    """A `CprRegister` over a fixed list of synthetic people, indexed by document."""

    def __init__(self, people: Sequence[DemoPerson]) -> None:
        """Index every document of every person; a document held twice is a data error."""
        self._by_document: dict[tuple[str, str], Person] = {}
        for demo in people:
            for document in demo.person.documents:
                key = (str(document.type), document.number)
                if key in self._by_document:
                    raise ValueError("the same document is held by two people")
                self._by_document[key] = demo.person

    def person_by_document(self, document: Document) -> Person | None:
        """The person holding this document, or None when no document matches."""
        return self._by_document.get((str(document.type), document.number))
