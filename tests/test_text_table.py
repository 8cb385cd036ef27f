"""The operator's tables line up as a terminal draws them."""

from __future__ import annotations

import datetime as dt

from ivr.text_table import format_table


def test_columns_start_where_their_headers_start_whatever_the_characters() -> None:
    lines = format_table(
        ["case", "user ID", "mobile"],
        [
            ["exotic_user_id", "søren.ærø å{1}!", "+4520123457"],
            ["wide", "日本語", None],
            ["combining", "se\u0301n", "+299551236"],  # é as e + a combining accent
        ],
    )
    assert lines == [
        "case            user ID          mobile",
        "exotic_user_id  søren.ærø å{1}!  +4520123457",
        "wide            日本語           -",
        "combining       se\u0301n              +299551236",
    ]


def test_cells_are_one_line_and_times_are_to_the_second() -> None:
    at = dt.datetime(2026, 11, 24, 10, 0, 5, 123456, tzinfo=dt.UTC)
    assert format_table(["at", "body"], [[at, "two\nlines"]]) == [
        "at                         body",
        "2026-11-24 10:00:05+00:00  two lines",
    ]
