"""The outside systems the line talks to, in our own words.

Each port is a small Protocol; the embedded adapters in `ivr.adapters` are working
implementations with synthetic data, and the real adapters are chosen by configuration.
Expected outcomes ("no such person", "no MitID") are values; only failures raise, and only
`BackendError` (see `ivr.errors`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class DocumentType(StrEnum):
    PASSPORT = "passport"
    DRIVING_LICENCE = "driving_licence"


@dataclass(frozen=True)
class Document:
    type: DocumentType
    number: str


@dataclass(frozen=True)
class Address:
    street: str
    house_number: str
    postcode: str
    city: str
    moved_in: dt.date


@dataclass(frozen=True)
class Person:
    """One person as the CPR register knows them (synthetic in the embedded default)."""

    cpr: str
    name: str
    birth_date: dt.date
    sex: str
    address: Address
    documents: tuple[Document, ...]
    mother_birth_year: int | None = None
    father_birth_year: int | None = None
    spouse_birth_date: dt.date | None = None
    children_birth_dates: tuple[dt.date, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class MitIdAccount:
    """What the MitID back end holds for one person."""

    cpr: str
    user_id: str
    mobile: str | None
    mobile_registered_at: dt.datetime | None


@dataclass(frozen=True)
class IssuedPin:
    code: str
    expires_at: dt.datetime


class CprRegister(Protocol):
    def person_by_document(self, document: Document) -> Person | None:
        """The person holding this document, or None when no valid document matches."""
        ...


class MitIdBackend(Protocol):
    def account(self, cpr: str) -> MitIdAccount | None:
        """The person's MitID, or None when they have none."""
        ...

    def issue_temporary_pin(self, cpr: str, request_key: str) -> IssuedPin | None:
        """Issue a new 8-digit temporary PIN; None when `request_key` was already used."""
        ...


@dataclass(frozen=True)
class OutgoingSms:
    """One SMS on its way: `key` makes it unique (one PIN SMS per call). Its text is made by
    `compose` only when it is sent (it may issue a PIN); None: it cannot be made any more."""

    key: str
    to: str
    compose: Callable[[], str | None]

    def __repr__(self) -> str:
        return f"OutgoingSms(key={self.key!r})"


class SmsSender(Protocol):
    def send(self, to: str, body: str) -> str:
        """Send one SMS and return the provider's message id.

        Raises `DeliveryUnknown` when the provider may have taken it (no answer in time), and
        `BackendError` when it surely did not."""
        ...
