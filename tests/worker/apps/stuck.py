"""An agent that never finishes the job ``hang``: stopping has to give up on it.

``STUCK_SHUTDOWN_TIMEOUT`` (seconds, default 1) is the app's ``shutdown_timeout``.
"""

import asyncio
import os

from streamlog import App

app = App(
    "stuck",
    topic_partitions=1,
    broker_commit_interval=0.2,
    shutdown_timeout=float(os.environ.get("STUCK_SHUTDOWN_TIMEOUT", "1")),
)
jobs = app.topic("jobs", value_type=str, value_serializer="raw")
done = app.topic("done", value_type=str, value_serializer="raw")


@app.agent(jobs, sink=[done])
async def work(stream):
    """Passes jobs on; hangs on 'hang'."""
    async for job in stream:
        if job == "hang":
            await asyncio.sleep(3600)
        yield job
