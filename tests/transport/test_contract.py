"""The transport contract: one suite of behaviour checks, run against every transport.

Each test takes the ``transport`` fixture (``conftest.py``): ``memory://``, ``file://``,
``kafka://`` on ``streamlog broker`` and ``kafka://`` on Tansu. What passes here is what
code above the transport (tables, streams, agents) may rely on whatever the broker URL.
Every wait is bounded: ``case.run`` times out, and the polling helpers below have
deadlines of their own that fail with what they saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from streamlog.log.group_offsets import OffsetAndMetadata as LogOffset
from streamlog.log.group_offsets import (
    encode_offset_key,
    encode_offset_value,
    java_string_hash,
)
from streamlog.log.partitioner import partition_for_key
from streamlog.transport.errors import (
    InvalidPartitionsError,
    TopicExistsError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.types import ConsumerRecord, OffsetAndMetadata, TopicPartition

from ..waiting import started
from .conftest import (
    CREATE_PARTITIONS,
    DESCRIBE_GROUP_MEMBERS,
    INTERNAL_TOPIC_WRITES,
    INTERNAL_TOPICS,
    LATEST_OFFSET,
    OFFSETS_FOR_TIMES,
    TransportCase,
)

# Record timestamps an hour ago: older ones would be deleted by the 7-day retention.
BASE_TS = int(time.time() * 1000) - 3_600_000


# ---------------------------------------------------------------------------------------
# helpers


async def collect(consumer: Any, count: int, timeout: float = 20.0) -> list[ConsumerRecord]:
    """Poll until ``count`` records arrived; fail with what came if it takes too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    records: list[ConsumerRecord] = []
    while len(records) < count:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"got {len(records)} of {count} records in {timeout} s")
        fetched = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
        for tp, batch in fetched.items():
            assert all((r.topic, r.partition) == tp for r in batch)
            records.extend(batch)
    return records


async def expect_nothing(consumer: Any, wait_ms: int = 300) -> None:
    fetched = await consumer.getmany(timeout_ms=wait_ms)
    assert not any(fetched.values()), fetched


async def drive(
    consumers: Sequence[Any], done: Callable[[], bool], what: str, timeout: float = 60.0
) -> None:
    """Poll every consumer concurrently (group protocols need each member to poll) until
    ``done()``; records fetched meanwhile are dropped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))


async def produce(
    case: TransportCase, topic: str, values: Iterable[bytes], partition: int | None = None
) -> list[Any]:
    producer = case.transport.producer(linger_ms=1)
    try:
        futures = [await producer.send(topic, v, partition=partition) for v in values]
        await producer.flush()
        return [await f for f in futures]
    finally:
        await producer.close()


def headers_of(record: ConsumerRecord) -> list[tuple[str, bytes | None]]:
    return [(name, value) for name, value in record.headers]


class Recorder:
    """A RebalanceListener that remembers what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, frozenset[TopicPartition]]] = []

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", frozenset(revoked)))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.events.append(("assigned", frozenset(assigned)))

    def meaningful(self) -> list[tuple[str, frozenset[TopicPartition]]]:
        # Some clients announce an empty revocation before their first join.
        return [e for e in self.events if e != ("revoked", frozenset())]

    def last_assigned(self) -> frozenset[TopicPartition] | None:
        assigned = [parts for kind, parts in self.events if kind == "assigned"]
        return assigned[-1] if assigned else None


def check_eager_sequence(
    events: list[tuple[str, frozenset[TopicPartition]]], final: set[TopicPartition]
) -> None:
    """assigned(A0), then pairs revoked(A_i) -> assigned(A_i+1), ending with ``final``:
    the classic (eager) group protocol's listener calls."""
    assert events and events[0][0] == "assigned", events
    held = events[0][1]
    i = 1
    while i < len(events):
        assert events[i] == ("revoked", held), (i, events)
        assert i + 1 < len(events) and events[i + 1][0] == "assigned", (i, events)
        held = events[i + 1][1]
        i += 2
    assert held == final, events


# ---------------------------------------------------------------------------------------
# producing and consuming


