"""Twilio's webhook form, parsed into a model. Lenient: any Twilio-shaped request is accepted."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class CallForm(BaseModel):
    """The fields of a voice webhook the line uses; everything else Twilio sends is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_sid: str = Field(alias="CallSid", min_length=1, max_length=64)
    caller: str | None = Field(None, alias="From", max_length=64)
    call_status: str | None = Field(None, alias="CallStatus", max_length=32)
    digits: str = Field("", alias="Digits")
    call_duration: int | None = Field(None, alias="CallDuration")
    queue_position: int | None = Field(None, alias="QueuePosition")

    @field_validator("digits")
    @classmethod
    def _keypad_only(cls, value: str) -> str:
        """Keep only keypad characters; anything else is not something a caller could press."""
        return re.sub(r"[^0-9*#]", "", value)[:64]

    @field_validator("call_duration", "queue_position", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value
