"""The agent's note on a call: no CPR number or document number goes into it unnoticed."""

from __future__ import annotations

import re

MAX_NOTE = 1000
# Ten digits (a CPR number, maybe "ddmmyy-xxxx"), or eight or nine (a licence, a passport),
# with spaces or dashes between digit groups allowed.
SENSITIVE = re.compile(r"(?<!\d)(?:\d[ -]?){7,9}\d(?!\d)")


def masked(note: str) -> str:
    """The note with every number that looks like a CPR or document number masked."""
    return SENSITIVE.sub(lambda m: "•" * len(m.group(0)), note)


def has_sensitive_number(note: str) -> bool:
    return SENSITIVE.search(note) is not None
