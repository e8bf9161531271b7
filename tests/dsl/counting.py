"""The counting app the rebalance and standby tests run two of in one process: each input
adds one to its key's count in a memory-store table (so every assignment recovers from
the changelog), and a changelog padded with raw-keyed records to make recovery cost."""

from __future__ import annotations

from typing import Any

import streamlog

__all__ = ["counting_app", "pad_changelog"]


def counting_app(
    app_id: str, url: str, partitions: int, **settings: Any
) -> tuple[streamlog.App, Any, Any]:
    """The app, its input topic and its ``counts`` table (raw keys: the padding's)."""
    app = streamlog.App(
        app_id,
        broker=url,
        topic_partitions=partitions,
        store="memory://",  # every assignment recovers from the changelog
        broker_commit_interval=0.1,
        **settings,
    )
    inputs = app.topic(f"{app_id}-inputs", key_type=str, value_type=str, value_serializer="raw")
    counts = app.Table("counts", default=int, key_type=str, value_type=int, key_serializer="raw")

    @app.agent(inputs)
    async def count(stream: Any) -> None:
        async for key, _ in stream.items():
            counts[key] += 1

    return app, inputs, counts


async def pad_changelog(app: streamlog.App, partitions: int, records: int) -> None:
    """``records`` records in each partition of the ``counts`` changelog, keyed
    ``pad-P-I`` (value 0), written past the table (as an earlier run would have)."""
    name = app.tables["counts"].changelog_topic.name
    producer = app.transport.producer(linger_ms=20)
    try:
        for partition in range(partitions):
            pending = await producer.send_many(
                name,
                [b"0"] * records,
                keys=[b"pad-%d-%d" % (partition, i) for i in range(records)],
                partition=partition,
            )
            await producer.flush()
            await pending
    finally:
        await producer.close()
