"""Zero-copy decoder of Produce request bodies, versions 3 to 9.

kio's native reader copies every record set into a new ``bytes``; the broker only needs
to validate a batch's CRC, patch its base offset and append it, so here each record set
is a ``memoryview`` slice of the request frame. The grammar, from Kafka's
ProduceRequest.json (v9 is the first flexible version)::

    transactional_id  nullable string
    acks              int16
    timeout_ms        int32
    topic_data        array of
        name              string
        partition_data    array of
            index             int32
            records           nullable bytes
            [tagged fields]                      (v9)
        [tagged fields]                          (v9)
    [tagged fields]                              (v9)

Unknown tagged fields are skipped, as the protocol allows (none are defined up to v9).

Cost (benchmarks/bench_protocol.py): about 2.5 us per request plus ~0.4 us per extra
partition, whatever the batch size. kio's Rust reader is faster on small requests
(~0.7 us) but copies the batches (~24 us per MiB) and holds them twice; this decoder wins
from roughly 64 KiB of records per request.
"""

from __future__ import annotations

import datetime
import struct
from typing import NamedTuple

from ._wire import INT16, INT32, WireError, read_uvarint, skip_tagged_fields
from .schema import RequestPayload, build_message, request_class

__all__ = [
    "PRODUCE_FAST_VERSIONS",
    "ProducePartitionView",
    "ProduceRequestView",
    "ProduceTopicView",
    "decode_produce_request",
]

PRODUCE_FAST_VERSIONS = range(3, 10)

_ACKS_TIMEOUT = struct.Struct(">hi")
_LEGACY_HEAD = struct.Struct(">hii")  # acks, timeout, topic count
_PARTITION_HEADER = struct.Struct(">ii")  # index, records length


class ProducePartitionView(NamedTuple):
    """One partition's record set; ``records`` is a slice of the request frame, or None."""

    partition_index: int
    records: memoryview | None


class ProduceTopicView(NamedTuple):
    name: str
    partitions: tuple[ProducePartitionView, ...]


class ProduceRequestView(NamedTuple):
    """A decoded Produce request whose record sets still live in the request frame.

    The views keep the frame alive; copy (``bytes(view)``) what must outlive it.
    """

    version: int
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topics: tuple[ProduceTopicView, ...]

    def to_kio(self) -> RequestPayload:
        """The same request as kio's ProduceRequest of this version (record sets copied)."""
        return build_message(
            request_class(0, self.version),
            transactional_id=self.transactional_id,
            acks=self.acks,
            timeout=datetime.timedelta(milliseconds=self.timeout_ms),
            topic_data=[
                {
                    "name": topic.name,
                    "partition_data": [
                        {
                            "index": p.partition_index,
                            "records": None if p.records is None else bytes(p.records),
                        }
                        for p in topic.partitions
                    ],
                }
                for topic in self.topics
            ],
        )


# NamedTuple's generated __new__ costs ~0.2 us a call; tuple.__new__ builds the same object.
def _new_partition(fields: tuple[int, memoryview | None]) -> ProducePartitionView:
    return tuple.__new__(ProducePartitionView, fields)


def _new_topic(fields: tuple[str, tuple[ProducePartitionView, ...]]) -> ProduceTopicView:
    return tuple.__new__(ProduceTopicView, fields)


def _new_request(
    fields: tuple[int, str | None, int, int, tuple[ProduceTopicView, ...]],
) -> ProduceRequestView:
    return tuple.__new__(ProduceRequestView, fields)


def decode_produce_request(
    frame: bytes | bytearray | memoryview, pos: int, version: int
) -> tuple[ProduceRequestView, int]:
    """Decode the Produce body starting at ``frame[pos]``; return it and the end position.

    :raises WireError: the bytes do not follow the grammar above.
    :raises ValueError: ``version`` is outside 3..9.
    """
    if version not in PRODUCE_FAST_VERSIONS:
        raise ValueError(f"Produce v{version} is not decoded here (3..9 are)")
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    try:
        if version >= 9:
            return _decode_flexible(view, pos, version)
        return _decode_legacy(view, pos, version)
    except (struct.error, IndexError):
        # unpack_from past the end, or a varint's first byte past the end.
        raise WireError("truncated Produce request") from None


# The decoders below lean on struct.error / IndexError for fixed-size reads past the end
# (caught above) and check explicitly only where slicing would silently truncate.


