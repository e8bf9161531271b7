"""streamlog, scale-out pipeline: a tumbling count per key, one output per input that says
who processed it.

Run N times (one ``streamlog worker`` each, its own ``--data-dir``) by
``benchmarks/bench_scaleout.py``. Each input's count in its window goes to the output
topic keyed by the input key, with the input's partition and produce time and the name
of the worker that processed it (``BENCH_WORKER``): the harness reads the outputs back
(the output topic stamps every record with its append time) and finds, per input
partition, who held it when and the gaps in its output across a rebalance or a failover,
without trusting any worker's own account.

Settings from ``BENCH_*`` (see the harness): the window length (a long window keeps every
key in the table, so a failover has a whole table to recover), the assignment strategy
(``cooperative`` is the app default, ``eager`` is ``("range",)``), standby replicas and
the session timeout (how soon the group notices a killed worker).
"""

from __future__ import annotations

import os

import streamlog

env = os.environ.get
WINDOW_S = float(env("BENCH_WINDOW_S", "10"))
WINDOW_MS = int(WINDOW_S * 1000)
ASSIGNORS = {"cooperative": ("cooperative-sticky", "range"), "eager": ("range",)}
WORKER = env("BENCH_WORKER", "w?")

app = streamlog.App(
    env("BENCH_GROUP", "bench-scaleout"),
    broker=f"kafka://{env('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    topic_partitions=int(env("BENCH_PARTITIONS", "8")),
    broker_commit_interval=float(env("BENCH_COMMIT_INTERVAL", "1.0")),
    broker_session_timeout=float(env("BENCH_SESSION_TIMEOUT", "10")),
    consumer_partition_assignment_strategy=ASSIGNORS[env("BENCH_ASSIGNMENT", "cooperative")],
    table_standby_replicas=int(env("BENCH_STANDBY_REPLICAS", "1")),
    store="rocksdb://",
)
source = app.topic(env("BENCH_INPUT", "scaleout-in"), key_type=str, value_type=dict)
sink = app.topic(env("BENCH_OUTPUT", "scaleout-out"), key_type=str, value_type=dict)
counts = app.Table("counts", default=int, key_type=str, value_type=int).tumbling(WINDOW_S)


@app.agent(source)
async def count(stream):
    """Count events per key per window; send the count, the input's partition and produce
    time, and this worker's name."""
    async for event in stream.events():
        key = event.key
        window = counts[key]
        window += 1
        ts = event.message.timestamp_ms
        await sink.send(
            key=key,
            value={
                "k": key,
                "start": ts - ts % WINDOW_MS,
                "c": window.current(),
                "p": event.message.partition,
                "ts": ts,
                "w": WORKER,
            },
        )
