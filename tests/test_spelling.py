"""The user ID as the caller hears it: in groups of four with a short pause between them, and on
request with a spelling word for each letter (Danish spelling alphabet, ICAO in English, the
Danish one for Greenlandic callers)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ivr.prompts import Spelled
from tests.calls import Call

USER_ID = "mette.hansen85"  # the ordinary demo person's


def user_id_call(dial, cases, language: str) -> Call:
    person = cases["ordinary"]
    assert person.account.user_id == USER_ID
    return dial(language).choose_language().identify(person, "user_id").answer_questions(person)


def spoken_user_id(call: Call, start: str) -> ET.Element:
    assert call.twiml is not None
    return next(say for say in call.twiml.iter("Say") if (say.text or "").startswith(start))


def test_the_user_id_is_said_in_groups_of_four_with_a_short_pause_between(dial, cases):
    call = user_id_call(dial, cases, "en")
    assert call.said == ["user_id_is", "user_id_again"]
    say = spoken_user_id(call, "User ID:")
    stretches = [say.text] + [brk.tail for brk in say.iter("break")]
    assert stretches == ["User ID: M, E, T, T,", " E, dot, H, A,", " N, S, E, N,", " 8, 5."]
    assert [brk.get("time") for brk in say.iter("break")] == ["200ms"] * 3
    assert call.hears("user_id_is", user_id=Spelled(USER_ID))  # the words, pauses aside


def test_on_request_each_letter_gets_its_word_from_the_danish_spelling_alphabet(dial, cases):
    call = user_id_call(dial, cases, "da").press("3")
    assert call.said == ["user_id_is", "user_id_again"]
    say = spoken_user_id(call, "Dit bruger-ID:")
    stretches = [say.text] + [brk.tail for brk in say.iter("break")]
    assert stretches == [
        "Dit bruger-ID: M som i Mari, E som i Erik, T som i Theodor, T som i Theodor,",
        " E som i Erik, punktum, H som i Hans, A som i Anna,",
        " N som i Nikolaj, S som i Søren, E som i Erik, N som i Nikolaj,",
        " 8, 5.",
    ]
    call.press("1")  # again: still with the words
    assert "S som i Søren" in call.heard
    call.press("2")
    assert call.said == ["goodbye"] and call.hung_up


def test_in_english_the_spelling_words_are_icao(dial, cases):
    call = user_id_call(dial, cases, "en").press("3")
    assert call.heard.startswith("User ID: M as in Mike, E as in Echo, T as in Tango, T as in Tango,")
    assert "S as in Sierra" in call.heard and "dot" in call.heard


def test_a_greenlandic_caller_hears_the_groups_apart_and_the_spelling_words_played(dial, cases):
    call = user_id_call(dial, cases, "kl")
    spelled = [p for p in call.played if p.startswith(("kl/char_", "kl/pause"))]
    assert spelled.count("kl/pause") == 3
    assert spelled[4] == spelled[9] == spelled[14] == "kl/pause"
    call.press("3")
    words = [p for p in call.played if p.startswith(("kl/spell_", "kl/char_", "kl/pause"))]
    assert words[:5] == ["kl/spell_m", "kl/spell_e", "kl/spell_t", "kl/spell_t", "kl/pause"]
    assert words[6] == "kl/char_u002e"  # the dot has no spelling word: said by its name
    assert words[-2:] == ["kl/char_8", "kl/char_5"]
    assert call.hears("user_id_is", user_id=Spelled(USER_ID, group=4, words=True))
