"""Record batch compression codecs, in the exact byte forms Kafka clients exchange.

A compressed RecordBatch v2 carries its records section (everything after the 61-byte
header) compressed as one payload; the codec is in attribute bits 0-2. The forms:

* gzip: an RFC 1952 stream (several concatenated members are accepted on decode).
* snappy: Kafka's Java client writes xerial "blocking" framing (a 16-byte header, then
  big-endian int32 length + raw snappy block, repeated), and so does kafka-python;
  librdkafka and some others write one raw snappy block. We encode xerial framing, the
  form every client decodes, and decode both.
* lz4: the LZ4 *frame* format with independent blocks (Kafka's Java reader decompresses
  each block on its own and rejects linked blocks in older versions).
* zstd: a zstd frame (several concatenated frames are accepted on decode).

All codecs come from ``cramjam``. Decoding failures raise ``CorruptRecordError``: a batch
whose CRC passed but whose payload will not decompress was written wrong, and the caller
treats it like any other corrupt batch.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import cramjam

from streamlog.log.errors import CorruptRecordError, InvalidRecordError

__all__ = [
    "Compression",
    "UnsupportedCompressionError",
    "compress",
    "decompress",
]

Buffer = bytes | bytearray | memoryview


class Compression(IntEnum):
    """Kafka's compression type ids (attribute bits 0-2 of a batch)."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class UnsupportedCompressionError(InvalidRecordError):
    """A compression id Kafka does not define (5-7), or one we were asked to use wrongly."""


# xerial's block-stream header: marker -126, "SNAPPY", NUL, then version and the minimum
# compatible version as big-endian int32 (both 1). Readers match the first 8 bytes only:
# some producers (Redpanda) are known to write the two ints little-endian.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_HEADER_SIZE = 16
# xerial's default block size, and what Kafka's Java client and kafka-python use.
_XERIAL_BLOCK_SIZE = 32 * 1024
_BLOCK_LENGTH = struct.Struct(">i")


def compress(codec: Compression | int, data: Buffer) -> bytes:
    """Compress a records section with ``codec`` in the form Kafka clients accept."""
    codec = _codec(codec)
    if codec is Compression.NONE:
        return bytes(data)
    if codec is Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec is Compression.SNAPPY:
        return _snappy_xerial_encode(data)
    if codec is Compression.LZ4:
        # cramjam's one-shot lz4.compress links blocks; Kafka needs independent ones.
        compressor = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
        compressor.compress(data if isinstance(data, bytes) else bytes(data))  # bytes only
        return bytes(compressor.finish())
    return bytes(cramjam.zstd.compress(data))


def decompress(codec: Compression | int, data: Buffer) -> bytes:
    """Decompress a records section; ``CorruptRecordError`` if it is not valid ``codec``."""
    codec = _codec(codec)
    if codec is Compression.NONE:
        return bytes(data)
    try:
        if codec is Compression.GZIP:
            return bytes(cramjam.gzip.decompress(data))
        if codec is Compression.SNAPPY:
            return _snappy_decode(data)
        if codec is Compression.LZ4:
            return bytes(cramjam.lz4.decompress(data))
        return bytes(cramjam.zstd.decompress(data))
    except cramjam.DecompressionError as exc:
        raise CorruptRecordError(
            f"{codec.name.lower()} payload does not decompress: {exc}"
        ) from exc


def _codec(codec: Compression | int) -> Compression:
    try:
        return Compression(codec)
    except ValueError:
        raise UnsupportedCompressionError(f"compression type {codec} is not supported") from None


def _snappy_xerial_encode(data: Buffer) -> bytes:
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    parts = [_XERIAL_HEADER]
    for start in range(0, len(view), _XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK_SIZE]))
        parts.append(_BLOCK_LENGTH.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decode(data: Buffer) -> bytes:
    view = memoryview(data).cast("B")
    if len(view) < _XERIAL_HEADER_SIZE or view[: len(_XERIAL_MAGIC)] != _XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(view))
    parts = []
    pos = _XERIAL_HEADER_SIZE
    end = len(view)
    while pos < end:
        if end - pos < _BLOCK_LENGTH.size:
            raise CorruptRecordError(f"snappy xerial stream ends inside a block length at {pos}")
        (length,) = _BLOCK_LENGTH.unpack_from(view, pos)
        pos += _BLOCK_LENGTH.size
        if length < 0 or length > end - pos:
            raise CorruptRecordError(
                f"snappy xerial block of {length} bytes at {pos} overruns the payload"
            )
        parts.append(bytes(cramjam.snappy.decompress_raw(view[pos : pos + length])))
        pos += length
    return b"".join(parts)
