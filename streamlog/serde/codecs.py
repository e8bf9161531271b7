"""Codecs: values to bytes and back, found by name in a registry.

A codec is anything with ``dumps(obj) -> bytes`` and ``loads(data) -> Any`` (the ``Codec``
protocol), so a user codec is two methods and a ``register`` call, as in Faust. The built-in
ones are registered under Faust's names, plus ``msgpack``:

* ``raw``: bytes pass through; ``str`` is encoded as UTF-8; anything else is refused
* ``json``: msgspec JSON: Records, dicts, lists, scalars, datetime/Decimal/UUID as strings
* ``msgpack``: msgspec MessagePack: the same values, smaller and faster
* ``pickle``: ``cloudpickle.dumps`` / ``pickle.loads``, for values nothing else can carry
* ``binary``: base64, as Faust's ``binary``; useful chained: ``"json|binary"``

A name with ``|`` chains codecs left to right on the way out (``"json|binary"`` is JSON,
then base64) and right to left on the way in.

Codecs that can decode straight into a type implement ``TypedCodec`` as well: JSON and
msgpack hand back a msgspec decoder for the type, so a Record is built while parsing, with
no dict in between. ``encoder_for``/``decoder_for`` pick the fastest path a codec offers and
fall back to ``loads`` followed by a validating ``msgspec.convert`` for the others.

There is no global registry: ``default_codecs()`` returns a fresh one, and an app owns its
own.
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import enum
import io
import json as _json
import pickle
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import cloudpickle
import msgspec

from streamlog.serde.errors import SchemaError, UnknownCodecError
from streamlog.serde.lenient import (
    converter_for,
    is_lenient_record,
    is_record_class,
    lenient_scalar,
    mentions_lenient_record,
    plan_of,
)
from streamlog.serde.options import RecordOptions
from streamlog.serde.tagging import MSGPACK_NATIVE, record_encoder, tagged_builtins
from streamlog.serde.typecheck import instance_checker, is_untyped, type_name

__all__ = [
    "Codec",
    "TypedCodec",
    "CodecBase",
    "RawCodec",
    "JsonCodec",
    "FaustJsonCodec",
    "MsgpackCodec",
    "PickleCodec",
    "BinaryCodec",
    "ChainedCodec",
    "CodecRegistry",
    "default_codecs",
    "encoder_for",
    "decoder_for",
    "lenient_decoder_for",
]

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]


@runtime_checkable
class Codec(Protocol):
    """Turns a value into bytes and back."""

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


@runtime_checkable
class TypedCodec(Codec, Protocol):
    """A codec that can build encoders and decoders specialised for one type.

    Called once when a schema is compiled, never per message. ``decoder_for`` must
    validate: a value that is not a ``tp`` raises (msgspec's errors are best, they carry
    the path).
    """

    def encoder_for(self, tp: Any) -> Encoder: ...

    def decoder_for(self, tp: Any) -> Decoder: ...


class CodecBase:
    """Optional base for codecs: gives them Faust's ``a | b`` chaining."""

    def dumps(self, obj: Any) -> bytes:
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        raise NotImplementedError

    def __or__(self, other: Codec) -> ChainedCodec:
        return ChainedCodec([self, other])


def _want_bytes(obj: Any, codec: str) -> bytes:
    if type(obj) is bytes:
        return obj
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj)
    if isinstance(obj, str):
        return obj.encode()
    raise TypeError(
        f"the {codec} codec takes bytes or str, got {type(obj).__name__}: "
        "choose a serializer such as 'json' for other values"
    )


class RawCodec(CodecBase):
    """Bytes as they are. ``str`` is written as UTF-8; with a type, ``str``/``int``/``float``
    keys and values are read back from their text (Faust's behaviour for raw keys)."""

    def dumps(self, obj: Any) -> bytes:
        return _want_bytes(obj, "raw")

    def loads(self, data: bytes) -> Any:
        return data if type(data) is bytes else bytes(data)

    def encoder_for(self, tp: Any) -> Encoder:
        _require_raw_type(tp)
        if tp is str:
            return str.encode
        if tp is int:
            return _int_text
        if tp is float:
            return _float_text
        return self.dumps

    def decoder_for(self, tp: Any) -> Decoder:
        _require_raw_type(tp)
        if tp is str:
            return bytes.decode  # UTF-8, strict
        if tp is int:
            return int
        if tp is float:
            return float
        return self.loads


