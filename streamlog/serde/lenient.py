"""Faust's decoding rules: values are taken as the JSON gives them, not checked.

Faust does not enforce field types when it reads a Record: ``{"x": 1.5}`` into ``x: int``
gives ``x == 1.5``, an int epoch in a ``datetime`` field stays an int. What it does
convert, and so what is converted here (read from ``faust/models/record.py``,
``fields.py`` and ``typing.py``):

* nested Records, alone or inside ``list``/``tuple``/``set``/``dict``/``Optional``, are
  built from their dicts (a tagged dict may name a subclass: ``polymorphic_fields``);
* inside such containers, ISO strings become ``datetime`` and strings ``Decimal``;
* a ``datetime`` field from an ISO string only with ``isodates=True``, a ``Decimal`` field
  only with ``decimals=True``; a user type through ``coercions={Type: fn}``;
* ``None`` (JSON ``null``) in a field that has a default gives the default;
* ``coerce=True``/``validation=True`` convert every field (``coercion_hook``, run by
  ``__post_init__`` on construction and decoding alike) and ``validation`` then refuses
  blank strings and non-finite Decimals.

Unknown keys (``"__faust"`` among them) are ignored; a missing required field is an error.

Speed: a Record is decoded by msgspec into a *shadow* Struct with the same fields typed
``Any`` (one C call, no type checks), whose values then go positionally into the real
class (a second C call); only fields that need a conversion run Python. ``strict=True``
classes skip all of this and use msgspec's validating decoder.
"""

from __future__ import annotations

import collections.abc
import datetime
import decimal
import time
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from streamlog.serde.errors import ValidationError
from streamlog.serde.namespaces import NamespaceIndex, tagged_namespace
from streamlog.serde.options import RecordOptions

__all__ = [
    "is_record_class",
    "is_lenient_record",
    "mentions_lenient_record",
    "RecordPlan",
    "plan_of",
    "converter_for",
    "coercion_hook",
    "parse_iso_datetime",
    "lenient_scalar",
    "creation_serial",
]

Convert = Callable[[Any], Any]

_UNIONS: tuple[Any, ...] = (typing.Union, types.UnionType)
_LIST_ORIGINS = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_SET_ORIGINS = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_DICT_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_LITERALS = (str, bytes, int, float)


def is_record_class(tp: Any) -> bool:
    """A Record class (duck-typed on its options: this module does not import Record)."""
    return isinstance(tp, msgspec.StructMeta) and hasattr(tp, "__record_options__")


def is_lenient_record(tp: Any) -> bool:
    """A Record class decoded by Faust's rules (not ``strict=True``)."""
    return is_record_class(tp) and not tp.__record_options__.strict


def mentions_lenient_record(tp: Any, depth: int = 0) -> bool:
    """Whether type expression ``tp`` holds a lenient Record anywhere (``list[Ride]``)."""
    if depth > 20:
        return False
    if is_lenient_record(tp):
        return True
    return any(mentions_lenient_record(a, depth + 1) for a in typing.get_args(tp))


def parse_iso_datetime(value: Any) -> datetime.datetime:
    """Faust's default ``date_parser``: ISO 8601 text to a datetime (naive without a zone;
    a space or ``T`` between date and time; ``Z`` for UTC). Anything else raises."""
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string for a datetime, got {type(value).__name__}")
    return datetime.datetime.fromisoformat(value)


# --------------------------------------------------------------------------- conversions


def converter_for(tp: Any, options: RecordOptions, *, top_level: bool) -> Convert | None:
    """How a decoded value of declared type ``tp`` becomes what Faust would hand the user;
    None when it is taken as it is. ``top_level``: ``tp`` is a field's own type (datetime
    and Decimal fields are converted only with ``isodates``/``decimals`` there)."""
    if tp is Any or tp is object or tp is None or tp is type(None):
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return converter_for(args[0], options, top_level=top_level)
    for user_type, handler in options.coercions.items():
        if isinstance(tp, type) and isinstance(user_type, type | tuple):
            try:
                if issubclass(tp, user_type):
                    return _user_coercion(handler)
            except TypeError:
                pass
    if origin in _UNIONS:
        return _union_converter(args, options, top_level)
    if is_record_class(tp):
        return _record_converter(tp)
    if tp is datetime.datetime or (isinstance(tp, type) and issubclass(tp, datetime.datetime)):
        if top_level and not options.isodates:
            return None
        return _iso_converter(options.date_parser or parse_iso_datetime)
    if tp is decimal.Decimal:
        if top_level:
            return _to_decimal if options.decimals else None
        return _to_decimal_from_text
    if origin is None or not args:
        return None
    if origin is tuple:
        return _tuple_converter(args, options)
    if origin in _LIST_ORIGINS:
        each = converter_for(args[0], options, top_level=False)
        if each is None:
            return None
        return lambda v: [each(e) for e in v]
    if origin in _SET_ORIGINS:
        member = converter_for(args[0], options, top_level=False)
        if member is None:
            return None
        return lambda v: {member(e) for e in v}
    if origin in _DICT_ORIGINS and len(args) == 2:
        key = converter_for(args[0], options, top_level=False)
        value = converter_for(args[1], options, top_level=False)
        if key is None and value is None:
            return None
        k = key or _same
        val = value or _same
        return lambda v: {k(a): val(b) for a, b in v.items()}
    return None


