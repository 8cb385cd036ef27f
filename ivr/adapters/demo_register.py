"""The embedded CPR register: the demo people in the demo database, looked up by document."""

from __future__ import annotations

from ivr.adapters.demo_directory import DemoDirectory
from ivr.ports import Document, Person


class DemoRegister:
    """A `CprRegister` over the demo register built into the demo database (indexed by document)."""

    def __init__(self, people: DemoDirectory) -> None:
        self._people = people

    def person_by_document(self, document: Document) -> Person | None:
        """The person holding this document, or None when no document matches."""
        demo = self._people.by_document(document)
        return demo.person if demo else None
