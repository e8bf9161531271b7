"""Echo: every record of ``ids`` is copied to ``echoed`` (one output per input).

``ECHO_PAUSE`` (seconds, default 0) pauses the agent after every ``ECHO_EVERY`` records
(default 100), so that a test can kill the worker part-way through a long input.
"""

import asyncio
import os

from streamlog import App

PAUSE = float(os.environ.get("ECHO_PAUSE", "0"))
EVERY = int(os.environ.get("ECHO_EVERY", "100"))

app = App(
    "echo",
    topic_partitions=4,
    broker_commit_interval=0.2,
    broker_max_poll_records=500,
    shutdown_timeout=5.0,
)
ids = app.topic("ids", value_type=str, value_serializer="raw")
echoed = app.topic("echoed", value_type=str, value_serializer="raw")


@app.agent(ids, sink=[echoed])
async def copy(stream):
    """Copies each id to echoed."""
    n = 0
    async for value in stream:
        yield value
        n += 1
        if PAUSE and n % EVERY == 0:
            await asyncio.sleep(PAUSE)
