"""TwiML out: the only module that builds Twilio's XML (with the SDK's `VoiceResponse`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr.engine import Reply, Utterance
from ivr.prompts import Catalog, Slot


@dataclass(frozen=True)
class Urls:
    """Absolute URLs of the line's webhooks, as Twilio must call (and sign) them."""

    base: str

    def keys(self, turn: int) -> str:
        return f"{self.base}/voice/keys?turn={turn}"

    @property
    def wait(self) -> str:
        return f"{self.base}/voice/wait"

    @property
    def queue_exit(self) -> str:
        return f"{self.base}/voice/queue-exit"

    @property
    def connect(self) -> str:
        return f"{self.base}/voice/connect"

    def whisper(self, call_sid: str) -> str:
        return f"{self.base}/voice/whisper?{urlencode({'call': call_sid})}"

    @property
    def dial_ended(self) -> str:
        return f"{self.base}/voice/dial-ended"

    def dequeued(self, agent: str) -> str:
        return f"{self.base}/voice/agent/dequeued?{urlencode({'agent': agent})}"


@dataclass(frozen=True)
class Renderer:
    catalog: Catalog
    urls: Urls
    queue: str

    def reply(self, reply: Reply) -> str:
        """The TwiML for one engine reply: prompts nested in the Gather so keys cut them short."""
        response = VoiceResponse()
        language = reply.state.language
        if reply.listen is not None:
            listen = reply.listen
            action = self.urls.keys(reply.state.turn)
            gather = response.gather(
                input="dtmf",
                action=action,
                method="POST",
                timeout=listen.timeout,
                finish_on_key=listen.finish_on_key,
                **({"num_digits": listen.num_digits} if listen.num_digits else {}),
            )
            self._say(gather, reply.speech, reply.slots, language)
            # Silence: Twilio goes on to the next verb, which asks the same URL with no Digits.
            response.redirect(action, method="POST")
        else:
            self._say(response, reply.speech, reply.slots, language)
            if reply.end == "agent":
                self._enqueue(response)
            else:
                response.hangup()
        return str(response)

    def apology(self, languages: Iterable[str], to_agent: bool) -> str:
        """The last resort when something broke: sorry, then an agent or 'call again'."""
        response = VoiceResponse()
        keys = ("apology", "transfer") if to_agent else ("apology", "call_again")
        self._say(response, [Utterance(k, lang) for lang in languages for k in keys], {}, "da")
        if to_agent:
            self._enqueue(response)
        else:
            response.hangup()
        return str(response)

    def resume(self, turn: int) -> str:
        """Go on with the call at `turn`: what a retry of a webhook that died half-way hears."""
        response = VoiceResponse()
        response.redirect(self.urls.keys(turn), method="POST")
        return str(response)

    def hold(self, languages: Iterable[str]) -> str:
        """For a caller in the queue when their place cannot be told: verbs a wait URL may use."""
        response = VoiceResponse()
        self._say(response, [Utterance("hold", lang) for lang in languages], {}, "da")
        response.pause(length=20)
        return str(response)

    def queue_wait(self, language: str, position: int, minutes: int) -> str:
        response = VoiceResponse()
        slots = {"position": str(position), "minutes": str(minutes)}
        self._say(response, [Utterance("queue_position")], slots, language)
        response.pause(length=20)
        return str(response)

    def goodbye(self, language: str) -> str:
        response = VoiceResponse()
        self._say(response, [Utterance("goodbye")], {}, language)
        response.hangup()
        return str(response)

    def leave_queue(self) -> str:
        """Out of the queue (a wait URL may answer Leave): Twilio goes on at the queue-exit URL."""
        response = VoiceResponse()
        response.leave()
        return str(response)

    def to_connect(self) -> str:
        """On to the agent who took the call."""
        response = VoiceResponse()
        response.redirect(self.urls.connect, method="POST")
        return str(response)

    def connect(self, language: str, phone: str, call_sid: str) -> str:
        """Tell the caller they are put through, and dial the agent, who first hears the whisper."""
        response = VoiceResponse()
        self._say(response, [Utterance("connecting")], {}, language)
        dial = response.dial(action=self.urls.dial_ended, method="POST")
        dial.number(phone, url=self.urls.whisper(call_sid), method="POST")
        return str(response)

    def requeue(self, language: str) -> str:
        """The agent cannot be reached: sorry, and back into the queue."""
        response = VoiceResponse()
        self._say(response, [Utterance("agent_unavailable")], {}, language)
        self._enqueue(response)
        return str(response)

    def whisper(self, language: str, parts: Iterable[tuple[str, Mapping[str, Slot]]]) -> str:
        """What the agent hears before the caller is put through: the call's context, one sentence."""
        lang = self.catalog[language if language in self.catalog else next(iter(self.catalog))]
        words = [lang.text(key, slots) for key, slots in parts if key in lang.prompts]
        response = VoiceResponse()
        response.say(", ".join(words) + ".", language=lang.say_language, voice=lang.voice)
        return str(response)

    def agent_code(self, language: str, wrong: bool) -> str:
        """An agent phoning in: key the agent code (again, after a wrong one)."""
        response = VoiceResponse()
        action = f"{self.urls.base}/voice/agent/code"
        gather = response.gather(input="dtmf", action=action, method="POST", timeout=10, finish_on_key="#")
        keys = ("agent_code_wrong", "agent_code") if wrong else ("agent_code",)
        self._say(gather, [Utterance(k) for k in keys], {}, language)
        response.redirect(action, method="POST")
        return str(response)

    def agent_next_caller(self, language: str, agent: str) -> str:
        """The agent's code was right: through to the next caller in the agents' queue."""
        response = VoiceResponse()
        self._say(response, [Utterance("agent_next_caller")], {}, language)
        dial = response.dial()
        dial.queue(self.queue, url=self.urls.dequeued(agent), method="POST")
        return str(response)

    def agent_blocked(self, language: str) -> str:
        response = VoiceResponse()
        self._say(response, [Utterance("agent_code_blocked")], {}, language)
        response.hangup()
        return str(response)

    def dequeued(self, language: str) -> str:
        """What the caller an agent's phone took out of the queue hears before they speak."""
        response = VoiceResponse()
        self._say(response, [Utterance("connecting")], {}, language)
        return str(response)

    def nothing(self) -> str:
        """An empty document: Twilio goes on (a whisper that failed connects the agent all the same)."""
        return str(VoiceResponse())

    def _enqueue(self, response: VoiceResponse) -> None:
        response.enqueue(
            self.queue,
            wait_url=self.urls.wait,
            wait_url_method="POST",
            action=self.urls.queue_exit,
            method="POST",
        )

    def _say(
        self,
        parent: VoiceResponse | Gather,
        speech: Iterable[Utterance],
        slots: Mapping[str, Slot],
        language: str,
    ) -> None:
        for utterance in speech:
            lang = self.catalog[utterance.language or language]
            parent.say(lang.text(utterance.key, slots), language=lang.say_language, voice=lang.voice)
