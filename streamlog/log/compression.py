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

Compression uses ``cramjam``. Decompression is bounded: ``decompress`` is given the most
bytes its caller accepts and stops as soon as the output would pass it, having produced
at most that much (streaming decoders: stdlib ``zlib`` for gzip, ``zstandard`` and ``lz4``
for theirs; snappy declares each block's length up front, which is checked before the
block is decoded). Nothing is allocated from a size the payload declares, so a small
batch that claims or inflates to gigabytes costs at most the bound. Failures raise
``CorruptRecordError``: ``DecompressionLimitError`` for a payload that inflates past the
bound, the base class for one that does not decompress (a batch whose CRC passed but
whose payload is not valid ``codec`` was written wrong); callers treat both like any
other undecodable batch, and the produce path answers the first as too large.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

import cramjam
import lz4.frame
import zstandard

from streamlog.log.errors import (
    CorruptRecordError,
    DecompressionLimitError,
    UnsupportedCompressionError,
)

__all__ = [
    "Compression",
    "DEFAULT_DECOMPRESSED_LIMIT",
    "UnsupportedCompressionError",
    "compress",
    "decompress",
]

DEFAULT_DECOMPRESSED_LIMIT = 64 * 1024 * 1024
"""The bound of a decompression whose caller names none (readers of stored batches and
clients, which do not know the topic's ``max.message.bytes``): 64 MiB, 64 times Kafka's
default ``max.message.bytes``."""

# Output is produced in steps of at most this much, so that a small payload never costs
# an allocation of the whole bound.
_STEP = 1 << 20
# zstd frames declare the window their decoder must keep. The format's recommended
# minimum support is 8 MiB; a larger window is allowed only as far as the bound needs
# (a frame never needs a window larger than its content), up to zstd's own default cap.
_ZSTD_MIN_WINDOW = 8 << 20
_ZSTD_MAX_WINDOW = 1 << 27

Buffer = bytes | bytearray | memoryview


class Compression(IntEnum):
    """Kafka's compression type ids (attribute bits 0-2 of a batch)."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


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


def decompress(
    codec: Compression | int, data: Buffer, limit: int = DEFAULT_DECOMPRESSED_LIMIT
) -> bytes:
    """Decompress a records section of at most ``limit`` bytes once decompressed.

    ``DecompressionLimitError`` as soon as the output would pass ``limit`` (having made
    at most ``limit + 1`` bytes of it); ``CorruptRecordError`` if ``data`` is not valid
    ``codec``; ``UnsupportedCompressionError`` for an id Kafka does not define.
    """
    codec = _codec(codec)
    if codec is Compression.NONE:
        if len(data) > limit:
            raise DecompressionLimitError(f"{len(data)} bytes of records exceed {limit}")
        return bytes(data)
    try:
        if codec is Compression.GZIP:
            return _gzip_decode(data, limit)
        if codec is Compression.SNAPPY:
            return _snappy_decode(data, limit)
        if codec is Compression.LZ4:
            return _lz4_decode(data, limit)
        return _zstd_decode(data, limit)
    except (cramjam.DecompressionError, zlib.error, zstandard.ZstdError, RuntimeError) as exc:
        # lz4.frame reports a bad frame as RuntimeError.
        raise CorruptRecordError(
            f"{codec.name.lower()} payload does not decompress: {exc}"
        ) from exc


def _too_large(codec: str, limit: int) -> DecompressionLimitError:
    return DecompressionLimitError(f"{codec} payload inflates past {limit} bytes")


def _join(parts: list[bytes]) -> bytes:
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _gzip_decode(data: Buffer, limit: int) -> bytes:
    """One or more concatenated gzip members, as Kafka's readers accept."""
    parts: list[bytes] = []
    size = 0
    rest: Buffer = data
    while True:
        decoder = zlib.decompressobj(wbits=31)
        while not decoder.eof:
            # max_length bounds what zlib makes; input it did not reach waits in
            # unconsumed_tail, output it holds back comes with the next call.
            chunk = decoder.decompress(rest, min(limit + 1 - size, _STEP))
            rest = decoder.unconsumed_tail
            if not chunk:
                break  # the input ended inside the member
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _too_large("gzip", limit)
        if not decoder.eof:
            raise CorruptRecordError("gzip payload ends inside a member")
        rest = decoder.unused_data
        if not rest:
            return _join(parts) if parts else b""


