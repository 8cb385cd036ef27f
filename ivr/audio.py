"""Prompts played as audio: recordings in prompts/audio/<code>/, one file per prompt or piece.

A language with `audio: true` (Greenlandic: no telephony text-to-speech speaks it) is played
from there entirely; any other language plays a recording where one exists for a whole prompt,
and is said by Twilio's text-to-speech otherwise. A prompt without slots is one file,
`<key>.wav`; a prompt with slots is assembled from pieces: its fixed parts `<key>.<n>.wav` (n
the part's place in the text) and the slots' values, spelled (`char_<c>.wav`), as numbers
(`num_<n>.wav`, 0-59; larger numbers are spelled digit by digit) or weekdays (`day_<mon>.wav`);
a spelled value's letters by their spelling words on request (`spell_<c>.wav`), its groups
apart by `pause.wav` (a short silence).
`ivr prompts render` makes the missing pieces with espeak-ng; `ivr flows check` reports files
that are missing, extra, or silent.
"""

from __future__ import annotations

import array
import functools
import hashlib
import re
import string
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivr.prompts import Catalog, Language, OpeningTimes, Slot, Spelled
from ivr.twilio_rules import audio_seconds

EXTENSIONS = (".wav", ".mp3")
MIME = {".wav": "audio/wav", ".mp3": "audio/mpeg"}
MAX_NUMBER = 59
SILENT_PEAK = 0.01
"""A recording whose loudest sample is under 1% of full scale is taken for silence."""
MANIFEST = "manifest.json"
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}$")


@dataclass(frozen=True)
class Piece:
    """One file to play: its name without extension, and the words it holds."""

    name: str
    text: str


PAUSE = Piece("pause", "")
"""A short silence (between the groups of a spelled value): the one recording meant to be silent."""


def _char_name(ch: str) -> str:
    return ch if ch.isascii() and ch.isalnum() else f"u{ord(ch):04x}"


def char_piece(lang: Language, ch: str, words: bool = False) -> Piece:
    """A character said by its name (`char_s`), or by its spelling word (`spell_s`)."""
    if words and ch in lang.spelling:
        return Piece(f"spell_{_char_name(ch)}", lang.spelling[ch])
    return Piece(f"char_{_char_name(ch)}", lang.characters[ch])


def number_pieces(lang: Language, value: str) -> list[Piece]:
    if value.isdigit() and int(value) <= MAX_NUMBER:
        return [Piece(f"num_{int(value)}", _number_text(lang, int(value)))]
    return [char_piece(lang, ch) for ch in value.lower()]


def _number_text(lang: Language, n: int) -> str:
    return lang.characters[str(n)] if n < 10 else str(n)


def fixed_parts(key: str, text: str) -> list[tuple[Piece | None, str | None]]:
    """The prompt split at its slots: (fixed piece or None, the slot after it or None)."""
    parsed = list(string.Formatter().parse(text))
    if all(slot is None for _, slot, _, _ in parsed):
        return [(Piece(key, text), None)]
    parts: list[tuple[Piece | None, str | None]] = []
    for n, (literal, slot, _, _) in enumerate(parsed):
        spoken = literal.strip(" ,.;:!?-")
        parts.append((Piece(f"{key}.{n}", literal.strip()) if spoken else None, slot))
    return parts


def pieces(lang: Language, key: str, slots: Mapping[str, Slot | list[Piece]]) -> list[Piece]:
    """The files that say one prompt with these slot values, in order."""
    played: list[Piece] = []
    for piece, slot in fixed_parts(key, lang.prompts[key]):
        if piece is not None:
            played.append(piece)
        if slot is not None:
            played += _slot(lang, slots[slot])
    return played


def _slot(lang: Language, value: Slot | list[Piece]) -> list[Piece]:
    if isinstance(value, list):
        return value
    if isinstance(value, Spelled):
        said = [char_piece(lang, ch, value.words) for ch in value.value.lower()]
        size = value.group or len(said) or 1
        groups = [said[at : at + size] for at in range(0, len(said), size)]
        return [piece for n, group in enumerate(groups) for piece in ([PAUSE] if n else []) + group]
    if isinstance(value, OpeningTimes):
        played: list[Piece] = []
        for span in value.spans:
            days = {"first_day": _day(lang, span.first_day), "last_day": _day(lang, span.last_day)}
            times = {"opens": _time(lang, span.opens), "closes": _time(lang, span.closes)}
            if span.first_day == span.last_day:
                played += pieces(lang, "hours_day", {"day": days["first_day"], **times})
            else:
                played += pieces(lang, "hours_days", {**days, **times})
        return played
    return number_pieces(lang, value)


def _day(lang: Language, day: str) -> list[Piece]:
    return [Piece(f"day_{day}", lang.weekdays[day])]


def _time(lang: Language, clock: str) -> list[Piece]:
    hours, _, minutes = clock.partition(":")
    said = number_pieces(lang, str(int(hours)))
    return said + (number_pieces(lang, str(int(minutes))) if minutes and int(minutes) else [])


def every_piece(lang: Language) -> dict[str, str]:
    """Every piece a language may play, name -> words: what `ivr prompts render` makes."""
    found: dict[str, str] = {}
    for key, text in lang.prompts.items():
        found.update((p.name, p.text) for p, _ in fixed_parts(key, text) if p is not None)
    found.update((p.name, p.text) for p in (char_piece(lang, ch) for ch in lang.characters))
    found.update((p.name, p.text) for p in (char_piece(lang, ch, words=True) for ch in lang.spelling))
    found[PAUSE.name] = PAUSE.text
    found.update((f"num_{n}", _number_text(lang, n)) for n in range(MAX_NUMBER + 1))
    found.update((f"day_{day}", name) for day, name in lang.weekdays.items())
    return found


