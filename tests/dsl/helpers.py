"""Helpers for the streams tests: bounded waits, reading a topic back, committed offsets,
running a coroutine with a deadline. Plain functions (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from streamlog.transport.types import ConsumerRecord, TopicPartition

__all__ = ["wait_for", "read_topic", "committed", "run"]


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` every 10 ms; fail the test (with a clear message) after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


async def read_topic(
    app: Any, topic: str, count: int, timeout: float = 20.0
) -> list[ConsumerRecord]:
    """Every record of ``topic`` (through the app's own transport), waiting for ``count``."""
    transport = app.transport
    admin = transport.admin()
    try:
        info = await admin.describe_topic(topic)
    finally:
        await admin.close()
    consumer = transport.consumer()
    try:
        tps = [TopicPartition(topic, p.partition) for p in info.partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[ConsumerRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{topic}: {len(out)} of {count} records within {timeout} s")
            for records in (await consumer.getmany(timeout_ms=100)).values():
                out.extend(records)
        # anything beyond ``count`` that is already there
        for records in (await consumer.getmany(timeout_ms=50)).values():
            out.extend(records)
        return out
    finally:
        await consumer.close()


async def committed(app: Any, topic: str, group: str | None = None) -> dict[int, int | None]:
    """Committed offsets per partition of ``topic`` for ``group`` (default: the app's)."""
    transport = app.transport
    admin = transport.admin()
    try:
        info = await admin.describe_topic(topic)
    finally:
        await admin.close()
    consumer = transport.consumer(group_id=group or app.conf.id)
    try:
        return {
            p.partition: await consumer.committed(TopicPartition(topic, p.partition))
            for p in info.partitions
        }
    finally:
        await consumer.close()


def run(coro: Awaitable[Any], timeout: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
