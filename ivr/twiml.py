"""TwiML out: the only module that builds Twilio's XML (with the SDK's `VoiceResponse`)."""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr.audio import Library, urls_for
from ivr.engine import Listen, Reply, Utterance
from ivr.prompts import Catalog, Slot

PAUSE_TIME = "200ms"


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
    def wait_unrecorded(self) -> str:
        """The wait URL of a caller queued while the store could not record the hand-over."""
        return f"{self.base}/voice/wait?unrecorded=1"

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


_NO_SLOTS: Mapping[str, Slot] = {}


@functools.lru_cache(maxsize=1024)
def _slot_names(prompt: str) -> frozenset[str]:
    """The slots a prompt's text fills in."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(prompt) if name)


@dataclass(frozen=True)
class Renderer:
    catalog: Catalog
    urls: Urls
    queue: str
    audio: Library = field(default_factory=lambda: Library(Path("/nonexistent")))
    """Recordings: a prompt recorded (or in a language played as audio) is played, not said."""

    def __post_init__(self) -> None:
        # A reply with no slots is the same text every time a step is reached at a turn: made
        # once, not on every webhook. One with slots may spell a user ID or a document number,
        # so it is never kept.
        object.__setattr__(self, "_fixed", functools.lru_cache(maxsize=4096)(self._render))

    def reply(self, reply: Reply) -> str:
        """The TwiML for one engine reply: prompts nested in the Gather so keys cut them short."""
        state = reply.state
        used = {
            name
            for utterance in reply.speech
            for name in _slot_names(self.catalog[utterance.language or state.language].prompts[utterance.key])
        }
        slots = {name: value for name, value in reply.slots.items() if name in used}
        if slots:
            return self._render(state.language, state.turn, reply.speech, reply.listen, reply.end, slots)
        fixed: Callable[..., str] = self._fixed  # type: ignore[attr-defined]
        return fixed(state.language, state.turn, reply.speech, reply.listen, reply.end)

    def _render(
        self,
        language: str,
        turn: int,
        speech: tuple[Utterance, ...],
        listen: Listen | None,
        end: str | None,
        slots: Mapping[str, Slot] = _NO_SLOTS,
    ) -> str:
        response = VoiceResponse()
        if listen is not None:
            action = self.urls.keys(turn)
            gather = response.gather(
                input="dtmf",
                action=action,
                method="POST",
                timeout=listen.timeout,
                finish_on_key=listen.finish_on_key,
                **({"num_digits": listen.num_digits} if listen.num_digits else {}),
            )
            self._say(gather, speech, slots, language)
            # Silence: Twilio goes on to the next verb, which asks the same URL with no Digits.
            response.redirect(action, method="POST")
        else:
            self._say(response, speech, slots, language)
            if end == "agent":
                self._enqueue(response)
            else:
                response.hangup()
        return str(response)

    def apology(self, languages: Iterable[str], to_agent: bool, recorded: bool = True) -> str:
        """The last resort when something broke: sorry, then an agent or 'call again'. A caller
        queued with the hand-over not `recorded` (the store was down) waits on a wait URL that
        records it as soon as the store is back."""
        response = VoiceResponse()
        keys = ("apology", "transfer") if to_agent else ("apology", "call_again")
        self._say(response, [Utterance(k, lang) for lang in languages for k in keys], {}, "da")
        if to_agent:
            self._enqueue(response, recorded)
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

    def queue_wait(self, language: str, position: int, minutes: int | None) -> str:
        """The caller's place in the queue, and the wait: about `minutes`, or (None: no agent
        can take calls now) that nobody can say."""
        response = VoiceResponse()
        if minutes is None:
            self._say(response, [Utterance("queue_no_agent")], {"position": str(position)}, language)
        elif minutes == 1:
            self._say(response, [Utterance("queue_position_one")], {"position": str(position)}, language)
        else:
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
        dial.number(phone, url=self.urls.whisper(call_sid))
        return str(response)

    def requeue(self, language: str) -> str:
        """The agent cannot be reached: sorry, and back into the queue."""
        response = VoiceResponse()
        self._say(response, [Utterance("agent_unavailable")], {}, language)
        self._enqueue(response)
        return str(response)

    def whisper(self, language: str, parts: Iterable[tuple[str, Mapping[str, Slot]]]) -> str:
        """What the agent hears before the caller is put through: the call's context, one sentence."""
        spoken = [code for code, lang in self.catalog.items() if not lang.audio]
        lang = self.catalog[language if language in spoken else spoken[0]]
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
        dial.queue(self.queue, url=self.urls.dequeued(agent))
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

    def _enqueue(self, response: VoiceResponse, recorded: bool = True) -> None:
        response.enqueue(
            self.queue,
            wait_url=self.urls.wait if recorded else self.urls.wait_unrecorded,
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
            played = urls_for(self.audio, self.urls.base, lang, utterance.key, slots)
            if played is not None:
                for url in played:
                    parent.play(url)
                continue
            first, *rest = lang.stretches(utterance.key, slots)
            say = parent.say(first, language=lang.say_language, voice=lang.voice)
            for stretch in rest:  # SSML: a short pause, as between the groups of a spelled user ID
                say.break_(time=PAUSE_TIME)
                say.append(stretch)
