"""Compression codecs: round trips, the exact framings Kafka clients use, and errors."""

from __future__ import annotations

import gzip
import os
import struct

import cramjam
import pytest
from kafka import codec as kafka_codec

from streamlog.log.compression import (
    Compression,
    UnsupportedCompressionError,
    compress,
    decompress,
)
from streamlog.log.errors import CorruptRecordError, InvalidRecordError

PAYLOADS = {
    "empty": b"",
    "one-byte": b"x",
    "random-100k": os.urandom(100_000),
    "text-300k": b"the quick brown fox jumps over the lazy dog " * 7000,
}
CODECS = [pytest.param(c, id=c.name.lower()) for c in Compression]
COMPRESSED = [pytest.param(c, id=c.name.lower()) for c in Compression if c != Compression.NONE]

KAFKA_PYTHON = {
    Compression.GZIP: (kafka_codec.has_gzip(), "gzip_encode", "gzip_decode"),
    Compression.SNAPPY: (kafka_codec.has_snappy(), "snappy_encode", "snappy_decode"),
    Compression.LZ4: (kafka_codec.has_lz4(), "lz4_encode", "lz4_decode"),
    Compression.ZSTD: (kafka_codec.has_zstd(), "zstd_encode", "zstd_decode"),
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
@pytest.mark.parametrize("codec", CODECS)
def test_round_trip(codec: Compression, name: str) -> None:
    data = PAYLOADS[name]
    packed = compress(codec, data)
    assert type(packed) is bytes
    assert decompress(codec, packed) == data
    assert decompress(codec, memoryview(b"..." + packed)[3:]) == data
    assert compress(codec, bytearray(data)) == packed


@pytest.mark.parametrize("name", sorted(PAYLOADS))
@pytest.mark.parametrize("codec", COMPRESSED)
def test_interoperates_with_kafka_python_codecs(codec: Compression, name: str) -> None:
    available, encode_name, decode_name = KAFKA_PYTHON[codec]
    if not available:
        # the test extra installs them; CI must not skip the cross-check silently
        assert not os.environ.get("CI"), f"kafka-python's {codec.name.lower()} library is missing"
        pytest.skip(f"kafka-python has no {codec.name.lower()} library installed")
    data = PAYLOADS[name]
    theirs = getattr(kafka_codec, encode_name)(data)
    assert decompress(codec, theirs) == data
    if codec is Compression.SNAPPY and not data:
        # kafka-python only recognises a xerial stream longer than its 16-byte header, so
        # it cannot read back an empty xerial stream, its own included.
        return
    assert getattr(kafka_codec, decode_name)(compress(codec, data)) == data


def test_snappy_is_xerial_framed_in_32k_blocks_and_raw_snappy_decodes() -> None:
    data = PAYLOADS["text-300k"]
    packed = compress(Compression.SNAPPY, data)
    assert packed[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    pos, blocks = 16, 0
    while pos < len(packed):
        (length,) = struct.unpack_from(">i", packed, pos)
        block = bytes(cramjam.snappy.decompress_raw(packed[pos + 4 : pos + 4 + length]))
        assert len(block) == min(32 * 1024, len(data) - blocks * 32 * 1024)
        pos += 4 + length
        blocks += 1
    assert blocks == -(-len(data) // (32 * 1024))
    # librdkafka and others send one raw snappy block.
    assert decompress(Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data
    # Redpanda has been seen writing the xerial version fields little-endian.
    little = packed[:8] + struct.pack("<ii", 1, 1) + packed[16:]
    assert decompress(Compression.SNAPPY, little) == data


def test_lz4_uses_the_frame_format_with_independent_blocks() -> None:
    packed = compress(Compression.LZ4, PAYLOADS["text-300k"])
    assert packed[:4] == b"\x04\x22\x4d\x18"  # LZ4 frame magic, little-endian 0x184D2204
    flg = packed[4]
    assert flg >> 6 == 0b01  # frame format version 1
    assert flg & 0x20  # block independence: Kafka's Java reader needs it


def test_gzip_and_zstd_framing() -> None:
    assert compress(Compression.GZIP, b"abc")[:2] == b"\x1f\x8b"
    assert compress(Compression.ZSTD, b"abc")[:4] == b"\x28\xb5\x2f\xfd"
    # Several members/frames back to back decode as one stream, as Kafka's readers do.
    assert decompress(Compression.GZIP, gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"
    two_frames = bytes(cramjam.zstd.compress(b"ab")) + bytes(cramjam.zstd.compress(b"cd"))
    assert decompress(Compression.ZSTD, two_frames) == b"abcd"


@pytest.mark.parametrize("codec", COMPRESSED)
def test_garbage_and_truncation_raise_corrupt(codec: Compression) -> None:
    packed = compress(codec, PAYLOADS["text-300k"])
    for bad in (b"\x00" * 32, b"not compressed at all", packed[: len(packed) // 2], packed[:-3]):
        with pytest.raises(CorruptRecordError):
            decompress(codec, bad)


def test_snappy_xerial_block_overruns_raise_corrupt() -> None:
    packed = compress(Compression.SNAPPY, b"hello" * 100)
    header = packed[:16]
    for bad in (
        header + struct.pack(">i", 10_000) + b"\x00" * 10,  # block longer than the rest
        header + struct.pack(">i", -5) + b"\x00" * 10,  # negative block length
        header + b"\x00\x00",  # cut inside a block length
    ):
        with pytest.raises(CorruptRecordError):
            decompress(Compression.SNAPPY, bad)
    assert decompress(Compression.SNAPPY, header) == b""


@pytest.mark.parametrize("codec_id", [5, 6, 7, -1, 8])
def test_unknown_codec_is_unsupported(codec_id: int) -> None:
    with pytest.raises(UnsupportedCompressionError):
        compress(codec_id, b"x")
    with pytest.raises(UnsupportedCompressionError):
        decompress(codec_id, b"x")
    assert issubclass(UnsupportedCompressionError, InvalidRecordError)
