from tests.calls import Call


def test_pin_journey_smoke(dial, people):
    call: Call = dial(language="en")
    print(call.heard)
    call.choose_language()
    print(call.heard)
    person = people[0]
    call.identify(person, "temporary_pin")
    print(call.heard)
    call.answer_questions(person)
    print(call.heard)
    assert call.hears("pin_sent", mobile_last_digits=__import__("ivr.prompts").prompts.Spelled(person.account.mobile[-2:]))