def _decode_legacy(buf: memoryview, pos: int, version: int) -> tuple[ProduceRequestView, int]:
    end = len(buf)
    unpack_int16 = INT16.unpack_from
    unpack_int32 = INT32.unpack_from
    unpack_partition = _PARTITION_HEADER.unpack_from
    (length,) = unpack_int16(buf, pos)
    pos += 2
    transactional_id: str | None = None
    if length >= 0:
        transactional_id, pos = _utf8(buf, pos, length)
    elif length != -1:
        raise WireError(f"invalid string length {length}")
    acks, timeout_ms, topic_count = _LEGACY_HEAD.unpack_from(buf, pos)
    pos += 10
    if topic_count < 0:
        raise WireError(f"invalid topic count {topic_count}")
    topics = []
    for _ in range(topic_count):
        (length,) = unpack_int16(buf, pos)
        if length < 0:
            raise WireError("null or negative topic name length")
        name, pos = _utf8(buf, pos + 2, length)
        (partition_count,) = unpack_int32(buf, pos)
        pos += 4
        if partition_count < 0:
            raise WireError(f"invalid partition count {partition_count}")
        partitions = []
        for _ in range(partition_count):
            index, size = unpack_partition(buf, pos)
            pos += 8
            if size < 0:
                if size != -1:
                    raise WireError(f"invalid records length {size}")
                partitions.append(_new_partition((index, None)))
                continue
            stop = pos + size
            if stop > end:
                raise WireError("truncated records")
            partitions.append(_new_partition((index, buf[pos:stop])))
            pos = stop
        topics.append(_new_topic((name, tuple(partitions))))
    return _new_request((version, transactional_id, acks, timeout_ms, tuple(topics))), pos


def _decode_flexible(buf: memoryview, pos: int, version: int) -> tuple[ProduceRequestView, int]:
    end = len(buf)
    unpack_int32 = INT32.unpack_from
    # Varints are read inline when they fit in one byte (lengths below 127), else by
    # read_uvarint.
    length = buf[pos]
    if length < 0x80:
        pos += 1
    else:
        length, pos = read_uvarint(buf, pos)
    transactional_id: str | None = None
    if length:
        transactional_id, pos = _utf8(buf, pos, length - 1)
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(buf, pos)
    pos += 6
    topic_count = buf[pos]
    if topic_count < 0x80:
        pos += 1
    else:
        topic_count, pos = read_uvarint(buf, pos)
    if topic_count == 0:
        raise WireError("null topic array")
    topics = []
    for _ in range(topic_count - 1):
        length = buf[pos]
        if length < 0x80:
            pos += 1
        else:
            length, pos = read_uvarint(buf, pos)
        if length == 0:
            raise WireError("null topic name")
        name, pos = _utf8(buf, pos, length - 1)
        partition_count = buf[pos]
        if partition_count < 0x80:
            pos += 1
        else:
            partition_count, pos = read_uvarint(buf, pos)
        if partition_count == 0:
            raise WireError("null partition array")
        partitions = []
        for _ in range(partition_count - 1):
            (index,) = unpack_int32(buf, pos)
            size, pos = read_uvarint(buf, pos + 4)
            if size == 0:
                records = None
            else:
                stop = pos + size - 1
                if stop > end:
                    raise WireError("truncated records")
                records = buf[pos:stop]
                pos = stop
            # Partition tagged fields: almost always the single byte 0.
            if buf[pos] == 0:
                pos += 1
            else:
                pos = skip_tagged_fields(buf, pos)
            partitions.append(_new_partition((index, records)))
        if buf[pos] == 0:
            pos += 1
        else:
            pos = skip_tagged_fields(buf, pos)
        topics.append(_new_topic((name, tuple(partitions))))
    if buf[pos] == 0:
        pos += 1
    else:
        pos = skip_tagged_fields(buf, pos)
    return _new_request((version, transactional_id, acks, timeout_ms, tuple(topics))), pos


def _utf8(buf: memoryview, pos: int, length: int) -> tuple[str, int]:
    stop = pos + length
    if stop > len(buf):
        raise WireError("truncated string")
    try:
        return str(buf[pos:stop], "utf-8"), stop
    except UnicodeDecodeError as e:
        raise WireError("string is not valid UTF-8") from e
