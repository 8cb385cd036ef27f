"""SMS through Twilio's Programmable Messaging REST API (the `SmsSender` port).

Privacy: the mobile number and the body (a PIN code) never appear in what this module raises or
logs. Errors name only the HTTP status, Twilio's error code or the kind of network failure, and
are raised `from None` so a logged traceback cannot show the SDK's own message either.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from pydantic import SecretStr
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from ivr.errors import BackendError, DeliveryUnknown
from ivr.ports import SmsSender


class _RedirectingHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, sending every request to `base_url` instead (e.g. a mock server)."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url.rstrip("/")) if base_url else None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self._base is not None:
            parts = urlsplit(url)
            path = self._base.path + parts.path
            url = urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))
        return super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request surely never reached Twilio (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


class TwilioSms:
    """Send one SMS per call through Twilio, from a number or a Messaging Service."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str | SecretStr,
        sender: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str | None = None,
        timeout: float = 5.0,
        status_callback: str | None = None,
    ) -> None:
        if (sender is None) == (messaging_service_sid is None):
            raise ValueError("give exactly one of sender or messaging_service_sid")
        token = auth_token.get_secret_value() if isinstance(auth_token, SecretStr) else auth_token
        if not account_sid or not token:
            raise ValueError("account_sid and auth_token are required")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._sender = sender
        self._messaging_service_sid = messaging_service_sid
        self._status_callback = status_callback
        self._http = _RedirectingHttpClient(api_base_url, timeout)
        self._client = Client(account_sid, token, http_client=self._http)

    def send(self, to: str, body: str) -> str:
        """Send `body` to `to` (E.164) and return Twilio's message SID."""
        origin: dict[str, Any] = (
            {"from_": self._sender}
            if self._sender is not None
            else {"messaging_service_sid": self._messaging_service_sid}
        )
        if self._status_callback:
            origin["status_callback"] = self._status_callback
        try:
            message = self._client.messages.create(to=to, body=body, **origin)
        except TwilioRestException as exc:
            code = f", Twilio error {exc.code}" if exc.code else ""
            raise BackendError(f"Twilio refused the SMS (HTTP {exc.status}{code})") from None
        except TwilioException as exc:
            raise BackendError(f"Twilio SMS failed ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            if _never_connected(exc):
                raise BackendError(f"Twilio SMS request failed ({type(exc).__name__})") from None
            raise DeliveryUnknown(f"Twilio did not answer in time ({type(exc).__name__})") from None
        except (ValueError, KeyError) as exc:
            raise BackendError(f"Twilio's answer was unreadable ({type(exc).__name__})") from None
        if not message.sid:
            raise BackendError("Twilio's answer had no message SID")
        return message.sid

    def close(self) -> None:
        """Release pooled HTTP connections."""
        self._http.close()


class ToOnePhone:
    """Every SMS to one phone (the operator's own), whoever it was for: the demo register's
    mobiles look like real Danish numbers, and a real SMS with a PIN must never reach a stranger."""

    def __init__(self, sender: SmsSender, phone: str) -> None:
        self._sender, self._phone = sender, phone

    def send(self, to: str, body: str) -> str:
        return self._sender.send(self._phone, body)
