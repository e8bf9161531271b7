"""Exactly-once count: each record of ``eos-events`` (key: a name) adds one to the key's
count in the table ``counts`` and sends ``{"key", "count", "id"}`` (the running count
after it) to ``eos-counts``, keyed by the name. Under exactly-once a read_committed
reader of ``eos-counts`` sees, for every key, the counts 1, 2, 3, ... each once, however
often the worker is killed; an aborted attempt shows up only to read_uncommitted readers.

``EOSCOUNT_PAUSE`` (seconds, default 0) pauses the agent after every 50 records, so that
a test can kill the worker part-way through; ``EOSCOUNT_GUARANTEE`` (default
``exactly_once``) is the processing guarantee; ``EOSCOUNT_SESSION_TIMEOUT`` (seconds,
default 10) the group session timeout.
"""

import asyncio
import os

from streamlog import App

PAUSE = float(os.environ.get("EOSCOUNT_PAUSE", "0"))

app = App(
    "eoscount",
    topic_partitions=4,
    processing_guarantee=os.environ.get("EOSCOUNT_GUARANTEE", "exactly_once"),
    broker_commit_interval=0.2,
    broker_max_poll_records=200,
    shutdown_timeout=5.0,
    broker_session_timeout=float(os.environ.get("EOSCOUNT_SESSION_TIMEOUT", "10")),
)
events = app.topic("eos-events", key_type=str, value_type=str, value_serializer="raw")
output = app.topic("eos-counts", key_type=str, value_type=dict)
counts = app.Table("counts", default=int, key_type=str, value_type=int)


@app.agent(events)
async def count(stream):
    """Counts each event under its key and sends the running count on."""
    n = 0
    async for key, event_id in stream.items():
        counts[key] += 1
        await output.send(key=key, value={"key": key, "count": counts[key], "id": event_id})
        n += 1
        if PAUSE and n % 50 == 0:
            await asyncio.sleep(PAUSE)
