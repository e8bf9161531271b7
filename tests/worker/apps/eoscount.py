"""Exactly-once count: each record of ``eos-events`` (key: a name) adds one to the key's
count in the table ``counts`` and in its 10-second window of the windowed table
``windows``, and sends ``{"key", "count", "id", "window", "window_count"}`` (the running
counts after it) to ``eos-counts``, keyed by the name. Under exactly-once a
read_committed reader of ``eos-counts`` sees, for every key (and every key's window), the
counts 1, 2, 3, ... each once, however often the worker is killed; an aborted attempt
shows up only to read_uncommitted readers.

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
# the same count per 10-second tumbling window of the record's timestamp (windows never
# close or expire during a test)
windows = app.Table("windows", default=int, key_type=str, value_type=int).tumbling(10, expires=3600)


@app.agent(events)
async def count(stream):
    """Counts each event under its key and sends the running count on."""
    n = 0
    async for key, event_id in stream.items():
        counts[key] += 1
        windows[key] += 1
        timestamp = stream.current_event.message.timestamp
        await output.send(
            key=key,
            value={
                "key": key,
                "count": counts[key],
                "id": event_id,
                "window": int(timestamp // 10 * 10),
                "window_count": windows[key].current(),
            },
        )
        n += 1
        if PAUSE and n % 50 == 0:
            await asyncio.sleep(PAUSE)
