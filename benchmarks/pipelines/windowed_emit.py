"""streamlog, windowed-emit pipeline: a 10 s tumbling count per key, every update emitted.

The issue-11 pipeline: 10,000 keys, a tumbling 10 s count per key in RocksDB state, and
for every input event the window's current count (``counts[key].current()``) sent to the
output topic, keyed by the input key, as Quix Streams'
``tumbling_window(...).count().current()`` does. Event time is the record timestamp;
the window key is the record key. Run by ``benchmarks/bench_streams.py`` with
``streamlog worker``; settings from ``BENCH_*``.
"""

from __future__ import annotations

import os

import streamlog

WINDOW_S = 10.0
WINDOW_MS = 10_000

env = os.environ.get
app = streamlog.App(
    env("BENCH_GROUP", "bench-windowed-emit"),
    broker=env("BENCH_BROKER") or f"kafka://{env('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    topic_partitions=int(env("BENCH_PARTITIONS", "1")),
    broker_commit_interval=float(env("BENCH_COMMIT_INTERVAL", "1.0")),
    datadir=env("BENCH_STATE_DIR") or None,
    processing_guarantee=env("BENCH_GUARANTEE") or "at_least_once",
    store="rocksdb://",
)
source = app.topic(env("BENCH_INPUT", "bench-in"), key_type=str, value_type=dict)
sink = app.topic(env("BENCH_OUTPUT", "bench-out"), key_type=str, value_type=dict)
counts = app.Table("counts", default=int, key_type=str, value_type=int).tumbling(WINDOW_S, grace=0)


@app.agent(source)
async def count(stream):
    """Count events per key per 10 s window; send the window's count so far."""
    async for user, event in stream.items():
        window = counts[user]
        window += 1
        ts = event["ts"]
        await sink.send(
            key=user, value={"user": user, "start": ts - ts % WINDOW_MS, "count": window.current()}
        )
