"""`ivr prompts render`: the audio of a language played as audio, made once with espeak-ng.

Each piece (see ivr/audio.py) becomes prompts/audio/<code>/<piece>.wav, 8 kHz mono mu-law
(telephone audio, which Twilio plays), silence trimmed. A manifest records the hash of the words
of every file it made, so a run makes only what is missing or whose words changed, and never
overwrites an operator's recording (a file it did not make). Needs `espeak-ng` (with the
language's voice) and `sox`; the line itself does not: the rendered audio is committed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ivr.audio import MANIFEST, PAUSE, every_piece
from ivr.errors import DefinitionError
from ivr.prompts import Catalog

VOICE_SPEED = 220  # espeak-ng's words a minute (default 175): Greenlandic words are long


def fingerprint(voice: str, text: str) -> str:
    return hashlib.sha256(f"{voice}|{VOICE_SPEED}|u-law|{text}".encode()).hexdigest()[:16]


def run(catalog: Catalog, directory: Path, languages: list[str] | None, *, force: bool = False) -> int:
    codes = languages or [code for code, lang in catalog.items() if lang.audio]
    unknown = sorted(set(codes) - set(catalog))
    if unknown:
        raise DefinitionError(f"no prompt file for {', '.join(unknown)}")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(
                f"{tool} is needed to render audio (Debian: apt-get install espeak-ng sox)", file=sys.stderr
            )
            return 2
    for code in codes:
        voices = subprocess.run(["espeak-ng", f"--voices={code}"], capture_output=True, text=True, check=True)
        if len(voices.stdout.strip().splitlines()) < 2:
            print(f"espeak-ng has no voice for {code}", file=sys.stderr)
            return 2
        made, kept = render_language(code, every_piece(catalog[code]), directory / code, force)
        print(f"{code}: rendered {made}, up to date or recorded {kept}")
    return 0


def _how(code: str, name: str, text: str) -> tuple[str, float, str]:
    """The voice and the pause after it a piece is rendered with, and the stamp of both and its words."""
    voice = NUMBER_VOICE.get(code, code) if NUMBER.match(name) else code
    pad = CHARACTER_GAP if CHARACTER.match(name) else 0
    said = f"{text} (then {pad} s)" if pad else text
    return voice, pad, fingerprint(voice, said if name != PAUSE.name else f"pause {PAUSE_SECONDS}")


def stale(catalog: Catalog, directory: Path) -> list[str]:
    """Rendered pieces whose words changed since they were rendered: callers would hear the old ones."""
    found = []
    for code, lang in catalog.items():
        manifest_path = directory / code / MANIFEST
        if not manifest_path.exists():
            continue
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
        for name, text in sorted(every_piece(lang).items()):
            if name in manifest and manifest[name] != _how(code, name, text)[2]:
                found.append(
                    f"{directory / code / name}.wav: rendered from other words than {code}.yaml's now "
                    "(run `ivr prompts render`)"
                )
    return found


def render_language(code: str, wanted: dict[str, str], folder: Path, force: bool) -> tuple[int, int]:
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    manifest: dict[str, str] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    made = kept = 0
    for name, text in sorted(wanted.items()):
        target = folder / f"{name}.wav"
        recorded = (
            any((folder / f"{name}{ext}").exists() for ext in (".wav", ".mp3")) and name not in manifest
        )
        voice, pad, stamp = _how(code, name, text)
        if recorded or (not force and target.exists() and manifest.get(name) == stamp):
            kept += 1
            continue
        if name == PAUSE.name:
            subprocess.run([*SOX_SILENCE, str(target), "trim", "0", str(PAUSE_SECONDS)], check=True)
        else:
            _synthesise(voice, text, target, pad=pad)
        manifest[name] = stamp
        manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
        made += 1
    for name in sorted(set(manifest) - set(wanted)):  # pieces whose prompt is gone
        (folder / f"{name}.wav").unlink(missing_ok=True)
        del manifest[name]
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    return made, kept


NUMBER = re.compile(r"^(char_[0-9]|num_[0-9]+|spell_.*)$")
NUMBER_VOICE = {"kl": "da"}
"""Greenlandic speakers mostly say numbers in Danish, and spell with the Danish spelling alphabet:
a Greenlandic number, spelled digit or spelling word is rendered with the Danish voice (the
words in prompts/kl.yaml are Danish too)."""
CHARACTER = re.compile(r"^(char|spell)_")
CHARACTER_GAP = 0.04
"""Seconds of silence after each spelled character, so that played one after another they stay apart."""
PAUSE_SECONDS = 0.2
"""pause.wav: between the groups of a spelled value (as the line's SSML break for said languages)."""
SOX_SILENCE = ["sox", "-n", "-r", "8000", "-c", "1", "-b", "8", "-e", "u-law"]

FALLBACK_VOICE = {"kl": "da"}
"""espeak-ng 1.51's Greenlandic voice crashes on some numbers (28, 38, 48, 58): those are said in
Danish, as Greenlandic speakers mostly say numbers above twelve anyway."""


def _synthesise(voice: str, text: str, target: Path, pad: float = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        command = ["espeak-ng", "--stdin", "-s", str(VOICE_SPEED), "-w", str(raw)]
        if subprocess.run([*command, "-v", voice], input=text.encode(), capture_output=True).returncode != 0:
            fallback = FALLBACK_VOICE.get(voice, voice)
            print(f"espeak-ng failed on {text!r} with voice {voice}: using {fallback}", file=sys.stderr)
            subprocess.run([*command, "-v", fallback], input=text.encode(), capture_output=True, check=True)
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "8", "-e", "u-law", str(target)]
            + ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"]
            + (["pad", "0", str(pad)] if pad else []),
            check=True,
        )
