"""Schema: how a topic's keys and values become bytes and back.

``Schema(key_type=str, value_type=Ride)`` compiles four plain functions once, when the
topic is declared, so the per-message path is a ``None`` check and (for JSON or msgpack
with a type) a single msgspec call that parses and validates in one go:

* ``dumps_key(obj) -> bytes | None`` and ``dumps_value(obj) -> bytes | None``
* ``loads_key(data) -> Any`` and ``loads_value(data) -> Any``

Faust's rules, kept so Faust apps behave the same:

* ``None`` stays ``None`` both ways: a null key, a tombstone value. It is never the JSON
  literal ``null``.
* Keys default to ``raw`` and values to ``json``. A Record's ``serializer`` class option
  is used when the schema names none, and a key type ``raw`` cannot carry (a Record, a
  dict) defaults to ``json``.
* ``bytes`` given to a ``dumps_*`` are taken as already encoded and pass through, whatever
  the serializer; a ``bytes`` key or value type means the payload itself, untouched.
* ``raw`` with ``str`` is UTF-8 text; with ``int``/``float``, their decimal text.

Encoding checks only the outer type (a ``str`` sent to an ``int`` topic is refused with
``ValueEncodeError``). Decoding follows Faust (``streamlog.serde.lenient``): Records are
not type-checked (unless their class says ``strict=True``), ``int``/``float``/``Decimal``
keys and values are converted from what the codec gives, and a value read without a
declared type that carries Faust's ``"__faust"`` tag comes back as the Record it names.
``Schema(strict=True)`` decodes everything with msgspec's full validation instead. Errors
are ``KeyDecodeError`` or ``ValueDecodeError`` naming the type (and, when strict, the
path of the bad field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamlog.serde.codecs import (
    Codec,
    CodecRegistry,
    RawCodec,
    decoder_for,
    default_codecs,
    encoder_for,
    lenient_decoder_for,
)
from streamlog.serde.errors import (
    DecodeError,
    EncodeError,
    KeyDecodeError,
    KeyEncodeError,
    SchemaError,
    ValueDecodeError,
    ValueEncodeError,
)
from streamlog.serde.lenient import plan_of
from streamlog.serde.models import Record
from streamlog.serde.namespaces import TAG, NamespaceIndex
from streamlog.serde.typecheck import instance_checker, is_untyped, type_name

__all__ = ["Schema", "Dumps", "Loads"]

Dumps = Callable[[Any], bytes | None]
Loads = Callable[[bytes | None], Any]

_RAW_TYPES: tuple[Any, ...] = (bytes, str, int, float)


class Schema:
    """Key and value types with their serializers, compiled into four fast functions.

    ``key_serializer``/``value_serializer`` left as None mean "not chosen": the Record's
    ``serializer`` option applies, else ``default_key_serializer`` (``"raw"``) or
    ``default_value_serializer`` (``"json"``), where an app passes its configured defaults.
    ``strict``: decode with full type checks instead of Faust's rules (module docstring).

    Built once per topic and not changed after: the compiled functions close over the
    codecs chosen here, so registering a codec later does not alter a schema already built.
    """

    __slots__ = (
        "key_type",
        "value_type",
        "key_serializer",
        "value_serializer",
        "dumps_key",
        "dumps_value",
        "loads_key",
        "loads_value",
        "strict",
    )

    key_type: Any
    value_type: Any
    key_serializer: str | Codec
    value_serializer: str | Codec
    dumps_key: Dumps
    dumps_value: Dumps
    loads_key: Loads
    loads_value: Loads
    strict: bool

    def __init__(
        self,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: str | Codec | None = None,
        value_serializer: str | Codec | None = None,
        codecs: CodecRegistry | None = None,
        *,
        default_key_serializer: str | Codec = "raw",
        default_value_serializer: str | Codec = "json",
        strict: bool = False,
    ) -> None:
        key_serializer = _default_serializer(key_type, key_serializer, default_key_serializer)
        value_serializer = _default_serializer(
            value_type, value_serializer, default_value_serializer
        )
        registry: CodecRegistry | None = codecs
        if registry is None and (
            isinstance(key_serializer, str) or isinstance(value_serializer, str)
        ):
            registry = default_codecs()
        key_codec = _resolve(key_serializer, registry)
        value_codec = _resolve(value_serializer, registry)

        self.key_type = key_type
        self.value_type = value_type
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        self.strict = strict
        key_subject = _subject(key_type, key_serializer)
        value_subject = _subject(value_type, value_serializer)
        self.dumps_key = _compile_dumps(key_type, key_codec, key_subject, KeyEncodeError)
        self.dumps_value = _compile_dumps(value_type, value_codec, value_subject, ValueEncodeError)
        self.loads_key = _compile_loads(key_type, key_codec, key_subject, KeyDecodeError, strict)
        self.loads_value = _compile_loads(
            value_type, value_codec, value_subject, ValueDecodeError, strict
        )

    def __repr__(self) -> str:
        return (
            f"Schema(key_type={_repr_type(self.key_type)}, "
            f"value_type={_repr_type(self.value_type)}, "
            f"key_serializer={self.key_serializer!r}, value_serializer={self.value_serializer!r})"
        )


def _repr_type(tp: Any) -> str:
    return "None" if tp is None else type_name(tp)


def _default_serializer(tp: Any, given: str | Codec | None, default: str | Codec) -> str | Codec:
    """Faust's precedence: the schema's serializer, else the Record's, else the default
    (an app's ``key_serializer``/``value_serializer``), upgraded from ``raw`` to ``json``
    for a type raw cannot carry."""
    if given is not None:
        return given
    if isinstance(tp, type) and issubclass(tp, Record) and tp.__record_serializer__ is not None:
        return tp.__record_serializer__
    if default == "raw" and not (is_untyped(tp) or tp in _RAW_TYPES):
        return "json"
    return default


def _resolve(serializer: str | Codec, registry: CodecRegistry | None) -> Codec:
    if isinstance(serializer, str):
        if registry is None:
            raise SchemaError(f"serializer {serializer!r} is a name, and no codec registry")
        return registry.get(serializer)
    if isinstance(serializer, type) or not isinstance(serializer, Codec):
        raise SchemaError(f"a serializer is a codec name or a codec, got {serializer!r}")
    return serializer


def _subject(tp: Any, serializer: str | Codec) -> str:
    if not is_untyped(tp):
        return type_name(tp)
    return serializer if isinstance(serializer, str) else type(serializer).__name__


def _compile_dumps(tp: Any, codec: Codec, subject: str, error: type[EncodeError]) -> Dumps:
    if tp is bytes:
        return _dumps_bytes(subject, error)
    encode = encoder_for(codec, tp)
    check = instance_checker(tp)

    if check is None:

        def dumps_any(obj: Any) -> bytes | None:
            if obj is None:
                return None
            if type(obj) is bytes:
                return obj
            try:
                return encode(obj)
            except MemoryError:
                raise
            except Exception as exc:
                raise error.from_exception(subject, exc) from exc

        return dumps_any

    origin = getattr(tp, "__origin__", tp)
    exact = origin if isinstance(origin, type) else None
    expected = type_name(tp)

    def dumps_typed(obj: Any) -> bytes | None:
        if obj is None:
            return None
        if type(obj) is not exact:
            if type(obj) is bytes:
                return obj
            if not check(obj):
                raise error(subject, f"expected {expected}, got {type(obj).__qualname__}")
        try:
            return encode(obj)
        except MemoryError:
            raise
        except Exception as exc:
            raise error.from_exception(subject, exc) from exc

    return dumps_typed


def _dumps_bytes(subject: str, error: type[EncodeError]) -> Dumps:
    to_bytes = RawCodec().dumps

    def dumps_bytes(obj: Any) -> bytes | None:
        if obj is None or type(obj) is bytes:
            return obj
        try:
            return to_bytes(obj)
        except TypeError as exc:
            raise error(subject, f"expected bytes, got {type(obj).__qualname__}") from exc

    return dumps_bytes


def _compile_loads(
    tp: Any, codec: Codec, subject: str, error: type[DecodeError], strict: bool
) -> Loads:
    if tp is bytes:
        return _loads_bytes
    decode = None if strict else lenient_decoder_for(codec, tp)
    if decode is None:
        decode = decoder_for(codec, tp)
    if is_untyped(tp):
        decode = _reconstructing(decode)

    def loads(data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return decode(data)
        except MemoryError:
            raise
        except Exception as exc:
            raise error.from_exception(subject, exc) from exc

    return loads


def _reconstructing(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """Faust's ``Model._maybe_reconstruct``: an untyped value that is a dict tagged with a
    Record's namespace becomes that Record (an unknown namespace leaves the dict); so do
    tagged dicts inside lists and dicts, which Faust's default in-memory tables hand back
    as the Records they were given."""
    index = NamespaceIndex(Record)

    def rebuild(value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            if TAG in value:
                tag = value[TAG]
                ns = tag.get("ns") if type(tag) is dict else None
                cls = index.get(ns) if type(ns) is str else None
                if cls is not None:
                    return plan_of(cls).from_builtins(value)
            for key, item in value.items():
                if type(item) is dict or type(item) is list:
                    value[key] = rebuild(item)
        elif kind is list:
            for i, item in enumerate(value):
                if type(item) is dict or type(item) is list:
                    value[i] = rebuild(item)
        return value

    def decode_untyped(data: bytes) -> Any:
        value = decode(data)
        if type(value) is dict and TAG in value:
            return rebuild(value)
        if (type(value) is list or type(value) is dict) and _TAG_BYTES in bytes(data):
            # Records inside a list or dict (a table whose values are lists of Records,
            # as Faust's examples keep them) come back as Records too
            return rebuild(value)
        return value

    return decode_untyped


_TAG_BYTES = TAG.encode()


def _loads_bytes(data: bytes | None) -> bytes | None:
    if data is None or type(data) is bytes:
        return data
    return bytes(data)
