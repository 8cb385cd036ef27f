"""What the line says: one prompt file per language, the same keys in each, checked at start-up.

A prompt is text with named slots (`{document_number}`); a slot holding a `Spelled` value is
read character by character with the names in the language's `characters` table.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ivr.errors import DefinitionError
from ivr.hours import OpeningSpan

# libyaml's loader when PyYAML has it (ten times faster: definitions are read at every start)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PAUSE = "\x1f"
"""Where a short pause goes in a prompt's text (between the groups of a spelled value)."""
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
USER_ID_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzæøå0123456789{}!#$ ^,*()_+-=:;?.@")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONES = frozenset({"Europe/Copenhagen", "America/Nuuk"})
"""Where a registered mobile's owner reads the clock: Denmark or Greenland."""


@dataclass(frozen=True)
class Spelled:
    """A value read aloud one character at a time (a document number, a user ID): in groups of
    `group` characters with a short pause between them (0: no groups), and with a spelling word
    for each letter if `words` ("S som i Søren", "S as in Sierra")."""

    value: str
    group: int = 0
    words: bool = False


@dataclass(frozen=True)
class OpeningTimes:
    """Opening hours, said with the language's own day names."""

    spans: tuple[OpeningSpan, ...]


Slot = str | Spelled | OpeningTimes


class Language(BaseModel):
    """One language's prompts, voice and spoken names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    name: str
    say_language: str = ""
    voice: str = ""
    audio: bool = False
    """No text-to-speech speaks it: every prompt is played from prompts/audio/<code>/ (ivr/audio.py)."""
    reviewed: bool = True
    """False until a native speaker has checked the texts; `ivr flows check` warns while False."""
    prompts: dict[str, str]
    characters: dict[str, str]
    spelling: dict[str, str] = {}
    """A spelling word for each letter, said on request ("S som i Søren"); a character with
    none is said by its name."""
    weekdays: dict[str, str]
    sms: dict[str, str]
    date_format: str
    """strftime format of a moment in an SMS (day before month, as both languages write it)."""
    time_zones: dict[str, str]
    """The words for each time zone a moment may be given in (see ZONES)."""

    def text(self, key: str, slots: Mapping[str, Slot] | None = None) -> str:
        """The prompt's words with its slots filled in."""
        return "".join(self.stretches(key, slots))

    def stretches(self, key: str, slots: Mapping[str, Slot] | None = None) -> list[str]:
        """The prompt's words in the stretches said without a pause (a short pause between)."""
        filled = self.prompts[key].format_map({k: self.render(v) for k, v in (slots or {}).items()})
        return filled.split(PAUSE)

    def spell(self, ch: str, words: bool = False) -> str:
        """How one character is read: its name, or its spelling word."""
        return self.spelling.get(ch, self.characters[ch]) if words else self.characters[ch]

    def sms_text(self, key: str, **slots: str) -> str:
        return self.sms[key].format_map(slots)

    def moment(self, at: dt.datetime, zone: str) -> str:
        """A moment as the reader's clock shows it, naming the zone ("22.11.2026 kl. 20:33 (dansk tid)")."""
        return f"{at.astimezone(ZoneInfo(zone)).strftime(self.date_format)} ({self.time_zones[zone]})"

    def render(self, value: Slot) -> str:
        if isinstance(value, Spelled):
            said = [self.spell(ch, value.words) for ch in value.value.lower()]
            size = value.group or len(said) or 1
            groups = [", ".join(said[at : at + size]) for at in range(0, len(said), size)]
            return f",{PAUSE} ".join(groups)
        if isinstance(value, OpeningTimes):
            return ", ".join(self._span(span) for span in value.spans)
        return value

    def _span(self, span: OpeningSpan) -> str:
        days = {"first_day": self.weekdays[span.first_day], "last_day": self.weekdays[span.last_day]}
        key = "hours_day" if span.first_day == span.last_day else "hours_days"
        return self.prompts[key].format(day=days["first_day"], opens=span.opens, closes=span.closes, **days)


Catalog = Mapping[str, Language]


def slot_names(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def load_catalog(directory: Path) -> dict[str, Language]:
    """Every `*.yaml` in the prompts directory, keyed by language code."""
    catalog: dict[str, Language] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            language = Language.model_validate(
                yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
            )
        except (OSError, yaml.YAMLError, ValidationError) as error:
            raise DefinitionError(f"{path}: {error}") from error
        if language.code != path.stem:
            raise DefinitionError(f"{path}: code {language.code!r} does not match the file name")
        catalog[language.code] = language
    if not catalog:
        raise DefinitionError(f"{directory}: no prompt files")
    return catalog


def check_catalog(catalog: Catalog, needed: set[str], directory: Path) -> list[str]:
    """Every problem with the prompt files: missing keys, slots that differ, unspeakable chars."""
    problems: list[str] = []
    reference = next(iter(catalog.values()))
    every = {t: set().union(*(getattr(lang, t) for lang in catalog.values())) for t in ("prompts", "sms")}
    every["prompts"] |= needed
    for code, lang in catalog.items():
        where = directory / f"{code}.yaml"
        for table, ref, noun in (("prompts", reference.prompts, "prompt"), ("sms", reference.sms, "sms")):
            mine = getattr(lang, table)
            problems += [f"{where}: {noun} {k!r} is missing" for k in sorted(every[table] - mine.keys())]
            problems += [
                f"{where}: {noun} {k!r} has slots {sorted(slot_names(v))}, "
                f"{reference.code} has {sorted(slot_names(ref[k]))}"
                for k, v in mine.items()
                if k in ref and slot_names(v) != slot_names(ref[k])
            ]
        missing_chars = sorted(USER_ID_ALPHABET - lang.characters.keys())
        if missing_chars:
            problems.append(f"{where}: no spoken name for characters {''.join(missing_chars)!r}")
        if lang.spelling and not LETTERS <= lang.spelling.keys() <= USER_ID_ALPHABET:
            problems.append(f"{where}: spelling must give a word for every letter a-z, and only letters")
        if set(lang.weekdays) != set(WEEKDAYS):
            problems.append(f"{where}: weekdays must name exactly {', '.join(WEEKDAYS)}")
        if not lang.audio and not (lang.say_language and lang.voice):
            problems.append(f"{where}: say_language and voice are needed unless audio: true")
        if set(lang.time_zones) != ZONES:
            problems.append(f"{where}: time_zones must name exactly {', '.join(sorted(ZONES))}")
    return problems
