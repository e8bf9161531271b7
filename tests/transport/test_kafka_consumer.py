"""The Kafka transport's consumer against real brokers: positions, seeks, decoding edge
cases (offsets inside a batch, partial trailing batches, control batches), offset resets,
commits across restarts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from streamlog.transport.errors import OffsetOutOfRangeError, TransportError
from streamlog.transport.types import OffsetAndMetadata, TopicPartition

from .test_kafka_connection import KafkaCase, kafka, read_records, run

__all__ = ["kafka"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(120)

# An hour ago: recent enough for the brokers' time-based retention (seven days).
BASE_TS = time.time_ns() // 1_000_000 - 3_600_000


async def fill(transport: Any, topic: str, count: int, *, one_batch: bool = False) -> None:
    """``count`` records ``b"0".."count-1"`` with timestamps BASE_TS + 1000 * i, in one
    batch or one batch per record."""
    producer = transport.producer(linger_ms=1000 if one_batch else 0)
    handles = []
    for i in range(count):
        handle = await producer.send(topic, b"%d" % i, partition=0, timestamp_ms=BASE_TS + 1000 * i)
        if not one_batch:
            await handle
        handles.append(handle)
    await producer.flush()
    for handle in handles:
        await handle
    await producer.close()


def values(records: list[Any]) -> list[int]:
    return [int(r.value) for r in records]


def test_seek_inside_a_batch_skips_the_records_before(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("inside")
        await transport.admin().create_topic(topic, 1)
        await fill(transport, topic, 50, one_batch=True)
        tp = TopicPartition(topic, 0)
        consumer = transport.consumer()
        consumer.assign([tp])
        consumer.seek(tp, 37)
        records = await read_records(consumer, 13)
        assert [r.offset for r in records] == list(range(37, 50))
        assert values(records) == list(range(37, 50))
        assert await consumer.position(tp) == 50
        await transport.close()

    run(body())


def test_small_fetches_cut_batches_and_max_records_slices_them(kafka: KafkaCase) -> None:
    """Fetches limited to a few hundred bytes end in partial batches; handing out three
    records at a time slices batches across calls. Nothing is lost or repeated."""

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("partial")
        await transport.admin().create_topic(topic, 1)
        await fill(transport, topic, 60)
        tp = TopicPartition(topic, 0)
        consumer = transport.consumer(max_partition_fetch_bytes=200, max_poll_records=3)
        consumer.assign([tp])
        records: list[Any] = []
        while len(records) < 60:
            batch = (await consumer.getmany(timeout_ms=2000)).get(tp, [])
            assert batch, f"stalled after {len(records)} records"
            assert len(batch) <= 3
            records.extend(batch)
        assert [r.offset for r in records] == list(range(60))
        assert [r.timestamp for r in records] == [BASE_TS + 1000 * i for i in range(60)]
        await transport.close()

    run(body())


def test_many_partitions_pipelined(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("pipelined")
        await transport.admin().create_topic(topic, 3)
        producer = transport.producer(linger_ms=5, batch_size=16_384)
        for i in range(30_000):
            await producer.send(topic, b"%d" % i, partition=i % 3)
        await producer.flush()
        consumer = transport.consumer(max_partition_fetch_bytes=64 * 1024, max_poll_records=777)
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        records = await read_records(consumer, 30_000, timeout=60)
        assert len(records) == 30_000
        for p in range(3):
            mine = [r for r in records if r.partition == p]
            assert [r.offset for r in mine] == list(range(10_000))
            assert values(mine) == list(range(p, 30_000, 3))
        await transport.close()

    run(body(), timeout=90)


def test_seek_to_beginning_end_and_timestamp(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("seeks")
        await transport.admin().create_topic(topic, 1)
        await fill(transport, topic, 10)
        tp = TopicPartition(topic, 0)
        consumer = transport.consumer()
        consumer.assign([tp])
        assert values(await read_records(consumer, 10)) == list(range(10))
        await consumer.seek_to_beginning(tp)
        assert await consumer.position(tp) == 0
        assert values(await read_records(consumer, 10)) == list(range(10))
        if kafka.kind != "tansu":  # Tansu's latest offset is the last batch's start + 1
            await consumer.seek_to_end(tp)
            assert await consumer.position(tp) == 10
            assert await consumer.end_offsets([tp]) == {tp: 10}
        assert await consumer.beginning_offsets([tp]) == {tp: 0}
        if kafka.kind == "tansu":
            await transport.close()
            pytest.skip("Tansu: offsets-for-times answers 0; latest offset lags")
        await consumer.seek_to_timestamp(BASE_TS + 6500, tp)
        assert await consumer.position(tp) == 7
        assert values(await read_records(consumer, 3)) == [7, 8, 9]
        await consumer.seek_to_timestamp(BASE_TS + 60_000, tp)  # after the last: the end
        assert await consumer.position(tp) == 10
        await transport.close()

    run(body())


def test_out_of_range_offset_follows_auto_offset_reset(kafka: KafkaCase) -> None:
    kafka.skip_on_tansu("a fetch past the log end gets no records and no OFFSET_OUT_OF_RANGE")

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("range")
        await transport.admin().create_topic(topic, 1)
        await fill(transport, topic, 5)
        tp = TopicPartition(topic, 0)

        earliest = transport.consumer(auto_offset_reset="earliest")
        earliest.assign([tp])
        earliest.seek(tp, 1_000)
        assert values(await read_records(earliest, 5)) == list(range(5))

        strict = transport.consumer(auto_offset_reset="none")
        strict.assign([tp])
        with pytest.raises(OffsetOutOfRangeError, match="no committed offset"):
            await strict.getmany(timeout_ms=100)
        strict.seek(tp, 1_000)
        with pytest.raises(OffsetOutOfRangeError, match="out of range"):
            for _ in range(50):
                await strict.getmany(timeout_ms=100)
        strict.seek(tp, 3)  # a seek clears the error
        assert values(await read_records(strict, 2)) == [3, 4]
        await transport.close()

    run(body())


def test_latest_reset_reads_only_new_records(kafka: KafkaCase) -> None:
    kafka.skip_on_tansu("the latest offset is the last batch's start + 1, not the log end")

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("latest")
        await transport.admin().create_topic(topic, 1)
        await fill(transport, topic, 5)
        tp = TopicPartition(topic, 0)
        consumer = transport.consumer(auto_offset_reset="latest")
        consumer.assign([tp])
        assert await consumer.position(tp) == 5
        assert await consumer.getmany(timeout_ms=200) == {}
        producer = transport.producer(linger_ms=0)
        await producer.send_and_wait(topic, b"new", partition=0)
        records = await read_records(consumer, 1)
        assert [(r.offset, r.value) for r in records] == [(5, b"new")]
        await transport.close()

    run(body())


def test_end_offsets_after_a_fetch_are_the_log_end(kafka: KafkaCase) -> None:
    """Tansu answers ListOffsets with its last batch's base + 1 (here 1 for one batch of
    5); once the consumer has fetched, its end offsets take the fetch's high watermark."""

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("fetched-end")
        await transport.admin().create_topic(topic, 1)
        await fill(transport, topic, 5, one_batch=True)
        tp = TopicPartition(topic, 0)
        consumer = transport.consumer()
        consumer.assign([tp])
        before = (await consumer.end_offsets([tp]))[tp]
        assert before == 5 or (kafka.kind == "tansu" and before == 1), before
        consumer.seek(tp, 0)
        assert len(await read_records(consumer, 5)) == 5
        assert await consumer.end_offsets([tp]) == {tp: 5}
        await transport.close()

    run(body())