def _same(value: Any) -> Any:
    return value


def _user_coercion(handler: Callable[[Any], Any]) -> Convert:
    def convert(value: Any) -> Any:
        if value is None or not isinstance(value, str | list | dict | int | float):
            return value
        return handler(value)

    return convert


def _iso_converter(parse: Callable[[Any], datetime.datetime]) -> Convert:
    def convert(value: Any) -> Any:
        return parse(value) if isinstance(value, str) else value

    return convert


def _to_decimal(value: Any) -> Any:
    if value is None or isinstance(value, decimal.Decimal):
        return value
    return decimal.Decimal(value)


def _to_decimal_from_text(value: Any) -> Any:
    if value is None or isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, str) and len(value) > 1000:
        raise ValueError(f"string of length {len(value)} is too long for a Decimal")
    number = decimal.Decimal(value if isinstance(value, str) else str(value))
    if not number.is_finite():
        raise ValueError(f"Illegal value in decimal: {value!r}")
    return number


def _union_converter(args: tuple[Any, ...], options: RecordOptions, top: bool) -> Convert | None:
    members = [a for a in args if a is not type(None) and a is not None]
    if len(members) == 1:
        inner = converter_for(members[0], options, top_level=top)
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    if members and all(is_record_class(m) for m in members):
        return _abstract_record_converter(tuple(members))
    return None  # literals or a mix: Faust passes the value through


def _tuple_converter(args: tuple[Any, ...], options: RecordOptions) -> Convert | None:
    if len(args) == 2 and args[1] is Ellipsis:
        item = converter_for(args[0], options, top_level=False)
        return None if item is None else (lambda v: tuple(item(e) for e in v))
    items = [converter_for(a, options, top_level=False) or _same for a in args]
    if all(c is _same for c in items):
        return None
    return lambda v: tuple(c(e) for c, e in zip(items, v, strict=False))


def _record_converter(cls: type) -> Convert:
    def convert(value: Any) -> Any:
        if value is None or isinstance(value, cls):
            return value
        return plan_of(cls).from_builtins(value)

    return convert


def _abstract_record_converter(members: tuple[type, ...]) -> Convert:
    """A union of Records: the tag decides (Faust treats such a field as abstract); an
    untagged or unknown one stays the dict it is."""
    index = NamespaceIndex(msgspec.Struct)

    def convert(value: Any) -> Any:
        if value is None or isinstance(value, members):
            return value
        ns = tagged_namespace(value)
        cls = None if ns is None else index.get(ns)
        if cls is None:
            return value
        return plan_of(cls).from_builtins(value)

    return convert


# --------------------------------------------------------------------------- building


