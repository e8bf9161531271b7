"""What only the embedded transport promises: its directories, batching, resets, errors.

Behaviour shared with the kafka transport is in ``test_contract.py``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streamlog.log import AppendOrigin, encode_control_batch, iter_batches
from streamlog.log.batch_header import COMPRESSION_MASK, HEADER_SIZE, parse_header
from streamlog.log.clock import ManualClock
from streamlog.log.records import ControlType, encode_batch
from streamlog.transport import open_transport
from streamlog.transport.embedded import EmbeddedTransport
from streamlog.transport.embedded.transport import memory_base_dir
from streamlog.transport.errors import (
    BrokerUnavailableError,
    CorruptBatchError,
    InvalidConfigError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    TransportClosedError,
    TransportError,
    UnknownTopicError,
    UnsupportedBrokerURLError,
)
from streamlog.transport.types import TopicPartition
from tests.log.logutil import bomb_batch

TIMEOUT = 30


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), TIMEOUT))


def stored_batches(transport: EmbeddedTransport, topic: str, partition: int = 0) -> list[Any]:
    plog = transport.manager.partition(topic, partition)
    return [parse_header(raw) for raw in plog.iter_batches()]


async def read_all(consumer: Any, count: int) -> list[Any]:
    records: list[Any] = []
    for _ in range(100):
        for batch in (await consumer.getmany(timeout_ms=100)).values():
            records.extend(batch)
        if len(records) >= count:
            return records
    raise AssertionError(f"got {len(records)} of {count}")


# ---------------------------------------------------------------------------------------
# directories


def test_open_transport_picks_embedded_for_memory_and_file(tmp_path) -> None:
    assert isinstance(open_transport("memory://"), EmbeddedTransport)
    made = open_transport(f"file://{tmp_path}")
    assert isinstance(made, EmbeddedTransport) and made.url == f"file://{tmp_path}"
    with pytest.raises(UnsupportedBrokerURLError):
        EmbeddedTransport("kafka://127.0.0.1:9092")


def test_memory_log_lives_on_tmpfs_and_is_removed_on_close() -> None:
    async def body() -> None:
        transport = EmbeddedTransport("memory://")
        await transport.start()
        path = transport.data_dir
        assert path is not None and os.path.isdir(path)
        base = memory_base_dir()
        if base is not None:
            assert os.path.dirname(path) == base
        producer = transport.producer()
        await producer.send_and_wait("t", b"x")
        await transport.close()
        assert not os.path.exists(path)
        with pytest.raises(TransportClosedError):
            await transport.start()

    run(body)


def test_file_log_keeps_records_topics_and_commits_across_restarts(tmp_path) -> None:
    url = f"file://{tmp_path / 'data'}"
    tp = TopicPartition("kept", 1)

    async def first() -> None:
        async with EmbeddedTransport(url) as transport:
            await transport.admin().create_topic("kept", 2, {"cleanup.policy": "compact"})
            producer = transport.producer()
            for i in range(5):
                await producer.send("kept", b"%d" % i, key=b"k%d" % i, partition=1)
            await producer.close()
            consumer = transport.consumer(group_id="g")
            consumer.assign([tp])
            await consumer.commit({tp: 3})

    async def second() -> None:
        async with EmbeddedTransport(url) as transport:
            info = await transport.admin().describe_topic("kept")
            assert len(info.partitions) == 2
            assert info.partitions[1].log_end_offset == 5
            # One "broker", node 0, leads every partition, as streamlog broker reports.
            assert {(p.leader, p.replicas, p.isr) for p in info.partitions} == {(0, (0,), (0,))}
            assert info.configs == {"cleanup.policy": "compact"}
            consumer = transport.consumer(group_id="g")
            consumer.assign([tp])
            assert await consumer.committed(tp) == 3
            records = await read_all(consumer, 2)
            assert [(r.offset, r.key, r.value) for r in records] == [
                (3, b"k3", b"3"),
                (4, b"k4", b"4"),
            ]

    run(first)
    assert os.path.isdir(tmp_path / "data" / "kept-1")
    run(second)


def test_file_log_is_owned_by_one_transport_at_a_time(tmp_path) -> None:
    url = f"file://{tmp_path}"

    async def body() -> None:
        owner = EmbeddedTransport(url)
        await owner.start()
        intruder = EmbeddedTransport(url)
        with pytest.raises(BrokerUnavailableError, match="in use by another process"):
            await intruder.start()
        await owner.close()
        await intruder.start()  # free again
        await intruder.close()

    run(body)


def test_clients_need_a_started_transport_and_stop_with_it() -> None:
    async def body() -> None:
        transport = EmbeddedTransport("memory://")
        with pytest.raises(TransportClosedError):
            transport.producer()
        await transport.start()
        producer = transport.producer()
        consumer = transport.consumer()
        consumer.assign([TopicPartition("t", 0)])
        await producer.send("t", b"unflushed")
        await transport.close()
        with pytest.raises(TransportClosedError):
            await producer.send("t", b"x")
        with pytest.raises(TransportClosedError):
            await consumer.getmany()

    run(body)


# ---------------------------------------------------------------------------------------
# producing


def test_topics_are_auto_created_on_first_send_unless_turned_off() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            meta = await transport.producer().send_and_wait("fresh", b"x")
            assert (meta.partition, meta.offset) == (0, 0)
            info = await transport.admin().describe_topic("fresh")
            assert len(info.partitions) == 1
        async with EmbeddedTransport("memory://", default_partitions=3) as transport:
            assert await transport.producer().partitions_for("three") == 3
        async with EmbeddedTransport("memory://", auto_create_topics=False) as transport:
            producer = transport.producer()
            with pytest.raises(UnknownTopicError):
                await producer.send("nope", b"x")
            with pytest.raises(UnknownTopicError):
                await producer.partitions_for("nope")
            assert await transport.admin().list_topics() == []

    run(body)


def test_linger_holds_records_and_flush_appends_one_batch() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1)
            producer = transport.producer(linger_ms=60_000)
            futures = [await producer.send("t", b"%d" % i, partition=0) for i in range(10)]
            assert not any(f.done() for f in futures)
            assert transport.manager.partition("t", 0).log_end_offset == 0
            await producer.flush()
            assert [(await f).offset for f in futures] == list(range(10))
            (batch,) = stored_batches(transport, "t")
            assert batch.record_count == 10

    run(body)


def test_linger_expiry_and_linger_zero_send_without_flush() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1)
            lingering = transport.producer(linger_ms=20)
            future = await lingering.send("t", b"a", partition=0)
            assert (await asyncio.wait_for(future, 5)).offset == 0

            eager = transport.producer(linger_ms=0)
            first = await eager.send("t", b"b", partition=0)
            second = await eager.send("t", b"c", partition=0)
            await asyncio.sleep(0)  # one turn of the loop
            assert first.done() and second.done()
            assert [(await f).offset for f in (first, second)] == [1, 2]
            # Records sent in one turn share a batch.
            assert [b.record_count for b in stored_batches(transport, "t")] == [1, 2]

    run(body)


def test_batch_size_splits_batches() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1)
            producer = transport.producer(linger_ms=60_000, batch_size=2000)
            for _ in range(100):
                await producer.send("t", bytes(100), partition=0)
            await producer.flush()
            batches = stored_batches(transport, "t")
            assert sum(b.record_count for b in batches) == 100
            assert len(batches) > 5
            assert all(b.size <= 2000 for b in batches)

    run(body)


def test_batches_fill_to_batch_size_exactly_and_a_full_one_goes_out_at_once() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1)
            one = len(encode_batch([(None, bytes(100), 0, ())]))
            per_record = one - HEADER_SIZE  # 100 B values, deltas of one byte
            producer = transport.producer(linger_ms=60_000, batch_size=one + 2 * per_record)
            futures = [await producer.send("t", bytes(100), partition=0) for _ in range(3)]
            # Three records fill the batch to the byte: it is appended without a flush.
            assert all(f.done() for f in futures)
            assert [b.size for b in stored_batches(transport, "t")] == [one + 2 * per_record]
            lone = await producer.send("t", bytes(5000), partition=0)  # over the limit alone
            assert lone.done() and (await lone).offset == 3
            await producer.close()

    run(body)


def test_a_refused_record_leaves_nothing_behind() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1)
            producer = transport.producer(linger_ms=60_000)
            with pytest.raises(TypeError):
                await producer.send("t", 5, partition=0)  # type: ignore[arg-type]
            await producer.flush()  # the batch opened for it is empty: nothing appended
            assert stored_batches(transport, "t") == []
            future = await producer.send("t", b"fine", partition=0)
            await producer.close()
            assert (await future).offset == 0
            with pytest.raises(TransportClosedError):
                await producer.send("t", b"x")
            with pytest.raises(TransportClosedError):
                await producer.send_many("t", [b"x"])

    run(body)


def test_records_without_a_timestamp_take_the_transport_clock() -> None:
    async def body() -> None:
        clock = ManualClock(1_800_000_000_000)
        async with EmbeddedTransport("memory://", clock=clock) as transport:
            producer = transport.producer(linger_ms=60_000)
            first = await producer.send("t", b"a")
            clock.advance(250)
            many = await producer.send_many("t", [b"b", b"c"])
            given = await producer.send("t", b"d", timestamp_ms=5)
            await producer.flush()
            assert (await first).timestamp == 1_800_000_000_000
            assert [m.timestamp for m in await many] == [1_800_000_000_250] * 2
            assert (await given).timestamp == 5
            consumer = transport.consumer()
            consumer.assign([TopicPartition("t", 0)])
            records = await read_all(consumer, 4)
            assert [r.timestamp for r in records] == [
                1_800_000_000_000,
                1_800_000_000_250,
                1_800_000_000_250,
                5,
            ]

    run(body)


def test_send_many_fills_batches_and_null_keys_move_on_when_one_is_full() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 3)
            producer = transport.producer(linger_ms=60_000, batch_size=2000)
            values = [b"%03d" % i + bytes(97) for i in range(100)]
            sent = await producer.send_many("t", values)
            await producer.flush()
            metas = await sent
            batches = [b for p in range(3) for b in stored_batches(transport, "t", p)]
            assert sum(b.record_count for b in batches) == 100
            assert len(batches) >= 100 * 100 // 2000
            assert all(b.size <= 2000 for b in batches)
            consumer = transport.consumer()
            consumer.assign(TopicPartition("t", p) for p in range(3))
            records = await read_all(consumer, 100)
            where = {(r.partition, r.offset): r.value for r in records}
            assert [where[(m.partition, m.offset)] for m in metas] == values
            for p in range(3):  # in order within each partition
                mine = [m.offset for m in metas if m.partition == p]
                assert mine == list(range(len(mine)))

    run(body)


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_is_applied_and_read_back(compression: str) -> None:
    codes = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            producer = transport.producer(compression=compression)
            for i in range(50):
                await producer.send("t", b"value %d " % i * 10, key=b"%d" % i)
            await producer.flush()
            (batch,) = stored_batches(transport, "t")
            assert batch.attributes & COMPRESSION_MASK == codes[compression]
            consumer = transport.consumer()
            consumer.assign([TopicPartition("t", 0)])
            records = await read_all(consumer, 50)
            assert [r.value for r in records] == [b"value %d " % i * 10 for i in range(50)]

    run(body)


def test_bad_producer_settings_are_refused() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            with pytest.raises(InvalidConfigError):
                transport.producer(compression="brotli")
            with pytest.raises(InvalidConfigError):
                transport.producer(acks=2)
            producer = transport.producer()
            with pytest.raises(TypeError):
                await producer.send("t", "not bytes")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await producer.send("t", b"v", headers=[("h", "not bytes")])  # type: ignore[list-item]

    run(body)


def test_null_keys_stick_to_one_partition_per_batch() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 8)
            producer = transport.producer(linger_ms=60_000)
            futures = [await producer.send("t", b"%d" % i) for i in range(200)]
            await producer.flush()
            partitions = {(await f).partition for f in futures}
            assert len(partitions) == 1
            # The next batch may move: the partitioner was told a batch went out.
            futures = [await producer.send("t", b"%d" % i) for i in range(50)]
            await producer.flush()
            assert len({(await f).partition for f in futures}) == 1

    run(body)


def test_errors_reach_the_record_futures_translated() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            admin = transport.admin()
            await admin.create_topic("small", 1, {"max.message.bytes": "1000"})
            producer = transport.producer()
            future = await producer.send("small", bytes(5000))
            await producer.flush()
            with pytest.raises(RecordTooLargeError):
                await future
            with pytest.raises(RecordTooLargeError):
                await producer.send_and_wait("small", bytes(5000))
            # The producer keeps working for records that fit.
            assert (await producer.send_and_wait("small", b"ok")).offset == 0
            with pytest.raises(UnknownTopicError):
                await producer.send("small", b"x", partition=1)

            with pytest.raises(InvalidConfigError):
                await admin.create_topic("bad", 1, {"retention.ms": "soon"})
            with pytest.raises(TransportError) as caught:
                await admin.create_topic("no/slashes", 1)
            assert type(caught.value).__module__ == "streamlog.transport.errors"

    run(body)


# ---------------------------------------------------------------------------------------
# consuming


def test_position_outside_the_log_follows_auto_offset_reset() -> None:
    tp = TopicPartition("t", 0)

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            producer = transport.producer()
            for i in range(10):
                await producer.send("t", b"%d" % i)
            await producer.flush()
            transport.manager.partition("t", 0).delete_records_before(4)

            earliest = transport.consumer(auto_offset_reset="earliest")
            earliest.assign([tp])
            earliest.seek(tp, 1)
            assert [r.offset for r in await read_all(earliest, 6)] == [4, 5, 6, 7, 8, 9]

            latest = transport.consumer(auto_offset_reset="latest")
            latest.assign([tp])
            assert await latest.position(tp) == 10
            latest.seek(tp, 2)
            assert (await latest.getmany(timeout_ms=50)) == {}
            assert await latest.position(tp) == 10

            strict = transport.consumer(auto_offset_reset="none")
            strict.assign([tp])
            with pytest.raises(OffsetOutOfRangeError):
                await strict.position(tp)
            strict.seek(tp, 1)
            with pytest.raises(OffsetOutOfRangeError):
                await strict.getmany()
            with pytest.raises(InvalidConfigError):
                transport.consumer(auto_offset_reset="sometimes")

    run(body)


def test_control_batches_are_skipped_and_positions_pass_them() -> None:
    tp = TopicPartition("t", 0)

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            producer = transport.producer()
            await producer.send_and_wait("t", b"before")
            marker = encode_control_batch(
                ControlType.COMMIT,
                producer_id=7,
                producer_epoch=0,
                coordinator_epoch=0,
                timestamp=int(time.time() * 1000),
            )
            transport.manager.partition("t", 0).append(marker, AppendOrigin.COORDINATOR)
            consumer = transport.consumer()
            consumer.assign([tp])
            records = await read_all(consumer, 1)
            assert [r.value for r in records] == [b"before"]
            assert await consumer.getmany(timeout_ms=50) == {}
            assert await consumer.position(tp) == 2  # past the marker
            await producer.send_and_wait("t", b"after")
            assert [r.offset for r in await read_all(consumer, 1)] == [2]

    run(body)


def test_an_undecodable_batch_is_raised_after_the_records_before_it_until_a_seek() -> None:
    """A stored batch that will not decode (here a 1 GiB zstd bomb, appended as it is, as
    a log written before appends were validated could hold): the records before it are
    handed out, then every poll raises CorruptBatchError for it, until a seek past it."""
    tp = TopicPartition("t", 0)

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            producer = transport.producer()
            await producer.send_and_wait("t", b"a")
            await producer.send_and_wait("t", b"b")
            plog = transport.manager.partition("t", 0)
            stamp = int(time.time() * 1000)
            plog.append_as_is(bomb_batch(1 << 30, base_offset=2, timestamp=stamp))
            await producer.send_and_wait("t", b"c")
            consumer = transport.consumer()
            consumer.assign([tp])
            assert [r.value for r in await read_all(consumer, 2)] == [b"a", b"b"]
            for _ in range(2):
                with pytest.raises(CorruptBatchError, match="inflates past") as info:
                    await consumer.getmany(timeout_ms=50)
                assert (info.value.offset, info.value.next_offset) == (2, 3)
            assert await consumer.position(tp) == 2
            consumer.seek(tp, info.value.next_offset)
            assert [r.value for r in await read_all(consumer, 1)] == [b"c"]

    run(body)


def test_max_records_splits_a_stored_batch_without_losing_records() -> None:
    tp = TopicPartition("t", 0)

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            producer = transport.producer(linger_ms=60_000)
            for i in range(100):
                await producer.send("t", b"%d" % i)
            await producer.flush()
            consumer = transport.consumer()
            consumer.assign([tp])
            seen = []
            for _ in range(7):
                fetched = await consumer.getmany(max_records=15)
                seen.extend(r.offset for r in fetched.get(tp, []))
                assert len(fetched.get(tp, [])) <= 15
            assert seen == list(range(100))
            assert await consumer.position(tp) == 100
            # A seek inside the buffered batch drops what was buffered.
            consumer.seek(tp, 40)
            fetched = await consumer.getmany(max_records=3)
            assert [r.offset for r in fetched[tp]] == [40, 41, 42]

    run(body)


def test_reading_from_inside_a_batch_skips_the_records_before_the_position() -> None:
    tp = TopicPartition("t", 0)

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            producer = transport.producer(linger_ms=60_000)
            for i in range(30):
                await producer.send("t", b"%d" % i)
            await producer.flush()
            assert len(list(iter_batches(transport.manager.read("t", 0, 0).records))) == 1
            consumer = transport.consumer()
            consumer.assign([tp])
            consumer.seek(tp, 25)
            assert [r.offset for r in await read_all(consumer, 5)] == [25, 26, 27, 28, 29]

    run(body)


def test_unknown_partitions_are_polled_quietly_until_they_exist() -> None:
    tp = TopicPartition("later", 0)

    async def body() -> None:
        async with EmbeddedTransport("memory://", auto_create_topics=False) as transport:
            consumer = transport.consumer()
            consumer.assign([tp])
            assert await consumer.getmany(timeout_ms=50) == {}
            with pytest.raises(UnknownTopicError):
                await consumer.end_offsets([tp])
            await transport.admin().create_topic("later", 1)
            await transport.producer().send_and_wait("later", b"x")
            assert [r.value for r in await read_all(consumer, 1)] == [b"x"]

    run(body)


def test_positions_need_an_assignment() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            consumer = transport.consumer()
            with pytest.raises(TransportError):
                consumer.seek(TopicPartition("t", 0), 0)
            with pytest.raises(TransportError):
                await consumer.position(TopicPartition("t", 0))

    run(body)
