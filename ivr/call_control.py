"""Call control: the port through which the agents' desk moves a queued caller to an agent.

The desk records who took the call (the hand-over's `taken`, `ivr.handover`), then asks the
telephony to put the caller through. The line answers the rest at `/voice/connect` (TwiML that
dials the agent's registered phone, the agent first hearing a whisper of the caller's context).

Two adapters serve the port (chosen by configuration, built in `ivr.call_control_adapters`):
Twilio's REST API (the queue member is redirected to `/voice/connect`), and an embedded one for
the line with no telephony, which `ivr call`'s waiting caller follows through the wait URL.
"""

from __future__ import annotations

from typing import Protocol


class CallControl(Protocol):
    def put_through(self, call_sid: str) -> None:
        """Take the queued caller `call_sid` out of the agents' queue to `/voice/connect`.

        Raises `ivr.errors.CallerGone` when the telephony has no such caller any more (they hung
        up: the hand-over is abandoned and the agent free), `ivr.errors.BackendError` when it
        refuses or does not answer (the desk tells the agent and the call waits again).
        """
        ...
