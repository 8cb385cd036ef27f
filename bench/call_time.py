"""How long the README's journeys take on the phone, by `ivr call`'s own estimate.

    .venv/bin/python bench/call_time.py [--calls 20]

Places each journey against the line in-process: the Flask test client behind the same fake
Twilio as `ivr call` (`ivr.phone.place_call` through a `FlaskTransport`), keyed by the same
scripted caller (`ivr.demo_caller.ScriptedKeys`, `?` answering a question as the demo person
with passport 100000001 would). A first-time caller who knows nothing of the line: the Danish
caller from a Danish number (+45 20 ...), the English one from a British number (+44 20 ...), so
each hears their own language offered first, and the Greenlandic one from a Greenlandic number
(+299 ...), who hears Danish and English offered before Greenlandic. The knowledge questions are
drawn at random on every call, so each journey is placed `--calls` times and the table gives the
mean and the longest.

Two callers:

- listens to every prompt: `Call.duration`, the fake Twilio's estimate (speech at 150 words a
  minute, SSML breaks, played audio for as long as the file lasts, half a second a key, a Gather's
  timeout where the keys did not end it);
- barges in: keys as soon as they know what to key, cutting the prompts of a Gather short. They
  key a menu choice once the sentence naming their key has been said ("press 2", "tast 1",
  "2 tooruk"), and a number or an answer once the first sentence of the Gather's last prompt (the
  question itself, up to its first "." or "?") has been said. Speech outside a Gather (the SMS
  news, goodbye) cannot be cut short and is heard whole. Their time is the same estimate less
  what they cut: words said at 150 a minute; a played file's share of its words, of its length.

Also prints the longest prompt of any prompts/*.yaml (a slot counts as one word).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402

from ivr import create_app  # noqa: E402
from ivr.audio import every_piece  # noqa: E402
from ivr.demo_caller import ScriptedKeys  # noqa: E402
from ivr.phone import FlaskTransport, place_call  # noqa: E402
from ivr.settings import Settings  # noqa: E402
from ivr.twilio_rules import WORDS_PER_SECOND  # noqa: E402

TOKEN = "bench-token"
BASE = "http://127.0.0.1:8080"
OPEN_ALWAYS = {
    "weekly": {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "holiday_regions": [],
}
# The README's scripted calls (`ivr call --keys ...`), per journey and language.
JOURNEYS = {
    ("temporary PIN", "en"): "2 2 100000001# 1 ? ? ?",
    ("temporary PIN", "da"): "1 2 100000001# 1 ? ? ?",
    ("temporary PIN", "kl"): "3 2 100000001# 1 ? ? ?",
    ("user ID", "en"): "2 1 100000001# 1 ? ? ? 2",
    ("user ID", "da"): "1 1 100000001# 1 ? ? ? 2",
    ("user ID", "kl"): "3 1 100000001# 1 ? ? ? 2",
}
COUNTRY = {"da": "45", "en": "44", "kl": "299"}
MENU_KEY = r"\b(?:(?:press|tast)\s+{key}|{key}\s+tooruk)\b"  # how a prompt names the key for a choice
SENTENCE_END = re.compile(r"[.?!](?=\s|$)")
AUDIO = re.compile(r"^\[audio (\d+(?:\.\d+)?)s: (\S+)\]$")


@dataclass(frozen=True)
class Placed:
    seconds: float
    words: int
    barge_seconds: float
    barge_words: int


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Heard:
    """One thing said (its words, at 150 a minute) or played (its words, for the file's length)."""

    text: str
    seconds: float

    @property
    def timed_words(self) -> list[float]:
        """Each word's share of the time."""
        n = _words(self.text)
        return [self.seconds / n] * n if n else []


def _heard_before_keying(gather: list[Heard], keys: str) -> float:
    """How many seconds of the Gather a barge-in caller hears before keying `keys`."""
    timed = [t for heard in gather for t in heard.timed_words]
    said = " ".join(heard.text for heard in gather)
    if len(keys) == 1 and keys.isdigit():
        named = re.search(MENU_KEY.format(key=keys), said, re.IGNORECASE)
        if named:
            end = SENTENCE_END.search(said, named.end())
            return sum(timed[: _words(said[: end.end() if end else len(said)])])
        return sum(timed)
    before = sum(h.seconds for h in gather[:-1])
    last = gather[-1] if gather else Heard("", 0)
    end = SENTENCE_END.search(last.text)
    return before + sum(last.timed_words[: _words(last.text[: end.end() if end else len(last.text)])])


def _measure(transcript: list[str], seconds: int, pieces: Mapping[str, Mapping[str, str]]) -> Placed:
    """Words and seconds heard in full and by a barge-in caller, from the phone's transcript;
    `pieces` gives the words of each played file (language -> piece -> words)."""
    words = barge_words = 0
    cut = 0.0
    gather: list[Heard] = []
    for line in transcript:
        played = AUDIO.match(line)
        if played:
            code, name = urlsplit(played.group(2)).path.split("/")[-2:]
            heard = Heard(pieces[code][name.rsplit(".", 1)[0]], float(played.group(1)))
        elif line.startswith("> "):
            keys = line[2:].strip()
            if keys != "(silence)":
                kept = _heard_before_keying(gather, keys)
                total = sum(h.seconds for h in gather)
                cut += total - kept
                share = kept / total if total else 1
                barge_words -= round(sum(_words(h.text) for h in gather) * (1 - share))
            gather = []
            continue
        elif line.startswith("["):
            continue
        else:
            heard = Heard(line, _words(line) / WORDS_PER_SECOND)
        words += _words(heard.text)
        barge_words += _words(heard.text)
        gather.append(heard)
    return Placed(seconds, words, seconds - cut, barge_words)


def place(app: Flask, script: str, caller: str) -> Placed:
    keys = ScriptedKeys(script.split(), app)
    out = keys.listening(io.StringIO())
    call = place_call(FlaskTransport(lambda: app), BASE, TOKEN, keys, out, caller=caller)
    catalog = app.extensions["ivr"].services.catalog
    return _measure(
        call.transcript, call.duration, {code: every_piece(lang) for code, lang in catalog.items()}
    )


def longest_prompt() -> tuple[int, str]:
    """The most words any prompt of any language has, a slot counting as one word."""
    import yaml

    found = []
    for path in sorted((ROOT / "prompts").glob("*.yaml")):
        prompts = yaml.safe_load(path.read_text(encoding="utf-8"))["prompts"]
        for key, text in prompts.items():
            found.append((_words(re.sub(r"\{\w+\}", "SLOT", text)), f"{path.stem}:{key}"))
    return max(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls per journey (questions vary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            public_base_url=BASE,
            twilio_auth_token=TOKEN,
            opening_hours=json.loads(json.dumps(OPEN_ALWAYS)),
            caller_verifications_per_hour=10_000,
            _env_file=None,
        )
        app = create_app(settings)
        rows = []
        n = 0
        for (journey, language), script in JOURNEYS.items():
            placed = []
            for _ in range(args.calls):
                n += 1
                placed.append(place(app, script, caller=f"+{COUNTRY[language]}20{n:06d}"))
            rows.append((journey, language, script, placed))

    header = ("journey", "lang", "listens: s mean (max)", "words", "barges in: s mean (max)", "words")
    table = [header]
    for journey, language, _script, placed in rows:
        secs = [p.seconds for p in placed]
        barge = [p.barge_seconds for p in placed]
        table.append(
            (
                journey,
                language,
                f"{statistics.mean(secs):.0f} ({max(secs):.0f})",
                f"{statistics.mean(p.words for p in placed):.0f}",
                f"{statistics.mean(barge):.0f} ({max(barge):.0f})",
                f"{statistics.mean(p.barge_words for p in placed):.0f}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(
        f"Call time by `ivr call`'s estimate, {args.calls} calls per journey"
        " (da from +45, en from +44, kl from +299):"
    )
    for i, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for (journey, language), script in JOURNEYS.items():
        print(f"  {journey} ({language}): ivr call --keys {script!r}")
    count, where = longest_prompt()
    print(f"Longest prompt: {count} words ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
