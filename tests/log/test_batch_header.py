"""The RecordBatch v2 header definition in batch_header.py: every field position and
struct that codecs, the validator and the clients take from it."""

from __future__ import annotations

import struct

import pytest

from streamlog.log import batch_header as bh
from streamlog.log.errors import CorruptRecordError
from streamlog.log.records import encode_batch

# Kafka's DefaultRecordBatch: *_OFFSET constants of the header fields, and their formats.
KAFKA_FIELDS = {
    "base_offset": (0, "q"),
    "batch_length": (8, "i"),
    "partition_leader_epoch": (12, "i"),
    "magic": (16, "b"),
    "crc": (17, "I"),
    "attributes": (21, "h"),
    "last_offset_delta": (23, "i"),
    "base_timestamp": (27, "q"),
    "max_timestamp": (35, "q"),
    "producer_id": (43, "q"),
    "producer_epoch": (51, "h"),
    "base_sequence": (53, "i"),
    "record_count": (57, "i"),
}


def test_the_layout_is_kafkas() -> None:
    layout = bh.HEADER_LAYOUT.format
    assert layout.startswith(">")
    assert bh.HEADER_LAYOUT.size == bh.HEADER_SIZE == 61
    assert "".join(fmt for _, fmt in KAFKA_FIELDS.values()) == layout[1:]
    for index, (position, _) in enumerate(KAFKA_FIELDS.values()):
        assert struct.calcsize(">" + layout[1 : 1 + index]) == position


@pytest.mark.parametrize(
    ("at", "field", "name"),
    [
        (bh.BATCH_LENGTH_AT, bh.BATCH_LENGTH, "batch_length"),
        (bh.CRC_AT, bh.CRC, "crc"),
        (bh.ATTRIBUTES_AT, bh.ATTRIBUTES, "attributes"),
        (bh.LAST_OFFSET_DELTA_AT, bh.LAST_OFFSET_DELTA, "last_offset_delta"),
        (bh.MAX_TIMESTAMP_AT, bh.MAX_TIMESTAMP, "max_timestamp"),
        (bh.PRODUCER_ID_AT, bh.PRODUCER_ID, "producer_id"),
    ],
)
def test_each_field_reads_what_the_header_parser_reads(
    at: int, field: struct.Struct, name: str
) -> None:
    data = encode_batch(
        [(b"k", b"v", 1_700_000_000_000, ()), (None, b"w", 1_700_000_000_500, ())],
        base_offset=41,
        producer_id=7,
        producer_epoch=3,
        base_sequence=11,
        transactional=True,
    )
    header = bh.parse_header(data)
    assert KAFKA_FIELDS[name] == (at, field.format[1:])
    assert field.unpack_from(data, at) == (getattr(header, name),)
    assert bh.OFFSET_AND_LENGTH.unpack_from(data, 0) == (41, header.batch_length)
    producer = bh.PRODUCER_FIELDS.unpack_from(data, bh.PRODUCER_ID_AT)
    assert producer == (7, 3, 11)
    assert bh.CRC_START == bh.ATTRIBUTES_AT


def test_write_crc_makes_a_patched_batch_valid_again() -> None:
    entries = [(b"k", b"v", 1_700_000_000_000, ())]
    buf = bytearray(encode_batch(entries, producer_id=1, producer_epoch=0, base_sequence=0))
    bh.PRODUCER_FIELDS.pack_into(buf, bh.PRODUCER_ID_AT, 9, 2, 5)
    with pytest.raises(CorruptRecordError, match="fails its CRC"):
        bh.validate_batch(buf)
    crc = bh.write_crc(buf, 0, len(buf))
    assert bh.validate_batch(buf).crc == crc
    assert bytes(buf) == encode_batch(entries, producer_id=9, producer_epoch=2, base_sequence=5)
