"""Exceptions raised by the serialisation layer.

A stream has to tell a bad key from a bad value and a value it could not write from one it
could not read (the first is a bug in the app, the second usually bad data on a topic), so
each gets its own class. All derive from ``SerdeError``; the decode and encode errors carry
the model (``subject``), the reason and, for validation errors, the path inside the value,
so a dead-letter handler can report them without parsing the message.
"""

from __future__ import annotations

import re
from typing import Any, Self

import msgspec

from streamlog.errors import StreamlogError

__all__ = [
    "SerdeError",
    "DecodeError",
    "EncodeError",
    "KeyDecodeError",
    "ValueDecodeError",
    "KeyEncodeError",
    "ValueEncodeError",
    "UnknownCodecError",
    "SchemaError",
    "ValidationError",
]


_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")


class SerdeError(StreamlogError):
    """Base class of every error the serialisation layer raises on purpose."""


class _CodingError(SerdeError):
    """A key or value that could not be turned into bytes or back.

    ``str(error)`` reads ``"Ride: Expected float, got str at $.lat"``: the model (or the
    codec, when the schema has no type), the reason, and where in the value it went wrong.
    """

    def __init__(self, subject: str, reason: str, path: str | None = None) -> None:
        message = f"{subject}: {reason}" if path is None else f"{subject}: {reason} at {path}"
        super().__init__(message)
        self.subject = subject
        self.reason = reason
        self.path = path

    @classmethod
    def from_exception(cls, subject: str, exc: BaseException) -> Self:
        """Wrap a codec's exception; msgspec's ``- at `$.path``` becomes ``path``."""
        if isinstance(exc, msgspec.MsgspecError):
            text = str(exc)
            match = _MSGSPEC_PATH.search(text)
            path = match.group(1) if match else None
            if match:
                text = text[: match.start()]
            return cls(subject, text.replace("`", ""), path)
        kind = type(exc)
        # "_pickle.PicklingError" is pickle.PicklingError: name C accelerators by their module
        module = kind.__module__.removeprefix("_")
        name = kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"
        text = str(exc)
        return cls(subject, f"{name}: {text}" if text else name)

    def __reduce__(self) -> tuple[Any, ...]:
        # the default would call cls(message), which has the wrong arity
        return (type(self), (self.subject, self.reason, self.path))


class DecodeError(_CodingError):
    """Bytes from a topic that do not decode to the declared key or value type."""


class EncodeError(_CodingError):
    """A key or value that cannot be written with the declared type and serializer."""


class KeyDecodeError(DecodeError):
    """A message key that does not decode."""


class ValueDecodeError(DecodeError):
    """A message value that does not decode or validate."""


class KeyEncodeError(EncodeError):
    """A key that cannot be encoded (wrong type, or the codec refuses it)."""


class ValueEncodeError(EncodeError):
    """A value that cannot be encoded (wrong type, or the codec refuses it)."""


class UnknownCodecError(SerdeError, LookupError):
    """A serializer name that no codec is registered under."""


class SchemaError(SerdeError, TypeError):
    """A key or value type that the chosen serializer cannot carry (e.g. a Record as raw)."""


class ValidationError(SerdeError, ValueError):
    """A field of a ``validation=True`` Record that Faust's validators refuse (a blank
    string, a non-finite Decimal). Raised on construction; decoding wraps it in
    ``ValueDecodeError``/``KeyDecodeError``."""