def _require_raw_type(tp: Any) -> None:
    if not (is_untyped(tp) or tp in (bytes, str, int, float)):
        raise SchemaError(
            f"the raw serializer carries bytes, str, int or float, not {type_name(tp)}: "
            "use 'json' or 'msgpack'"
        )


def _int_text(obj: int) -> bytes:
    return b"%d" % obj


def _float_text(obj: float) -> bytes:
    return repr(float(obj)).encode()


class _MsgspecCodec(CodecBase):
    """A msgspec format (``msgspec.json`` or ``msgspec.msgpack``): one encoder, an untyped
    decoder, and a typed decoder per declared type. ``enc_hook``/``dec_hook`` extend it to
    other types, as in msgspec.

    Records are written with Faust's ``__faust`` tag (``streamlog.serde.tagging``): the
    encoder of each Record class met is made once and kept by its type.
    """

    _format: Any  # the msgspec module of the format, set by each subclass

    def __init__(
        self,
        *,
        enc_hook: Callable[[Any], Any] | None = None,
        dec_hook: Callable[[type, Any], Any] | None = None,
    ) -> None:
        self._dec_hook = dec_hook
        self._encoder = self._format.Encoder(enc_hook=enc_hook)
        self._decoder = self._format.Decoder(dec_hook=dec_hook)
        self._records: dict[type, Encoder] = {}

    def dumps(self, obj: Any) -> bytes:
        kind = type(obj)
        if kind is dict or kind is list or kind is tuple:
            if len(obj) <= _SCANNED and _LEAVES.issuperset(
                map(type, obj.values() if kind is dict else obj)
            ):  # scalars only (the common case), checked in C
                plain_data: bytes = self._encoder.encode(obj)
                return plain_data
            if _holds_records(obj):
                # Records in a container are tagged too, as Faust's json writes them
                native = MSGPACK_NATIVE if self._format is msgspec.msgpack else None
                tagged: bytes = self._encoder.encode(tagged_builtins(obj, native))
                return tagged
            plain: bytes = self._encoder.encode(obj)
            return plain
        encode = self._records.get(kind)
        if encode is not None:
            return encode(obj)
        if isinstance(obj, msgspec.Struct) and is_record_class(kind):
            encode = self._records[kind] = record_encoder(kind, self._encoder.encode, self._format)
            return encode(obj)
        data: bytes = self._encoder.encode(obj)
        return data

    def loads(self, data: bytes) -> Any:
        return self._decoder.decode(data)

    def encoder_for(self, tp: Any) -> Encoder:
        if tp in _PLAIN_TYPES:
            encode: Encoder = self._encoder.encode
            return encode
        return self.dumps  # a Record (or a subclass of it) may arrive: tag it

    def decoder_for(self, tp: Any) -> Decoder:
        if is_untyped(tp):
            untyped: Decoder = self._decoder.decode
            return untyped
        typed: Decoder = self._format.Decoder(tp, dec_hook=self._dec_hook).decode
        return typed

    def record_decoder(self, cls: Any) -> Decoder:
        """Faust's lenient ``bytes -> cls`` (``streamlog.serde.lenient``)."""
        decode: Decoder = plan_of(cls).decoder(self._format, self._dec_hook)
        return decode


_PLAIN_TYPES: frozenset[Any] = frozenset({int, float, str, bool, bytes, type(None)})

_SCANNED = 64  # items of a container looked at for Records (then only its ends)
_LEAVES = frozenset({str, int, float, bool, type(None), bytes})


