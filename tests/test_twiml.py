"""The TwiML the line answers, as exact XML (as twilio-python's own tests compare it).

A small catalog and the Renderer built as `create_app` builds it; each kind of reply once. The
fake Twilio of the other tests checks what these documents do; these check what they are.
"""

from __future__ import annotations

from ivr import handover
from ivr.engine import Listen, Reply, Utterance
from ivr.prompts import Language, Spelled, load_catalog
from ivr.state import CallState
from ivr.twiml import Renderer, Urls
from tests.calls import PROMPTS_DIR

WEEKDAYS = {day: day for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
DA = Language(
    code="da",
    name="Dansk",
    say_language="da-DK",
    voice="Polly.Naja",
    prompts={
        "choose_language": "Velkommen. Tryk 1 for dansk.",
        "passport_number": "Tast dit pasnummer og afslut med firkant.",
        "questions_intro": "Nu stiller vi nogle spørgsmål.",
        "question_postcode": "Hvad er dit postnummer? Fire cifre.",
        "user_id_is": "Dit bruger-ID staves: {user_id}.",
        "user_id_again": "Tryk 1 for at høre det igen & 2 hvis du er færdig.",
        "transfer": "Vi stiller dig videre til en medarbejder.",
        "apology": "Beklager, der skete en fejl.",
        "hold": "Bliv i røret.",
        "queue_position": "Du er nummer {position} i køen. Ventetiden er cirka {minutes} minutter.",
    },
    characters={"s": "s", "ø": "ø", "<": "mindre end", ".": "punktum", "1": "et"},
    weekdays=WEEKDAYS,
    sms={},
    date_format="%d.%m.%Y %H:%M",
    time_zones={},
)
EN = Language(
    code="en",
    name="English",
    say_language="en-GB",
    voice="Polly.Amy",
    prompts={
        "choose_language": "Welcome. For English, press 2.",
        "transfer": "We are putting you through to an agent.",
        "apology": "Sorry, something went wrong.",
        "hold": "Please hold.",
        "call_again": "Please call again later.",
        "goodbye": "Goodbye.",
    },
    characters={},
    weekdays=WEEKDAYS,
    sms={},
    date_format="%d.%m.%Y %H:%M",
    time_zones={},
)
RENDERER = Renderer({"da": DA, "en": EN}, Urls("https://ivr.example.test"), "mitid-support")
XML = '<?xml version="1.0" encoding="UTF-8"?>'


def state(turn: int, language: str = "da") -> CallState:
    return CallState(call_sid="CA" + "1" * 32, caller_key="caller", step="step", language=language, turn=turn)


def test_menu_in_every_language() -> None:
    speech = (Utterance("choose_language", "da"), Utterance("choose_language", "en"))
    reply = Reply(state(1), speech, listen=Listen(num_digits=1, finish_on_key="", timeout=6))
    assert RENDERER.reply(reply) == (
        f"{XML}<Response>"
        '<Gather action="https://ivr.example.test/voice/keys?turn=1" finishOnKey="" input="dtmf" '
        'method="POST" numDigits="1" timeout="6">'
        '<Say language="da-DK" voice="Polly.Naja">Velkommen. Tryk 1 for dansk.</Say>'
        '<Say language="en-GB" voice="Polly.Amy">Welcome. For English, press 2.</Say>'
        "</Gather>"
        '<Redirect method="POST">https://ivr.example.test/voice/keys?turn=1</Redirect>'
        "</Response>"
    )


def test_input_finished_with_a_key_has_no_num_digits() -> None:
    reply = Reply(state(3), (Utterance("passport_number"),), listen=Listen(None, "#", 6))
    assert RENDERER.reply(reply) == (
        f"{XML}<Response>"
        '<Gather action="https://ivr.example.test/voice/keys?turn=3" finishOnKey="#" input="dtmf" '
        'method="POST" timeout="6">'
        '<Say language="da-DK" voice="Polly.Naja">Tast dit pasnummer og afslut med firkant.</Say>'
        "</Gather>"
        '<Redirect method="POST">https://ivr.example.test/voice/keys?turn=3</Redirect>'
        "</Response>"
    )


def test_question_with_fixed_digits_or_the_finish_key() -> None:
    speech = (Utterance("questions_intro"), Utterance("question_postcode"))
    reply = Reply(state(5), speech, listen=Listen(4, "#", 10))
    assert RENDERER.reply(reply) == (
        f"{XML}<Response>"
        '<Gather action="https://ivr.example.test/voice/keys?turn=5" finishOnKey="#" input="dtmf" '
        'method="POST" numDigits="4" timeout="10">'
        '<Say language="da-DK" voice="Polly.Naja">Nu stiller vi nogle spørgsmål.</Say>'
        '<Say language="da-DK" voice="Polly.Naja">Hvad er dit postnummer? Fire cifre.</Say>'
        "</Gather>"
        '<Redirect method="POST">https://ivr.example.test/voice/keys?turn=5</Redirect>'
        "</Response>"
    )


def test_say_then_listen_spells_the_slot_and_escapes_the_text() -> None:
    speech = (Utterance("user_id_is"), Utterance("user_id_again"))
    reply = Reply(state(7), speech, {"user_id": Spelled("Sø<.1")}, listen=Listen(1, "", 6))
    assert RENDERER.reply(reply) == (
        f"{XML}<Response>"
        '<Gather action="https://ivr.example.test/voice/keys?turn=7" finishOnKey="" input="dtmf" '
        'method="POST" numDigits="1" timeout="6">'
        '<Say language="da-DK" voice="Polly.Naja">Dit bruger-ID staves: s, ø, mindre end, punktum, et.</Say>'
        '<Say language="da-DK" voice="Polly.Naja">'
        "Tryk 1 for at høre det igen &amp; 2 hvis du er færdig.</Say>"
        "</Gather>"
        '<Redirect method="POST">https://ivr.example.test/voice/keys?turn=7</Redirect>'
        "</Response>"
    )


ENQUEUE = (
    '<Enqueue action="https://ivr.example.test/voice/queue-exit" method="POST" '
    'waitUrl="https://ivr.example.test/voice/wait" waitUrlMethod="POST">mitid-support</Enqueue>'
)


def test_hand_over_to_an_agent() -> None:
    reply = Reply(state(2), (Utterance("transfer"),), end="agent")
    assert RENDERER.reply(reply) == (
        f"{XML}<Response>"
        '<Say language="da-DK" voice="Polly.Naja">Vi stiller dig videre til en medarbejder.</Say>'
        f"{ENQUEUE}</Response>"
    )


def test_hang_up() -> None:
    reply = Reply(state(8, "en"), (Utterance("goodbye"),), end="hangup")
    assert RENDERER.reply(reply) == (
        f'{XML}<Response><Say language="en-GB" voice="Polly.Amy">Goodbye.</Say><Hangup /></Response>'
    )


def test_apology_in_every_language_then_an_agent() -> None:
    assert RENDERER.apology(["da", "en"], to_agent=True) == (
        f"{XML}<Response>"
        '<Say language="da-DK" voice="Polly.Naja">Beklager, der skete en fejl.</Say>'
        '<Say language="da-DK" voice="Polly.Naja">Vi stiller dig videre til en medarbejder.</Say>'
        '<Say language="en-GB" voice="Polly.Amy">Sorry, something went wrong.</Say>'
        '<Say language="en-GB" voice="Polly.Amy">We are putting you through to an agent.</Say>'
        f"{ENQUEUE}</Response>"
    )


def test_apology_then_hang_up() -> None:
    assert RENDERER.apology(["en"], to_agent=False) == (
        f"{XML}<Response>"
        '<Say language="en-GB" voice="Polly.Amy">Sorry, something went wrong.</Say>'
        '<Say language="en-GB" voice="Polly.Amy">Please call again later.</Say>'
        "<Hangup /></Response>"
    )


def test_the_wait_url_answer_says_the_place_then_pauses() -> None:
    assert RENDERER.queue_wait("da", position=2, minutes=6) == (
        f"{XML}<Response>"
        '<Say language="da-DK" voice="Polly.Naja">'
        "Du er nummer 2 i køen. Ventetiden er cirka 6 minutter.</Say>"
        '<Pause length="20" /></Response>'
    )


def test_goodbye() -> None:
    assert RENDERER.goodbye("en") == (
        f'{XML}<Response><Say language="en-GB" voice="Polly.Amy">Goodbye.</Say><Hangup /></Response>'
    )


def test_resume_redirects_to_the_turn_the_call_is_at() -> None:
    assert RENDERER.resume(7) == (
        f"{XML}<Response>"
        '<Redirect method="POST">https://ivr.example.test/voice/keys?turn=7</Redirect>'
        "</Response>"
    )


def test_hold_uses_only_verbs_a_wait_url_may_answer() -> None:
    assert RENDERER.hold(("da", "en")) == (
        f"{XML}<Response>"
        '<Say language="da-DK" voice="Polly.Naja">Bliv i røret.</Say>'
        '<Say language="en-GB" voice="Polly.Amy">Please hold.</Say>'
        '<Pause length="20" />'
        "</Response>"
    )


# -- the hand-over to an agent, with the repository's own prompts --------------------------------
HANDOVER = Renderer(load_catalog(PROMPTS_DIR), Urls("https://ivr.example.test"), "mitid-support")
SID = "CA" + "1" * 32
EN_SAY = '<Say language="en-GB" voice="Polly.Amy">'
DA_SAY = '<Say language="da-DK" voice="Polly.Naja">'


def test_a_put_through_caller_leaves_the_queue_and_goes_on_to_connect() -> None:
    assert HANDOVER.leave_queue() == f"{XML}<Response><Leave /></Response>"
    assert HANDOVER.to_connect() == (
        f'{XML}<Response><Redirect method="POST">https://ivr.example.test/voice/connect</Redirect></Response>'
    )


def test_connect_tells_the_caller_and_dials_the_agent_with_the_whisper() -> None:
    assert HANDOVER.connect("en", "+4512345678", SID) == (
        f"{XML}<Response>"
        f"{EN_SAY}An agent is ready for you. We are putting you through now.</Say>"
        '<Dial action="https://ivr.example.test/voice/dial-ended" method="POST">'
        f'<Number url="https://ivr.example.test/voice/whisper?call={SID}">+4512345678</Number>'
        "</Dial>"
        "</Response>"
    )


def test_an_agent_who_cannot_be_dialled_sends_the_caller_back_to_the_queue() -> None:
    assert HANDOVER.requeue("da") == (
        f"{XML}<Response>"
        f"{DA_SAY}Beklager, medarbejderen kunne alligevel ikke tage dit opkald. Du er tilbage i køen.</Say>"
        '<Enqueue action="https://ivr.example.test/voice/queue-exit" method="POST" '
        'waitUrl="https://ivr.example.test/voice/wait" waitUrlMethod="POST">mitid-support</Enqueue>'
        "</Response>"
    )


def test_the_whisper_is_one_sentence_in_the_agents_language_with_the_masked_document() -> None:
    escalation = {
        "language": "en",
        "intent": "temporary_pin",
        "verification": "not_verified",
        "document": "passport ending 01",
    }
    assert HANDOVER.whisper("en", handover.context(escalation)) == (
        f"{XML}<Response>"
        f"{EN_SAY}English-speaking caller, temporary PIN, not verified, passport ending 0, 1.</Say>"
        "</Response>"
    )
    verified = {**escalation, "language": "da", "verification": "verified", "intent": None}
    assert HANDOVER.whisper(
        "da", handover.context({**verified, "document": "driving_licence ending 42"})
    ) == (
        f"{XML}<Response>"
        f"{DA_SAY}Dansktalende opkald, intet emne valgt, identitet bekræftet, "
        "kørekort, der ender på 4, 2.</Say>"
        "</Response>"
    )
