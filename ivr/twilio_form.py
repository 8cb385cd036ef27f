"""Twilio's webhook forms, parsed into models. Lenient: only the signature (checked before) and
the CallSid decide whether a request is refused; an optional field that does not parse is
ignored (logged by name, never by value), so one odd field never drops a live call.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WrapValidator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

log = logging.getLogger(__name__)

# Twilio's caller IDs for a withheld number: ANONYMOUS, RESTRICTED, UNKNOWN, BLOCKED and
# UNAVAILABLE spelled on a keypad, and the words some carriers send instead.
WITHHELD = frozenset(
    {"+266696687", "+7378742833", "+8656696", "+2562533", "+86282452253"}
    | {"anonymous", "restricted", "unknown", "blocked", "unavailable", "private"}
)
_CALLER = re.compile(r"^\+?[0-9]{3,20}$|^client:[\w.-]{1,60}$|^sip:[^\s]{1,120}$")


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    try:
        return handler(None if value == "" else value)
    except ValidationError:
        log.warning("ignored the unusable field %s of a signed request", info.field_name)
        return None


def _caller(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    """A calling number, or None when it is withheld or not a number at all."""
    text = str(value).strip() if value is not None else ""
    if not text or text.lower() in WITHHELD or not _CALLER.match(text):
        return None
    return handler(text)


Optional = Annotated[Any, WrapValidator(_or_none)]


class CallForm(BaseModel):
    """The fields of a voice webhook the line uses; everything else Twilio sends is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_sid: str = Field(alias="CallSid", min_length=1, max_length=64)
    caller: Annotated[str | None, WrapValidator(_caller)] = Field(None, alias="From")
    dial_call_status: Annotated[str | None, Field(max_length=32), WrapValidator(_or_none)] = Field(
        None, alias="DialCallStatus"
    )
    call_status: Annotated[str | None, Field(max_length=32), WrapValidator(_or_none)] = Field(
        None, alias="CallStatus"
    )
    digits: str = Field("", alias="Digits")
    call_duration: Annotated[int | None, Field(ge=0), WrapValidator(_or_none)] = Field(
        None, alias="CallDuration"
    )
    queue_position: Annotated[int | None, Field(ge=0), WrapValidator(_or_none)] = Field(
        None, alias="QueuePosition"
    )
    error_code: Annotated[int | None, WrapValidator(_or_none)] = Field(None, alias="ErrorCode")
    queue_sid: Annotated[str | None, Field(pattern=r"^QU[0-9a-fA-F]{32}$"), WrapValidator(_or_none)] = Field(
        None, alias="QueueSid"
    )
    queue_result: Annotated[str | None, Field(max_length=32), WrapValidator(_or_none)] = Field(
        None, alias="QueueResult"
    )

    @classmethod
    def parse(cls, form: dict[str, str]) -> CallForm:
        digits = re.sub(r"[^0-9*#]", "", form.get("Digits", ""))[:64]  # what a keypad can send
        return cls.model_validate({**form, "Digits": digits})


class MessageStatusForm(BaseModel):
    """Twilio's SMS status callback: which message, and how it fares."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_sid: str = Field(alias="MessageSid", min_length=1, max_length=64)
    message_status: str = Field(alias="MessageStatus", min_length=1, max_length=32)
