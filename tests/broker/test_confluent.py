"""confluent-kafka (librdkafka) against ``streamlog broker``."""

from __future__ import annotations

import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

FAST = {"fetch.queue.backoff.ms": 10}


def create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=10)
    futures[topic].result(20)


def test_idempotent_producer_100k_acks_all_read_back_exactly_once_in_order(
    shared_broker,
) -> None:
    topic = "ck-idem"
    create(shared_broker.bootstrap, topic, 4)
    producer = Producer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    delivered: list[tuple[int, int]] = []
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append((msg.partition(), msg.offset()))

    n = 100_000
    for i in range(n):
        while True:
            try:
                producer.produce(
                    topic, key=b"k%d" % (i % 1000), value=b"%d" % i, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    assert errors == []
    assert len(delivered) == n

    consumer = Consumer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "group.id": "ck-idem-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    per_partition: dict[int, list[int]] = defaultdict(list)
    seen = 0
    deadline = time.monotonic() + 60
    while seen < n and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, 0.5):
            assert msg.error() is None, msg.error()
            per_partition[msg.partition()].append(int(msg.value()))
            seen += 1
    consumer.close()
    assert seen == n
    values = sorted(v for vs in per_partition.values() for v in vs)
    assert values == list(range(n))  # every message exactly once
    for partition, vs in per_partition.items():
        assert vs == sorted(vs), f"partition {partition} out of order"
        # and keyed as Kafka would: every key's messages stay on one partition
    keys_per_partition = {p: {v % 1000 for v in vs} for p, vs in per_partition.items()}
    all_keys = [k for ks in keys_per_partition.values() for k in ks]
    assert len(all_keys) == len(set(all_keys)) == 1000


def test_consumer_group_subscribe_commit_and_resume(shared_broker) -> None:
    topic = "ck-group"
    create(shared_broker.bootstrap, topic, 3)
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap})
    for i in range(600):
        producer.produce(topic, value=b"%d" % i, partition=i % 3)
    producer.flush(30)

    def read(count: int) -> list[int]:
        consumer = Consumer(
            {
                "bootstrap.servers": shared_broker.bootstrap,
                "group.id": "ck-g",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                **FAST,
            }
        )
        consumer.subscribe([topic])
        values: list[int] = []
        deadline = time.monotonic() + 60
        while len(values) < count and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None:
                    values.append(int(msg.value()))
            if len(values) >= count:
                consumer.commit(asynchronous=False)
        consumer.close()
        return values

    first = read(600)
    assert sorted(first) == list(range(600))
    for i in range(600, 660):
        producer.produce(topic, value=b"%d" % i, partition=i % 3)
    producer.flush(30)
    second = read(60)  # resumes from the committed offsets: only the new ones
    assert sorted(second) == list(range(600, 660))


def test_admin_client_topics_partitions_configs_groups(shared_broker) -> None:
    admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})
    topic = "ck-admin"
    admin.create_topics(
        [NewTopic(topic, 2, 1, config={"cleanup.policy": "compact"})], operation_timeout=10
    )[topic].result(20)
    metadata = admin.list_topics(timeout=10)
    assert topic in metadata.topics
    assert len(metadata.topics[topic].partitions) == 2
    assert metadata.topics[topic].partitions[0].leader == 0
    assert list(metadata.brokers) == [0]
    admin.create_partitions([NewPartitions(topic, 6)])[topic].result(20)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 6
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource("topic", topic)
    configs = admin.describe_configs([resource])[resource].result(20)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].value == "604800000"
    try:
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(20)
        raise AssertionError("shrinking must fail")
    except KafkaException as exc:
        assert "INVALID_PARTITIONS" in str(exc) or "must be larger" in str(exc)
    admin.delete_topics([topic], operation_timeout=10)[topic].result(20)
    deadline = time.monotonic() + 10
    while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic not in admin.list_topics(timeout=10).topics
