"""The Kafka transport's producer against real brokers: batching, compression, keyed
partitioning, idempotent retries through injected faults, acks and errors."""

from __future__ import annotations

import time
from itertools import groupby
from typing import Any

import pytest

from streamlog.log.partitioner import partition_for_key
from streamlog.transport.errors import (
    BrokerUnavailableError,
    RecordTooLargeError,
    UnknownTopicError,
)
from streamlog.transport.kafka import KafkaTransport
from streamlog.transport.types import TopicPartition

from .test_kafka_connection import FaultProxy, KafkaCase, free_port, kafka, read_records, run

__all__ = ["kafka"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(120)

# An hour ago: recent enough for the brokers' time-based retention (seven days).
BASE_TS = time.time_ns() // 1_000_000 - 3_600_000


async def read_all(transport: Any, topic: str, partitions: int, count: int) -> list[Any]:
    consumer = transport.consumer()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    try:
        return await read_records(consumer, count)
    finally:
        await consumer.close()


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_records_read_back_as_sent(kafka: KafkaCase, compression: str) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name(f"roundtrip-{compression}")
        await transport.admin().create_topic(topic, 2)
        producer = transport.producer(linger_ms=20, compression=compression)
        sent = []
        handles = []
        for i in range(200):
            key = b"key-%d" % i if i % 5 else None
            value = b"value-%d " % i * (i % 7) if i != 3 else None
            headers = [("n", b"%d" % i), ("null", None)] if i % 2 else []
            ts = BASE_TS + i
            handles.append(
                await producer.send(
                    topic, value, key=key, partition=i % 2, headers=headers, timestamp_ms=ts
                )
            )
            sent.append((i % 2, key, value, headers, ts))
        await producer.flush()
        metas = [await h for h in handles]
        assert [m.offset for m in metas] == [i // 2 for i in range(200)]
        assert [(m.partition, m.timestamp) for m in metas] == [(s[0], s[4]) for s in sent]

        records = await read_all(transport, topic, 2, 200)
        assert len(records) == 200
        got = {(r.partition, r.offset): r for r in records}
        for meta, (partition, key, value, headers, ts) in zip(metas, sent, strict=True):
            r = got[(partition, meta.offset)]
            assert (r.key, r.value, list(r.headers), r.timestamp) == (key, value, headers, ts)
        await transport.close()

    run(body())


def test_keyed_records_land_on_the_murmur2_partition(kafka: KafkaCase) -> None:
    """Where our producer puts a key is where librdkafka's murmur2 partitioner (Java's
    default) puts it: confluent-kafka produces the same keys to a twin topic."""
    confluent_kafka = pytest.importorskip("confluent_kafka")

    async def body() -> tuple[str, str]:
        transport = kafka.transport()
        ours, theirs = kafka.name("keys-ours"), kafka.name("keys-theirs")
        admin = transport.admin()
        await admin.create_topic(ours, 7)
        await admin.create_topic(theirs, 7)
        producer = transport.producer()
        for i in range(300):
            await producer.send(ours, b"v", key=b"user-%d" % i)
        await producer.flush()
        await transport.close()
        return ours, theirs

    ours, theirs = run(body())
    p = confluent_kafka.Producer(
        {"bootstrap.servers": f"{kafka.host}:{kafka.port}", "partitioner": "murmur2_random"}
    )
    for i in range(300):
        p.produce(theirs, b"v", key=b"user-%d" % i)
    assert p.flush(30) == 0

    async def check() -> None:
        transport = kafka.transport()
        mine = await read_all(transport, ours, 7, 300)
        other = await read_all(transport, theirs, 7, 300)
        assert len(mine) == len(other) == 300
        where = {r.key: r.partition for r in mine}
        assert where == {r.key: r.partition for r in other}
        assert where == {r.key: partition_for_key(r.key, 7) for r in mine}
        assert len(set(where.values())) == 7
        await transport.close()

    run(check())


def test_null_keys_stick_to_one_partition_per_batch(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("sticky")
        await transport.admin().create_topic(topic, 4)
        producer = transport.producer(linger_ms=1000, batch_size=10_000)
        handles = [await producer.send(topic, b"x" * 100, timestamp_ms=BASE_TS) for _ in range(200)]
        await producer.flush()
        partitions = [(await h).partition for h in handles]
        # A batch holds what fits in 10,000 bytes: 90 of these records (a 61-byte header,
        # then 109 bytes a record, 110 from offset delta 64 on). Each batch goes whole to
        # one partition, and a full batch moves the sticky partition on to another.
        assert [len(list(run)) for _, run in groupby(partitions)] == [90, 90, 20], partitions
        await transport.close()

    run(body())


def test_small_batches_keep_order_with_many_in_flight(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("order")
        await transport.admin().create_topic(topic, 1)
        producer = transport.producer(linger_ms=0, batch_size=300)
        handles = [await producer.send(topic, b"%05d" % i) for i in range(2000)]
        await producer.flush()
        assert [(await h).offset for h in handles] == list(range(2000))
        records = await read_all(transport, topic, 1, 2000)
        assert [r.value for r in records] == [b"%05d" % i for i in range(2000)]
        await transport.close()

    run(body())


def test_lost_response_is_retried_without_duplicates(kafka: KafkaCase) -> None:
    """The broker appends a batch but the answer never arrives: the idempotent producer
    sends it again with the same sequence numbers and the broker recognises it."""

    async def body() -> None:
        async with FaultProxy(kafka.host, kafka.port) as proxy:
            transport = kafka.transport()
            topic = kafka.name("lost-response")
            await transport.admin().create_topic(topic, 1)
            proxied = type(transport)(proxy.url)
            producer = proxied.producer(linger_ms=0, batch_size=400, retry_backoff_ms=20)
            await producer.send_and_wait(topic, b"warm-up")
            proxy.lose_responses = 1
            handles = [await producer.send(topic, b"%03d" % i) for i in range(100)]
            await producer.flush()
            assert proxy.lost_responses == 1
            offsets = [(await h).offset for h in handles]
            if kafka.kind == "tansu":
                # Tansu answers a duplicate without its offset (-1, as Java reports it).
                assert all(o in (-1, i + 1) for i, o in enumerate(offsets)), offsets
            else:
                assert offsets == list(range(1, 101))
            records = await read_all(transport, topic, 1, 101)
            assert [r.value for r in records] == [b"warm-up"] + [b"%03d" % i for i in range(100)]
            await proxied.close()
            await transport.close()

    run(body())


def test_lost_request_is_retried_in_order(kafka: KafkaCase) -> None:
    """A Produce request vanishes: later batches meet a sequence gap (or wait behind
    it); after the request timeout everything is sent again, in order, once."""

    async def body() -> None:
        async with FaultProxy(kafka.host, kafka.port) as proxy:
            transport = kafka.transport()
            topic = kafka.name("lost-request")
            await transport.admin().create_topic(topic, 1)
            proxied = type(transport)(proxy.url, request_timeout_ms=1500)
            producer = proxied.producer(linger_ms=0, batch_size=400, retry_backoff_ms=20)
            await producer.send_and_wait(topic, b"warm-up")
            proxy.lose_requests = 1
            handles = [await producer.send(topic, b"%03d" % i) for i in range(100)]
            await producer.flush()
            assert proxy.lost_requests == 1
            assert [(await h).offset for h in handles] == list(range(1, 101))
            records = await read_all(transport, topic, 1, 101)
            assert [r.value for r in records] == [b"warm-up"] + [b"%03d" % i for i in range(100)]
            await proxied.close()
            await transport.close()

    run(body())


def test_without_idempotence_a_lost_response_duplicates(kafka: KafkaCase) -> None:
    """The control for the test above: the same fault with idempotence off does write
    the batch twice, so the fault really happens."""

    async def body() -> None:
        async with FaultProxy(kafka.host, kafka.port) as proxy:
            transport = kafka.transport()
            topic = kafka.name("dup")
            await transport.admin().create_topic(topic, 1)
            proxied = type(transport)(proxy.url)
            producer = proxied.producer(idempotent=False, linger_ms=0, retry_backoff_ms=20)
            await producer.send_and_wait(topic, b"warm-up")
            proxy.lose_responses = 1
            meta = await producer.send_and_wait(topic, b"twice")
            assert meta.offset == 2
            records = await read_all(transport, topic, 1, 3)
            assert [r.value for r in records] == [b"warm-up", b"twice", b"twice"]
            await proxied.close()
            await transport.close()

    run(body())


@pytest.mark.parametrize("acks", [0, 1])
def test_acks_zero_and_one(kafka: KafkaCase, acks: int) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name(f"acks{acks}")
        await transport.admin().create_topic(topic, 1)
        producer = transport.producer(acks=acks, linger_ms=0)
        metas = [await producer.send_and_wait(topic, b"%d" % i) for i in range(20)]
        expected = [-1] * 20 if acks == 0 else list(range(20))
        assert [m.offset for m in metas] == expected
        records = await read_all(transport, topic, 1, 20)
        assert [r.value for r in records] == [b"%d" % i for i in range(20)]
        await transport.close()

    run(body())


def test_partitions_for_and_bad_partitions(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("count")
        await transport.admin().create_topic(topic, 3)
        producer = transport.producer()
        assert await producer.partitions_for(topic) == 3
        with pytest.raises(UnknownTopicError, match="partition 3 does not exist"):
            await producer.send(topic, b"x", partition=3)
        await transport.close()

    run(body())


def test_record_too_large_fails_that_record_only(kafka: KafkaCase) -> None:
    kafka.skip_on_tansu("does not enforce max.message.bytes")

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("large")
        await transport.admin().create_topic(topic, 1, {"max.message.bytes": "10000"})
        producer = transport.producer(linger_ms=0)
        with pytest.raises(RecordTooLargeError, match=topic):
            await producer.send_and_wait(topic, b"x" * 20_000)
        # The producer id is renewed so the next batch does not meet a sequence gap.
        meta = await producer.send_and_wait(topic, b"small")
        assert meta.offset == 0
        await transport.close()

    run(body())


def test_batches_in_flight_under_an_old_producer_id_are_restamped(kafka: KafkaCase) -> None:
    """A batch fails for good while four later ones are in flight: those meet a
    sequence gap under the old producer id, and are sent again under the new one, their
    framed bytes re-stamped (producer id, epoch, sequence from 0, CRC)."""
    kafka.skip_on_tansu("does not enforce max.message.bytes")

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("restamp")
        await transport.admin().create_topic(topic, 1, {"max.message.bytes": "10000"})
        producer = transport.producer(linger_ms=0, batch_size=1000, retry_backoff_ms=20)
        # All in one turn of the loop: the sender then sends five batches (the large
        # record's and four of three records each) before any answer comes back.
        large = await producer.send(topic, b"x" * 20_000)
        handles = [await producer.send(topic, b"%03d" % i + b"." * 297) for i in range(12)]
        await producer.flush()
        with pytest.raises(RecordTooLargeError, match=topic):
            await large
        assert [(await h).offset for h in handles] == list(range(12))
        records = await read_all(transport, topic, 1, 12)
        assert [r.value[:3] for r in records] == [b"%03d" % i for i in range(12)]
        await transport.close()

    run(body())


def test_bad_keys_values_and_headers_raise_from_send(kafka: KafkaCase) -> None:
    """Records are encoded as they are sent: a bad one raises there and queues nothing
    (a batch left empty by it is dropped), and the producer goes on."""

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("bad-input")
        await transport.admin().create_topic(topic, 1)
        producer = transport.producer(linger_ms=0)
        with pytest.raises(TypeError, match="value"):
            await producer.send(topic, "text", partition=0)  # type: ignore[arg-type]
        await producer.flush()
        with pytest.raises(TypeError, match="key"):
            await producer.send(topic, b"v", key="text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await producer.send(topic, b"v", partition=0, headers=[("h", "text")])  # type: ignore[list-item]
        good = await producer.send(topic, b"good", partition=0)
        metas = await producer.send_many(topic, [b"a", b"b"], partition=0)
        await producer.flush()
        assert (await good).offset == 0
        assert [m.offset for m in await metas] == [1, 2]
        records = await read_all(transport, topic, 1, 3)
        assert [r.value for r in records] == [b"good", b"a", b"b"]
        await transport.close()

    run(body())


def test_send_without_a_broker_raises_broker_unavailable() -> None:
    async def body() -> None:
        transport = KafkaTransport(f"kafka://127.0.0.1:{free_port()}")
        producer = transport.producer()
        with pytest.raises(BrokerUnavailableError, match="refused"):
            await producer.send("t", b"x")
        await transport.close()

    run(body())
