"""Prompts played as audio: Greenlandic end to end, the media the line serves, operators'
recordings in any language, and what `ivr flows check` says about recordings."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from flask import Flask

from ivr import create_app, definitions
from ivr.adapters.demo_people import DemoPerson
from ivr.errors import DefinitionError
from ivr.prompts import Spelled
from ivr.settings import Settings
from tests.calls import Call, Clock, Records
from tests.conftest import BASE, TOKEN
from tests.fake_line import wav
from tests.shells import Shell, clean_environment

REPO = Path(__file__).resolve().parent.parent
AUDIO = REPO / "prompts" / "audio"


def played_urls(call: Call) -> list[str]:
    return [event.text for event in call.twilio.events if event.kind == "play"]


# -- Greenlandic, end to end --------------------------------------------------------------------------


def test_a_whole_greenlandic_pin_call_plays_only_audio_that_exists(app, dial, cases, records):
    person: DemoPerson = cases["greenlandic"]
    call = dial("kl", caller="+299321000")
    assert call.played[-1] == "kl/choose_language"  # offered in the language menu, after da and en
    start = len(call.twilio.events)
    call.choose_language().identify(person, "temporary_pin").answer_questions(person)

    assert call.said == ["pin_sent", "goodbye"]
    assert call.hears("pin_sent", mobile_last_digits=Spelled(person.account.mobile[-2:]))
    after_choice = call.twilio.events[start:]
    assert [e for e in after_choice if e.kind == "say"] == []  # nothing said by text-to-speech
    urls = [e.text for e in after_choice if e.kind == "play"]
    assert len(urls) > 15 and all(urlsplit(u).path.startswith("/media/kl/") for u in urls)
    client = app.test_client()
    for url in set(urls):  # every one is a recording the line serves (the fake Twilio fetched it too)
        parts = urlsplit(url)
        answer = client.get(parts.path, query_string=parts.query)
        assert answer.status_code == 200 and answer.mimetype == "audio/wav", url
        assert answer.get_data()[:4] == b"RIFF"
        answer.close()
    assert all(e.seconds > 0.05 for e in after_choice if e.kind == "play")
    (text,) = records.texts_to(person.account.mobile)
    assert "MitID Support kodemik tassannga aperisanngilaq" in text  # the SMS, in Greenlandic


def test_a_greenlandic_user_id_is_spelled_with_greenlandic_recordings(dial, cases):
    person = cases["ordinary"]
    call = dial("kl").choose_language().identify(person, "user_id").answer_questions(person)
    user_id = person.account.user_id
    assert call.hears("user_id_is", user_id=Spelled(user_id))
    pieces = [p for p in call.played if p.startswith("kl/char_")]
    assert len(pieces) == len(user_id)
    assert "kl/char_u002e" in pieces  # the dot in mette.hansen85


def test_a_greenlandic_caller_in_the_queue_hears_their_place_played(dial, on_duty):
    call = dial("kl").choose_language().press("0")
    assert call.queued and call.said == ["transfer"]
    call.wait_in_queue(position=2)
    assert call.played == [
        "kl/queue_position.0",
        "kl/num_2",
        "kl/queue_position.1",
        "kl/num_6",
        "kl/queue_position.2",
    ]


def test_the_agent_hears_a_greenlandic_caller_announced_in_danish(app):
    renderer = app.extensions["ivr"].renderer
    twiml = renderer.whisper("kl", [("whisper_language_kl", {}), ("whisper_intent_temporary_pin", {})])
    assert ">Grønlandsktalende opkald, midlertidig pinkode.</Say>" in twiml
    assert 'language="da-DK"' in twiml


# -- the media the line serves ----------------------------------------------------------------------


def test_media_is_served_without_a_signature_and_may_be_cached(app, dial):
    url = next(u for u in played_urls(dial("kl")) if "/choose_language." in u)
    parts = urlsplit(url)
    assert parts.query.startswith("v=")  # the file's hash: a changed recording is a new URL
    client = app.test_client()
    answer = client.get(parts.path, query_string=parts.query)  # no X-Twilio-Signature
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert answer.get_data() == (AUDIO / "kl" / "choose_language.wav").read_bytes()
    etag = answer.headers["ETag"]
    assert etag == f'"{parts.query.removeprefix("v=")}"'  # the hash, alike on every machine
    answer.close()
    again = client.get(parts.path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    again.close()
    other = client.get(parts.path, query_string="v=deadbeef0000")  # another version: not this file
    assert other.status_code == 404 and "immutable" not in other.headers.get("Cache-Control", "")


@pytest.mark.parametrize(
    "path",
    [
        "/media/kl/no_such_prompt.wav",
        "/media/kl/manifest.json",
        "/media/kl/..%2Fkl.yaml",
        "/media/xx/goodbye.wav",
        "/media/da/goodbye.wav",  # Danish is said: no recording
        "/media/kl/goodbye.mp3",  # only the file that exists, by its own name
    ],
)
def test_media_serves_only_the_recordings_found_at_start_up(app, path):
    answer = app.test_client().get(path)
    assert answer.status_code == 404


# -- an operator's recordings, in any language ---------------------------------------------------------


@pytest.fixture
def recorded(tmp_path: Path, settings: Settings, clock: Clock) -> Callable[[dict[str, str]], Flask]:
    """The line with a copy of the prompts and extra recordings: {"da/welcome": kl piece to copy}."""

    def make(recordings: dict[str, str]) -> Flask:
        prompts = tmp_path / "prompts"
        shutil.copytree(REPO / "prompts", prompts, dirs_exist_ok=True)
        for target, source in recordings.items():
            (prompts / "audio" / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(AUDIO / "kl" / f"{source}.wav", prompts / "audio" / f"{target}.wav")
        return create_app(settings.model_copy(update={"prompts_dir": prompts}), clock=clock)

    return make


def test_an_operator_recording_replaces_a_danish_prompt(recorded):
    app = recorded({"da/welcome": "welcome"})
    call = Call(app, TOKEN, BASE, language="da", caller="+4520000001").dial()
    assert call.played == ["da/welcome", "kl/choose_language"]
    assert [e.kind for e in call.twilio.events[:2]] == ["play", "say"]  # the rest is still said
    assert call.said == ["welcome", "choose_language", "choose_language", "choose_language"]


def test_a_prompt_with_slots_is_played_only_when_every_piece_is_recorded(recorded, people):
    number = people[0].person.documents[0].number
    digits = {f"en/char_{d}": f"char_{d}" for d in number}
    app = recorded({"en/confirm_document.1": "confirm_document.1"} | digits)
    call = Call(app, TOKEN, BASE, language="en", caller="+4420000001").dial().choose_language()
    call.press("1").press(number + "#")
    assert call.played == [*(f"en/char_{d}" for d in number), "en/confirm_document.1"]
    assert call.said == ["confirm_document"]


def test_a_prompt_with_a_piece_not_recorded_is_said_whole(recorded, people):
    app = recorded({"en/confirm_document.1": "confirm_document.1"})  # no digits
    number = people[0].person.documents[0].number
    call = Call(app, TOKEN, BASE, language="en", caller="+4420000002").dial().choose_language()
    call.press("1").press(number + "#")
    assert call.played == []  # never half played, half said
    assert call.hears("confirm_document", document_number=Spelled(number))


# -- what `ivr flows check` says about recordings ------------------------------------------------------


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    return Shell(tmp_path, clean_environment(tmp_path / "data"))


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    copy = tmp_path / "prompts"
    shutil.copytree(REPO / "prompts", copy)
    return copy


def refused(prompts: Path) -> str:
    with pytest.raises(DefinitionError) as caught:
        definitions.load(REPO / "call_flows", prompts, "support")
    return str(caught.value)


def test_the_committed_recordings_pass_the_check():
    definitions.load(REPO / "call_flows", REPO / "prompts", "support")


def test_a_missing_greenlandic_recording_is_reported(prompts):
    (prompts / "audio" / "kl" / "pin_sent.0.wav").unlink()
    assert f"{prompts / 'audio' / 'kl'}: missing recording pin_sent.0.wav" in refused(prompts)


def test_an_extra_recording_is_reported(prompts):
    (prompts / "audio" / "da").mkdir()
    (prompts / "audio" / "da" / "pin_sendt.wav").write_bytes(wav(1.0))
    assert "pin_sendt.wav: extra recording: da has no prompt or piece 'pin_sendt'" in refused(prompts)


def test_a_silent_recording_is_reported(prompts):
    (prompts / "audio" / "kl" / "goodbye.wav").write_bytes(wav(1.0))  # mu-law 0x7F: silence
    assert "goodbye.wav: silent recording" in refused(prompts)


def test_a_recording_twilio_cannot_play_is_reported(prompts):
    (prompts / "audio" / "kl" / "goodbye.wav").unlink()
    (prompts / "audio" / "kl" / "goodbye.mp3").write_text("not audio")
    assert "goodbye.mp3: not WAV or MP3 audio Twilio can play" in refused(prompts)


def test_a_file_the_line_would_never_play_is_reported(prompts):
    (prompts / "audio" / "da").mkdir()
    (prompts / "audio" / "da" / "welcome.WAV").write_bytes(wav(1.0))
    assert "welcome.WAV: not a recording the line plays" in refused(prompts)


def test_rendered_audio_for_words_since_changed_is_reported(prompts):
    path = prompts / "kl.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    old = data["prompts"]["goodbye"]
    path.write_text(path.read_text(encoding="utf-8").replace(old, old + " qujanaq", 1), encoding="utf-8")
    assert "goodbye.wav: rendered from other words than kl.yaml's now" in refused(prompts)


def test_flows_check_warns_until_the_greenlandic_texts_are_reviewed(shell: Shell, prompts: Path):
    done = shell.run("flows", "check")
    assert done.returncode == 0, done.stderr
    assert "languages da, en, kl" in done.stdout
    assert "kl.yaml: the Kalaallisut texts have not been reviewed by a native speaker" in done.stderr

    path = prompts / "kl.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(path.read_text(encoding="utf-8").replace("reviewed: false", "reviewed: true"))
    assert data["reviewed"] is False
    done = shell.run("flows", "check", IVR_PROMPTS_DIR=str(prompts))
    assert done.returncode == 0, done.stderr
    assert "reviewed" not in done.stderr


def test_records_of_a_greenlandic_call_are_kept_like_any_other(app, dial, cases):
    person = cases["ordinary"]
    call = dial("kl").choose_language().identify(person, "user_id").answer_questions(person)
    call.hang_up()
    assert "call_ended" in Records(app).audit(call)
