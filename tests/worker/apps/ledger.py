"""Ledger: every input of ``inputs`` (key and value: a unique id) adds one to its id's count
in the table ``seen`` and is passed on to ``ledger-out``. After a run, an id whose count is
0 (missing from the changelog) is an input lost; an id twice in ``ledger-out`` is an input
processed again (allowed after a crash or a failed commit: at-least-once).

A second agent re-keys every input by bucket (``group_by``, through a repartition topic)
and counts it in the table ``buckets``: many inputs update one key there, so a table write
lost to a stale overwrite (a dropped worker writing its changelog after the new owner)
shows up as a bucket counting fewer inputs than it holds.

Settings are those of a worker that must notice joins, leaves and outages quickly:
short sessions and commit intervals. ``LEDGER_PARTITIONS`` (default 6) sets the partition
count; ``LEDGER_STORE`` the table store (default ``rocksdb://``). ``LEDGER_PAUSE`` (seconds,
default 0) pauses the agent after every 10 inputs, so that a worker falls behind a steady
load and has events in hand whenever something fails.
"""

import asyncio
import os

from streamlog import App

app = App(
    "ledger",
    topic_partitions=int(os.environ.get("LEDGER_PARTITIONS", "6")),
    store=os.environ.get("LEDGER_STORE", "rocksdb://"),
    broker_commit_interval=0.5,
    broker_session_timeout=6.0,
    broker_max_poll_records=200,
    shutdown_timeout=10.0,
)
inputs = app.topic("inputs", key_type=str, value_type=str, value_serializer="raw")
out = app.topic("ledger-out", key_type=str, value_type=str, value_serializer="raw")
seen = app.Table("seen", default=int, key_type=str, value_type=int)
# keys serialised as the repartition topic's are (JSON), so a bucket's table partition is
# the repartition partition its inputs arrive on
buckets = app.Table("buckets", default=int, key_type=str, value_type=int, key_serializer="json")
BUCKETS = 20
PAUSE = float(os.environ.get("LEDGER_PAUSE", "0"))


@app.agent(inputs)
async def record(stream):
    """Counts each input under its id and passes the id on."""
    n = 0
    async for key, value in stream.items():
        seen[key] += 1
        await out.send(key=key, value=value)
        n += 1
        if PAUSE and n % 10 == 0:
            await asyncio.sleep(PAUSE)


def bucket_of(value: str) -> str:
    return f"b{int(value) % BUCKETS:02d}"


@app.agent(inputs)
async def tally(stream):
    """Counts each input in its bucket (re-keyed through a repartition topic)."""
    async for bucket, _ in stream.group_by(bucket_of, name="bucket").items():
        buckets[bucket] += 1
