"""Connector runner benchmark: what the runners themselves cost, with connectors that
cost nothing (a source that makes records in memory, a sink that drops them), in one
worker over a file:// log.

Run: ``.venv/bin/python benchmarks/bench_connect_runner.py [--records 200000] [--value-bytes 100]``

Figures, each the median of ``--repeat`` runs:

* **source**: records/s and MB/s (values) from the first ``poll`` until the runner's last
  checkpoint is acknowledged: encoding with the topic's JSON codec, placing by key,
  producing, awaiting acknowledgements, checkpoints;
* **sink**: records/s and MB/s from the first ``write`` until the sink was flushed through
  the last record: the agent's take, decoding, SinkRecords, write, the commit's flush;
* **source to sink**: both in one app, from the source's first ``poll`` until the sink
  flushed the last record (commits every 0.2 s).

Records are dicts (``{"id": n, "pad": "x" * k}``) keyed by ``str(n % 1000)``, 4 partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from machine import machine  # noqa: E402

import streamlog  # noqa: E402
from streamlog.connect import SinkRecord, SourceRecord  # noqa: E402

CHUNK = 1000


class MadeSource:
    """``total`` records made in memory, ``CHUNK`` per poll, read once."""

    def __init__(self, name: str, total: int, value_bytes: int) -> None:
        self.name = name
        self.total = total
        self.pad = "x" * max(0, value_bytes - 20)
        self.next = 0
        self.began = 0.0  # perf_counter at the first poll

    async def start(self, position: Any) -> None:
        self.next = int(position or 0)

    async def poll(self) -> list[SourceRecord]:
        if not self.began:
            self.began = time.perf_counter()
        if self.next >= self.total:
            raise StopAsyncIteration
        end = min(self.next + CHUNK, self.total)
        pad = self.pad
        out = [
            SourceRecord(value={"id": n, "pad": pad}, key=str(n % 1000), position=n + 1)
            for n in range(self.next, end)
        ]
        self.next = end
        return out

    async def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "source", "records": self.next, "errors": 0}


class DropSink:
    """Takes records and forgets them; counts what flushes covered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.taken = 0
        self.flushed = 0
        self.began = 0.0  # perf_counter at the first write

    async def start(self) -> None:
        pass

    async def write(self, records: list[SinkRecord]) -> None:
        if not self.began:
            self.began = time.perf_counter()
        self.taken += len(records)

    async def flush(self) -> None:
        self.flushed = self.taken

    async def discard(self) -> None:
        self.taken = self.flushed

    async def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "sink", "records": self.taken, "errors": 0}


async def _wait(predicate: Any, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark run did not finish")
        await asyncio.sleep(0.002)


def _app(directory: str, app_id: str) -> streamlog.App:
    app = streamlog.App(app_id, broker=f"file://{directory}/log", topic_partitions=4)
    app.topic("bench", partitions=4)
    return app


async def bench_source(directory: str, records: int, value_bytes: int) -> float:
    app = _app(directory, "bench-source")
    source = MadeSource("made", records, value_bytes)
    app.source(source, topic="bench")
    async with app:
        runner = app.connectors.sources["made"].runner
        await _wait(lambda: runner is not None and runner.state == "finished")
        return time.perf_counter() - source.began


async def bench_sink(directory: str, records: int, value_bytes: int) -> float:
    filler = _app(directory, "bench-fill")
    async with filler:
        pad = "x" * max(0, value_bytes - 20)
        producer = filler.producer
        for start in range(0, records, CHUNK):
            values = [
                json.dumps({"id": n, "pad": pad}).encode()
                for n in range(start, min(start + CHUNK, records))
            ]
            await producer.send_many("bench", values)
        await producer.flush()
    app = _app(directory, "bench-sink")
    sink = DropSink("drop")
    app.sink("bench", sink)
    app.conf.broker_commit_interval = 0.2
    async with app:
        await _wait(lambda: sink.flushed >= records)
        return time.perf_counter() - sink.began


async def bench_pipe(directory: str, records: int, value_bytes: int) -> float:
    app = _app(directory, "bench-pipe")
    app.conf.broker_commit_interval = 0.2
    sink = DropSink("drop")
    source = MadeSource("made", records, value_bytes)
    app.source(source, topic="bench")
    app.sink("bench", sink)
    async with app:
        await _wait(lambda: sink.flushed >= records)
        return time.perf_counter() - source.began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    value_mb = args.records * args.value_bytes / 1e6
    for label, bench in (
        ("source", bench_source),
        ("sink", bench_sink),
        ("source to sink", bench_pipe),
    ):
        times = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-connect-") as directory:
                times.append(asyncio.run(bench(directory, args.records, args.value_bytes)))
        took = statistics.median(times)
        print(
            f"{label:15s} {args.records:>9,d} records of ~{args.value_bytes} B: "
            f"{args.records / took:>10,.0f} records/s  {value_mb / took:6.1f} MB/s  "
            f"(median of {args.repeat}: {took:.2f} s)"
        )


if __name__ == "__main__":
    main()
