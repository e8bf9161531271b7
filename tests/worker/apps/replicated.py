"""An app asking for ``topic_replication_factor=$REPLICATION_FACTOR`` for the topics it
creates: its source, its output and its table's changelog. Each value of ``items`` is
counted in the table ``seen`` and passed to ``out``."""

import os

from streamlog import App

app = App(
    "replicated",
    topic_partitions=2,
    topic_replication_factor=int(os.environ["REPLICATION_FACTOR"]),
    broker_commit_interval=0.2,
    shutdown_timeout=5.0,
    broker_session_timeout=6.0,
)
items = app.topic("items", value_type=str, value_serializer="raw")
out = app.topic("out", value_type=str, value_serializer="raw")
seen = app.Table("seen", default=int, value_type=int)


@app.agent(items, sink=[out])
async def count(stream):
    """Counts each value; passes it on."""
    async for value in stream:
        seen[value] += 1
        yield value
