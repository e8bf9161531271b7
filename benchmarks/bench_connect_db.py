"""Database connectors' benchmark: records/s and MB/s through the SQLite sink, the
PostgreSQL sink and the PostgreSQL source, each driven as the runner drives it.

Run: ``.venv/bin/python benchmarks/bench_connect_db.py [--records 200000] [--dsn DSN]``

First each connector alone, then (when the connector runner is there) through one
worker: an App on a ``file://`` log with ``app.sink``/``app.source``, the topic's records
JSON-decoded and flushed on the app's commits, or the rows produced and acknowledged.

Sinks: ``--records`` JSON records (about 60 bytes of value each; every key distinct, so each
is a row inserted, then the same records again, so each is a row updated) handed in
batches of 1,000 and flushed (one durable transaction: SQLite WAL with synchronous=FULL,
PostgreSQL COMMIT with its default synchronous_commit) every 10 batches, as a worker's
commit interval would; in document mode and in columns mode. Source: the same number of
rows read back from a PostgreSQL table in batches of 1,000. MB/s counts the records' JSON
values. Without ``--dsn`` a throwaway cluster of Debian's PostgreSQL is started in a temp
dir (``tests/connect/pgserver.py``) and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from machine import machine  # noqa: E402 - benchmarks/ is on sys.path when a script runs

from streamlog.connect.base import Sink, SinkRecord  # noqa: E402
from streamlog.connect.postgres import PostgresSink, PostgresSource  # noqa: E402
from streamlog.connect.sqlite import SqliteSink  # noqa: E402

BATCH = 1000
FLUSH_EVERY = 10


def make_records(count: int, generation: int) -> list[list[SinkRecord]]:
    batches = []
    for start in range(0, count, BATCH):
        batches.append(
            [
                SinkRecord(
                    "orders",
                    0,
                    generation * count + i,
                    0,
                    f"order-{i:08d}",
                    {
                        "qty": i % 17 + generation,
                        "item": f"item-{i % 1000}",
                        "price": round(i * 0.01, 2),
                        "paid": i % 2 == 0,
                    },
                )  # fmt: skip
                for i in range(start, min(start + BATCH, count))
            ]
        )
    return batches


def value_bytes(batches: list[list[SinkRecord]]) -> int:
    return sum(len(json.dumps(r.value)) for batch in batches for r in batch)


async def drive_sink(sink: Sink, batches: list[list[SinkRecord]]) -> float:
    start = time.perf_counter()
    for i, batch in enumerate(batches, 1):
        await sink.write(batch)
        if i % FLUSH_EVERY == 0 or i == len(batches):
            await sink.flush()
    return time.perf_counter() - start


def report(name: str, count: int, size: int, seconds: float) -> None:
    print(
        f"  {name:<34} {count / seconds:>10,.0f} records/s  {size / seconds / 1e6:6.1f} MB/s"
        f"  ({count:,} in {seconds:.2f} s)"
    )


async def bench_sinks(make: Any, label: str, count: int) -> None:
    for mode, columns in (
        ("documents", None),
        ("columns", {"qty": "integer", "item": "text", "price": "real", "paid": "boolean"}),
    ):
        sink = make(mode, columns)
        await sink.start()
        for generation, verb in ((0, "insert"), (1, "update")):
            batches = make_records(count, generation)
            seconds = await drive_sink(sink, batches)
            report(f"{label} sink, {mode}, {verb}", count, value_bytes(batches), seconds)
        await sink.close()


async def bench_source(dsn: str, count: int) -> float:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as db:
        await db.execute("DROP TABLE IF EXISTS bench_events")
        await db.execute(
            "CREATE TABLE bench_events (id bigserial PRIMARY KEY, item text, qty int,"
            " price numeric(10, 2), at timestamptz DEFAULT now())"
        )
        await db.execute(
            "INSERT INTO bench_events (item, qty, price) SELECT 'item-' || g %% 1000, g %% 17,"
            " g * 0.01 FROM generate_series(1, %s) g",
            (count,),
        )
    source = PostgresSource(dsn, "bench_events", "id", key="id", batch=BATCH, poll_interval=0.01)
    await source.start(None)
    read = size = 0
    start = time.perf_counter()
    while read < count:
        records = await source.poll()
        read += len(records)
        size += sum(len(json.dumps(r.value)) for r in records)
    seconds = time.perf_counter() - start
    await source.close()
    report("postgres source (poll by id)", read, size, seconds)
    return size / read


async def bench_app_sink(url: str, sink: Sink, count: int, label: str) -> None:
    """``count`` records produced to ``orders`` first, then an App whose only work is
    ``app.sink("orders", sink)``: records/s from the app's start to the last flush."""
    import streamlog
    from streamlog.transport import open_transport

    transport = open_transport(url)
    await transport.start()
    producer = transport.producer()
    size = 0
    for batch in make_records(count, 0):
        for r in batch:
            value = json.dumps(r.value).encode()
            size += len(value)
            await producer.send("orders", value, key=r.key.encode())
    await producer.flush()
    await producer.close()
    await transport.close()
    app = streamlog.App(f"bench-{label}", broker=url, broker_commit_interval=1.0)
    app.sink(app.topic("orders", value_serializer="json"), sink)
    start = time.perf_counter()
    async with app:
        while sink.status()["flushed"] < count:
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - start
    report(f"{label} sink in a worker", count, size, seconds)