def test_round_trip_keys_values_headers_timestamps_offsets(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("roundtrip")

    async def body() -> None:
        admin = case.transport.admin()
        await admin.create_topic(topic, 2)
        producer = case.transport.producer(linger_ms=1)
        sent = []
        futures = []
        for i in range(10):
            key = b"key-%d" % i if i % 3 else None
            value = b"value-%d" % i if i != 4 else None
            headers = [("h", b"x%d" % i), ("empty", b""), ("null", None)] if i % 2 else []
            ts = BASE_TS + 1000 * i
            partition = i % 2
            sent.append((partition, key, value, headers, ts))
            futures.append(
                await producer.send(
                    topic, value, key=key, partition=partition, headers=headers, timestamp_ms=ts
                )
            )
        await producer.flush()
        metas = [await f for f in futures]
        assert [(m.topic, m.partition) for m in metas] == [(topic, s[0]) for s in sent]
        assert [m.offset for m in metas] == [i // 2 for i in range(10)]
        assert [m.timestamp for m in metas] == [s[4] for s in sent]
        last = await producer.send_and_wait(
            topic, b"last", key=b"k", partition=0, timestamp_ms=BASE_TS + 99_000
        )
        assert (last.topic, last.partition, last.offset) == (topic, 0, 5)
        assert last.timestamp == BASE_TS + 99_000
        await producer.close()

        consumer = case.consumer()
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        assert consumer.assignment() == set(tps)
        await consumer.seek_to_beginning()
        records = await collect(consumer, 11)
        await expect_nothing(consumer)
        got = {(r.partition, r.offset): r for r in records}
        assert len(got) == 11
        for (partition, key, value, headers, ts), meta in zip(sent, metas, strict=True):
            record = got[(partition, meta.offset)]
            assert record.topic == topic
            assert record.key == key
            assert record.value == value
            assert headers_of(record) == headers
            assert record.timestamp == ts
        tail = got[(0, 5)]
        assert (tail.key, tail.value, tail.timestamp) == (b"k", b"last", BASE_TS + 99_000)
        assert await consumer.position(tps[0]) == 6
        assert await consumer.position(tps[1]) == 5
        await consumer.close()

    case.run(body())


def test_keyed_records_land_where_murmur2_says(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("keyed")
    partitions = 6
    keys = [b"key-%d" % i for i in range(120)] + [b"", b"\x00", bytes(range(256)), "é".encode()]

    async def body() -> None:
        await case.transport.admin().create_topic(topic, partitions)
        producer = case.transport.producer(linger_ms=1)
        futures = [await producer.send(topic, b"v", key=key) for key in keys]
        await producer.flush()
        metas = [await f for f in futures]
        await producer.close()
        expected = [partition_for_key(key, partitions) for key in keys]
        assert [m.partition for m in metas] == expected
        assert await producer_partitions(case, topic) == partitions

        consumer = case.consumer()
        consumer.assign(TopicPartition(topic, p) for p in range(partitions))
        records = await collect(consumer, len(keys))
        await consumer.close()
        for record in records:
            assert record.partition == partition_for_key(record.key, partitions)
        assert sorted(r.key for r in records) == sorted(keys)

    case.run(body())


async def producer_partitions(case: TransportCase, topic: str) -> int:
    producer = case.transport.producer()
    try:
        return await producer.partitions_for(topic)
    finally:
        await producer.close()


def test_order_is_kept_per_partition(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("order")

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 3)
        producer = case.transport.producer(linger_ms=2, batch_size=4096)
        futures = [await producer.send(topic, b"%d" % i, partition=i % 3) for i in range(900)]
        await producer.flush()
        metas = [await f for f in futures]
        await producer.close()
        for p in range(3):
            assert [m.offset for m in metas if m.partition == p] == list(range(300))

        consumer = case.consumer(max_poll_records=70)
        consumer.assign(TopicPartition(topic, p) for p in range(3))
        records = await collect(consumer, 900)
        await consumer.close()
        for p in range(3):
            mine = [r for r in records if r.partition == p]
            assert [r.offset for r in mine] == list(range(300))
            assert [int(r.value) for r in mine] == list(range(p, 900, 3))

    case.run(body())


def test_send_many_to_one_partition_keeps_order_across_batches(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("many")
    values = [b"value-%04d" % i + b"." * (i % 50) for i in range(600)]
    headers = [("h", b"x"), ("null", None)]

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 2)
        producer = case.transport.producer(linger_ms=1, batch_size=4096)
        before = await producer.send(topic, b"first", partition=1)
        sent = await producer.send_many(
            topic, iter(values), partition=1, headers=headers, timestamp_ms=BASE_TS
        )
        after = await producer.send(topic, b"last", partition=1)
        empty = await producer.send_many(topic, [], partition=0)
        await producer.flush()
        metas = await sent
        assert await empty == []
        assert (await before).offset == 0 and (await after).offset == 601
        assert [(m.topic, m.partition) for m in metas] == [(topic, 1)] * 600
        assert [m.offset for m in metas] == list(range(1, 601))
        assert {m.timestamp for m in metas} == {BASE_TS}
        await producer.close()

        consumer = case.consumer()
        consumer.assign([TopicPartition(topic, 1)])
        records = await collect(consumer, 602)
        await expect_nothing(consumer)
        await consumer.close()
        assert [r.offset for r in records] == list(range(602))
        assert [r.value for r in records] == [b"first", *values, b"last"]
        assert all(headers_of(r) == headers for r in records[1:601])
        assert {r.timestamp for r in records[1:601]} == {BASE_TS}
        assert {r.key for r in records} == {None}

    case.run(body())


def test_send_many_keyed_records_land_where_murmur2_says(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("manykeyed")
    partitions = 4
    keys: list[bytes | None] = [b"key-%d" % (i % 37) if i % 5 else None for i in range(300)]
    values = [b"v%d" % i for i in range(300)]

    async def body() -> None:
        await case.transport.admin().create_topic(topic, partitions)
        producer = case.transport.producer(linger_ms=1)
        started = int(time.time() * 1000)
        sent = await producer.send_many(topic, values, keys=keys)
        await producer.flush()
        metas = await sent
        await producer.close()
        assert started <= metas[0].timestamp <= int(time.time() * 1000) + 1
        assert {m.timestamp for m in metas} == {metas[0].timestamp}
        for key, meta in zip(keys, metas, strict=True):
            if key is not None:
                assert meta.partition == partition_for_key(key, partitions)
        # Null keys share the sticky partition (one batch here); in input order.
        assert len({m.partition for k, m in zip(keys, metas, strict=True) if k is None}) == 1
        for p in range(partitions):
            mine = [m.offset for m in metas if m.partition == p]
            assert mine == list(range(len(mine)))

        consumer = case.consumer()
        consumer.assign(TopicPartition(topic, p) for p in range(partitions))
        records = await collect(consumer, 300)
        await consumer.close()
        got = {(r.partition, r.offset): (r.key, r.value) for r in records}
        assert got == {
            (m.partition, m.offset): (k, v) for k, v, m in zip(keys, values, metas, strict=True)
        }

    case.run(body())


def test_send_many_highest_offsets_are_the_last_of_each_partition(
    transport: TransportCase,
) -> None:
    case = transport
    topic = case.topic("manyhighest")
    keys = [b"key-%d" % (i % 11) for i in range(200)]

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 3)
        producer = case.transport.producer(linger_ms=1, batch_size=2048)
        await producer.send(topic, b"before", partition=2)
        sent = await producer.send_many(topic, [b"v"] * 200, keys=keys)
        await producer.flush()
        highest = await sent.highest_offsets()
        metas = await sent
        await producer.close()
        expected: dict[int, int] = {}
        for m in metas:
            expected[m.partition] = max(expected.get(m.partition, -1), m.offset)
        assert highest == expected
        assert set(highest) == {partition_for_key(k, 3) for k in keys}

    case.run(body())


def test_send_many_refuses_bad_input_before_queueing_anything(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("manybad")

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 2)
        producer = case.transport.producer(linger_ms=1)
        good = [b"ok"] * 50
        with pytest.raises(TypeError):
            await producer.send_many(topic, [*good, "text"], partition=0)  # type: ignore[list-item]
        with pytest.raises(TypeError):
            await producer.send_many(topic, [*good, 7])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            await producer.send_many(topic, good, keys=[*([b"k"] * 49), 5])  # type: ignore[list-item]
        with pytest.raises(ValueError):
            await producer.send_many(topic, good, keys=[b"k"])
        with pytest.raises(UnknownTopicError):
            await producer.send_many(topic, good, partition=2)
        await producer.flush()
        await producer.close()
        consumer = case.consumer()
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        assert await consumer.end_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        await consumer.close()

    case.run(body())


# ---------------------------------------------------------------------------------------
# positions


def test_seek_to_offset_and_to_beginning(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("seek")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 1)
        await produce(case, topic, [b"%d" % i for i in range(20)], partition=0)
        consumer = case.consumer()
        consumer.assign([tp])
        consumer.seek(tp, 7)
        assert await consumer.position(tp) == 7
        records = await collect(consumer, 13)
        assert [r.offset for r in records] == list(range(7, 20))
        assert [r.value for r in records] == [b"%d" % i for i in range(7, 20)]
        assert await consumer.position(tp) == 20

        await consumer.seek_to_beginning(tp)
        assert await consumer.position(tp) == 0
        records = await collect(consumer, 20)
        assert [r.offset for r in records] == list(range(20))

        consumer.seek(tp, 19)
        assert [r.offset for r in await collect(consumer, 1)] == [19]
        assert await consumer.beginning_offsets([tp]) == {tp: 0}
        await consumer.close()

    case.run(body())


def test_pause_holds_records_back_until_resume(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("pause")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 2)
        await produce(case, topic, [b"a%d" % i for i in range(5)], partition=0)
        await produce(case, topic, [b"b%d" % i for i in range(5)], partition=1)
        consumer = case.consumer()
        consumer.assign([tp0, tp1])
        await consumer.seek_to_beginning(tp0, tp1)
        consumer.pause(tp0)
        assert consumer.paused() == {tp0}
        records = await collect(consumer, 5)
        assert {(r.partition, r.value) for r in records} == {(1, b"b%d" % i) for i in range(5)}
        await expect_nothing(consumer)
        assert await consumer.position(tp0) == 0  # paused: nothing handed out
        consumer.resume(tp0)
        assert consumer.paused() == set()
        records = await collect(consumer, 5)
        assert [(r.partition, r.offset, r.value) for r in records] == [
            (0, i, b"a%d" % i) for i in range(5)
        ]
        # a paused partition that is unassigned leaves the paused set
        consumer.pause(tp1)
        consumer.assign([tp0])
        assert consumer.paused() == set()
        await consumer.close()

    case.run(body())


class PausingRecorder(Recorder):
    """Pauses what it is assigned inside the callback, after letting the loop run (so a
    transport that hands records out before the callback returns would be caught)."""

    def __init__(self) -> None:
        super().__init__()
        self.consumer: Any = None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for _ in range(20):
            await asyncio.sleep(0.01)
        self.consumer.pause(*assigned)
        await super().on_partitions_assigned(assigned)


def test_no_record_of_an_assigned_partition_before_the_listener_returns(
    transport: TransportCase,
) -> None:
    """The RebalanceListener promise: a listener may pause what it is assigned (to prepare
    state first) and nothing of those partitions leaks out of getmany meanwhile."""
    case = transport
    topic = case.topic("held")
    group = case.group("g-held")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 1)
        await produce(case, topic, [b"%d" % i for i in range(10)], partition=0)
        listener = PausingRecorder()
        consumer = case.consumer(group_id=group)
        listener.consumer = consumer
        subscribing = asyncio.ensure_future(consumer.subscribe([topic], listener))
        got: list[ConsumerRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        # The kafka transport joins in a task of its own, so getmany runs beside the
        # callback; the embedded one calls back from inside subscribe/getmany.
        while listener.last_assigned() is None:
            assert loop.time() < deadline, "never assigned"
            if case.is_kafka or subscribing.done():
                for batch in (await consumer.getmany(timeout_ms=50)).values():
                    got.extend(batch)
            else:
                await asyncio.sleep(0.01)
        await subscribing
        assert got == [], "records were returned before the listener had paused them"
        await expect_nothing(consumer)
        assert consumer.paused() == {tp}
        consumer.resume(tp)
        records = await collect(consumer, 10)
        assert [r.offset for r in records] == list(range(10))
        await consumer.close()

    case.run(body(), timeout=90)


def test_seek_to_end_and_end_offsets(transport: TransportCase) -> None:
    case = transport
    case.skip_if(LATEST_OFFSET)
    topic = case.topic("seekend")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 1)
        await produce(case, topic, [b"%d" % i for i in range(10)], partition=0)
        consumer = case.consumer()
        consumer.assign([tp])
        assert await consumer.end_offsets([tp]) == {tp: 10}
        await consumer.seek_to_end(tp)
        assert await consumer.position(tp) == 10
        await expect_nothing(consumer)
        await produce(case, topic, [b"after"], partition=0)
        records = await collect(consumer, 1)
        assert [(r.offset, r.value) for r in records] == [(10, b"after")]
        assert await consumer.end_offsets([tp]) == {tp: 11}
        await consumer.close()

    case.run(body())


def test_seek_to_timestamp(transport: TransportCase) -> None:
    case = transport
    case.skip_if(OFFSETS_FOR_TIMES)
    topic = case.topic("seekts")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 1)
        producer = case.transport.producer(linger_ms=1)
        for i in range(10):
            await producer.send(topic, b"%d" % i, partition=0, timestamp_ms=BASE_TS + 1000 * i)
        await producer.flush()
        await producer.close()
        consumer = case.consumer()
        consumer.assign([tp])
        await consumer.seek_to_timestamp(BASE_TS + 2500, tp)
        assert await consumer.position(tp) == 3
        records = await collect(consumer, 7)
        assert [r.offset for r in records] == list(range(3, 10))
        await consumer.seek_to_timestamp(BASE_TS + 4000, tp)
        assert await consumer.position(tp) == 4
        await consumer.seek_to_timestamp(BASE_TS, tp)
        assert await consumer.position(tp) == 0
        # Past every record: the end of the log.
        await consumer.seek_to_timestamp(BASE_TS + 60_000, tp)
        assert await consumer.position(tp) == 10
        await consumer.close()

    case.run(body())


def test_getmany_long_polls_until_data_arrives(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("longpoll")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 1)
        consumer = case.consumer(auto_offset_reset="earliest")
        consumer.assign([tp])

        # Nothing to read: the poll ends at its timeout, empty.
        assert not any((await consumer.getmany(timeout_ms=400)).values())

        # A long poll waits: run up to its first wait, it is not done (one that returned
        # at once would be). With 60 s to wait, it can only finish inside wait_for's 10 s
        # if the produce, made while it waits, wakes it up.
        polling = await started(consumer.getmany(timeout_ms=60_000))
        assert not polling.done()
        await produce(case, topic, [b"wake up"], partition=0)
        fetched = await asyncio.wait_for(polling, 10)
        assert [r.value for r in fetched.get(tp, [])] == [b"wake up"]
        await consumer.close()

    case.run(body())


# ---------------------------------------------------------------------------------------
# groups


def test_commit_and_committed(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("commit")
    group = case.group("g-commit")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 1)
        await produce(case, topic, [b"%d" % i for i in range(10)], partition=0)
        consumer = case.consumer(group_id=group)
        consumer.assign([tp])
        assert await consumer.committed(tp) is None
        assert [r.offset for r in await collect(consumer, 10)] == list(range(10))
        await consumer.commit()
        assert await consumer.committed(tp) == 10
        await consumer.commit({tp: 4})
        assert await consumer.committed(tp) == 4
        await consumer.commit({tp: OffsetAndMetadata(6, "checkpoint")})
        assert await consumer.committed(tp) == 6
        await consumer.close()

        # A new consumer of the group starts from the committed offset.
        again = case.consumer(group_id=group)
        again.assign([tp])
        assert await again.committed(tp) == 6
        records = await collect(again, 4)
        assert [r.offset for r in records] == [6, 7, 8, 9]
        await again.close()

        # Another group has its own offsets.
        other = case.consumer(group_id=case.group("g-other"))
        other.assign([tp])
        assert await other.committed(tp) is None
        assert [r.offset for r in await collect(other, 10)] == list(range(10))
        await other.close()

    case.run(body())


def check_cooperative_sequence(
    events: list[tuple[str, frozenset[TopicPartition]]], final: set[TopicPartition]
) -> None:
    """Incremental (KIP-429) listener calls: a revocation gives up only held partitions,
    an assignment adds only new ones, and what they add up to is ``final``."""
    held: set[TopicPartition] = set()
    for kind, parts in events:
        if kind == "revoked":
            assert parts <= held, (parts, held, events)
            held -= parts
        else:
            assert not parts & held, (parts, held, events)
            held |= parts
    assert held == final, events


def held_now(events: list[tuple[str, frozenset[TopicPartition]]], cooperative: bool) -> set:
    if not cooperative:
        assigned = [parts for kind, parts in events if kind == "assigned"]
        return set(assigned[-1]) if assigned else set()
    held: set[TopicPartition] = set()
    for kind, parts in events:
        held = held - parts if kind == "revoked" else held | parts
    return held


@pytest.mark.parametrize("protocol", ["eager", "cooperative"])
def test_group_members_split_partitions_and_rebalance(
    transport: TransportCase, protocol: str
) -> None:
    """Two members split four partitions and one takes them all back when the other
    leaves. Eager (Kafka's range): everything is revoked and assigned again; cooperative
    (KIP-429; the embedded groups always are): a member gives up only what moves."""
    case = transport
    cooperative = protocol == "cooperative"
    if not cooperative and not case.is_kafka:
        pytest.skip("the embedded groups are always cooperative")
    strategy = ("cooperative-sticky",) if cooperative else ("range",)
    check = check_cooperative_sequence if cooperative else check_eager_sequence
    topic = case.topic("members")
    group = case.group("g-members")
    everything = {TopicPartition(topic, p) for p in range(4)}

    async def body() -> None:
        admin = case.transport.admin()
        await admin.create_topic(topic, 4)
        await produce(case, topic, [b"%d" % i for i in range(40)])
        a_events, b_events = Recorder(), Recorder()
        a = case.consumer(
            group_id=group, client_id="member-a", partition_assignment_strategy=strategy
        )
        b = case.consumer(
            group_id=group, client_id="member-b", partition_assignment_strategy=strategy
        )
        await a.subscribe([topic], a_events)
        await drive([a], lambda: a.assignment() == everything, "A alone owns all 4")
        check(a_events.meaningful(), everything)

        await b.subscribe([topic], b_events)

        def split() -> bool:
            mine, theirs = a.assignment(), b.assignment()
            return (
                mine | theirs == everything
                and not mine & theirs
                and len(mine) == len(theirs) == 2
                and held_now(a_events.events, cooperative) == mine
                and held_now(b_events.events, cooperative) == theirs
            )

        await drive([a, b], split, "A and B own 2 partitions each")
        a_seq = a_events.meaningful()
        check(a_seq, a.assignment())
        if cooperative:  # A gave up only what B took; what it kept was never revoked
            revoked = set().union(*(p for kind, p in a_seq if kind == "revoked"))
            assert revoked == b.assignment()
        else:
            assert ("revoked", frozenset(everything)) in a_seq  # A gave up all it had
        check(b_events.meaningful(), b.assignment())

        # B leaves: A takes everything back
        before = len(a_events.events)
        kept = set(a.assignment())
        await b.close()
        await drive([a], lambda: a.assignment() == everything, "A owns all 4 again")
        await drive([a], lambda: held_now(a_events.events, cooperative) == everything, "A told")
        after = [e for e in a_events.events[before:] if e != ("revoked", frozenset())]
        if cooperative:
            assert after == [("assigned", frozenset(everything - kept))]
        else:
            assert after[0][0] == "revoked" and after[-1] == ("assigned", frozenset(everything))
        check(a_events.meaningful(), everything)
        await a.close()

    case.run(body(), timeout=150)


def test_group_members_get_standby_partitions_of_the_others(transport: TransportCase) -> None:
    """``standby_replicas=1``: every partition is also given, as a standby, to one member
    that does not hold it (``standby_assignment``); the peer list says whose is which; a
    member alone has no standbys."""
    case = transport
    topic = case.topic("standby")
    group = case.group("g-standby")
    everything = frozenset(TopicPartition(topic, p) for p in range(6))

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 6)
        options: dict[str, Any] = {"standby_replicas": 1}
        if case.is_kafka:
            options["partition_assignment_strategy"] = ("cooperative-sticky",)
        members = [
            case.consumer(group_id=group, client_id=f"standby-{n}", **options) for n in "abc"
        ]
        await members[0].subscribe([topic], user_data=b"")
        await drive(members[:1], lambda: members[0].assignment() == everything, "A holds all")
        assert members[0].standby_assignment() == frozenset()
        for member in members[1:]:
            await member.subscribe([topic], user_data=b"")

        def settled() -> bool:
            held = [frozenset(m.assignment()) for m in members]
            standby = [m.standby_assignment() for m in members]
            return (
                all(len(h) == 2 for h in held)
                and frozenset().union(*held) == everything
                and frozenset().union(*standby) == everything
                and sum(len(s) for s in standby) == 6
                and all(not (h & s) for h, s in zip(held, standby, strict=True))
            )

        await drive(members, settled, "2 partitions each, every partition one standby")
        peers = {p.member_id: p for p in members[0].group_peers()}
        assert sorted(len(p.standby) for p in peers.values()) == [2, 2, 2]
        for peer in peers.values():
            assert not (peer.standby & peer.partitions)
        for member in members:
            await member.close()

    case.run(body())