@dataclass(frozen=True)
class Recording:
    path: Path
    version: str
    """The first hex digits of the file's SHA-256: in the URL, so a changed file gets a new one."""
    peak: float | None
    """The loudest sample as a fraction of full scale (None: not a WAV this can read)."""
    playable: bool
    """WAV or MP3 audio, as Twilio plays it."""


@dataclass(frozen=True)
class Library:
    """The recordings found in the audio folder at start-up: language -> piece name -> file."""

    directory: Path
    files: Mapping[str, Mapping[str, Recording]] = field(default_factory=dict)

    @classmethod
    def scan(cls, directory: Path) -> Library:
        files: dict[str, dict[str, Recording]] = {}
        if directory.is_dir():
            for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
                found = files.setdefault(folder.name, {})
                for path in sorted(folder.iterdir()):
                    if path.suffix in EXTENSIONS and path.is_file() and _FILE.match(path.name):
                        stat = path.stat()
                        found[path.stem] = _recording(path, stat.st_mtime_ns, stat.st_size)
        return cls(directory, files)

    def has(self, code: str, name: str) -> bool:
        return name in self.files.get(code, {})

    def url(self, base: str, code: str, name: str) -> str:
        recording = self.files[code][name]
        return f"{base}/media/{code}/{recording.path.name}?v={recording.version}"

    def recording(self, code: str, file_name: str) -> Recording | None:
        """The recording for /media/<code>/<file_name>, if it is one found at start-up (never any other)."""
        recording = self.files.get(code, {}).get(Path(file_name).stem)
        return recording if recording is not None and recording.path.name == file_name else None


@functools.lru_cache(maxsize=4096)
def _recording(path: Path, mtime_ns: int, size: int) -> Recording:
    data = path.read_bytes()
    return Recording(
        path,
        hashlib.sha256(data).hexdigest()[:12],
        peak(path) if path.suffix == ".wav" else None,
        audio_seconds(data) is not None,
    )


def _ulaw(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84 << ((byte >> 4) & 7)) - 0x84
    return -magnitude if byte & 0x80 else magnitude


ULAW_PEAK = [abs(_ulaw(b)) / 32768 for b in range(256)]


def peak(path: Path) -> float | None:
    """The loudest sample of a WAV (16-bit or 8-bit PCM, or mu-law) as a fraction of full scale;
    None if it is not one of those."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    chunks: dict[bytes, bytes] = {}
    at = 12
    while at + 8 <= len(data):
        size = int.from_bytes(data[at + 4 : at + 8], "little")
        chunks.setdefault(data[at : at + 4], data[at + 8 : at + 8 + size])
        at += 8 + size + (size & 1)
    fmt, frames = chunks.get(b"fmt "), chunks.get(b"data")
    if fmt is None or frames is None or len(fmt) < 16:
        return None
    kind, width = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[14:16], "little")
    if kind == 7 and width == 8:
        return max((ULAW_PEAK[b] for b in set(frames)), default=0.0)
    if kind != 1 or width not in (8, 16):
        return None
    if width == 8:
        return max((abs(b - 128) for b in set(frames)), default=0) / 128
    samples = array.array("h")
    samples.frombytes(frames[: len(frames) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return max(max(samples, default=0), -min(samples, default=0)) / 32768


def problems(catalog: Catalog, library: Library) -> list[str]:
    """Recordings missing (for a language played as audio), extra (no such piece), or silent."""
    found: list[str] = []
    for code, recordings in library.files.items():
        folder = library.directory / code
        known = every_piece(catalog[code]) if code in catalog else {}
        for name, recording in recordings.items():
            if name not in known:
                found.append(f"{recording.path}: extra recording: {code} has no prompt or piece {name!r}")
            elif not recording.playable:
                found.append(f"{recording.path}: not WAV or MP3 audio Twilio can play")
            elif recording.peak is None and recording.path.suffix == ".wav":
                found.append(f"{recording.path}: not a PCM WAV file this line can check")
            elif recording.peak is not None and recording.peak < SILENT_PEAK and name != PAUSE.name:
                found.append(f"{recording.path}: silent recording (peak {recording.peak:.1%} of full scale)")
        if code not in catalog:
            found.append(f"{folder}: recordings for {code!r}, which has no prompt file")
        found += [
            f"{path}: not a recording the line plays (only {' or '.join(EXTENSIONS)}, named as the piece)"
            for path in sorted(folder.iterdir())
            if path.name != MANIFEST and path.is_file() and recordings.get(path.stem, None) is None
        ]
    for code, lang in catalog.items():
        if lang.audio:
            missing = sorted(set(every_piece(lang)) - set(library.files.get(code, {})))
            found += [f"{library.directory / code}: missing recording {name}.wav" for name in missing]
    return found


def warnings(catalog: Catalog, prompts_dir: Path) -> list[str]:
    return [
        f"{prompts_dir / code}.yaml: the {lang.name} texts have not been reviewed by a native speaker "
        "(set `reviewed: true` once they are)"
        for code, lang in catalog.items()
        if not lang.reviewed
    ]


def urls_for(
    library: Library, base: str, lang: Language, key: str, slots: Mapping[str, Slot]
) -> Iterator[str] | None:
    """The URLs that play one prompt, or None to say it (not an audio language, not recorded)."""
    if not lang.audio and not library.files.get(lang.code):
        return None
    played = pieces(lang, key, slots)
    if all(library.has(lang.code, p.name) for p in played):
        return (library.url(base, lang.code, p.name) for p in played)
    if lang.audio:
        missing = [p.name for p in played if not library.has(lang.code, p.name)]
        raise LookupError(f"no recording for {lang.code} {', '.join(missing)}")
    return None