async def bench_app_source(url: str, dsn: str, count: int, row_bytes: float) -> None:
    """The source table of ``bench_source`` read by an App into a topic: records/s from
    the app's start until the log acknowledged the last row."""
    import streamlog

    source = PostgresSource(dsn, "bench_events", "id", key="id", batch=BATCH, poll_interval=0.01)
    app = streamlog.App("bench-source", broker=url, broker_commit_interval=1.0)
    topic = app.topic("events", value_serializer="json")
    app.source(source, topic=topic)
    start = time.perf_counter()
    async with app:
        while source.status()["records"] < count:
            await asyncio.sleep(0.01)
        await app.producer.flush()
        seconds = time.perf_counter() - start
    report("postgres source in a worker", count, int(count * row_bytes), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000, help="records per write")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument("--dsn", help="an existing PostgreSQL database (default: a throwaway)")
    args = parser.parse_args()
    globals()["BATCH"] = args.batch  # the module's batch size, for every function here
    print(f"machine: {machine()}")
    print(f"{args.records:,} records, batches of {args.batch}, a flush every {FLUSH_EVERY} batches")

    with tempfile.TemporaryDirectory() as temp:
        n = iter(range(100))

        def sqlite(mode: str, columns: Any) -> Sink:
            return SqliteSink(Path(temp) / f"bench{next(n)}.db", "orders", columns=columns)

        if args.only != "postgres":
            asyncio.run(bench_sinks(sqlite, "sqlite", args.records))
    if args.only == "sqlite":
        return

    server = None
    dsn = args.dsn
    if dsn is None:
        from tests.connect.pgserver import PgServer, pg_bin_dir

        bin_dir = pg_bin_dir()
        if bin_dir is None:
            print("  postgres: no server binaries (apt-get install postgresql) and no --dsn")
            return
        server = PgServer(bin_dir)
        server.start()
        dsn = server.dsn
    try:

        def postgres(mode: str, columns: Any) -> Sink:
            return PostgresSink(dsn, f"bench_{mode}", columns=columns)

        asyncio.run(bench_sinks(postgres, "postgres", args.records))
        row_bytes = asyncio.run(bench_source(dsn, args.records))
        try:
            import streamlog.connect.sink_runner  # noqa: F401 - the runner is merged
        except ImportError:
            print("  (no connector runner: the in-worker figures need app.sink/app.source)")
            return
        with tempfile.TemporaryDirectory() as temp:
            asyncio.run(
                bench_app_sink(
                    f"file://{temp}/a",
                    SqliteSink(Path(temp) / "app.db", "orders"),
                    args.records,
                    "sqlite",
                )  # fmt: skip
            )
            asyncio.run(
                bench_app_sink(
                    f"file://{temp}/b", PostgresSink(dsn, "bench_app"), args.records, "postgres"
                )
            )
            asyncio.run(bench_app_source(f"file://{temp}/c", dsn, args.records, row_bytes))
    finally:
        if server is not None:
            server.remove()


if __name__ == "__main__":
    main()