def _zstd_decode(data: Buffer, limit: int) -> bytes:
    """One or more concatenated zstd frames; never allocates a size a frame declares."""
    window = _ZSTD_MIN_WINDOW
    while window < limit and window < _ZSTD_MAX_WINDOW:
        window <<= 1
    reader = zstandard.ZstdDecompressor(max_window_size=window).stream_reader(
        data, read_across_frames=True
    )
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = reader.read(min(limit + 1 - size, _STEP))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large("zstd", limit)
    # The stream reader ends quietly where its input does, even inside a frame.
    problem = _zstd_frames_problem(memoryview(data).cast("B"))
    if problem is not None:
        raise CorruptRecordError(f"zstd payload {problem}")
    return _join(parts) if parts else b""


_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE = range(0x184D2A50, 0x184D2A60)
_ZSTD_DICT_ID_SIZE = (0, 1, 2, 4)
_ZSTD_BLOCK_RLE = 1


def _zstd_frames_problem(view: memoryview) -> str | None:
    """Why ``view`` is not a run of whole zstd frames, or None if it is.

    Walks the frame and block headers only (RFC 8878 section 3.1), no decoding.
    """
    pos = 0
    end = len(view)
    if not end:
        return "is empty"
    while pos < end:
        if end - pos < 5:
            return f"ends inside a frame header at {pos}"
        magic = int.from_bytes(view[pos : pos + 4], "little")
        if magic in _ZSTD_SKIPPABLE:
            if end - pos < 8:
                return f"ends inside a skippable frame header at {pos}"
            pos += 8 + int.from_bytes(view[pos + 4 : pos + 8], "little")
            continue
        if magic != _ZSTD_MAGIC:
            return f"has no frame magic at {pos}"
        descriptor = view[pos + 4]
        single_segment = (descriptor >> 5) & 1
        content_size_flag = descriptor >> 6
        content_size_size = (single_segment, 2, 4, 8)[content_size_flag]
        pos += (
            5
            + (0 if single_segment else 1)
            + _ZSTD_DICT_ID_SIZE[descriptor & 3]
            + content_size_size
        )
        last = 0
        while not last:
            if end - pos < 3:
                return f"ends inside a block header at {pos}"
            block = int.from_bytes(view[pos : pos + 3], "little")
            last = block & 1
            pos += 3 + (1 if (block >> 1) & 3 == _ZSTD_BLOCK_RLE else block >> 3)
        if descriptor & 0x04:  # content checksum
            pos += 4
    if pos != end:
        return "ends inside a frame"
    return None


def _lz4_decode(data: Buffer, limit: int) -> bytes:
    """One or more concatenated LZ4 frames."""
    parts: list[bytes] = []
    size = 0
    rest: Buffer = data
    while True:
        decoder = lz4.frame.LZ4FrameDecompressor()
        while not decoder.eof:
            chunk = decoder.decompress(rest, max_length=min(limit + 1 - size, _STEP))
            rest = b""  # the decoder keeps what it has not used yet
            if not chunk:
                break  # the input ended inside the frame
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _too_large("lz4", limit)
        if not decoder.eof:
            raise CorruptRecordError("lz4 payload ends inside a frame")
        rest = decoder.unused_data
        if not rest:
            return _join(parts) if parts else b""


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


def _snappy_block(block: memoryview, limit: int) -> bytes:
    """A raw snappy block, whose first varint is its exact decompressed length: checked
    against ``limit`` before anything is allocated."""
    if cramjam.snappy.decompress_raw_len(block) > limit:
        raise _too_large("snappy", limit)
    return bytes(cramjam.snappy.decompress_raw(block))


def _snappy_decode(data: Buffer, limit: int) -> bytes:
    view = memoryview(data).cast("B")
    if len(view) < _XERIAL_HEADER_SIZE or view[: len(_XERIAL_MAGIC)] != _XERIAL_MAGIC:
        return _snappy_block(view, limit)
    parts = []
    size = 0
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
        block = _snappy_block(view[pos : pos + length], limit - size)
        parts.append(block)
        size += len(block)
        pos += length
    return b"".join(parts)