def test_group_members_see_each_others_user_data_and_partitions(transport: TransportCase) -> None:
    """``subscribe(user_data=)`` advertises bytes; ``group_peers`` lists every member that
    advertised some, with the partitions the last rebalance gave it, on every member."""
    case = transport
    topic = case.topic("peers")
    group = case.group("g-peers")
    everything = {TopicPartition(topic, p) for p in range(4)}

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 4)
        a = case.consumer(group_id=group, client_id="peer-a")
        b = case.consumer(group_id=group, client_id="peer-b")
        quiet = case.consumer(group_id=group, client_id="peer-quiet")  # advertises nothing
        members = [a, b, quiet]
        assert a.group_peers() == ()  # not a member yet

        await a.subscribe([topic], user_data=b"http://a")
        await drive([a], lambda: len(a.group_peers()) == 1, "A sees itself")
        [alone] = a.group_peers()
        assert (alone.user_data, alone.partitions) == (b"http://a", frozenset(everything))

        await b.subscribe([topic], user_data=b"http://b")
        await quiet.subscribe([topic])

        def settled(expected: set[bytes]) -> Callable[[], bool]:
            def check() -> bool:
                held = [m.assignment() for m in members]
                views = [m.group_peers() for m in members]
                return (
                    set().union(*held) == everything
                    and sum(len(h) for h in held) == 4
                    and all(h for h in held)
                    and views[0] == views[1] == views[2]
                    and {p.user_data for p in views[0]} == expected
                    and {p.partitions for p in views[0]}
                    == {frozenset(a.assignment()), frozenset(b.assignment())}
                )

            return check

        await drive(members, settled({b"http://a", b"http://b"}), "three members, two advertised")
        peers = a.group_peers()
        assert [p.member_id for p in peers] == sorted(p.member_id for p in peers)
        by_data = {p.user_data: p for p in peers}
        assert by_data[b"http://a"].partitions == a.assignment()
        assert by_data[b"http://b"].partitions == b.assignment()
        assert by_data[b"http://a"].member_id != by_data[b"http://b"].member_id

        # advertising something else rejoins, and everyone sees the new bytes
        await b.subscribe([topic], user_data=b"http://b2")
        await drive(members, settled({b"http://a", b"http://b2"}), "B's new user data seen")

        await quiet.close()
        await b.close()
        await drive([a], lambda: a.assignment() == everything, "A owns all 4 again")
        await drive([a], lambda: [p.user_data for p in a.group_peers()] == [b"http://a"], "A alone")
        assert a.group_peers()[0].partitions == frozenset(everything)
        await a.close()
        assert a.group_peers() == ()

    case.run(body(), timeout=150)


