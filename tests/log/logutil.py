"""Helpers shared by the log engine tests: building batches and reading them back."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from crc32c import crc32c

from streamlog.log.partition_log import PartitionLog
from streamlog.log.records import Record, decode_batch, encode_batch

__all__ = [
    "append_to_segment_file",
    "bomb_batch",
    "make_batch",
    "read_all_records",
    "records_in",
    "undecodable_batch",
    "zstd_bomb",
]


def make_batch(
    n: int,
    *,
    start: int = 0,
    ts: int = 1_000,
    value_size: int = 100,
    keys: Iterable[bytes | None] | None = None,
    values: Iterable[bytes | None] | None = None,
) -> bytes:
    """A batch of ``n`` records keyed ``k<i>`` (or ``keys``), timestamps ``ts + i``."""
    keys = list(keys) if keys is not None else [f"k{start + i}".encode() for i in range(n)]
    if values is None:
        values = [f"v{start + i}".encode().ljust(value_size, b".") for i in range(n)]
    entries = [(k, v, ts + i, ()) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
    return encode_batch(entries)


def records_in(data: bytes) -> list[Record]:
    out: list[Record] = []
    pos = 0
    while pos + 61 <= len(data):
        size = int.from_bytes(data[pos + 8 : pos + 12], "big") + 12
        if pos + size > len(data):
            break
        out.extend(decode_batch(data[pos : pos + size]).records)
        pos += size
    return out


def read_all_records(plog: PartitionLog, start: int | None = None) -> list[Record]:
    """Every record from ``start`` (default: log start) to the end, by repeated reads."""
    offset = plog.log_start_offset if start is None else start
    out: list[Record] = []
    while offset < plog.log_end_offset:
        result = plog.read(offset, 64 * 1024)
        if not result.records:
            break
        got = [r for r in records_in(result.records) if r.offset >= offset]
        if not got:
            # The batch read holds no record at or past ``offset`` (compacted away).
            last = int.from_bytes(result.records[:8], "big") + int.from_bytes(
                result.records[23:27], "big"
            )
            offset = max(offset, last + 1)
            continue
        out.extend(got)
        offset = got[-1].offset + 1
    return out


def undecodable_batch(records: int = 1) -> bytes:
    """A batch whose header and CRC are right but whose records do not decode.

    What a client could once produce into any topic: storage checks only the framing, so
    the damage shows when something decodes the records (offset loading, compaction).
    """
    batch = bytearray(make_batch(records))
    batch[61:] = b"\xff" * (len(batch) - 61)  # every varint too long
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    return bytes(batch)


def append_to_segment_file(directory: str, batch: bytes) -> int:
    """Append ``batch`` straight to the last ``.log`` file of a closed partition directory,
    at the next offset (the base offset is outside the CRC); returns that offset."""
    name = sorted(n for n in os.listdir(directory) if n.endswith(".log"))[-1]
    path = os.path.join(directory, name)
    with open(path, "rb") as f:
        data = f.read()
    next_offset, pos = int(name[:20]), 0
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        (delta,) = struct.unpack_from(">i", data, pos + 23)
        next_offset = base + delta + 1
        pos += length + 12
    with open(path, "ab") as f:
        f.write(struct.pack(">q", next_offset) + batch[8:])
    return next_offset


def zstd_bomb(inflated: int) -> bytes:
    """A zstd frame of ``inflated`` zero bytes made of RLE blocks: 4 bytes per 128 KiB,
    so 16 GiB take 512 KiB. Built by hand (RFC 8878): compressing that much would take
    the memory and time the bomb is meant to cost its reader."""
    block = 128 * 1024
    if inflated % block:
        raise ValueError("inflated must be a multiple of 128 KiB")
    count = inflated // block
    # Frame header: magic, descriptor 0 (no content size, no checksum, no dictionary,
    # not single-segment), window descriptor 0x38 (2**17 = 128 KiB).
    out = bytearray(b"\x28\xb5\x2f\xfd\x00\x38")
    rle = (block << 3) | (1 << 1)  # block size, type 1 (RLE), not last
    middle = rle.to_bytes(3, "little") + b"\x00"
    out += middle * (count - 1)
    out += (rle | 1).to_bytes(3, "little") + b"\x00"  # the last block
    return bytes(out)


def bomb_batch(inflated: int, *, base_offset: int = 0, timestamp: int = 1_000) -> bytes:
    """A CRC-valid zstd batch declaring one record whose payload inflates to ``inflated``
    bytes of zeros (not a parseable record: no reader should get that far)."""
    import struct

    from crc32c import crc32c

    payload = zstd_bomb(inflated)
    head = struct.pack(
        ">qiibIhiqqqhii",
        base_offset,
        49 + len(payload),
        -1,
        2,
        0,
        4,  # attributes: zstd
        0,
        timestamp,
        timestamp,
        -1,
        -1,
        -1,
        1,
    )
    buf = bytearray(head + payload)
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    return bytes(buf)