def _holds_records(obj: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> bool:
    """Whether a list, tuple or dict holds Records as items (every item of a small one;
    the first and last of a large one, which hold one kind of item in practice)."""
    items: Any = obj.values() if type(obj) is dict else obj
    if len(obj) > _SCANNED:
        items = list(items)
        items = (items[0], items[-1])
    elif _LEAVES.issuperset(map(type, items)):  # the common case, in C: scalars only
        return False
    for item in items:
        if isinstance(item, msgspec.Struct) and is_record_class(type(item)):
            return True
    return False


class JsonCodec(_MsgspecCodec):
    """JSON by msgspec."""

    _format = msgspec.json


class FaustJsonCodec(JsonCodec):
    """JSON written byte for byte as faust-streaming writes it (Python's ``json`` with
    compact separators and ASCII escapes, Faust's encoder for other types), read back with
    arrays as tuples. For table keys: a key's bytes are its identity in the store and in
    the compacted changelog, so they must be Faust's for a Faust app's changelog to
    recover (and for Faust to read streamlog's). Strings, ints, booleans and None take
    msgspec's fast path, whose bytes are the same; the rest (floats, whose exponent
    spelling differs, arrays, Records) go through ``json.dumps``.
    """

    def dumps(self, obj: Any) -> bytes:
        kind = type(obj)
        if kind is str:
            data: bytes = self._encoder.encode(obj)
            if data.isascii() and b"\x7f" not in data:
                return data
        elif kind is int or kind is bool or obj is None:
            number: bytes = self._encoder.encode(obj)
            return number
        return _json.dumps(obj, default=_faust_json_default, separators=(",", ":")).encode()

    def encoder_for(self, tp: Any) -> Encoder:
        return self.dumps

    def loads(self, data: bytes) -> Any:
        return _arrays_as_tuples(self._decoder.decode(data))

    def decoder_for(self, tp: Any) -> Decoder:
        if is_untyped(tp):
            return self.loads
        return super().decoder_for(tp)


def _arrays_as_tuples(value: Any) -> Any:
    """Faust's ``Collection._to_key``: JSON arrays as tuples, so keys stay hashable."""
    if type(value) is list:
        return tuple(_arrays_as_tuples(v) for v in value)
    return value


def _faust_json_default(obj: Any) -> Any:
    """Faust's ``JSONEncoder.default`` (``faust/utils/json.py``) for the stdlib encoder."""
    if is_record_class(type(obj)):
        return tagged_builtins(obj)
    if isinstance(obj, decimal.Decimal | uuid.UUID | bytes):
        return str(obj)
    if isinstance(obj, datetime.date | datetime.time):
        if not isinstance(obj, datetime.datetime | datetime.time):
            obj = datetime.datetime(obj.year, obj.month, obj.day)
        text = obj.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset | tuple | collections.deque):
        return list(obj)
    if isinstance(obj, collections.Counter):
        return dict(obj)
    raise TypeError(f"JSON cannot serialize {type(obj).__name__!r}: {obj!r}")


class MsgpackCodec(_MsgspecCodec):
    """MessagePack by msgspec; same types and hooks as ``JsonCodec``."""

    _format = msgspec.msgpack


_BY_VALUE_HINT = (
    "cloudpickle ships classes defined in __main__ or inside a function by value, and a "
    "msgspec Struct (a Record) rebuilt that way has lost its fields: define the model in "
    "an importable module"
)


def _pickled_by_value(cls: type) -> bool:
    """Whether cloudpickle will embed ``cls`` rather than refer to it by import path."""
    module_name = cls.__module__
    if module_name == "__main__":
        return True
    for registered in cloudpickle.list_registry_pickle_by_value():
        if module_name == registered or module_name.startswith(registered + "."):
            return True
    found: Any = sys.modules.get(module_name)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
        if found is None:
            return True
    return found is not cls


