"""A scripted caller for `ivr call --keys`: plays keys in order and, for `?`, answers a knowledge
question as the demo person would, so a whole journey can run without anyone at the keypad.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import TextIO

from flask import Flask

from ivr.adapters.demo_people import DemoPerson
from ivr.questions import QUESTIONS, expected

SILENCE = "_"
ANSWER = "?"


class _Tee(io.TextIOBase):
    """Writes through to the terminal and keeps the last lines heard."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.recent = ""

    def write(self, text: str) -> int:
        self.recent = (self.recent + text)[-2000:]
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


class ScriptedKeys:
    def __init__(self, tokens: Sequence[str], app: Flask) -> None:
        self.tokens = list(tokens)
        self.people: list[DemoPerson] = app.extensions["ivr.people"]
        self.catalog = app.extensions["ivr"].services.catalog
        self.tee: _Tee | None = None

    def listening(self, out: TextIO) -> TextIO:
        """The stream to give the phone, so the script can hear the questions."""
        self.tee = _Tee(out)
        return self.tee  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        keyed: list[str] = []
        for token in self.tokens:
            keys = "" if token == SILENCE else self._answer(keyed) if token == ANSWER else token
            keyed.append(keys)
            if self.tee is not None:
                self.tee.recent = ""
            yield keys

    def _answer(self, keyed: list[str]) -> str:
        heard = self.tee.recent if self.tee else ""
        person = self._person(keyed)
        for kind, question in QUESTIONS.items():
            if any(lang.prompts[f"question_{kind}"] in heard for lang in self.catalog.values()):
                answer = expected(kind, person.person) if person else None
                return (answer or "1111") + ("" if question.digits else "#")
        return ""

    def _person(self, keyed: list[str]) -> DemoPerson | None:
        numbers = {k.rstrip("#") for k in keyed}
        for demo in self.people:
            if any(doc.number in numbers for doc in demo.person.documents):
                return demo
        return None