async def describe_when(admin: Any, group: str, ok: Callable[[Any], bool], timeout: float = 30):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await admin.describe_group(group)
        if ok(info):
            return info
        if loop.time() > deadline:
            raise AssertionError(f"group never got there: {info}")
        await asyncio.sleep(0.1)


def test_new_member_starts_from_committed_offset(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("resume")
    group = case.group("g-resume")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        await case.transport.admin().create_topic(topic, 1)
        await produce(case, topic, [b"%d" % i for i in range(10)], partition=0)
        first = case.consumer(group_id=group)
        await first.subscribe([topic])
        records = await collect(first, 10)
        assert [r.offset for r in records] == list(range(10))
        await first.commit({tp: 7})
        await first.close()

        second = case.consumer(group_id=group)
        await second.subscribe([topic])
        records = await collect(second, 3, timeout=30)
        assert [r.offset for r in records] == [7, 8, 9]
        assert second.assignment() == {tp}
        await second.close()

    case.run(body())


# ---------------------------------------------------------------------------------------
# admin


def test_admin_topics_create_list_describe_delete(transport: TransportCase) -> None:
    case = transport
    topic = case.topic("admin")

    async def body() -> None:
        admin = case.transport.admin()
        await admin.create_topic(topic, 2, {"retention.ms": "3600000"})
        assert topic in await admin.list_topics()
        assert "__consumer_offsets" not in await admin.list_topics()
        info = await admin.describe_topic(topic)
        assert info.name == topic and not info.internal
        assert [p.partition for p in info.partitions] == [0, 1]
        for p in info.partitions:
            assert p.leader >= 0 and p.leader in p.replicas and p.leader in p.isr
        assert info.configs.get("retention.ms") == "3600000"

        await produce(case, topic, [b"a", b"b", b"c"], partition=1)
        if not QUIRKY(case, LATEST_OFFSET):
            info = await admin.describe_topic(topic)
            ends = [(p.log_start_offset, p.log_end_offset) for p in info.partitions]
            assert ends == [(0, 0), (0, 3)]

        with pytest.raises(TopicExistsError):
            await admin.create_topic(topic, 2)
        with pytest.raises(UnknownTopicError):
            await admin.describe_topic(case.topic("missing"))
        with pytest.raises(UnknownTopicError):
            await admin.delete_topic(case.topic("missing"))

        await admin.delete_topic(topic)
        await until_async(lambda: admin.list_topics(), lambda names: topic not in names)
        with pytest.raises(UnknownTopicError):
            await admin.describe_topic(topic)
        await admin.close()

    case.run(body())


def QUIRKY(case: TransportCase, quirk: str) -> bool:  # noqa: N802 - reads as a condition
    from .conftest import QUIRKS

    return quirk in QUIRKS.get(case.kind, {})


async def until_async(fetch: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 20):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await fetch()
        if ok(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout} s; last value {value!r}")
        await asyncio.sleep(0.1)


def test_admin_internal_topics_listed_on_request(transport: TransportCase) -> None:
    case = transport
    case.skip_if(INTERNAL_TOPICS)

    async def body() -> None:
        admin = case.transport.admin()
        # The offsets topic exists once a group has committed.
        topic = case.topic("internal")
        await admin.create_topic(topic, 1)
        consumer = case.consumer(group_id=case.group("g-internal"))
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 0})
        await consumer.close()
        assert "__consumer_offsets" in await admin.list_topics(include_internal=True)
        assert "__consumer_offsets" not in await admin.list_topics()

    case.run(body())


