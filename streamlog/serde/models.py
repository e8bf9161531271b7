"""Records: Faust's typed models, built on ``msgspec.Struct``.

::

    class Ride(Record):
        rider: str
        lat: float
        lon: float = 0.0

A Record is a msgspec Struct, so it is a slotted, mutable class with positional and
keyword construction, equality and a readable repr, and msgspec decodes JSON or msgpack
straight into it, validating every field (nested Records, ``list[Ride]``, ``Ride | None``,
``dict[str, int]``, datetimes) in one C call. Construction in Python does not validate,
as with dataclasses; ``from_data`` does.

On top of the Struct it adds Faust's conveniences (``asdict``, ``to_representation``,
``dumps``, ``loads``, ``from_data``, ``derive``) and Faust's ``serializer`` class option.
Every msgspec option works as a class keyword too (``frozen=True``, ``array_like=True``,
``rename="camel"``, ``tag=True``, ``forbid_unknown_fields=True``).

``Ride.rider`` is the Struct's member descriptor; ``field_name`` and ``field_getter`` turn
it (or a dotted string) into a name and a fast getter, for ``group_by(Ride.rider)``.
"""

from __future__ import annotations

import keyword
import operator
from collections.abc import Callable, Mapping
from types import MemberDescriptorType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import msgspec

from streamlog.serde.codecs import Codec, CodecRegistry, decoder_for, default_codecs, encoder_for
from streamlog.serde.errors import SerdeError, ValueDecodeError, ValueEncodeError
from streamlog.serde.typecheck import type_name

__all__ = ["Record", "field_name", "field_getter"]

# Record's own methods: a field with one of these names would hide the method
_RESERVED = frozenset({"asdict", "to_representation", "dumps", "loads", "from_data", "derive"})


class _RecordMeta(msgspec.StructMeta):
    """Takes Faust's ``serializer=`` class option off before msgspec sees the keywords."""

    def __new__(
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        /,
        serializer: str | Codec | None = None,
        **struct_options: Any,
    ) -> Any:
        cls = super().__new__(mcls, name, bases, namespace, **struct_options)
        clashes = _RESERVED.intersection(cls.__struct_fields__)
        if clashes:
            raise TypeError(
                f"{name}: field name(s) {', '.join(sorted(clashes))} would hide Record methods"
            )
        if serializer is not None:
            if not isinstance(serializer, str | Codec):
                raise TypeError(f"{name}: serializer must be a codec name or a codec")
            setattr(cls, "__record_serializer__", serializer)  # noqa: B010 (a class option)
        return cls


class Record(msgspec.Struct, metaclass=_RecordMeta):
    """A typed model. Subclass it with annotated fields; fields with defaults come last.

    Invariants: fields are exactly ``__struct_fields__``, in declaration order (base class
    fields first); ``dumps`` then ``loads`` with the same serializer gives an equal Record.
    """

    # set by ``class Ride(Record, serializer=...)``; None: json for dumps/loads, and the
    # topic's or app's choice in a Schema
    __record_serializer__: ClassVar[str | Codec | None] = None

    if TYPE_CHECKING:
        # lets type checkers accept ``class Ride(Record, serializer="json")``

        def __init_subclass__(
            cls, *, serializer: str | Codec | None = None, **struct_options: Any
        ) -> None: ...

    def asdict(self) -> dict[str, Any]:
        """The fields as a dict; nested Records stay Records (shallow, as Faust's)."""
        return msgspec.structs.asdict(self)

    def to_representation(self) -> dict[str, Any]:
        """The value as plain JSON-ready data: nested dicts and lists, datetimes as ISO
        strings, Decimals and UUIDs as strings."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def derive(self, *objects: Record | Mapping[str, Any], **fields: Any) -> Self:
        """A copy with fields replaced, from other Records/mappings then keywords (Faust's
        ``derive``). Not validated, like construction."""
        changes: dict[str, Any] = {}
        for obj in objects:
            changes.update(obj.asdict() if isinstance(obj, Record) else obj)
        changes.update(fields)
        return msgspec.structs.replace(self, **changes)

    def dumps(
        self, serializer: str | Codec | None = None, *, codecs: CodecRegistry | None = None
    ) -> bytes:
        """Encode with ``serializer`` (default: the class's, ``"json"`` unless set)."""
        cls = type(self)
        chosen = _chosen(serializer, cls)
        try:
            if codecs is None and chosen == "json":
                return msgspec.json.encode(self)
            if codecs is None and chosen == "msgpack":
                return msgspec.msgpack.encode(self)
            return encoder_for(_codec(chosen, codecs), cls)(self)
        except SerdeError:
            raise
        except Exception as exc:
            raise ValueEncodeError.from_exception(type_name(cls), exc) from exc

    @classmethod
    def loads(
        cls,
        data: bytes,
        serializer: str | Codec | None = None,
        *,
        codecs: CodecRegistry | None = None,
    ) -> Self:
        """Decode and validate bytes written by ``dumps`` (or any producer) into this class.

        Raises ``ValueDecodeError`` naming the class and the field path on bad input.
        """
        chosen = _chosen(serializer, cls)
        try:
            if codecs is None and chosen == "json":
                return msgspec.json.decode(data, type=cls)
            if codecs is None and chosen == "msgpack":
                return msgspec.msgpack.decode(data, type=cls)
            obj: Self = decoder_for(_codec(chosen, codecs), cls)(data)
            return obj
        except SerdeError:
            raise
        except Exception as exc:
            raise ValueDecodeError.from_exception(type_name(cls), exc) from exc

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | Record) -> Self:
        """Build and validate from a mapping (nested mappings become nested Records; ISO
        strings become datetimes). Raises ``ValueDecodeError`` with the field path."""
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise ValueDecodeError.from_exception(type_name(cls), exc) from exc


def _chosen(serializer: str | Codec | None, cls: type[Record]) -> str | Codec:
    if serializer is not None:
        return serializer
    return cls.__record_serializer__ or "json"


def _codec(serializer: str | Codec, codecs: CodecRegistry | None) -> Codec:
    if isinstance(serializer, str):
        return (codecs if codecs is not None else default_codecs()).get(serializer)
    return serializer


def field_name(obj: Any) -> str:
    """The attribute name a field reference stands for.

    Accepts ``Ride.rider`` (a msgspec member descriptor) or a string, dotted for nested
    Records (``"account.id"``). Raises ``TypeError`` for anything else, so a typo such as
    ``group_by(Ride)`` fails when the stream is declared rather than on the first event.
    """
    if isinstance(obj, str):
        parts = obj.split(".")
        if not all(part.isidentifier() and not keyword.iskeyword(part) for part in parts):
            raise TypeError(f"not a field name: {obj!r}")
        return obj
    if isinstance(obj, MemberDescriptorType):
        owner = obj.__objclass__
        if isinstance(owner, msgspec.StructMeta) and obj.__name__ in owner.__struct_fields__:
            return obj.__name__
    raise TypeError(
        f"expected a Record field such as Ride.rider, or a field name string, got {obj!r}"
    )


def field_getter(obj: Any) -> Callable[[Any], Any]:
    """A fast getter for the field ``obj`` names (see ``field_name``): ``getter(ride)``."""
    return operator.attrgetter(field_name(obj))
