"""Kill the server mid-call (SIGKILL, no goodbye) and start it again: the call goes on."""

from __future__ import annotations

import io
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ivr import create_app
from ivr.demo_caller import ScriptedKeys
from ivr.phone import HttpTransport, place_call
from ivr.settings import Settings
from tests.shells import IVR, PIN_KEYS, SERVER_TOKEN, clean_environment, free_port, wait_until_answering


class Server:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = clean_environment(
            home / "data", IVR_PUBLIC_BASE_URL=self.base, IVR_TWILIO_AUTH_TOKEN=SERVER_TOKEN
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log_path = self.home / f"server-{self.starts}.log"
        with log_path.open("w") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                [IVR, "serve", "--port", str(self.port)],
                cwd=self.home,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_answering(self.process, self.base, log_path)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def test_a_call_survives_the_server_being_killed_and_restarted(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.start()
    try:
        settings = Settings(
            data_dir=tmp_path / "data", public_base_url=server.base, twilio_auth_token=SERVER_TOKEN
        )
        script = ScriptedKeys(PIN_KEYS.split(), create_app(settings))
        out = io.StringIO()

        def keys() -> Iterator[str]:
            for number, key in enumerate(script):
                if number == 4:  # document confirmed, the first question is being asked
                    server.kill()
                    server.start()
                yield key

        call = place_call(
            HttpTransport(server.base, server.base), server.base, SERVER_TOKEN, keys(), script.listening(out)
        )
    finally:
        server.kill()

    heard = out.getvalue()
    assert server.starts == 2
    assert call.ended_by == "hangup"
    assert "ending in 5, 1" in heard, heard
    questions = [text for key, text in script.catalog["en"].prompts.items() if key.startswith("question_")]
    assert sum(text in heard for text in questions) == 3
    outbox = subprocess.run(
        [IVR, "outbox", "--json"], cwd=tmp_path, env=server.env, capture_output=True, text=True, check=True
    )
    assert outbox.stdout.count('"demo_phone": "+4520123451"') == 1
    assert outbox.stdout.count('"status": "sent"') == 1
