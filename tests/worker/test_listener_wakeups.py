"""A worker's Kafka listener and the worker share wake-ups (streamlog/cli/shared_wakeups.py).

A record produced through the listener must reach the worker's agent, and the agent's
output must reach a fetch waiting in the listener, as soon as each is appended: here
each fetch may wait 30 s for data (``fetch_max_wait_ms``), and a round trip must be back
well before one such wait could have run out. With separate wake-ups, each answer came
only when the waiting fetch timed out."""

from __future__ import annotations

import asyncio
import os

import pytest

from streamlog.transport import TopicPartition
from streamlog.transport.kafka import KafkaTransport
from tests.worker.workerproc import APPS, WorkerProcess

WORDCOUNT = os.path.join(APPS, "wordcount.py")
LONG_POLL_MS = 30_000


@pytest.mark.timeout(120)
def test_appends_on_either_side_wake_the_other_sides_waiting_fetches(tmp_path):
    worker = WorkerProcess(WORDCOUNT, f"file://{tmp_path / 'log'}", str(tmp_path)).start()

    async def round_trips() -> list[str]:
        transport = KafkaTransport(f"kafka://{worker.listener()}")
        await transport.start()
        try:
            admin = transport.admin()
            info = await admin.describe_topic("counts")
            await admin.close()
            consumer = transport.consumer(group_id=None, fetch_max_wait_ms=LONG_POLL_MS)
            parts = [TopicPartition("counts", p.partition) for p in info.partitions]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            producer = transport.producer(client_id="wakeups", linger_ms=0)
            seen: list[str] = []
            for n, word in enumerate(["alpha", "beta", "gamma"], start=1):
                await (await producer.send("words", word.encode()))
                # the fetch now waiting for 'counts' is woken by the worker's append: each
                # answer well within one long poll (three of them within a third of it)
                while len(seen) < n:
                    got = await asyncio.wait_for(consumer.getmany(timeout_ms=LONG_POLL_MS), 10)
                    for records in got.values():
                        seen.extend((r.value or b"").decode() for r in records)
            await producer.close()
            await consumer.close()
            return seen
        finally:
            await transport.close()

    try:
        seen = asyncio.run(asyncio.wait_for(round_trips(), 60))
        assert seen == ["alpha=1", "beta=1", "gamma=1"]
    finally:
        assert worker.stop() == 0, worker.logs()
