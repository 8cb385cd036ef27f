"""The line's one small tree of exceptions. Expected outcomes are values, not these."""

from __future__ import annotations

import traceback


class IvrError(Exception):
    """Root of every error the line raises on purpose."""


class DefinitionError(IvrError):
    """A call flow or prompt file is broken; the line refuses to start."""


class BackendError(IvrError):
    """An outside system (register, MitID back end, SMS) failed or did not answer."""


class CallerGone(BackendError):
    """The telephony has no such caller to put through: they hung up before an agent reached them."""


class DeliveryUnknown(BackendError):
    """The SMS provider did not answer in time: the message may or may not be on its way."""


def without_values(error: BaseException) -> str:
    """The error's type and where it happened, without its message.

    Messages of library errors can quote the values involved (a validation error quotes its
    input), and those values may be a caller's document number; logs get the location only.
    """
    frames = traceback.extract_tb(error.__traceback__)
    where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames[-4:]))
    return f"{type(error).__name__} at {where or 'unknown place'}"
