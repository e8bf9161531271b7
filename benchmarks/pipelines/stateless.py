"""streamlog, stateless pipeline: JSON decode -> filter amount >= 50 -> map -> JSON out.

The app ``benchmarks/bench_streams.py`` runs with ``streamlog worker`` for its streamlog
rows; its settings come from the harness's ``BENCH_*`` environment variables (the broker
URL from ``BENCH_BROKER``, default ``kafka://$BENCH_BOOTSTRAP``; the processing
guarantee from ``BENCH_GUARANTEE``, ``at_least_once`` or ``exactly_once``).
"""

from __future__ import annotations

import os

import streamlog

env = os.environ.get
app = streamlog.App(
    env("BENCH_GROUP", "bench-stateless"),
    broker=env("BENCH_BROKER") or f"kafka://{env('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    topic_partitions=int(env("BENCH_PARTITIONS", "1")),
    broker_commit_interval=float(env("BENCH_COMMIT_INTERVAL", "1.0")),
    datadir=env("BENCH_STATE_DIR") or None,
    processing_guarantee=env("BENCH_GUARANTEE") or "at_least_once",
)
source = app.topic(env("BENCH_INPUT", "bench-in"), value_type=dict)
sink = app.topic(env("BENCH_OUTPUT", "bench-out"), value_type=dict)


@app.agent(source, sink=[sink])
async def pipeline(stream):
    """Keep amounts >= 50, as cents."""
    async for v in stream.filter(lambda v: v["amount"] >= 50):
        yield {"id": v["id"], "user": v["user"], "amount_cents": v["amount"] * 100}
