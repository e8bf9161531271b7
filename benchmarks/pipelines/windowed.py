"""streamlog, windowed pipeline: a 10 s tumbling count per key in RocksDB state.

Every update emits ``{"user", "start", "count"}`` (the window's count so far), as the
peers' programs do. Event time is the record timestamp (the harness sets it to the value's
``ts``); the window key is the record key (the user). Run by
``benchmarks/bench_streams.py`` with ``streamlog worker``; settings from ``BENCH_*``.
"""

from __future__ import annotations

import os

import streamlog

WINDOW_S = 10.0
WINDOW_MS = 10_000

env = os.environ.get
app = streamlog.App(
    env("BENCH_GROUP", "bench-windowed"),
    broker=env("BENCH_BROKER") or f"kafka://{env('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    topic_partitions=int(env("BENCH_PARTITIONS", "1")),
    broker_commit_interval=float(env("BENCH_COMMIT_INTERVAL", "1.0")),
    datadir=env("BENCH_STATE_DIR") or None,
    processing_guarantee=env("BENCH_GUARANTEE") or "at_least_once",
    store="rocksdb://",
)
source = app.topic(env("BENCH_INPUT", "bench-in"), key_type=str, value_type=dict)
sink = app.topic(env("BENCH_OUTPUT", "bench-out"), value_type=dict)
counts = app.Table("counts", default=int, key_type=str, value_type=int).tumbling(WINDOW_S, grace=0)


@app.agent(source, sink=[sink])
async def count(stream):
    """Count events per user per 10 s window; emit the running count."""
    async for user, event in stream.items():
        window = counts[user]
        window += 1
        ts = event["ts"]
        yield {"user": user, "start": ts - ts % WINDOW_MS, "count": window.current()}
