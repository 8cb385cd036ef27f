"""The agents' desk in tests: agents who sign in and click, as `calls.py` has callers who dial.

`DeskUser.post` sends a form with the session's CSRF token, as the pages' forms do; `page` is
the last answer's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from ivr.errors import BackendError

PASSWORD = "a long test password"


@dataclass
class FakeCallControl:
    """A working call control: it records whom it put through, or refuses when told to."""

    put_through_calls: list[str] = field(default_factory=list)
    refuse: bool = False

    def put_through(self, call_sid: str) -> None:
        if self.refuse:
            raise BackendError("the caller hung up")
        self.put_through_calls.append(call_sid)


@dataclass
class DeskUser:
    desk: Flask
    username: str
    client: FlaskClient = field(init=False)
    response: TestResponse | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.client = self.desk.test_client()

    @property
    def page(self) -> str:
        assert self.response is not None
        return self.response.get_data(as_text=True)

    @property
    def status(self) -> int:
        assert self.response is not None
        return self.response.status_code

    @property
    def location(self) -> str:
        assert self.response is not None
        return self.response.headers.get("Location", "")

    def csrf(self) -> str:
        with self.client.session_transaction() as session:
            token = session.get("csrf")
        if token is None:
            self.client.get("/sign-in")
            return self.csrf()
        return str(token)

    def get(self, path: str, **kwargs: Any) -> DeskUser:
        self.response = self.client.get(path, **kwargs)
        return self

    def post(self, path: str, csrf: bool = True, follow: bool = False, **form: Any) -> DeskUser:
        data = {**form, "csrf_token": self.csrf()} if csrf else form
        self.response = self.client.post(path, data=data, follow_redirects=follow)
        return self

    def sign_in(self, password: str = PASSWORD, language: str = "en") -> DeskUser:
        self.get(f"/sign-in?lang={language}")
        return self.post("/sign-in", username=self.username, password=password)

    def sign_out(self) -> DeskUser:
        return self.post("/sign-out")

    def take(self, call_id: int | None = None) -> DeskUser:
        return self.post("/take", follow=True, **({} if call_id is None else {"call_id": call_id}))

    def verify(self, call_id: int, document_type: str, number: str) -> DeskUser:
        form = {"document_type": document_type, "document_number": number}
        return self.post(f"/calls/{call_id}/verification", follow=True, **form)

    @property
    def question(self) -> str | None:
        found = re.search(r'data-question="(\w+)"', self.page)
        return found[1] if found else None

    @property
    def verdict(self) -> str | None:
        found = re.search(r'data-test="verdict"[^>]*>([^<]*)<', self.page)
        return found[1] if found else None
