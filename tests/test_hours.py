"""Opening hours: open or closed at a moment, what a caller is told, when we open next."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import holidays
import pytest
from pydantic import ValidationError

from ivr.hours import OpeningHours, OpeningSpan, describe, is_open, next_opening

CPH = ZoneInfo("Europe/Copenhagen")
UTC = dt.UTC
DEFAULT = OpeningHours()


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=CPH)


# --- open or closed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (local(2026, 3, 10, 8, 59), False),  # Tuesday, a minute early
        (local(2026, 3, 10, 9, 0), True),  # opens on the minute
        (local(2026, 3, 10, 16, 59), True),
        (local(2026, 3, 10, 17, 0), False),  # closed at closing time exactly
        (local(2026, 3, 13, 15, 59), True),  # Friday closes at 16
        (local(2026, 3, 13, 16, 0), False),
        (local(2026, 3, 14, 9, 59), False),  # Saturday 10-14
        (local(2026, 3, 14, 10, 0), True),
        (local(2026, 3, 14, 14, 0), False),
        (local(2026, 3, 15, 12, 0), False),  # Sunday: no hours
    ],
)
def test_open_on_ordinary_days(moment: dt.datetime, expected: bool) -> None:
    assert is_open(DEFAULT, moment) is expected


def test_now_in_another_zone_is_converted() -> None:
    # 08:00 UTC on a winter Tuesday is 09:00 in Copenhagen; 16:00 UTC is 17:00.
    assert is_open(DEFAULT, dt.datetime(2026, 1, 13, 8, 0, tzinfo=UTC))
    assert not is_open(DEFAULT, dt.datetime(2026, 1, 13, 16, 0, tzinfo=UTC))
    nuuk = ZoneInfo("America/Nuuk")  # a caller's clock in Greenland: 06:00 there is 10:00 here
    assert is_open(DEFAULT, dt.datetime(2026, 1, 13, 6, 0, tzinfo=nuuk))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(DEFAULT, dt.datetime(2026, 1, 13, 10, 0))


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2026, 12, 25),  # Christmas Day (Friday)
        dt.date(2026, 12, 26),  # Second Day of Christmas (Saturday, would be open 10-14)
        dt.date(2026, 4, 6),  # Easter Monday
        dt.date(2026, 4, 2),  # Maundy Thursday
        dt.date(2026, 5, 14),  # Ascension Day
        dt.date(2027, 1, 1),  # New Year's Day (Friday)
    ],
)
def test_closed_on_danish_public_holidays(day: dt.date) -> None:
    assert day in holidays.country_holidays("DK", years=day.year)
    assert not is_open(DEFAULT, dt.datetime.combine(day, dt.time(12, 0), tzinfo=CPH))
    assert is_open(OpeningHours(holiday_regions=[]), dt.datetime.combine(day, dt.time(12, 0), CPH))


def test_great_prayer_day_closes_the_line_through_greenland_only() -> None:
    # Denmark abolished Store Bededag from 2024; Greenland kept it (Friday 1 May 2026).
    day = dt.date(2026, 5, 1)
    assert day not in holidays.country_holidays("DK", years=2026)
    assert day in holidays.country_holidays("GL", years=2026)
    noon = local(2026, 5, 1, 12)
    assert not is_open(DEFAULT, noon)
    assert is_open(OpeningHours(holiday_regions=["DK"]), noon)


def test_greenland_national_day_is_only_optional_in_holidays_package() -> None:
    # 21 June (Ullortuneq) is in the package's OPTIONAL category for GL, not PUBLIC, so the line
    # stays open unless an operator closes it. 21 June 2027 is a Monday.
    day = dt.date(2027, 6, 21)
    assert day not in holidays.country_holidays("GL", years=2027)
    optional = holidays.country_holidays("GL", years=2027, categories=(holidays.OPTIONAL,))
    assert day in optional
    assert is_open(DEFAULT, local(2027, 6, 21, 12))
    assert not is_open(OpeningHours(closed_dates=[day]), local(2027, 6, 21, 12))


def test_christmas_eve_and_new_years_eve_are_not_special_cased() -> None:
    # Thursday 24 Dec 2026 and Thursday 31 Dec 2026: ordinary days unless configured.
    assert is_open(DEFAULT, local(2026, 12, 24, 12))
    assert is_open(DEFAULT, local(2026, 12, 31, 12))
    closing = OpeningHours(closed_dates=[dt.date(2026, 12, 24), dt.date(2026, 12, 31)])
    assert not is_open(closing, local(2026, 12, 24, 12))
    assert not is_open(closing, local(2026, 12, 31, 12))


# --- daylight saving ------------------------------------------------------------------------


def test_opening_follows_local_clock_across_spring_forward() -> None:
    # Clocks go forward on Sunday 29 March 2026: 09:00 is 08:00 UTC before, 07:00 UTC after.
    assert is_open(DEFAULT, dt.datetime(2026, 3, 27, 8, 0, tzinfo=UTC))  # Friday, CET
    assert not is_open(DEFAULT, dt.datetime(2026, 3, 27, 7, 30, tzinfo=UTC))
    assert is_open(DEFAULT, dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC))  # Monday, CEST
    assert not is_open(DEFAULT, dt.datetime(2026, 3, 30, 6, 59, tzinfo=UTC))


def test_opening_follows_local_clock_across_fall_back() -> None:
    # Clocks go back on Sunday 25 October 2026; Saturday opens at 10:00 local both weeks.
    assert is_open(DEFAULT, dt.datetime(2026, 10, 24, 8, 0, tzinfo=UTC))  # 10:00 CEST
    assert not is_open(DEFAULT, dt.datetime(2026, 10, 31, 8, 0, tzinfo=UTC))  # 09:00 CET
    assert is_open(DEFAULT, dt.datetime(2026, 10, 31, 9, 0, tzinfo=UTC))  # 10:00 CET


def test_hours_on_the_day_the_clocks_change() -> None:
    night = OpeningHours(weekly={"sun": "01:00-05:00"}, holiday_regions=[])
    # 29 March 2026: 02:00-03:00 local does not exist; 00:30 UTC is 01:30 CET, 01:30 UTC 03:30 CEST.
    assert is_open(night, dt.datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert is_open(night, dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    assert not is_open(night, dt.datetime(2026, 3, 29, 3, 0, tzinfo=UTC))  # 05:00 CEST


# --- what a caller is told ------------------------------------------------------------------


def test_describe_groups_consecutive_days_with_equal_hours() -> None:
    assert describe(DEFAULT) == [
        OpeningSpan("mon", "thu", "09:00", "17:00"),
        OpeningSpan("fri", "fri", "09:00", "16:00"),
        OpeningSpan("sat", "sat", "10:00", "14:00"),
    ]


def test_describe_does_not_group_across_a_closed_day() -> None:
    hours = OpeningHours(
        weekly={
            "mon": "09:00-15:00",
            "tue": "09:00-15:00",
            "thu": "09:00-15:00",
            "sun": "10:00-12:00",
        }
    )
    assert describe(hours) == [
        OpeningSpan("mon", "tue", "09:00", "15:00"),
        OpeningSpan("thu", "thu", "09:00", "15:00"),
        OpeningSpan("sun", "sun", "10:00", "12:00"),
    ]
    assert describe(OpeningHours.model_construct(weekly={})) == []


# --- next opening ---------------------------------------------------------------------------


def test_next_opening_later_the_same_day() -> None:
    assert next_opening(DEFAULT, local(2026, 3, 10, 7, 15)) == local(2026, 3, 10, 9)


def test_next_opening_at_opening_time_is_now() -> None:
    assert next_opening(DEFAULT, local(2026, 3, 10, 9)) == local(2026, 3, 10, 9)


def test_next_opening_while_open_is_tomorrow() -> None:
    assert next_opening(DEFAULT, local(2026, 3, 10, 12)) == local(2026, 3, 11, 9)


def test_next_opening_across_a_weekend_and_spring_forward() -> None:
    opening = next_opening(DEFAULT, local(2026, 3, 28, 15))  # Saturday after closing
    assert opening == local(2026, 3, 30, 9)
    assert opening is not None
    assert opening.astimezone(UTC) == dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert opening.tzinfo == CPH


def test_next_opening_skips_easter() -> None:
    # Wednesday 1 April 2026 after closing: Thu, Fri (Good Friday), Sun, Mon are holidays,
    # Saturday 4 April is an ordinary Saturday.
    assert next_opening(DEFAULT, local(2026, 4, 1, 18)) == local(2026, 4, 4, 10)
    no_saturday = OpeningHours(weekly={k: "09:00-17:00" for k in ("mon", "tue", "wed", "thu")})
    assert next_opening(no_saturday, local(2026, 4, 1, 18)) == local(2026, 4, 7, 9)


def test_next_opening_skips_christmas_and_closed_dates() -> None:
    # Thursday 24 Dec 2026 after closing: 25 (Fri) and 26 (Sat) are holidays, 27 is Sunday.
    assert next_opening(DEFAULT, local(2026, 12, 24, 17)) == local(2026, 12, 28, 9)
    closed = OpeningHours(closed_dates=[dt.date(2026, 12, 28)])
    assert next_opening(closed, local(2026, 12, 24, 17)) == local(2026, 12, 29, 9)


def test_next_opening_accepts_now_in_utc() -> None:
    # Friday 16:30 UTC in March is 17:30 CET: the line next opens Saturday 10:00.
    assert next_opening(DEFAULT, dt.datetime(2026, 3, 13, 16, 30, tzinfo=UTC)) == local(2026, 3, 14, 10)


def test_next_opening_gives_up_after_fourteen_days() -> None:
    now = local(2026, 3, 10, 12)
    three_weeks = [dt.date(2026, 3, 11) + dt.timedelta(days=n) for n in range(21)]
    assert next_opening(OpeningHours(closed_dates=three_weeks), now) is None
    assert next_opening(OpeningHours.model_construct(weekly={}), now) is None
    two_weeks = [dt.date(2026, 3, 11) + dt.timedelta(days=n) for n in range(13)]
    assert next_opening(OpeningHours(closed_dates=two_weeks), now) == local(2026, 3, 24, 9)


# --- configuration --------------------------------------------------------------------------


def test_defaults() -> None:
    assert DEFAULT.timezone == "Europe/Copenhagen"
    assert DEFAULT.holiday_regions == ["DK", "GL"]
    assert DEFAULT.closed_dates == []
    assert "sun" not in DEFAULT.weekly


def test_parses_from_plain_data() -> None:
    hours = OpeningHours.model_validate(
        {
            "weekly": {"mon": "08:00-20:00"},
            "closed_dates": ["2026-12-24"],
            "holiday_regions": ["DK"],
        }
    )
    assert hours.closed_dates == [dt.date(2026, 12, 24)]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"weekly": {"monday": "09:00-17:00"}}, "unknown day 'monday'"),
        ({"weekly": {"mon": "9-17"}}, "not in the form HH:MM-HH:MM"),
        ({"weekly": {"mon": "09:00-24:01"}}, "not in the form HH:MM-HH:MM"),
        ({"weekly": {"mon": "09:60-17:00"}}, "not in the form HH:MM-HH:MM"),
        ({"weekly": {"mon": "17:00-09:00"}}, "closing time 09:00 must be after opening time 17:00"),
        ({"weekly": {"tue": "09:00-09:00"}}, "tue: closing time 09:00 must be after"),
        ({"timezone": "Europe/Kopenhagen"}, "unknown timezone 'Europe/Kopenhagen'"),
        ({"timezone": "../etc/passwd"}, "unknown timezone"),
        ({"holiday_regions": ["DK", "XX"]}, "unknown holiday region 'XX'"),
        ({"holiday_regions": ["dk"]}, "unknown holiday region 'dk'"),
        ({"opening": "always"}, "Extra inputs are not permitted"),
    ],
)
def test_rejects_bad_configuration(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpeningHours.model_validate(config)


def test_is_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULT.timezone = "UTC"  # type: ignore[misc]


def test_a_line_open_until_24_00_answers_in_the_last_minute_of_the_day_and_says_so():
    """ "00:00-24:00" is around the clock: the last minute before midnight is not closed."""
    from zoneinfo import ZoneInfo

    from ivr.hours import OpeningHours, describe, is_open

    every_day = OpeningHours(
        weekly=dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "00:00-24:00")
    )
    copenhagen = ZoneInfo("Europe/Copenhagen")
    for moment in ((23, 59, 59), (0, 0, 0), (12, 0, 0)):
        at = dt.datetime(2026, 11, 24, *moment, tzinfo=copenhagen)
        assert is_open(every_day.model_copy(update={"holiday_regions": []}), at), moment
    assert [(s.opens, s.closes) for s in describe(every_day)] == [("00:00", "24:00")]
    with pytest.raises(ValueError, match="24:00 closes at midnight"):
        OpeningHours(weekly={"mon": "00:00-24:30"})
