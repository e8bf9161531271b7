"""Record batch codec throughput: streamlog's C and pure-Python kernels vs kafka-python.

Run: ``.venv/bin/python benchmarks/bench_codec.py [--compression none|gzip|snappy|lz4|zstd]``

Each case encodes (or decodes) one batch of 1,000 records with 10-byte keys, 100-byte
values and no headers, repeated for about a second; the best of five rounds is reported
(the least disturbed by other work on the machine) as records/s and MB/s of encoded batch.
Decoding includes CRC validation and building every record object, as a consumer needs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from machine import machine  # benchmarks/ is on sys.path when a script runs

from streamlog.log import records
from streamlog.log.compression import Compression

__all__ = ["main"]

RECORDS = 1_000
KEY_SIZE = 10
VALUE_SIZE = 100
ROUNDS = 5
ROUND_SECONDS = 1.0


def make_entries() -> list[tuple[bytes, bytes, int, tuple[()]]]:
    base = 1_700_000_000_000
    return [
        (
            f"key-{i:06d}".encode()[:KEY_SIZE].ljust(KEY_SIZE, b"."),
            (f"value-{i}-".encode() * 20)[:VALUE_SIZE],
            base + i,
            (),
        )
        for i in range(RECORDS)
    ]


def best_rate(fn: Callable[[], object]) -> float:
    """Best of ROUNDS rounds of calls per second."""
    fn()  # warm up
    best = 0.0
    for _ in range(ROUNDS):
        calls = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < ROUND_SECONDS:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
        best = max(best, calls / elapsed)
    return best


def kafka_python_encode(entries: list, codec: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for i, (key, value, ts, headers) in enumerate(entries):
        builder.append(i, ts, key, value, list(headers))
    return bytes(builder.build())


def kafka_python_decode(batch: bytes) -> list:
    reader = DefaultRecordBatch(batch)
    if not reader.validate_crc():
        raise RuntimeError("CRC mismatch")
    return list(reader)


def report(name: str, op: str, batches_per_s: float, batch_size: int) -> None:
    rate = batches_per_s * RECORDS
    mb = batches_per_s * batch_size / 1e6
    print(f"  {name:<14} {op:<7} {rate:>12,.0f} records/s {mb:>9.1f} MB/s")


def bench_streamlog(
    name: str, impl: records.RecordCodec, entries: list, codec: Compression
) -> None:
    batch = impl.encode_batch(entries, compression=codec)
    decoded = impl.decode_batch(batch).records
    assert len(decoded) == RECORDS and decoded[-1].value == entries[-1][1]
    encode_rate = best_rate(lambda: impl.encode_batch(entries, compression=codec))
    report(name, "encode", encode_rate, len(batch))
    report(name, "decode", best_rate(lambda: impl.decode_batch(batch)), len(batch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compression", default="none", choices=[c.name.lower() for c in Compression]
    )
    args = parser.parse_args()
    codec = Compression[args.compression.upper()]
    entries = make_entries()

    print(f"machine: {machine()}")
    print(
        f"batch: {RECORDS} records, {KEY_SIZE}-byte keys, {VALUE_SIZE}-byte values, "
        f"compression {codec.name.lower()}; best of {ROUNDS} rounds of {ROUND_SECONDS:.0f} s"
    )
    print(f"records.IMPLEMENTATION = {records.IMPLEMENTATION!r}")

    for name, impl in (("streamlog-c", records.C_CODEC), ("streamlog-py", records.PYTHON_CODEC)):
        if impl is None:
            print(f"  {name:<14} (not built)")
        else:
            bench_streamlog(name, impl, entries, codec)

    try:
        batch = kafka_python_encode(entries, int(codec))
    except Exception as exc:  # kafka-python lacks the codec's library
        print(f"  {'kafka-python':<14} ({exc})")
        return
    assert len(kafka_python_decode(batch)) == RECORDS
    report(
        "kafka-python",
        "encode",
        best_rate(lambda: kafka_python_encode(entries, int(codec))),
        len(batch),
    )
    report("kafka-python", "decode", best_rate(lambda: kafka_python_decode(batch)), len(batch))


if __name__ == "__main__":
    main()