def test_control_batches_are_skipped(kafka: KafkaCase) -> None:
    """Transaction markers (written by a confluent-kafka transactional producer) are never
    handed out, and with read_committed an aborted transaction's records are not either."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    topic = KafkaCase.name("txn")

    async def create() -> None:
        transport = kafka.transport()
        await transport.admin().create_topic(topic, 1)
        await transport.close()

    run(create())
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": f"{kafka.host}:{kafka.port}",
            "transactional.id": KafkaCase.name("txn-id"),
        }
    )
    try:
        producer.init_transactions(5)
    except confluent_kafka.KafkaException as e:
        pytest.skip(f"{kafka.kind} broker does not support transactions: {e}")
    producer.begin_transaction()
    producer.produce(topic, b"committed-1", partition=0)
    producer.commit_transaction(10)
    producer.begin_transaction()
    producer.produce(topic, b"aborted", partition=0)
    # sent before the abort: abort_transaction purges what is still queued
    assert producer.flush(10) == 0
    producer.abort_transaction(10)
    producer.begin_transaction()
    producer.produce(topic, b"committed-2", partition=0)
    producer.commit_transaction(10)

    async def body() -> None:
        transport = kafka.transport()
        tp = TopicPartition(topic, 0)
        everything = transport.consumer()
        everything.assign([tp])
        written = [b"committed-1", b"aborted", b"committed-2"]
        markers = 3
        records = await read_records(everything, len(written))
        assert [r.value for r in records] == written
        # Records and markers take offsets; only the records are handed out.
        assert await everything.position(tp) == len(written) + markers
        await transport.close()
        kafka.skip_on_tansu("a read_committed fetch hands out an aborted transaction's records")
        transport = kafka.transport()
        committed = transport.consumer(isolation_level="read_committed")
        committed.assign([tp])
        records = await read_records(committed, 2)
        assert [r.value for r in records] == [b"committed-1", b"committed-2"]
        await transport.close()

    run(body())


def test_commits_survive_a_consumer_restart(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("restart")
        group = kafka.name("restart-group")
        await transport.admin().create_topic(topic, 1)
        await fill(transport, topic, 20)
        tp = TopicPartition(topic, 0)

        first = kafka.consumer(transport, group_id=group, max_poll_records=12)
        await first.subscribe([topic])
        assert await first.committed(tp) is None
        records = await read_records(first, 12)
        assert values(records)[:12] == list(range(12))
        await first.commit({tp: OffsetAndMetadata(12, "twelve")})
        assert await first.committed(tp) == 12
        await first.close()

        second = kafka.consumer(transport, group_id=group)
        await second.subscribe([topic])
        assert second.assignment() == {tp}
        assert await second.position(tp) == 12
        assert values(await read_records(second, 8)) == list(range(12, 20))
        await second.commit()  # the current positions
        assert await second.committed(tp) == 20
        await second.close()

        # A group-less reader with the same group id starts from the commit too.
        third = transport.consumer(group_id=group)
        third.assign([tp])
        assert await third.position(tp) == 20
        await third.commit({tp: 5})
        assert await third.committed(tp) == 5
        await transport.close()

    run(body(), timeout=90)


def test_misuse_raises_transport_errors(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        consumer = transport.consumer()
        tp = TopicPartition(kafka.name("unassigned"), 0)
        with pytest.raises(TransportError, match="not assigned"):
            consumer.seek(tp, 0)
        with pytest.raises(TransportError, match="group_id"):
            await consumer.commit({tp: 1})
        with pytest.raises(TransportError, match="group_id"):
            await consumer.subscribe(["x"])
        await transport.close()

    run(body())
