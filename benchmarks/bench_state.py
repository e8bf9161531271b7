"""Table state throughput: changelog recovery, commits, and raw store operations.

Run: ``.venv/bin/python benchmarks/bench_state.py [--records 1000000] [--dir DIR]
[--transport memory|file] [--repeat 1]``

Rows:

* ``recovery -> rocksdb``: a one-partition changelog of N records (20-byte keys, 8-byte
  values, N/2 distinct keys so half the records overwrite) is produced through the
  embedded transport (``memory://`` on tmpfs, or ``file://`` under ``--dir``), then
  ``recover_partition`` replays it into an empty RocksDB store partition under ``--dir``
  (default: the system temporary directory, i.e. the disk). Timed from the call to its
  return; records/s is N over that time. The issue's goal: >= 500,000 records/s.
* ``recovery -> memory``: the same replay into a memory store partition.
* ``commit (checkpoint)``: N/10 keys changed in one transaction, then
  ``Checkpoint.commit``: changelog sends, acknowledgements, one store write. Keys/s.
* ``rocksdb put (batch 1000)`` / ``get`` / ``scan``: ``write`` of 1,000-key batches, point
  ``get`` of every key, one full ``items`` scan; N/2 keys, us per key and keys/s.
* ``memory put (batch 1000)`` / ``get`` / ``scan``: the same on the memory store.

Figures are the median over ``--repeat`` runs. Machine info is printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from machine import machine  # noqa: E402

from streamlog.state.checkpoint import Checkpoint  # noqa: E402
from streamlog.state.memory_store import MemoryStorePartition  # noqa: E402
from streamlog.state.recovery import recover_partition  # noqa: E402
from streamlog.state.rocksdb_store import RocksDBStorePartition  # noqa: E402
from streamlog.state.stores import StorePartition  # noqa: E402
from streamlog.transport import TopicPartition, open_transport  # noqa: E402

CHANGELOG = TopicPartition("bench-table-changelog", 0)
GOAL = 500_000


def key_of(i: int) -> bytes:
    return b"user-%015d" % i  # 20 bytes


async def fill_changelog(transport: Any, records: int) -> None:
    await transport.admin().create_topic(CHANGELOG.topic, 1, {"cleanup.policy": "compact"})
    producer = transport.producer(linger_ms=50)
    distinct = max(1, records // 2)
    send = producer.send
    for i in range(records):
        await send(
            CHANGELOG.topic, b"%08d" % (i % 100_000_000), key=key_of(i % distinct), partition=0
        )
    await producer.flush()


async def time_recovery(transport: Any, make: Callable[[], StorePartition]) -> tuple[float, int]:
    store = make()
    try:
        started = time.perf_counter()
        result = await recover_partition(transport.consumer(), store, CHANGELOG)
        elapsed = time.perf_counter() - started
        return elapsed, result.records
    finally:
        store.destroy()


async def time_commit(transport: Any, make: Callable[[], StorePartition], keys: int) -> float:
    store = make()
    try:
        commit_topic = TopicPartition("bench-commit-changelog", 0)

        async def no_offsets(offsets: Any) -> None:
            return None

        checkpoint = Checkpoint(transport.producer(linger_ms=50), no_offsets)
        tx = checkpoint.transaction(store, commit_topic)
        started = time.perf_counter()
        for i in range(keys):
            tx.set(key_of(i), b"%08d" % i)
        await checkpoint.commit({})
        return time.perf_counter() - started
    finally:
        store.destroy()


def time_store_ops(store: StorePartition, keys: int) -> tuple[float, float, float]:
    """Seconds for: batched puts of ``keys`` keys, a get of each, a full scan."""
    batches = [
        {key_of(i): b"%08d" % i for i in range(first, min(keys, first + 1000))}
        for first in range(0, keys, 1000)
    ]
    started = time.perf_counter()
    for offset, batch in enumerate(batches):
        store.write(batch, offset)
    put = time.perf_counter() - started
    get = store.get
    wanted = [key_of(i) for i in range(keys)]
    started = time.perf_counter()
    for key in wanted:
        get(key)
    got = time.perf_counter() - started
    started = time.perf_counter()
    count = sum(1 for _ in store.items())
    scanned = time.perf_counter() - started
    assert count == keys, (count, keys)
    return put, got, scanned


def fmt_rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f} /s   {seconds * 1e6 / count:7.2f} us each"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--transport", choices=("memory", "file"), default="memory")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(machine())
    records = args.records
    work = tempfile.mkdtemp(prefix="bench-state-", dir=args.dir)
    counter = iter(range(1_000_000))

    def rocksdb() -> StorePartition:
        return RocksDBStorePartition(os.path.join(work, f"store-{next(counter)}"))

    url = "memory://" if args.transport == "memory" else f"file://{os.path.join(work, 'log')}"
    transport = open_transport(url)
    await transport.start()
    failed = False
    try:
        started = time.perf_counter()
        await fill_changelog(transport, records)
        print(
            f"changelog: {records:,} records (20-byte keys, 8-byte values) on {url}, "
            f"produced in {time.perf_counter() - started:.2f} s; stores under {work}"
        )
        rows: list[tuple[str, int, float]] = []
        for name, make in (("rocksdb", rocksdb), ("memory", MemoryStorePartition)):
            times = []
            for _ in range(args.repeat):
                elapsed, replayed = await time_recovery(transport, make)
                assert replayed == records, (replayed, records)
                times.append(elapsed)
            rows.append((f"recovery -> {name}", records, statistics.median(times)))
        commit_keys = max(1, records // 10)
        times = [await time_commit(transport, rocksdb, commit_keys) for _ in range(args.repeat)]
        rows.append(("commit (checkpoint) -> rocksdb", commit_keys, statistics.median(times)))
        keys = max(1000, records // 2)
        for name, make in (("rocksdb", rocksdb), ("memory", MemoryStorePartition)):
            results = []
            for _ in range(args.repeat):
                store = make()
                try:
                    results.append(time_store_ops(store, keys))
                finally:
                    store.destroy()
            put, got, scanned = (statistics.median(r[i] for r in results) for i in range(3))
            rows.append((f"{name} put (batch 1000)", keys, put))
            rows.append((f"{name} get", keys, got))
            rows.append((f"{name} scan", keys, scanned))
        print()
        for label, count, seconds in rows:
            print(f"{label:<32} {count:>10,}  {seconds:7.3f} s  {fmt_rate(count, seconds)}")
        rate = records / rows[0][2]
        verdict = "meets" if rate >= GOAL else "MISSES"
        print(f"\nrecovery into RocksDB: {rate:,.0f} records/s ({verdict} the {GOAL:,}/s goal)")
    except Exception as exc:  # a benchmark reports and exits non-zero
        print(f"failed: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        await transport.close()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
