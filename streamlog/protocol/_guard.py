"""A structural pre-check that keeps hostile array lengths away from kio's native reader.

kio 0.6's Rust reader reserves memory for an array's declared element count before it
reads a single element. A count is up to 2**31 - 1 (int32) or 2**35 (compact varint), so
a ten-byte request can make it ask for tens of gigabytes, and a failed allocation in Rust
aborts the whole process: no exception, the broker is gone. (Measured: a CreatePartitions
v2 body of ``b"\\xb6\\xf9\\xad\\x88\\x21"`` asks for 126 GB; a Metadata v0 body of
``b"\\x7f\\xff\\xff\\xff"`` for 16 GB.)

``check`` walks the message grammar of a kio entity class without building anything and
refuses any array whose count exceeds the bytes left in the frame (every element takes at
least one byte, so such a frame is malformed anyway). What passes bounds kio's
reservation by eight times the frame size. kio still does the real decoding and the
remaining validation (UTF-8, booleans).

With ``strict_nulls`` (the server's side) it also refuses a null (count -1) for an array,
string or bytes field that Kafka's schema does not declare nullable, as Kafka's own
parser does ("non-nullable field ... was serialized as null"). kio reads such an array as
``None`` without a word, and a handler iterating it would raise: the request must be
refused where it is parsed, not in every handler. The client side stays lenient about
what brokers send.

The walk is compiled once per class into closures; runs of fixed-size fields collapse
into one bounds check, so the cost is small next to kio's decode.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any

from kio.static.protocol import Entity

from ._wire import INT8, INT16, INT32, WireError, read_uvarint

__all__ = ["check"]

# (buffer, position, end) -> new position
Skim = Callable[[Any, int, int], int]

_FIXED_SIZES = {
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}


def check(
    entity_type: type[Entity], buffer: Any, pos: int, end: int, *, strict_nulls: bool = False
) -> int:
    """Walk an encoded ``entity_type`` at ``buffer[pos:end]``; return where it ends.

    :raises WireError: a length or count does not fit, a tagged field is unknown, or
        (``strict_nulls``) a field that is not nullable is null.
    """
    return _entity(entity_type, strict_nulls)(buffer, pos, end)


def _unwrap(tp: Any) -> tuple[Any, bool, bool]:
    optional = False
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not types.NoneType]
        optional = len(args) < len(typing.get_args(tp))
        (tp,) = args
    if typing.get_origin(tp) is tuple:
        return typing.get_args(tp)[0], optional, True
    return tp, optional, False


def _is_entity(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@functools.cache
def _fixed_size(entity_type: type[Entity]) -> int | None:
    """The encoded size of an entity made only of fixed-size fields, else None."""
    if entity_type.__flexible__:
        return None  # a tagged-field section follows, of variable size
    total = 0
    for f in dataclasses.fields(entity_type):
        inner, optional, is_array = _unwrap(f.type)
        if is_array or optional or _is_entity(inner):
            return None
        size = _FIXED_SIZES.get(f.metadata.get("kafka_type", ""))
        if size is None:
            return None
        total += size
    return total


@functools.cache
def _entity(entity_type: type[Entity], strict: bool) -> Skim:
    flexible = bool(entity_type.__flexible__)
    ops: list[Skim] = []
    tagged: dict[int, Skim] = {}
    pending_fixed = 0
    for f in dataclasses.fields(entity_type):
        tag = f.metadata.get("tag")
        if tag is not None:
            tagged[int(tag)] = _field(f, flexible, strict, is_tag=True)
            continue
        inner, optional, is_array = _unwrap(f.type)
        size = (
            None
            if (is_array or _is_entity(inner))
            else _FIXED_SIZES.get(f.metadata.get("kafka_type", ""))
        )
        if size is not None:
            pending_fixed += size
            continue
        if pending_fixed:
            ops.append(_skip_fixed(pending_fixed))
            pending_fixed = 0
        ops.append(_field(f, flexible, strict, is_tag=False))
    if flexible:
        skim_tags = _tagged_section(tagged, entity_type.__qualname__)
        if not ops:
            # The common shape of flexible array elements: fixed fields, then tags.
            return _fixed_then_tags(pending_fixed, skim_tags)
    if pending_fixed:
        ops.append(_skip_fixed(pending_fixed))
    if flexible:
        ops.append(skim_tags)
    ops_tuple = tuple(ops)

    if len(ops_tuple) == 1:
        return ops_tuple[0]

    def skim_entity(buf: Any, pos: int, end: int) -> int:
        for op in ops_tuple:
            pos = op(buf, pos, end)
        return pos

    return skim_entity


def _fixed_then_tags(size: int, skim_tags: Skim) -> Skim:
    def skim(buf: Any, pos: int, end: int) -> int:
        pos += size
        if pos >= end:
            raise WireError("truncated")
        if buf[pos] == 0:
            return pos + 1
        return skim_tags(buf, pos, end)

    return skim


def _field(f: dataclasses.Field[Any], flexible: bool, strict: bool, *, is_tag: bool) -> Skim:
    inner, optional, is_array = _unwrap(f.type)
    # kio: tagged fields are never null-marked; their presence is the tag itself (so a
    # null inside one is left to kio, as before).
    optional = optional and not is_tag
    # The message for a null where the schema allows none, or None when a null passes.
    null_error = (
        f"non-nullable field {f.name!r} is null" if strict and not optional and not is_tag else None
    )
    if _is_entity(inner):
        element = _entity(inner, strict)
        if is_array:
            if not inner.__flexible__ and not dataclasses.fields(inner):
                # The count check below assumes elements of at least one byte.
                raise NotImplementedError(f"array of empty entities {inner.__qualname__}")
            return _array(element, _fixed_size(inner), flexible, null_error)
        if optional:
            return _nullable_entity(element)
        return element
    kafka_type = f.metadata["kafka_type"]
    size = _FIXED_SIZES.get(kafka_type)
    element_null_error = (
        f"non-nullable element of {f.name!r} is null" if strict and not is_tag else None
    )
    if size is not None:
        element = _skip_fixed(size)
    elif kafka_type in ("string", "bytes", "records"):
        # Array elements are never nullable in Kafka's schemas.
        error = element_null_error if is_array else null_error
        if flexible:
            element = _compact_bytes if error is None else _compact_bytes_not_null(error)
        elif kafka_type == "string":
            element = _legacy_string if error is None else _legacy_string_not_null(error)
        else:
            element = _legacy_bytes if error is None else _legacy_bytes_not_null(error)
    else:
        raise NotImplementedError(f"no skimmer for kafka type {kafka_type!r}")
    if is_array:
        return _array(element, size, flexible, null_error)
    return element


def _skip_fixed(size: int) -> Skim:
    def skip(buf: Any, pos: int, end: int) -> int:
        pos += size
        if pos > end:
            raise WireError("truncated")
        return pos

    return skip


def _legacy_string(buf: Any, pos: int, end: int) -> int:
    if pos + 2 > end:
        raise WireError("truncated string length")
    (length,) = INT16.unpack_from(buf, pos)
    pos += 2
    if length < 0:
        if length != -1:
            raise WireError(f"invalid string length {length}")
        return pos
    pos += length
    if pos > end:
        raise WireError("truncated string")
    return pos


def _legacy_bytes(buf: Any, pos: int, end: int) -> int:
    if pos + 4 > end:
        raise WireError("truncated bytes length")
    (length,) = INT32.unpack_from(buf, pos)
    pos += 4
    if length < 0:
        if length != -1:
            raise WireError(f"invalid bytes length {length}")
        return pos
    pos += length
    if pos > end:
        raise WireError("truncated bytes")
    return pos


def _compact_bytes(buf: Any, pos: int, end: int) -> int:
    length, pos = read_uvarint(buf, pos)
    if length:
        pos += length - 1
        if pos > end:
            raise WireError("truncated string or bytes")
    return pos


def _legacy_string_not_null(null_error: str) -> Skim:
    def skim(buf: Any, pos: int, end: int) -> int:
        if pos + 2 <= end and INT16.unpack_from(buf, pos)[0] == -1:
            raise WireError(null_error)
        return _legacy_string(buf, pos, end)

    return skim


def _legacy_bytes_not_null(null_error: str) -> Skim:
    def skim(buf: Any, pos: int, end: int) -> int:
        if pos + 4 <= end and INT32.unpack_from(buf, pos)[0] == -1:
            raise WireError(null_error)
        return _legacy_bytes(buf, pos, end)

    return skim


def _compact_bytes_not_null(null_error: str) -> Skim:
    def skim(buf: Any, pos: int, end: int) -> int:
        if pos < end and buf[pos] == 0:
            raise WireError(null_error)
        return _compact_bytes(buf, pos, end)

    return skim


def _nullable_entity(element: Skim) -> Skim:
    def skim(buf: Any, pos: int, end: int) -> int:
        if pos + 1 > end:
            raise WireError("truncated null marker")
        (marker,) = INT8.unpack_from(buf, pos)
        if marker < 0:
            return pos + 1
        return element(buf, pos + 1, end)

    return skim


def _array(element: Skim, element_size: int | None, flexible: bool, null_error: str | None) -> Skim:
    """``null_error``: refuse a null array with this message (None: a null passes)."""

    def skim_array(buf: Any, pos: int, end: int) -> int:
        if flexible:
            if pos >= end:
                raise WireError("truncated array length")
            count = buf[pos]
            if count < 0x80:
                pos += 1
            else:
                count, pos = read_uvarint(buf, pos)
            if count == 0:
                if null_error is not None:
                    raise WireError(null_error)
                return pos
            count -= 1
        else:
            if pos + 4 > end:
                raise WireError("truncated array length")
            (count,) = INT32.unpack_from(buf, pos)
            pos += 4
            if count < 0:
                if count != -1:
                    raise WireError(f"invalid array length {count}")
                if null_error is not None:
                    raise WireError(null_error)
                return pos
        # Every element of every array in Kafka's schemas takes at least one byte.
        if count > end - pos:
            raise WireError(f"array of {count} elements in {end - pos} bytes")
        if element_size is not None:
            pos += count * element_size
            if pos > end:
                raise WireError("truncated array")
            return pos
        for _ in range(count):
            pos = element(buf, pos, end)
        return pos

    return skim_array


def _tagged_section(tagged: dict[int, Skim], owner: str) -> Skim:
    def skim_tags(buf: Any, pos: int, end: int) -> int:
        if pos < end and buf[pos] == 0:
            return pos + 1
        count, pos = read_uvarint(buf, pos)
        if count > end - pos:
            raise WireError(f"{count} tagged fields in {end - pos} bytes")
        for _ in range(count):
            tag, pos = read_uvarint(buf, pos)
            size, pos = read_uvarint(buf, pos)
            stop = pos + size
            if stop > end:
                raise WireError("truncated tagged field")
            skim = tagged.get(tag)
            if skim is None:
                # The protocol would let us skip it; kio's reader cannot.
                raise WireError(f"unknown tagged field {tag} in {owner}")
            skim(buf, pos, stop)
            pos = stop
        return pos

    return skim_tags