def test_internal_topics_refuse_client_writes(transport: TransportCase) -> None:
    """A forged commit record produced to ``__consumer_offsets`` is refused (Kafka answers
    INVALID_TOPIC_EXCEPTION) and the group's committed offset does not move; the admin
    calls that would change an internal topic are refused too."""
    case = transport
    case.skip_if(INTERNAL_TOPIC_WRITES)
    topic = case.topic("forged")
    group = case.group("g-forged")
    tp = TopicPartition(topic, 0)

    async def body() -> None:
        admin = case.transport.admin()
        await admin.create_topic(topic, 1)
        consumer = case.consumer(group_id=group)
        consumer.assign([tp])
        await consumer.commit({tp: 5})
        producer = case.transport.producer()
        forged_key = encode_offset_key(group, topic, 0)
        forged_value = encode_offset_value(LogOffset(999_999))
        partition = (java_string_hash(group) & 0x7FFFFFFF) % 10  # the group's partition
        with pytest.raises(TransportError, match="internal topic"):
            await producer.send_and_wait(
                "__consumer_offsets", forged_value, key=forged_key, partition=partition
            )
        assert await consumer.committed(tp) == 5
        with pytest.raises(TransportError, match="internal topic"):
            await admin.add_partitions("__consumer_offsets", 50)
        with pytest.raises(TransportError, match="internal topic"):
            await admin.delete_topic("__consumer_offsets")
        assert "__consumer_offsets" in await admin.list_topics(include_internal=True)
        await consumer.commit({tp: 6})  # the broker's own writes still go through
        assert await consumer.committed(tp) == 6
        await producer.close()
        await consumer.close()
        await admin.close()

    case.run(body())


