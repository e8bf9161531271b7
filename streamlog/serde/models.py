"""Records: Faust's typed models, built on ``msgspec.Struct``.

::

    class Ride(Record):
        rider: str
        lat: float
        lon: float = 0.0

A Record is a msgspec Struct, so it is a slotted, mutable class with positional and
keyword construction, equality and a readable repr. Construction does not check types, as
with Faust and dataclasses.

Decoding follows Faust (``streamlog.serde.lenient``): field types are not enforced, values
come as the JSON gives them, nested Records are built from their dicts; Faust's class
options ``isodates=``, ``decimals=``, ``coerce=``, ``validation=``, ``date_parser=``,
``coercions=``, ``polymorphic_fields=``, ``allow_blessed_key=`` change that as they do in
Faust. ``strict=True`` (streamlog's own option) decodes with msgspec's full type checks
instead, one C call that refuses any value not matching the annotations, with the path of
the bad field in the error.

Encoding writes Faust's bytes: the fields, then ``"__faust": {"ns": "<namespace>"}``
(``include_metadata=False`` leaves it out; ``namespace=`` names it), so a reader that
declares no type gets the Record back. ``serializer=`` picks the codec, as in Faust; the
rest of Faust's options (``abstract``, ``lazy_creation``, a ``class Options:`` inside the
class) are accepted. Every msgspec option works as a class keyword too (``frozen=True``,
``array_like=True``, ``rename="camel"``, ``tag=True``, ``forbid_unknown_fields=True``).
``@dataclass`` on a Record is tolerated (it changes nothing), as Faust programs use it.

On top of the Struct it adds Faust's conveniences (``asdict``, ``to_representation``,
``dumps``, ``loads``, ``from_data``, ``derive``, ``_options``).

``Ride.rider`` is the Struct's member descriptor; ``field_name`` and ``field_getter`` turn
it (or a dotted string) into a name and a fast getter, for ``group_by(Ride.rider)``.
"""

from __future__ import annotations

import keyword
import operator
import sys
from collections.abc import Callable, Mapping
from types import MemberDescriptorType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import msgspec

from streamlog.serde.codecs import Codec, CodecRegistry, decoder_for, default_codecs, encoder_for
from streamlog.serde.errors import (
    SerdeError,
    ValidationError,
    ValueDecodeError,
    ValueEncodeError,
)
from streamlog.serde.lenient import coercion_hook, creation_serial, plan_of
from streamlog.serde.options import FAUST_OPTIONS, RecordOptions, options_for
from streamlog.serde.tagging import record_encoder, tagged_builtins
from streamlog.serde.typecheck import type_name

__all__ = ["Record", "RecordOptions", "field_name", "field_getter"]

# Record's own methods: a field with one of these names would hide the method
_RESERVED = frozenset({"asdict", "to_representation", "dumps", "loads", "from_data", "derive"})

_JSON = msgspec.json.Encoder()
_MSGPACK = msgspec.msgpack.Encoder()


def _record_hash(self: Any) -> int:
    """Faust's Record hash: the hash of the field values (a Record with an unhashable field
    value, a list, is unhashable, as in Faust)."""
    return hash(tuple(getattr(self, name) for name in self.__struct_fields__))


class _RecordMeta(msgspec.StructMeta):
    """Takes Faust's class options (``streamlog.serde.options``) off before msgspec sees
    the keywords, and keeps ``@dataclass`` from rewriting a Record."""

    def __new__(
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        /,
        **keywords: Any,
    ) -> Any:
        faust = {k: keywords.pop(k) for k in list(keywords) if k in FAUST_OPTIONS}
        serializer = faust.get("serializer")
        if serializer is not None and not isinstance(serializer, str | Codec):
            raise TypeError(f"{name}: serializer must be a codec name or a codec")
        inner = namespace.pop("Options", None)
        inner_options = {} if inner is None else dict(vars(inner))
        base: RecordOptions | None = None
        for parent in bases:
            base = getattr(parent, "__record_options__", None)
            if base is not None:
                break
        options = options_for(
            name,
            namespace.get("__module__", "__main__"),
            namespace.get("__qualname__", name),
            base,
            faust,
            inner_options,
        )
        user_post_init = namespace.get("__post_init__")
        if options.coerce or options.validation:
            if user_post_init is None:
                inherited = None
                for parent in bases:
                    inherited = getattr(parent, "__record_user_post_init__", None)
                    if inherited is not None:
                        break
                user_post_init = inherited
            namespace["__post_init__"] = coercion_hook(user_post_init)
        cls = super().__new__(mcls, name, bases, namespace, **keywords)
        clashes = _RESERVED.intersection(cls.__struct_fields__)
        if clashes:
            raise TypeError(
                f"{name}: field name(s) {', '.join(sorted(clashes))} would hide Record methods"
            )
        set_class = type.__setattr__
        set_class(cls, "__record_options__", options)
        set_class(cls, "_options", options)
        set_class(cls, "__record_serializer__", options.serializer)
        set_class(cls, "__record_serial__", creation_serial())
        if user_post_init is not None and options.coerce:
            set_class(cls, "__record_user_post_init__", user_post_init)
        if namespace.get("__hash__") is None and cls.__dict__.get("__hash__") is None:
            # hashable by its fields, as Faust's Records are (a SetTable's members, dict
            # keys); a frozen Struct or a class's own __hash__ is kept
            set_class(cls, "__hash__", _record_hash)
        return cls

    def __setattr__(cls, name: str, value: Any) -> None:
        # ``@dataclass`` would install an __init__ taking every field as required and an
        # __eq__ that drops hashing: a Record already has its own, so Faust programs that
        # decorate their Records keep working (Faust's Records shrug it off the same way)
        if sys._getframe(1).f_globals.get("__name__") == "dataclasses":
            return
        super().__setattr__(name, value)