class RecordPlan:
    """How one Record class is decoded leniently: its shadow Struct, the fields that need
    a conversion, and the defaults a ``null`` gives. Made once per class, on first use
    (annotations may name classes defined after it)."""

    __slots__ = (
        "cls",
        "shadow",
        "names",
        "conversions",
        "null_defaults",
        "positional",
        "index",
        "_decoders",
    )

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        options: RecordOptions = cls.__record_options__
        infos = msgspec.structs.fields(cls)
        config = cls.__struct_config__
        shadow_fields: list[tuple[str, Any, Any]] = []
        self.conversions: list[tuple[int, Convert]] = []
        self.null_defaults: list[tuple[int, Any, bool]] = []
        for i, info in enumerate(infos):
            default: Any
            if info.default is not msgspec.NODEFAULT:
                default = msgspec.field(default=info.default, name=info.encode_name)
            elif info.default_factory is not msgspec.NODEFAULT:
                default = msgspec.field(default_factory=info.default_factory, name=info.encode_name)
            else:
                default = msgspec.field(name=info.encode_name)
            shadow_fields.append((info.name, Any, default))
            convert = converter_for(info.type, options, top_level=True)
            if convert is not None:
                self.conversions.append((i, convert))
            if info.default is not msgspec.NODEFAULT and info.default is not None:
                self.null_defaults.append((i, info.default, False))
            elif info.default_factory is not msgspec.NODEFAULT:
                self.null_defaults.append((i, info.default_factory, True))
        self.names = tuple(info.name for info in infos)
        tag_options: dict[str, Any] = {}
        if config.tag is not None:
            tag_options = {"tag": config.tag, "tag_field": config.tag_field}
        self.shadow: Any = msgspec.defstruct(
            f"{cls.__name__}Shadow",
            shadow_fields,
            kw_only=True,
            array_like=config.array_like,
            forbid_unknown_fields=config.forbid_unknown_fields,
            **tag_options,
        )
        self.positional = len(getattr(cls, "__match_args__", ())) == len(infos)
        self.index = NamespaceIndex(msgspec.Struct)
        self._decoders: dict[tuple[int, int], Callable[[bytes], Any]] = {}

    def build(self, shadow: Any) -> Any:
        """The real instance from a decoded shadow (conversions applied)."""
        values = msgspec.structs.astuple(shadow)
        if self.conversions or (self.null_defaults and None in values):
            values = self._converted(list(values))
        if self.positional:
            return self.cls(*values)
        return self.cls(**dict(zip(self.names, values, strict=True)))

    def _converted(self, values: list[Any]) -> tuple[Any, ...]:
        for i, default, is_factory in self.null_defaults:
            if values[i] is None:  # Faust: null in a field with a default is the default
                values[i] = default() if is_factory else default
        for i, convert in self.conversions:
            value = values[i]
            if value is not None:
                values[i] = convert(value)
        return tuple(values)

    def from_builtins(self, data: Any) -> Any:
        """An instance from plain data (a decoded dict; a tagged one may name a subclass
        allowed to stand in: ``polymorphic_fields``/``allow_blessed_key``)."""
        if isinstance(data, self.cls):
            return data
        ns = tagged_namespace(data)
        if ns is not None and ns != self.cls.__record_options__.namespace:
            other = self.index.get(ns)
            if other is not None and other is not self.cls and _may_stand_in(other):
                return plan_of(other).from_builtins(data)
        if self.cls.__record_options__.strict:
            return msgspec.convert(data, self.cls)
        try:
            shadow = msgspec.convert(data, self.shadow)
        except msgspec.ValidationError as exc:
            raise _missing_field(self.cls, exc) from exc
        return self.build(shadow)

    def decoder(self, fmt: Any, dec_hook: Callable[[type, Any], Any] | None = None) -> Any:
        """``bytes -> instance`` for a msgspec format module (``msgspec.json``/``msgpack``)."""
        key = (id(fmt), id(dec_hook))
        found = self._decoders.get(key)
        if found is not None:
            return found
        decode = fmt.Decoder(self.shadow, dec_hook=dec_hook).decode
        astuple = msgspec.structs.astuple
        cls = self.cls
        simple = self.positional and not self.conversions
        nulls = bool(self.null_defaults)
        build = self.build

        def decode_record(data: bytes) -> Any:
            try:
                shadow = decode(data)
            except msgspec.ValidationError as exc:
                raise _missing_field(cls, exc) from exc
            if simple:
                values = astuple(shadow)
                if not nulls or None not in values:
                    return cls(*values)
            return build(shadow)

        self._decoders[key] = decode_record
        return decode_record


def _may_stand_in(cls: Any) -> bool:
    options: RecordOptions = cls.__record_options__
    return options.polymorphic_fields or options.allow_blessed_key


def _missing_field(cls: Any, exc: msgspec.ValidationError) -> Exception:
    text = str(exc)
    if text.startswith("Object missing required field"):
        field = text.split("`")[1] if "`" in text else text.rsplit(" ", 1)[-1]
        return TypeError(f"{cls.__name__}: missing required field {field!r}")
    return exc


def plan_of(cls: Any) -> RecordPlan:
    """The class's ``RecordPlan`` (made on first use, kept on the class)."""
    plan = cls.__dict__.get("__record_plan__")
    if plan is None:
        plan = RecordPlan(cls)
        type.__setattr__(cls, "__record_plan__", plan)
    return plan


# --------------------------------------------------------------------------- coercion