def test_admin_add_partitions(transport: TransportCase) -> None:
    case = transport
    case.skip_if(CREATE_PARTITIONS)
    topic = case.topic("grow")

    async def body() -> None:
        admin = case.transport.admin()
        await admin.create_topic(topic, 1)
        await admin.add_partitions(topic, 3)
        info = await until_async(
            lambda: admin.describe_topic(topic), lambda i: len(i.partitions) == 3
        )
        assert [p.partition for p in info.partitions] == [0, 1, 2]
        assert await producer_partitions(case, topic) == 3
        with pytest.raises(InvalidPartitionsError):
            await admin.add_partitions(topic, 2)
        with pytest.raises(UnknownTopicError):
            await admin.add_partitions(case.topic("missing"), 4)

    case.run(body())


def test_admin_describe_group_with_lag(transport: TransportCase) -> None:
    case = transport
    case.skip_if(LATEST_OFFSET)
    topic = case.topic("lag")
    group = case.group("g-lag")
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def body() -> None:
        admin = case.transport.admin()
        await admin.create_topic(topic, 2)
        await produce(case, topic, [b"%d" % i for i in range(5)], partition=0)
        await produce(case, topic, [b"%d" % i for i in range(3)], partition=1)
        consumer = case.consumer(group_id=group)
        consumer.assign([p0, p1])
        await consumer.commit({p0: 2, p1: 3})
        await consumer.close()

        assert group in await admin.list_groups()
        info = await admin.describe_group(group)
        assert info.group_id == group
        assert info.members == ()
        lags = {(p.topic, p.partition): p for p in info.partitions}
        assert set(lags) == {(topic, 0), (topic, 1)}
        assert (lags[(topic, 0)].log_end_offset, lags[(topic, 0)].committed_offset) == (5, 2)
        assert lags[(topic, 0)].lag == 3
        assert (lags[(topic, 1)].log_end_offset, lags[(topic, 1)].committed_offset) == (3, 3)
        assert lags[(topic, 1)].lag == 0
        assert all(p.member_id is None for p in info.partitions)

    case.run(body())


