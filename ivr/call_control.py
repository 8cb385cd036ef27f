"""Call control: the port through which the agents' desk moves a queued caller to an agent.

The desk records who took the call (`escalations.status = "connecting"`, `agent`), then asks the
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

        Raises `ivr.errors.BackendError` when the telephony refuses or does not answer (the
        caller may have hung up meanwhile); the desk tells the agent and leaves the call waiting.
        """
        ...