class Record(msgspec.Struct, metaclass=_RecordMeta):
    """A typed model. Subclass it with annotated fields; fields with defaults come last.

    Invariants: fields are exactly ``__struct_fields__``, in declaration order (base class
    fields first); ``dumps`` then ``loads`` with the same serializer gives an equal Record.
    """

    # set by the metaclass on every class (these are the base's)
    __record_options__: ClassVar[RecordOptions]
    _options: ClassVar[RecordOptions]
    # ``class Ride(Record, serializer=...)``; None: json for dumps/loads, and the topic's
    # or app's choice in a Schema
    __record_serializer__: ClassVar[str | Codec | None] = None

    if TYPE_CHECKING:
        # lets type checkers accept ``class Ride(Record, serializer="json", ...)``

        def __init_subclass__(
            cls,
            *,
            serializer: str | Codec | None = None,
            namespace: str | None = None,
            include_metadata: bool | None = None,
            isodates: bool | None = None,
            abstract: bool = False,
            allow_blessed_key: bool | None = None,
            decimals: bool | None = None,
            coerce: bool | None = None,
            coercions: Mapping[Any, Callable[[Any], Any]] | None = None,
            polymorphic_fields: bool | None = None,
            validation: bool | None = None,
            date_parser: Callable[[Any], Any] | None = None,
            lazy_creation: bool = False,
            strict: bool | None = None,
            **struct_options: Any,
        ) -> None: ...

    def asdict(self) -> dict[str, Any]:
        """The fields as a dict; nested Records stay Records (shallow, as Faust's)."""
        return msgspec.structs.asdict(self)

    def to_representation(self) -> dict[str, Any]:
        """The value as plain JSON-ready data, as its JSON bytes hold it: nested dicts and
        lists, datetimes as ISO strings, Decimals and UUIDs as strings, and each Record's
        ``"__faust"`` tag unless ``include_metadata=False``."""
        data: dict[str, Any] = tagged_builtins(self)
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
        """Encode with ``serializer`` (default: the class's, ``"json"`` unless set), with
        Faust's ``__faust`` tag (``include_metadata``)."""
        cls = type(self)
        chosen = _chosen(serializer, cls)
        try:
            if codecs is None and chosen == "json":
                return _encode_tagged(self, _JSON, msgspec.json)
            if codecs is None and chosen == "msgpack":
                return _encode_tagged(self, _MSGPACK, msgspec.msgpack)
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
        """Decode bytes written by ``dumps`` (or any producer) into this class, by Faust's
        rules (or with full type checks for a ``strict`` class).

        Raises ``ValueDecodeError`` naming the class (and the field path, when strict).
        """
        chosen = _chosen(serializer, cls)
        strict = cls.__record_options__.strict
        try:
            if codecs is None and chosen == "json":
                if strict:
                    return msgspec.json.decode(data, type=cls)
                obj: Self = plan_of(cls).decoder(msgspec.json)(data)
                return obj
            if codecs is None and chosen == "msgpack":
                if strict:
                    return msgspec.msgpack.decode(data, type=cls)
                obj = plan_of(cls).decoder(msgspec.msgpack)(data)
                return obj
            codec = _codec(chosen, codecs)
            if strict:
                obj = decoder_for(codec, cls)(data)
                return obj
            obj = plan_of(cls).from_builtins(decoder_for(codec, None)(data))
            return obj
        except ValidationError as exc:
            raise ValueDecodeError.from_exception(type_name(cls), exc) from exc
        except SerdeError:
            raise
        except Exception as exc:
            raise ValueDecodeError.from_exception(type_name(cls), exc) from exc

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | Record, *, preferred_type: Any = None) -> Self:
        """Build from a mapping (nested mappings become nested Records) by Faust's rules,
        or validated for a ``strict`` class. Raises ``ValueDecodeError`` naming the class.
        ``preferred_type`` is accepted for Faust's signature."""
        try:
            obj: Self = plan_of(cls).from_builtins(data)
            return obj
        except ValidationError as exc:
            raise ValueDecodeError.from_exception(type_name(cls), exc) from exc
        except SerdeError:
            raise
        except Exception as exc:
            raise ValueDecodeError.from_exception(type_name(cls), exc) from exc


def _encode_tagged(obj: Record, encoder: Any, fmt: Any) -> bytes:
    """``obj`` by the module-wide msgspec encoder of ``fmt``, tagged; the class keeps its
    encoder per format."""
    cls = type(obj)
    encoders: dict[Any, Any] | None = cls.__dict__.get("__record_encoders__")
    if encoders is None:
        encoders = {}
        type.__setattr__(cls, "__record_encoders__", encoders)
    found = encoders.get(fmt)
    if found is None:
        found = encoders[fmt] = record_encoder(cls, encoder.encode, fmt)
    data: bytes = found(obj)
    return data


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