class _StructGuardPickler(cloudpickle.Pickler):
    """cloudpickle, refusing Struct classes it would ship by value (a msgspec Struct class
    pickled by value, as cloudpickle does with one defined in ``__main__``, arrives
    without its fields, and every instance then fails to load, far from the cause)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, msgspec.StructMeta) and _pickled_by_value(obj):
            raise pickle.PicklingError(
                f"cannot pickle {obj.__module__}.{obj.__qualname__}: {_BY_VALUE_HINT}"
            )
        return super().reducer_override(obj)


class PickleCodec(CodecBase):
    """cloudpickle out, ``pickle.loads`` in: lambdas, local functions, arbitrary objects.

    Unlike Faust's ``pickle`` this is not base64-wrapped; ``"pickle|binary"`` gives Faust's
    bytes. Only read pickles from topics you trust: loading one runs code.
    """

    def __init__(self, protocol: int | None = None) -> None:
        self._protocol = protocol

    def dumps(self, obj: Any) -> bytes:
        out = io.BytesIO()
        _StructGuardPickler(out, protocol=self._protocol).dump(obj)
        return out.getvalue()

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except TypeError as exc:
            # the symptom of a by-value Struct pickled by someone else's cloudpickle
            if "positional arguments" in str(exc):
                raise TypeError(f"{exc} (if the value holds a Record: {_BY_VALUE_HINT})") from exc
            raise


_RAW = RawCodec()  # stateless; lends its typed text conversions to BinaryCodec


class BinaryCodec(CodecBase):
    """Base64, as Faust's ``binary``: bytes (or UTF-8 text) in, ASCII out. With a type it
    carries what ``raw`` carries (``str``, ``int``, ``float``), base64-wrapped."""

    def dumps(self, obj: Any) -> bytes:
        return base64.b64encode(_want_bytes(obj, "binary"))

    def loads(self, data: bytes) -> Any:
        return base64.b64decode(data, validate=True)

    def encoder_for(self, tp: Any) -> Encoder:
        to_bytes = _RAW.encoder_for(tp)
        return lambda obj: base64.b64encode(to_bytes(obj))

    def decoder_for(self, tp: Any) -> Decoder:
        from_bytes = _RAW.decoder_for(tp)
        return lambda data: from_bytes(base64.b64decode(data, validate=True))


class ChainedCodec(CodecBase):
    """Codecs applied in order by ``dumps`` and in reverse by ``loads`` (``json|binary``).

    Only the first codec sees the value; the others transform bytes, so a typed decoder is
    the first codec's, run on what the others give back.
    """

    def __init__(self, codecs: Iterable[Codec]) -> None:
        flat: list[Codec] = []
        for codec in codecs:
            flat.extend(codec.codecs if isinstance(codec, ChainedCodec) else [codec])
        if not flat:
            raise ValueError("a chained codec needs at least one codec")
        self.codecs: tuple[Codec, ...] = tuple(flat)

    def dumps(self, obj: Any) -> bytes:
        for codec in self.codecs:
            obj = codec.dumps(obj)
        return obj

    def loads(self, data: bytes) -> Any:
        obj: Any = data
        for codec in reversed(self.codecs):
            obj = codec.loads(obj)
        return obj

    def encoder_for(self, tp: Any) -> Encoder:
        first = encoder_for(self.codecs[0], tp)
        rest = [codec.dumps for codec in self.codecs[1:]]

        def encode(obj: Any) -> bytes:
            data = first(obj)
            for dumps in rest:
                data = dumps(data)
            return data

        return encode

    def decoder_for(self, tp: Any) -> Decoder:
        first = decoder_for(self.codecs[0], tp)
        rest = [codec.loads for codec in reversed(self.codecs[1:])]

        def decode(data: bytes) -> Any:
            for loads in rest:
                data = loads(data)
            return first(data)

        return decode


def encoder_for(codec: Codec, tp: Any) -> Encoder:
    """The fastest ``obj -> bytes`` function ``codec`` offers for values of type ``tp``."""
    if isinstance(codec, TypedCodec):
        return codec.encoder_for(tp)
    return codec.dumps


def decoder_for(codec: Codec, tp: Any) -> Decoder:
    """The fastest validating ``bytes -> tp`` function ``codec`` offers.

    Codecs without typed decoding are followed by a check of the outer type and, when that
    fails, ``msgspec.convert``: a user codec that returns a dict still yields a Record.
    """
    if isinstance(codec, TypedCodec):
        return codec.decoder_for(tp)
    loads = codec.loads
    if is_untyped(tp):
        return loads
    check = instance_checker(tp)

    def decode(data: bytes) -> Any:
        obj = loads(data)
        if check is not None and check(obj):
            return obj
        return msgspec.convert(obj, tp)

    return decode


_DEFAULT_OPTIONS = RecordOptions()


def lenient_decoder_for(codec: Codec, tp: Any) -> Decoder | None:
    """Faust's decoding of a declared type ``tp`` (``streamlog.serde.lenient``), or None
    where Faust has no rule of its own and the validating ``decoder_for`` applies.

    Records (not ``strict``) and types holding them are taken as the data gives them;
    ``int``/``float``/``Decimal`` are converted from what the codec gives (``int("3")``),
    as Faust's registry does; ``str`` is left as decoded. ``raw`` and ``binary`` read
    their text themselves (their typed decoders are Faust's already).
    """
    if is_untyped(tp) or isinstance(codec, RawCodec | BinaryCodec):
        return None
    if isinstance(codec, ChainedCodec):
        first = lenient_decoder_for(codec.codecs[0], tp)
        if first is None:
            return None
        rest = [c.loads for c in reversed(codec.codecs[1:])]

        def decode_chain(data: bytes) -> Any:
            for loads in rest:
                data = loads(data)
            return first(data)

        return decode_chain
    if is_lenient_record(tp):
        if isinstance(codec, _MsgspecCodec):
            return codec.record_decoder(tp)
        plan = plan_of(tp)
        loads = decoder_for(codec, None)
        return lambda data: plan.from_builtins(loads(data))
    scalar = lenient_scalar(tp)
    if scalar is not None:
        untyped = decoder_for(codec, None)
        return lambda data: scalar(untyped(data))
    if mentions_lenient_record(tp):
        convert = converter_for(tp, _DEFAULT_OPTIONS, top_level=False)
        if convert is None:
            return None
        untyped = decoder_for(codec, None)
        return lambda data: convert(untyped(data))
    return None


class CodecRegistry:
    """Codecs by name. ``get`` understands chains such as ``"json|binary"``."""

    def __init__(self, codecs: Mapping[str, Codec] | None = None) -> None:
        self._codecs: dict[str, Codec] = {}
        for name, codec in (codecs or {}).items():
            self.register(name, codec)

    def register(self, name: str, codec: Codec) -> None:
        """Add or replace the codec called ``name``."""
        if not name or "|" in name or name != name.strip():
            raise ValueError(f"invalid codec name {name!r}: non-empty, no '|', no spaces around")
        if isinstance(codec, type) or not isinstance(codec, Codec):
            raise TypeError(f"a codec is an object with dumps() and loads(), got {codec!r}")
        self._codecs[name] = codec

    def get(self, name: str) -> Codec:
        """The codec called ``name``; ``"a|b"`` chains a then b."""
        if "|" in name:
            return ChainedCodec(self.get(part.strip()) for part in name.split("|"))
        try:
            return self._codecs[name]
        except KeyError:
            known = ", ".join(sorted(self._codecs)) or "none"
            raise UnknownCodecError(
                f"unknown codec {name!r}; known codecs: {known} "
                "(chain them with '|', e.g. 'json|binary')"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._codecs)

    def __contains__(self, name: object) -> bool:
        return name in self._codecs

    def __repr__(self) -> str:
        return f"CodecRegistry({', '.join(self.names())})"


def default_codecs() -> CodecRegistry:
    """A new registry holding raw, json, msgpack, pickle and binary."""
    return CodecRegistry(
        {
            "raw": RawCodec(),
            "json": JsonCodec(),
            "msgpack": MsgpackCodec(),
            "pickle": PickleCodec(),
            "binary": BinaryCodec(),
        }
    )
