"""Writing Records with Faust's type tag: ``{..fields.., "__faust": {"ns": "app.Ride"}}``.

Faust serialises a Record as its fields followed by the tag (``include_metadata``, on by
default), and so does every Record nested in it; a reader that declares no type gets the
Record back from the tag. The bytes here are Faust's for the same values: fields in
declaration order, compact separators, the tag last in each object.

A Record with no Record-typed field (the common case) is encoded by msgspec in one call
and the tag spliced in before the closing brace (JSON) or appended with the map's count
raised by one (msgpack). One that holds Records goes through plain data (``to_builtins``)
where each nested Record's dict gets its own tag, then the encoder.
"""

from __future__ import annotations

import datetime
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from streamlog.serde.namespaces import TAG

__all__ = ["MSGPACK_NATIVE", "record_encoder", "tagged_builtins", "holds_records"]

Encoder = Callable[[Any], bytes]

MSGPACK_NATIVE = (
    bytes,
    bytearray,
    memoryview,
    datetime.datetime,
    datetime.date,
    datetime.time,
)


def record_encoder(cls: Any, encode: Encoder, fmt: Any) -> Encoder:
    """The encoder of Record class ``cls`` for ``encode`` (a msgspec encoder's ``encode``
    of format module ``fmt``): tagged unless the class opts out or is array-like."""
    options = cls.__record_options__
    if not options.include_metadata or cls.__struct_config__.array_like:
        return encode
    if holds_records(cls):
        native = MSGPACK_NATIVE if fmt is msgspec.msgpack else None

        def encode_nested(obj: Any) -> bytes:
            return encode(tagged_builtins(obj, native))

        return encode_nested
    if fmt is msgspec.json:
        suffix = b'"' + TAG.encode() + b'":{"ns":' + msgspec.json.encode(options.namespace) + b"}}"

        def encode_json(obj: Any) -> bytes:
            data = encode(obj)
            if len(data) == 2:  # "{}": no field written
                return b"{" + suffix
            return data[:-1] + b"," + suffix

        return encode_json
    if fmt is msgspec.msgpack:
        tail = msgspec.msgpack.encode(TAG) + msgspec.msgpack.encode({"ns": options.namespace})

        def encode_msgpack(obj: Any) -> bytes:
            return _msgpack_add_entry(encode(obj), tail)

        return encode_msgpack
    return encode


def _msgpack_add_entry(data: bytes, entry: bytes) -> bytes:
    """A msgpack map with one more key/value pair (``entry``) at its end."""
    head = data[0]
    if 0x80 <= head <= 0x8E:  # fixmap with room for one more
        return bytes((head + 1,)) + data[1:] + entry
    if head == 0x8F:  # fixmap of 15: becomes map16
        return b"\xde\x00\x10" + data[1:] + entry
    if head == 0xDE:
        count = int.from_bytes(data[1:3], "big") + 1
        if count <= 0xFFFF:
            return b"\xde" + count.to_bytes(2, "big") + data[3:] + entry
        return b"\xdf" + count.to_bytes(4, "big") + data[3:] + entry
    if head == 0xDF:
        count = int.from_bytes(data[1:5], "big") + 1
        return b"\xdf" + count.to_bytes(4, "big") + data[5:] + entry
    return data  # not a map (array_like): no tag


def tagged_builtins(obj: Any, native: tuple[type, ...] | None = None) -> Any:
    """``obj`` (a Record) as plain data with every Record's dict tagged, as Faust's
    ``to_representation`` writes it. ``native``: types the target format keeps as they
    are (msgpack's timestamps and binaries)."""
    if native is None:
        built = msgspec.to_builtins(obj)
    else:
        built = msgspec.to_builtins(obj, builtin_types=native)
    _add_tags(obj, built)
    return built


def _add_tags(value: Any, built: Any) -> None:
    cls = type(value)
    options = getattr(cls, "__record_options__", None)
    if options is not None:
        if type(built) is not dict:
            return
        for name, encode_name in _record_fields(cls):
            inner = built.get(encode_name)
            if inner is not None:
                _add_tags(getattr(value, name), inner)
        if options.include_metadata:
            built[TAG] = {"ns": options.namespace}
        return
    if isinstance(value, list | tuple | set | frozenset) and type(built) is list:
        for item, item_built in zip(value, built, strict=False):
            _add_tags(item, item_built)
    elif isinstance(value, dict) and type(built) is dict:
        for key, item in value.items():
            item_built = built.get(key)
            if item_built is not None:
                _add_tags(item, item_built)


def _record_fields(cls: Any) -> tuple[tuple[str, str], ...]:
    """(name, encode name) of the fields whose type can hold a Record (cached on the class)."""
    found: tuple[tuple[str, str], ...] | None = cls.__dict__.get("__record_nested__")
    if found is None:
        found = tuple(
            (info.name, info.encode_name)
            for info in msgspec.structs.fields(cls)
            if _mentions_record(info.type)
        )
        type.__setattr__(cls, "__record_nested__", found)
    return found


def holds_records(cls: Any) -> bool:
    """Whether a field of ``cls`` is declared to hold Records (then each needs its tag)."""
    return bool(_record_fields(cls))


def _mentions_record(tp: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if isinstance(tp, msgspec.StructMeta):
        return hasattr(tp, "__record_options__")
    return any(_mentions_record(arg, depth + 1) for arg in typing.get_args(tp))
