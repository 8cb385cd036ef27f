"""What one desk app holds: its domain objects, wired by `create_desk`, in `app.extensions`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from ivr.call_control import CallControl
from ivr.desk.accounts import Accounts
from ivr.desk.queue import Queue
from ivr.desk.verify import Verifier
from ivr.settings import Settings
from ivr.store import Store
from ivr.verification import Gate


@dataclass(frozen=True)
class Desk:
    settings: Settings
    store: Store
    accounts: Accounts
    queue: Queue
    verifier: Verifier
    call_control: CallControl
    gate: Gate
    clock: Callable[[], dt.datetime]

    @property
    def idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.desk_idle_minutes)


def desk() -> Desk:
    """The desk of the app handling this request."""
    found: Desk = current_app.extensions["desk"]
    return found