def coercion_hook(user_post_init: Callable[[Any], Any] | None) -> Callable[[Any], None]:
    """``__post_init__`` of a ``coerce``/``validation`` class: convert the fields (Faust's
    field descriptors do it on every assignment), run the class's own ``__post_init__``,
    then validate."""

    def __post_init__(self: Any) -> None:
        cls = type(self)
        coercer = cls.__dict__.get("__record_coercer__")
        if coercer is None:
            coercer = _Coercer(cls)
            type.__setattr__(cls, "__record_coercer__", coercer)
        coercer.coerce(self)
        if user_post_init is not None:
            user_post_init(self)
        coercer.validate(self)

    __post_init__.__streamlog_coercion__ = True  # type: ignore[attr-defined]
    return __post_init__


class _Coercer:
    """The per-field conversions and checks of one ``coerce``/``validation`` class."""

    __slots__ = ("fields", "checks", "on")

    def __init__(self, cls: Any) -> None:
        options: RecordOptions = cls.__record_options__
        self.on = options.coerce
        parse = options.date_parser or parse_iso_datetime
        self.fields: list[tuple[str, Convert, bool]] = []
        self.checks: list[tuple[str, Callable[[str, Any], None], bool]] = []
        for info in msgspec.structs.fields(cls):
            tp, optional = _strip_optional(info.type)
            required = not optional and info.default is msgspec.NODEFAULT
            required = required and info.default_factory is msgspec.NODEFAULT
            coerce = _coercion_of(tp, parse)
            if coerce is not None:
                self.fields.append((info.name, coerce, required))
            if options.validation:
                check = _check_of(tp)
                if check is not None:
                    self.checks.append((info.name, check, required))

    def coerce(self, obj: Any) -> None:
        if not self.on:
            return
        for name, convert, required in self.fields:
            value = getattr(obj, name)
            if value is not None or required:
                new = convert(value)
                if new is not value:
                    msgspec.structs.force_setattr(obj, name, new)

    def validate(self, obj: Any) -> None:
        for name, check, required in self.checks:
            value = getattr(obj, name)
            if value is not None or required:
                check(name, value)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in _UNIONS:
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return members[0], True
    return tp, False


def _subclass(tp: Any, base: type) -> bool:
    return isinstance(tp, type) and issubclass(tp, base)


def _coercion_of(tp: Any, parse: Callable[[Any], datetime.datetime]) -> Convert | None:
    # Faust's TYPE_TO_FIELD order: bool before int (bool is an int)
    if _subclass(tp, bool):
        return lambda v: True if v else False
    if _subclass(tp, int):
        return lambda v: v if type(v) is int else int(v)
    if _subclass(tp, float):
        return lambda v: v if type(v) is float else float(v)
    if _subclass(tp, decimal.Decimal):
        return lambda v: v if isinstance(v, decimal.Decimal) else decimal.Decimal(v)
    if _subclass(tp, str):
        return lambda v: v if isinstance(v, str) else str(v)
    if _subclass(tp, bytes):
        return lambda v: v if isinstance(v, bytes) else v.encode()
    if _subclass(tp, datetime.datetime):
        return lambda v: v if v is None or isinstance(v, datetime.datetime) else parse(v)
    return None


def _check_of(tp: Any) -> Callable[[str, Any], None] | None:
    if _subclass(tp, bool):
        return _check_bool
    if _subclass(tp, str) or _subclass(tp, bytes):
        return _check_not_blank
    if _subclass(tp, decimal.Decimal):
        return _check_finite
    return None


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be True or False, of type bool")


def _check_not_blank(name: str, value: Any) -> None:
    if not len(value):
        raise ValidationError(f"{name} cannot be left blank")


def _check_finite(name: str, value: Any) -> None:
    if not value.is_finite():
        raise ValidationError(f"Illegal value in decimal: {value!r}")


# --------------------------------------------------------------------------- scalars


def lenient_scalar(tp: Any) -> Convert | None:
    """Faust's conversion of a decoded key or value whose declared type is a scalar
    (``Registry._prepare_payload``): ``int(v)``, ``float(v)``, ``Decimal(v)``; ``str`` is
    taken as it is. None for other types."""
    if tp is int:
        return lambda v: v if type(v) is int else int(v.decode() if isinstance(v, bytes) else v)
    if tp is float:
        return lambda v: v if type(v) is float else float(v.decode() if isinstance(v, bytes) else v)
    if tp is decimal.Decimal:
        return lambda v: decimal.Decimal(v.decode() if isinstance(v, bytes) else v)
    if tp is str:
        return lambda v: v.decode() if isinstance(v, bytes) else v
    return None


def creation_serial() -> int:
    """A number that grows with each class made (the last class of a namespace wins)."""
    return time.perf_counter_ns()
