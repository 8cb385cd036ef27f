"""Opening hours as configuration: when the line answers, and how to say so.

Pure: no IO and no clock of its own; callers pass `now` (tz-aware). Hours are wall-clock times in
the configured zone, so they stay right across daylight-saving changes. The line is closed on a
public holiday of any listed region (the `holidays` package's public category) and on any
`closed_dates`. Note that the package lists 24 and 31 December, and Greenland's national day
(21 June), only as optional holidays: operators who close then add them to `closed_dates`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator

DAY_KEYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WEEKLY: dict[str, str] = {
    "mon": "09:00-17:00",
    "tue": "09:00-17:00",
    "wed": "09:00-17:00",
    "thu": "09:00-17:00",
    "fri": "09:00-16:00",
    "sat": "10:00-14:00",
}
LOOKAHEAD = dt.timedelta(days=14)

_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")
END_OF_DAY = dt.time.max
"""A closing time of 24:00: open to the end of the day (a line answering around the clock)."""


@dataclass(frozen=True)
class OpeningSpan:
    """Consecutive weekdays (`first_day`..`last_day`, keys like "mon") with the same hours."""

    first_day: str
    last_day: str
    opens: str
    closes: str


class OpeningHours(BaseModel):
    """When the line is open, in local wall-clock time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "Europe/Copenhagen"
    weekly: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_WEEKLY))
    holiday_regions: list[str] = Field(default_factory=lambda: ["DK", "GL"])
    closed_dates: list[dt.date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'Europe/Copenhagen'"
            ) from None
        return value

    @field_validator("weekly")
    @classmethod
    def _valid_weekly(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:  # callers would hear "we are open , except on public holidays"
            raise ValueError('names no day: give at least one, e.g. {"mon": "09:00-17:00"}')
        for day, text in value.items():
            if day not in DAY_KEYS:
                raise ValueError(f"unknown day {day!r}; use one of {', '.join(DAY_KEYS)}")
            opens, closes = _parse_span(day, text)
            if closes <= opens:
                raise ValueError(f"{day}: closing time {text[6:]} must be after opening time {text[:5]}")
        return value

    @field_validator("holiday_regions")
    @classmethod
    def _known_regions(cls, value: list[str]) -> list[str]:
        supported = holidays.list_supported_countries()
        for code in value:
            if code not in supported:
                raise ValueError(
                    f"unknown holiday region {code!r}; use a country code the holidays "
                    "package supports, such as 'DK' (Denmark) or 'GL' (Greenland)"
                )
        return value


def is_open(hours: OpeningHours, now: dt.datetime) -> bool:
    """Whether the line answers at the moment `now` (tz-aware)."""
    local = _localise(hours, now)
    span = _span_on(hours, local.date())
    if span is None:
        return False
    opens, closes = span
    return opens <= local.time() < closes


def next_opening(hours: OpeningHours, now: dt.datetime) -> dt.datetime | None:
    """The next moment at or after `now` when the line opens, within 14 days; else None.

    The result is in the configured zone. While the line is open this is the next day's opening.
    """
    local = _localise(hours, now)
    zone = ZoneInfo(hours.timezone)
    for offset in range(LOOKAHEAD.days + 1):
        day = local.date() + dt.timedelta(days=offset)
        span = _span_on(hours, day)
        if span is None:
            continue
        # Through UTC and back, so an opening inside a DST gap lands on a real instant.
        opening = dt.datetime.combine(day, span[0], tzinfo=zone).astimezone(dt.UTC)
        opening = opening.astimezone(zone)
        if opening >= now:
            return opening if opening - now <= LOOKAHEAD else None
    return None


def day_start(hours: OpeningHours, now: dt.datetime) -> dt.datetime:
    """Midnight at the start of `now`'s day where the line is (its opening hours' time zone)."""
    local = _localise(hours, now)
    return dt.datetime.combine(local.date(), dt.time(), tzinfo=local.tzinfo)


def describe(hours: OpeningHours) -> list[OpeningSpan]:
    """The weekly hours, consecutive days with equal hours grouped (Monday first)."""
    spans: list[OpeningSpan] = []
    previous: str | None = None
    for day in DAY_KEYS:
        text = hours.weekly.get(day)
        if text is not None and text == previous:
            spans[-1] = OpeningSpan(spans[-1].first_day, day, spans[-1].opens, spans[-1].closes)
        elif text is not None:
            spans.append(OpeningSpan(day, day, text[:5], text[6:]))
        previous = text
    return spans


def is_holiday(hours: OpeningHours, day: dt.date) -> bool:
    """Whether `day` is a closure: a listed region's public holiday or a configured date."""
    if day in hours.closed_dates:
        return True
    return any(day in _public_holidays(code, day.year) for code in hours.holiday_regions)


def _span_on(hours: OpeningHours, day: dt.date) -> tuple[dt.time, dt.time] | None:
    text = hours.weekly.get(DAY_KEYS[day.weekday()])
    if text is None or is_holiday(hours, day):
        return None
    return _parse_span(DAY_KEYS[day.weekday()], text)


def _localise(hours: OpeningHours, now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(hours.timezone))


def _parse_span(day: str, text: str) -> tuple[dt.time, dt.time]:
    match = _SPAN.match(text)
    if match is None:
        form = "HH:MM-HH:MM (24-hour clock; 24:00 closes at midnight)"
        raise ValueError(f"{day}: {text!r} is not in the form {form}")
    oh, om, ch, cm, midnight, _ = match.groups()
    closes = END_OF_DAY if midnight else dt.time(int(ch), int(cm))
    return dt.time(int(oh), int(om)), closes


@functools.lru_cache(maxsize=64)
def _public_holidays(code: str, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(code, years=year))
