"""A tiny line for the fake caller's tests: scripted TwiML per path, signatures checked like Twilio's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, request
from twilio.request_validator import RequestValidator

from ivr.phone import FlaskTransport
from ivr.twilio_caller import TwilioCall

PUBLIC = "https://ivr.example.dk"
TOKEN = "test-auth-token"
SAY = '<Say language="da-DK" voice="Polly.Naja">{}</Say>'


@dataclass
class Received:
    path: str
    form: dict[str, str]
    signature_ok: bool
    method: str = "POST"


@dataclass
class FakeLine:
    """A tiny line: serves scripted TwiML per path+query and records what it received."""

    script: dict[str, str]
    token: str = TOKEN
    received: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    media: dict[str, bytes] = field(default_factory=dict)
    """Audio a <Play> fetches (GET, unsigned), by path; not recorded in `received`."""

    def app(self) -> Flask:
        app = Flask("fake_line")
        validator = RequestValidator(self.token)

        @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
        @app.route("/<path:path>", methods=["GET", "POST"])
        def hook(path: str) -> tuple[str | bytes, int]:
            if request.method == "GET" and request.path in self.media:
                return self.media[request.path], 200
            query = request.query_string.decode()
            where = request.path + (f"?{query}" if query else "")
            signature = request.headers.get("X-Twilio-Signature", "")
            ok = validator.validate(PUBLIC + where, request.form, signature)
            if request.method == "GET":  # Twilio's parameters are in the query: not the page's name
                where, form = request.path, dict(request.args)
            else:
                form = dict(request.form)
            self.received.append(Received(where, form, ok, request.method))
            if not ok:
                return "forged", 403
            if where == "/voice/status":
                return "", 204
            if where not in self.script:
                return "no such page", 404
            return self.script[where], self.status.get(where, 200)

        return app

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def form(self, path: str) -> dict[str, str]:
        return next(r.form for r in self.received if r.path == path)


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A mu-law WAV of `seconds` (as Twilio would fetch it for a <Play>)."""
    frames = bytes([0x7F]) * int(seconds * rate)
    fmt = (7).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
    fmt += rate.to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    chunks = (
        b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + len(frames).to_bytes(4, "little") + frames
    )
    return b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks


def mp3(seconds: float) -> bytes:
    """MPEG-1 layer III frames at 128 kbit/s lasting `seconds` (the header is what counts)."""
    return bytes([0xFF, 0xFB, 0x90, 0x00]) + bytes(int(seconds * 16000) - 4)


def twiml(*verbs: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"


def twilio_call(line: FakeLine, **kwargs: Any) -> TwilioCall:
    """A fake Twilio call to ``line`` (not dialled yet)."""
    app = line.app()
    return TwilioCall(FlaskTransport(lambda: app), PUBLIC, line.token, **kwargs)
