"""File connectors' throughput, the connector alone (no log): FileSource reading a file
once, FileSink writing and flushing, for JSON lines and CSV.

Run: ``.venv/bin/python benchmarks/bench_connect_files.py [--records 200000] [--worker]``

Each record is an object of five fields (~100 bytes as a JSON line). The source case reads
a file written beforehand (in the page cache) through ``poll`` to its end, decoding every
line and building its ``SourceRecord`` and position. The sink case hands the records in
batches of 1,000 (as the runner does) and flushes (fdatasync + state file) every 10,000,
about what one commit interval brings at these rates. The best of three rounds is
reported as records/s and MB/s of file bytes.

``--worker`` adds the pipeline through one app (one process, the bundled ``file://`` log,
3 partitions): a JSON lines file read once by ``app.source`` into a topic, the topic
written by ``app.sink`` to a file; records/s from the start of the app to the sink's
last flush, one round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable

from machine import machine  # benchmarks/ is on sys.path when a script runs

import streamlog
from streamlog.connect import SinkRecord
from streamlog.connect.files import FileSink, FileSource

__all__ = ["main"]

ROUNDS = 3
BATCH = 1_000
FLUSH_EVERY = 10_000


def values(count: int) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "customer": f"c-{i % 977:04d}",
            "amount": i * 0.25,
            "sku": "SKU-12345",
            "ok": True,
        }
        for i in range(count)
    ]


async def read_once(path: str, fmt: str) -> int:
    source = FileSource(path, format=fmt)
    await source.start(None)
    count = 0
    try:
        while True:
            count += len(await source.poll())
    except StopAsyncIteration:
        pass
    await source.close()
    return count


async def write_all(path: str, fmt: str, records: list[SinkRecord]) -> None:
    sink = FileSink(path, format=fmt, max_bytes=None)
    await sink.start()
    for i in range(0, len(records), BATCH):
        await sink.write(records[i : i + BATCH])
        if (i + BATCH) % FLUSH_EVERY == 0:
            await sink.flush()
    await sink.flush()
    await sink.close()


async def through_worker(work: str, source_path: str, count: int) -> float:
    """Seconds from the app's start until its sink has flushed ``count`` records."""
    app = streamlog.App(
        "bench-files", broker=f"file://{work}/log", topic_partitions=3, broker_commit_interval=0.5
    )
    app.topic("orders", value_serializer="json")
    app.source(FileSource(source_path, name="in"), topic="orders")
    sink = FileSink(os.path.join(work, "out", "orders.jsonl"), name="out", max_bytes=None)
    app.sink("orders", sink)
    started = time.perf_counter()
    async with app:
        while sink.status()["flushed"] < count:
            await asyncio.sleep(0.05)
    return time.perf_counter() - started


def best(fn: Callable[[], None], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--worker", action="store_true", help="also through one app")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    records = [SinkRecord("t", 0, i, 0, None, v) for i, v in enumerate(values(args.records))]
    work = tempfile.mkdtemp(prefix="bench-connect-files-")
    try:
        for fmt in ("jsonl", "csv"):
            directory = os.path.join(work, fmt)

            def sink_round(fmt: str = fmt, directory: str = directory) -> None:
                shutil.rmtree(directory, ignore_errors=True)
                os.makedirs(directory)
                asyncio.run(write_all(os.path.join(directory, f"out.{fmt}"), fmt, records))

            seconds = best(sink_round)
            path = os.path.join(directory, f"out.{fmt}")
            size = os.path.getsize(path)
            print(
                f"file sink   {fmt:5}: {args.records / seconds:>10,.0f} records/s "
                f"{size / seconds / 1e6:7.1f} MB/s  (flush every {FLUSH_EVERY:,})"
            )
            counts: list[int] = []

            def source_round(path: str = path, fmt: str = fmt, counts: list[int] = counts) -> None:
                counts.append(asyncio.run(read_once(path, fmt)))

            seconds = best(source_round)
            if counts[-1] != args.records:
                raise SystemExit(f"the source read {counts[-1]} records of {args.records}")
            print(
                f"file source {fmt:5}: {args.records / seconds:>10,.0f} records/s "
                f"{size / seconds / 1e6:7.1f} MB/s"
            )
        if args.worker:
            if not hasattr(streamlog.App, "source"):
                raise SystemExit("--worker needs app.source/app.sink (the connect runner)")
            path = os.path.join(work, "jsonl", "out.jsonl")
            size = os.path.getsize(path)
            seconds = asyncio.run(through_worker(os.path.join(work, "app"), path, args.records))
            print(
                f"file -> topic -> file in one app: {args.records / seconds:>10,.0f} records/s "
                f"{size / seconds / 1e6:7.1f} MB/s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
