"""What the mirror tests do to a log from the test's own process, through streamlog's own
transport (``open_transport(url)``, for ``kafka://`` and ``file://`` alike): write the
records a test mirrors, commit a group's offsets, and read back what a log holds, in a
form two logs can be compared in. No tests here.

Every helper opens its own transport and closes it before it returns (``asyncio.run``),
bounded by ``TIMEOUT`` seconds, so a test never holds a connection while a mirror runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from streamlog.transport import open_transport
from streamlog.transport.base import Transport
from streamlog.transport.types import ConsumerRecord, Header, TopicPartition

__all__ = [
    "TIMEOUT",
    "Record",
    "Mirrored",
    "mirrored",
    "list_topics",
    "list_groups",
    "committed",
    "run",
    "create_topic",
    "add_partitions",
    "produce",
    "produce_transactions",
    "commit_offsets",
    "read_partitions",
    "end_offsets",
    "topic_shape",
    "resume_points",
    "recent_ms",
]

TIMEOUT = 60.0  # seconds for any one helper
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Record:
    """A record to write: partition, key, value, headers and timestamp, all explicit."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    timestamp: int = 0


# What a mirrored record must keep: (key, value, headers, timestamp), per partition in order.
Mirrored = tuple[bytes | None, bytes | None, tuple[Header, ...], int]


def recent_ms() -> int:
    """Now, in epoch ms (records stamped long ago would fall to the log's 7-day retention)."""
    return int(time.time() * 1000)


def run(url: str, work: Any, timeout: float = TIMEOUT) -> Any:
    """``await work(transport)`` on a started transport for ``url``, closed afterwards."""

    async def main() -> Any:
        transport = open_transport(url)
        await transport.start()
        try:
            return await work(transport)
        finally:
            await transport.close()

    return _bounded(main(), timeout)


def _bounded(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def create_topic(
    url: str, name: str, partitions: int, configs: Mapping[str, str] | None = None
) -> None:
    async def work(t: Transport) -> None:
        admin = t.admin()
        try:
            await admin.create_topic(name, partitions, dict(configs or {}))
        finally:
            await admin.close()

    run(url, work)


def add_partitions(url: str, name: str, total: int) -> None:
    async def work(t: Transport) -> None:
        admin = t.admin()
        try:
            await admin.add_partitions(name, total)
        finally:
            await admin.close()

    run(url, work)


def produce(url: str, topic: str, records: Sequence[Record]) -> list[int]:
    """Write ``records`` (idempotent producer) and return their offsets, in order."""

    async def work(t: Transport) -> list[int]:
        producer = t.producer(idempotent=True, linger_ms=5)
        try:
            acks = [
                await producer.send(
                    topic,
                    r.value,
                    key=r.key,
                    partition=r.partition,
                    headers=r.headers,
                    timestamp_ms=r.timestamp,
                )
                for r in records
            ]
            return [(await ack).offset for ack in acks]
        finally:
            await producer.close()

    result: list[int] = run(url, work)
    return result


def produce_transactions(
    url: str, topic: str, transactions: Sequence[tuple[bool, Sequence[Record]]]
) -> None:
    """One transactional producer writes each ``(commit, records)`` in a transaction of
    its own, committed or aborted as ``commit`` says."""

    async def work(t: Transport) -> None:
        producer: Any = t.producer(transactional_id=f"mirror-test-{topic}")
        try:
            await producer.init_transactions()
            for commit, records in transactions:
                producer.begin_transaction()
                for r in records:
                    await producer.send(
                        topic,
                        r.value,
                        key=r.key,
                        partition=r.partition,
                        headers=r.headers,
                        timestamp_ms=r.timestamp,
                    )
                await producer.flush()
                if commit:
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()
        finally:
            await producer.close()

    run(url, work)


def commit_offsets(url: str, group: str, offsets: Mapping[TopicPartition, int]) -> None:
    """Commit ``offsets`` for ``group`` as a consumer that never joins it (what a stopped
    app leaves behind: an empty group with committed offsets)."""

    async def work(t: Transport) -> None:
        consumer = t.consumer(group_id=group)
        try:
            consumer.assign(offsets)
            await consumer.commit(dict(offsets))
        finally:
            await consumer.close()

    run(url, work)


async def _read(
    t: Transport,
    tps: Sequence[TopicPartition],
    isolation: str,
    start: Mapping[TopicPartition, int] | None = None,
) -> dict[TopicPartition, list[ConsumerRecord]]:
    consumer = t.consumer(isolation_level=isolation)
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        for tp, offset in (start or {}).items():
            consumer.seek(tp, offset)
        got: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}
        while True:
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    got[tp].extend(records)
            if isolation != "read_uncommitted":
                return got
            # Tansu's ListOffsets answers its last batch's base offset + 1, behind the
            # rest of that batch; once fetched, end_offsets is at least the fetch's high
            # watermark (read_uncommitted), so ask again until it stops moving.
            again = await consumer.end_offsets(tps)
            if again == ends:
                return got
            ends = again
    finally:
        await consumer.close()


