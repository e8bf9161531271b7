"""Helpers shared by the log engine tests: building batches and reading them back."""

from __future__ import annotations

from collections.abc import Iterable

from streamlog.log.partition_log import PartitionLog
from streamlog.log.records import Record, decode_batch, encode_batch

__all__ = ["make_batch", "read_all_records", "records_in"]


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
