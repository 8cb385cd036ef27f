"""The call-control port's two adapters, and `make`, which picks one by `IVR_CALL_CONTROL`.

Privacy: what these raise names only the HTTP status, Twilio's error code or the kind of failure,
never a number, and is raised `from None` so a logged traceback cannot show the SDK's message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import requests
from pydantic import SecretStr
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from ivr import handover
from ivr.adapters.sms_twilio import _RedirectingHttpClient
from ivr.call_control import CallControl
from ivr.errors import BackendError, CallerGone
from ivr.settings import Settings
from ivr.store import Store, escalations

Clock = Callable[[], dt.datetime]
TIMEOUT_SECONDS = 10.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make(settings: Settings, store: Store, clock: Clock = _utc_now) -> CallControl:
    """The call control `IVR_CALL_CONTROL` names."""
    if settings.call_control == "twilio":
        return TwilioCallControl(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            store,
            public_base_url=settings.public_base_url,
            queue_name=settings.agent_queue,
            api_base_url=settings.twilio_api_base_url,
        )
    return EmbeddedCallControl(store, clock)


class EmbeddedCallControl:
    """No telephony: the store notes that the caller goes through, and the line's wait URL
    takes them out of the queue at the caller's next turn of waiting."""

    def __init__(self, store: Store, clock: Clock = _utc_now) -> None:
        self.store = store
        self.clock = clock

    def put_through(self, call_sid: str) -> None:
        with self.store.connection() as connection:
            if not handover.mark_put_through(connection, call_sid, self.clock()):
                raise CallerGone("the call is no longer waiting for its agent: the caller hung up")


class TwilioCallControl:
    """Twilio's REST API: the queue member is redirected to the line's `/voice/connect`."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str | SecretStr,
        store: Store,
        *,
        public_base_url: str,
        queue_name: str,
        api_base_url: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        token = auth_token.get_secret_value() if isinstance(auth_token, SecretStr) else auth_token
        if not account_sid or not token:
            raise ValueError("account_sid and auth_token are required")
        self.store = store
        self.connect_url = f"{public_base_url.rstrip('/')}/voice/connect"
        self.queue_name = queue_name
        self._http = _RedirectingHttpClient(api_base_url, timeout)
        self._client = Client(account_sid, token, http_client=self._http)

    def put_through(self, call_sid: str) -> None:
        try:
            queue_sid = self._queue_sid(call_sid)
            member = self._client.queues(queue_sid).members(call_sid)
            member.update(url=self.connect_url, method="POST")
        except TwilioRestException as exc:
            if exc.status == 404:  # Twilio documents it: no such member in the queue (they hung up)
                raise CallerGone("Twilio has no such caller in the queue") from None
            code = f", Twilio error {exc.code}" if exc.code else ""
            raise BackendError(f"Twilio refused to put the call through (HTTP {exc.status}{code})") from None
        except TwilioException as exc:
            raise BackendError(f"Twilio call control failed ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise BackendError(f"Twilio call control request failed ({type(exc).__name__})") from None
        except (ValueError, KeyError) as exc:
            raise BackendError(f"Twilio's answer was unreadable ({type(exc).__name__})") from None

    def _queue_sid(self, call_sid: str) -> str:
        """The queue the call waits in: as its wait URL recorded it, or the agents' queue by name."""
        rows = self.store.rows(escalations, escalations.c.call_sid == call_sid)
        if rows and rows[0]["queue_sid"]:
            return str(rows[0]["queue_sid"])
        for queue in self._client.queues.list(page_size=100):
            if queue.friendly_name == self.queue_name and queue.sid:
                return str(queue.sid)
        raise BackendError("Twilio has no queue by the agents' queue's name")

    def close(self) -> None:
        """Release pooled HTTP connections."""
        self._http.close()
