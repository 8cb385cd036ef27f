"""Plain-text tables for the operator's commands: a header row and columns aligned as seen.

Cells are measured by how wide a terminal draws them, not by `len`: wide (East Asian) characters
take two columns, combining marks none, so names and user IDs with unusual characters line up.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Sequence

GAP = "  "


def cell(value: object) -> str:
    """A value as one table cell: one line, times to the second, nothing as "-"."""
    if value is None or value == "":
        return "-"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    text = str(value)
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)


def width(text: str) -> int:
    """Columns a terminal uses to draw `text`."""
    return sum(_char_width(c) for c in text)


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The header and each row as one line, every column as wide as its widest cell."""
    body = [[cell(value) for value in row] for row in rows]
    widths = [max(width(text) for text in column) for column in zip(headers, *body, strict=True)]
    return [
        GAP.join(text + " " * (w - width(text)) for text, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *body]
    ]