def read_partitions(
    url: str, topic: str, isolation: str = "read_committed"
) -> dict[int, list[ConsumerRecord]]:
    """Every record of every partition of ``topic``, up to the ends as of the call.

    read_committed on Tansu may stop short of its last batch (its ListOffsets quirk):
    read a log without transactions there with ``read_uncommitted``."""

    async def work(t: Transport) -> dict[int, list[ConsumerRecord]]:
        admin = t.admin()
        try:
            info = await admin.describe_topic(topic)
        finally:
            await admin.close()
        tps = [TopicPartition(topic, p.partition) for p in info.partitions]
        got = await _read(t, tps, isolation)
        return {tp.partition: records for tp, records in got.items()}

    result: dict[int, list[ConsumerRecord]] = run(url, work)
    return result


def end_offsets(url: str, topic: str, partitions: int) -> dict[int, int]:
    async def work(t: Transport) -> dict[int, int]:
        consumer = t.consumer()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.close()

    result: dict[int, int] = run(url, work)
    return result


def mirrored(records: Sequence[ConsumerRecord]) -> list[Mirrored]:
    """What a copy of ``records`` must keep, in order (offsets may differ)."""
    return [(r.key, r.value, tuple((k, v) for k, v in r.headers), r.timestamp) for r in records]


def topic_shape(url: str, topic: str, configs: Sequence[str]) -> tuple[int, dict[str, str]]:
    """The partition count of ``topic`` and the values of the ``configs`` it reports."""

    async def work(t: Transport) -> tuple[int, dict[str, str]]:
        admin = t.admin()
        try:
            info = await admin.describe_topic(topic)
        finally:
            await admin.close()
        return len(info.partitions), {k: info.configs[k] for k in configs if k in info.configs}

    result: tuple[int, dict[str, str]] = run(url, work)
    return result


def resume_points(
    url: str, group: str, topic: str, partitions: int, timeout: float = 30.0
) -> dict[int, int | None]:
    """Join ``group`` on ``topic`` as a real member and return, per partition, the offset
    of the first record it is given (None: it was given none, the group is at the end).

    Waits until every partition is assigned and has either given a record or been read
    to its end.
    """

    async def work(t: Transport) -> dict[int, int | None]:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer = t.consumer(group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=500)
        try:
            await consumer.subscribe([topic])
            first: dict[int, int | None] = {}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            ends: dict[TopicPartition, int] = {}
            while len(first) < partitions:
                if loop.time() > deadline:
                    missing = sorted(set(range(partitions)) - set(first))
                    raise AssertionError(f"group {group}: nothing of partitions {missing}")
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    if records:
                        first.setdefault(tp.partition, records[0].offset)
                if consumer.assignment() >= set(tps):
                    if not ends:
                        ends = await consumer.end_offsets(tps)
                    for tp in tps:
                        if tp.partition not in first and await consumer.position(tp) >= ends[tp]:
                            first[tp.partition] = None
            return first
        finally:
            await consumer.close()

    result: dict[int, int | None] = run(url, work, timeout + 15)
    return result


def list_topics(url: str) -> list[str]:
    async def work(t: Transport) -> list[str]:
        admin = t.admin()
        try:
            return await admin.list_topics()
        finally:
            await admin.close()

    result: list[str] = run(url, work)
    return result


def list_groups(url: str) -> list[str]:
    async def work(t: Transport) -> list[str]:
        admin = t.admin()
        try:
            return await admin.list_groups()
        finally:
            await admin.close()

    result: list[str] = run(url, work)
    return result


def committed(
    url: str, group: str, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """``group``'s committed offsets (None: none), read without joining it."""

    async def work(t: Transport) -> dict[TopicPartition, int | None]:
        consumer = t.consumer(group_id=group)
        try:
            return {tp: await consumer.committed(tp) for tp in partitions}
        finally:
            await consumer.close()

    result: dict[TopicPartition, int | None] = run(url, work)
    return result
