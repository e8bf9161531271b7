"""Embedded transactions: what a transaction per commit costs a producer and a consumer.

Run: ``.venv/bin/python benchmarks/bench_embedded_txn.py [--messages 500000]
[--per-txn 1000,10000] [--repeat 3] [--dir DIR]``

For ``memory://`` and ``file://`` (on ``--dir``, default the system temporary
directory), N unkeyed 100-byte values go to a fresh one-partition topic:

* ``plain``: the plain embedded producer, a send loop and one ``flush``;
* ``txn/K``: a transactional producer committing every K records (begin, K sends, one
  ``send_offsets_to_transaction`` of one offset, commit): N/K transactions, each ending
  with a commit marker on the partition and the offset committed.

Then the ``txn/K`` topic is read from offset 0 with ``read_uncommitted`` and with
``read_committed`` (poll up to 10,000 records until all N arrived). Figures: records/s,
the median over ``--repeat`` runs, and each row's rate over the ``plain`` row's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid

from machine import machine  # benchmarks/ is on sys.path when a script runs

from streamlog.transport.embedded import EmbeddedTransport
from streamlog.transport.types import TopicPartition

VALUE = b"x" * 100
POLL_RECORDS = 10_000


async def produce(transport: EmbeddedTransport, topic: str, n: int, per_txn: int) -> float:
    """Records/s of one run; ``per_txn`` 0: the plain producer."""
    await transport.admin().create_topic(topic, 1)
    if not per_txn:
        producer = transport.producer()
        start = time.perf_counter()
        for _ in range(n):
            await producer.send(topic, VALUE)
        await producer.flush()
        elapsed = time.perf_counter() - start
        await producer.close()
        return n / elapsed
    producer = transport.producer(transactional_id=f"bench-{uuid.uuid4().hex[:8]}")
    await producer.init_transactions()
    source = TopicPartition("bench-source", 0)
    start = time.perf_counter()
    sent = 0
    while sent < n:
        producer.begin_transaction()
        batch = min(per_txn, n - sent)
        for _ in range(batch):
            await producer.send(topic, VALUE)
        sent += batch
        await producer.send_offsets_to_transaction({source: sent}, "bench-group")
        await producer.commit_transaction()
    elapsed = time.perf_counter() - start
    await producer.close()
    return n / elapsed


async def consume(transport: EmbeddedTransport, topic: str, n: int, level: str) -> float:
    consumer = transport.consumer(isolation_level=level)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    start = time.perf_counter()
    seen = 0
    while seen < n:
        batches = await consumer.getmany(timeout_ms=1000, max_records=POLL_RECORDS)
        if not batches:
            raise RuntimeError(f"{level}: {seen} of {n} records, then nothing")
        seen += sum(len(records) for records in batches.values())
    elapsed = time.perf_counter() - start
    await consumer.close()
    if seen != n:
        raise RuntimeError(f"{level}: {seen} records, expected {n}")
    return n / elapsed


async def run_url(url: str, n: int, sizes: list[int], repeat: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {}
    async with EmbeddedTransport(url) as transport:
        for per_txn in [0, *sizes]:
            name = "plain" if not per_txn else f"txn/{per_txn}"
            for _ in range(repeat):
                topic = f"bench-{uuid.uuid4().hex[:8]}"
                rates.setdefault(f"{name} produce", []).append(
                    await produce(transport, topic, n, per_txn)
                )
                if per_txn:
                    for level in ("read_uncommitted", "read_committed"):
                        rates.setdefault(f"{name} consume {level}", []).append(
                            await consume(transport, topic, n, level)
                        )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--per-txn", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.per_txn.split(",") if s.strip()]
    print(machine())
    print(f"{args.messages:,} records of {len(VALUE)} bytes, median of {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="bench-txn-", dir=args.dir) as directory:
        for url in ("memory://", f"file://{directory}/log"):
            rates = asyncio.run(run_url(url, args.messages, sizes, args.repeat))
            plain = statistics.median(rates["plain produce"])
            print(f"\n{url.split('/')[0]}//")
            for name, values in rates.items():
                rate = statistics.median(values)
                print(f"  {name:34} {rate:>12,.0f}/s  {rate / plain:5.2f}x plain produce")


if __name__ == "__main__":
    main()
