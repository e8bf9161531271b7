"""The Kafka transport's admin client against real brokers: topics and groups."""

from __future__ import annotations

import pytest

from streamlog.transport.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    TopicExistsError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.types import TopicPartition

from .test_kafka_connection import KafkaCase, kafka, read_records, run

__all__ = ["kafka"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(120)


def test_topic_lifecycle(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        admin = transport.admin()
        topic = kafka.name("admin")
        configs = {"retention.ms": "3600000", "cleanup.policy": "delete"}
        await admin.create_topic(topic, 3, configs)
        assert topic in await admin.list_topics()

        producer = transport.producer(linger_ms=0)
        for i in range(6):
            await producer.send_and_wait(topic, b"%d" % i, partition=i % 3)

        info = await admin.describe_topic(topic)
        assert info.name == topic and not info.internal
        assert [p.partition for p in info.partitions] == [0, 1, 2]
        for p in info.partitions:
            assert p.leader >= 0 and p.leader in p.replicas and p.leader in p.isr
            assert p.log_start_offset == 0
            if kafka.kind != "tansu":  # Tansu's latest offset is the last batch's start + 1
                assert p.log_end_offset == 2
        # Explicit configs always show; streamlog also reports its defaults.
        assert {k: info.configs[k] for k in configs} == configs
        if kafka.kind == "streamlog":
            assert info.configs["max.message.bytes"] == "1048588"

        with pytest.raises(TopicExistsError, match=topic):
            await admin.create_topic(topic, 1)
        await admin.delete_topic(topic)
        assert topic not in await admin.list_topics()
        with pytest.raises(UnknownTopicError):
            await admin.describe_topic(topic)
        with pytest.raises(UnknownTopicError):
            await admin.delete_topic(topic)
        await transport.close()

    run(body())


def test_invalid_topic_requests(kafka: KafkaCase) -> None:
    kafka.skip_on_tansu("accepts any topic name and any config name")

    async def body() -> None:
        transport = kafka.transport()
        admin = transport.admin()
        with pytest.raises(InvalidConfigError, match="no.such.config"):
            await admin.create_topic(kafka.name("bad-config"), 1, {"no.such.config": "1"})
        with pytest.raises(InvalidConfigError, match="INVALID_TOPIC_EXCEPTION"):
            await admin.create_topic("bad name!", 1)
        with pytest.raises(InvalidPartitionsError):
            await admin.create_topic(kafka.name("no-partitions"), 0)
        await transport.close()

    run(body())


def test_add_partitions(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        admin = transport.admin()
        topic = kafka.name("grow")
        await admin.create_topic(topic, 2)
        if kafka.kind == "tansu":
            with pytest.raises(TransportError, match="CreatePartitions"):
                await admin.add_partitions(topic, 4)
            await transport.close()
            pytest.skip("Tansu: does not implement CreatePartitions")
        await admin.add_partitions(topic, 4)
        assert len((await admin.describe_topic(topic)).partitions) == 4
        producer = transport.producer()
        assert await producer.partitions_for(topic) == 4
        meta = await producer.send_and_wait(topic, b"x", partition=3)
        assert (meta.partition, meta.offset) == (3, 0)
        with pytest.raises(InvalidPartitionsError):
            await admin.add_partitions(topic, 3)
        with pytest.raises(UnknownTopicError):
            await admin.add_partitions(kafka.name("missing"), 3)
        await transport.close()

    run(body())


def test_groups_list_and_describe_with_lag(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        admin = transport.admin()
        topic = kafka.name("lag")
        group = kafka.name("lag-group")
        await admin.create_topic(topic, 2)
        producer = transport.producer(linger_ms=0)
        for i in range(20):
            await producer.send(topic, b"%d" % i, partition=i % 2)
        await producer.flush()

        consumer = kafka.consumer(transport, group_id=group, client_id="lag-reader")
        await consumer.subscribe([topic])
        await read_records(consumer, 20)
        await consumer.commit(
            {TopicPartition(topic, 0): 4, TopicPartition(topic, 1): 10}  # lag 6 and 0
        )
        assert group in await admin.list_groups()
        unknown = await admin.describe_group(kafka.name("no-such-group"))
        assert not unknown.members and not unknown.partitions
        assert unknown.state in ("Dead", "Empty")  # Tansu says Empty

        info = await admin.describe_group(group)
        assert info.group_id == group
        assert info.state == "Stable"
        assert len(info.members) == 1
        committed = {(p.topic, p.partition): p.committed_offset for p in info.partitions}
        assert committed == {(topic, 0): 4, (topic, 1): 10}
        if kafka.kind == "tansu":
            await transport.close()
            pytest.skip(
                "Tansu: DescribeGroups leaves out client id, host and assignment, and "
                "its latest offsets lag"
            )
        member = info.members[0]
        assert member.client_id == "lag-reader" and member.host
        assert set(member.assignment) == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
        assert info.protocol == "range"
        lags = {p.partition: (p.log_end_offset, p.lag, p.member_id) for p in info.partitions}
        assert lags == {0: (10, 6, member.member_id), 1: (10, 0, member.member_id)}

        await consumer.close()
        info = await admin.describe_group(group)
        assert info.state == "Empty" and not info.members
        assert {p.partition: (p.lag, p.member_id) for p in info.partitions} == {
            0: (6, None),
            1: (0, None),
        }
        await transport.close()

    run(body(), timeout=90)