def test_admin_describe_group_members(transport: TransportCase) -> None:
    case = transport
    case.skip_if(DESCRIBE_GROUP_MEMBERS)
    topic = case.topic("described")
    group = case.group("g-described")
    everything = {TopicPartition(topic, p) for p in range(2)}

    async def body() -> None:
        admin = case.transport.admin()
        await admin.create_topic(topic, 2)
        a = case.consumer(group_id=group, client_id="member-a")
        b = case.consumer(group_id=group, client_id="member-b")
        await a.subscribe([topic])
        await b.subscribe([topic])
        await drive(
            [a, b],
            lambda: len(a.assignment()) == len(b.assignment()) == 1,
            "A and B own one partition each",
        )
        info = await describe_when(
            admin, group, lambda i: i.state == "Stable" and len(i.members) == 2
        )
        assert info.group_id == group
        owned = {m.client_id: set(m.assignment) for m in info.members}
        assert owned == {"member-a": a.assignment(), "member-b": b.assignment()}
        assert group in await admin.list_groups()
        # Every assigned partition is listed with its owner, committed or not.
        by_member = {m.member_id: set(m.assignment) for m in info.members}
        lags = {TopicPartition(p.topic, p.partition): p for p in info.partitions}
        assert set(lags) == everything
        for tp, lag in lags.items():
            assert lag.member_id is not None and tp in by_member[lag.member_id]
            assert lag.committed_offset == -1
        await a.close()
        await b.close()

    case.run(body(), timeout=150)
