"""kafka-python (a pure-Python client we did not write) against ``streamlog broker``."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from .brokerproc import BrokerProcess

GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 30, **kw):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(timeout * 1000),
        **kw,
    )
    got = []
    deadline = time.monotonic() + timeout
    try:
        for message in consumer:
            got.append(message)
            if len(got) >= expected or time.monotonic() > deadline:
                break
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_producer_acks_all_with_each_compression_codec(shared_broker, codec) -> None:
    topic = f"kp-codec-{codec}"
    producer = KafkaProducer(
        bootstrap_servers=shared_broker.bootstrap,
        acks="all",
        compression_type=codec,
        linger_ms=5,
    )
    futures = [
        producer.send(topic, key=b"k%d" % i, value=b"value-%d" % i, headers=[("i", b"%d" % i)])
        for i in range(500)
    ]
    producer.flush(30)
    offsets = [f.get(timeout=10).offset for f in futures]
    producer.close()
    assert sorted(offsets) == list(range(500))
    got = consume_all(shared_broker.bootstrap, topic, 500)
    assert [m.value for m in got] == [b"value-%d" % i for i in range(500)]
    assert [m.key for m in got] == [b"k%d" % i for i in range(500)]
    assert got[7].headers == [("i", b"7")]


def test_consumer_group_reads_everything_and_commits(shared_broker) -> None:
    topic = "kp-group"
    producer = KafkaProducer(bootstrap_servers=shared_broker.bootstrap)
    for i in range(300):
        producer.send(topic, value=b"%d" % i)
    producer.flush(30)
    producer.close()
    got = consume_all(
        shared_broker.bootstrap,
        topic,
        300,
        group_id="kp-g1",
        enable_auto_commit=False,
        **GROUP_TIMEOUTS,
    )
    assert sorted(int(m.value) for m in got) == list(range(300))
    consumer = KafkaConsumer(
        bootstrap_servers=shared_broker.bootstrap,
        group_id="kp-g1",
        enable_auto_commit=False,
        **GROUP_TIMEOUTS,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.commit({tp: __import__("kafka").OffsetAndMetadata(300, "done", -1)})
    assert consumer.committed(tp) == 300
    consumer.close()


def test_two_consumers_split_four_partitions_and_rebalance_when_one_leaves(
    shared_broker,
) -> None:
    """Each consumer polls in its own thread, as applications do (kafka-python 3.0 loses
    a rejoin when two consumers are polled alternately from one thread)."""
    import threading

    topic = "kp-split"
    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    admin.close()

    class Member(threading.Thread):
        def __init__(self, name: str) -> None:
            super().__init__(name=name, daemon=True)
            self.stop = threading.Event()
            self.assigned: set[int] = set()
            self.consumer = KafkaConsumer(
                topic,
                bootstrap_servers=shared_broker.bootstrap,
                group_id="kp-split-g",
                auto_offset_reset="earliest",
                client_id=name,
                **GROUP_TIMEOUTS,
            )

        def run(self) -> None:
            while not self.stop.is_set():
                self.consumer.poll(100)
                self.assigned = {tp.partition for tp in self.consumer.assignment()}
            self.consumer.close()  # LeaveGroup

    a, b = Member("a"), Member("b")
    a.start()
    b.start()

    def wait_for(condition) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return False

    try:
        split = wait_for(
            lambda: (
                len(a.assigned) == 2
                and len(b.assigned) == 2
                and a.assigned | b.assigned == {0, 1, 2, 3}
            )
        )
        assert split, (a.assigned, b.assigned)
        b.stop.set()
        b.join(30)
        assert wait_for(lambda: a.assigned == {0, 1, 2, 3}), a.assigned
    finally:
        a.stop.set()
        b.stop.set()
        a.join(30)
        b.join(30)


def test_committed_offsets_survive_a_broker_restart(tmp_path) -> None:
    proc = BrokerProcess(str(tmp_path / "d")).start()
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=proc.bootstrap,
            group_id="kp-durable",
            enable_auto_commit=False,
            **GROUP_TIMEOUTS,
        )
        producer = KafkaProducer(bootstrap_servers=proc.bootstrap)
        producer.send("kp-durable-t", b"x").get(10)
        producer.close()
        tp = TopicPartition("kp-durable-t", 0)
        consumer.assign([tp])
        from kafka import OffsetAndMetadata

        consumer.commit({tp: OffsetAndMetadata(42, "meta", -1)})
        consumer.close()
        assert proc.stop() == 0
        proc.start()
        consumer = KafkaConsumer(
            bootstrap_servers=proc.bootstrap,
            group_id="kp-durable",
            enable_auto_commit=False,
            **GROUP_TIMEOUTS,
        )
        assert consumer.committed(tp) == 42
        consumer.close()
    finally:
        assert proc.stop() == 0


def test_admin_create_list_delete_topics_and_add_partitions(shared_broker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    "kp-admin-a",
                    num_partitions=3,
                    replication_factor=1,
                    topic_configs={"retention.ms": "60000"},
                ),
                NewTopic("kp-admin-b", num_partitions=1, replication_factor=1),
            ]
        )
        assert {"kp-admin-a", "kp-admin-b"} <= set(admin.list_topics())
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("kp-admin-a", num_partitions=1, replication_factor=1)])
        admin.create_partitions({"kp-admin-a": NewPartitions(total_count=5)})
        described = admin.describe_topics(["kp-admin-a"])
        assert len(described[0]["partitions"]) == 5
        from kafka.admin import ConfigResource, ConfigResourceType

        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-admin-a")])
        text = repr(configs)
        assert "retention.ms" in text and "60000" in text
        admin.delete_topics(["kp-admin-b"])
        deadline = time.monotonic() + 10
        while "kp-admin-b" in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "kp-admin-b" not in admin.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics(["kp-admin-b"])
    finally:
        admin.close()


def test_offsets_for_times(shared_broker) -> None:
    topic = "kp-times"
    producer = KafkaProducer(bootstrap_servers=shared_broker.bootstrap)
    # recent: the broker's default retention (7 days, as Kafka) deletes older records
    base = (int(time.time()) - 3600) * 1000
    for i in range(100):
        producer.send(topic, value=b"%d" % i, timestamp_ms=base + i * 1000)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=shared_broker.bootstrap)
    tp = TopicPartition(topic, 0)
    found = consumer.offsets_for_times({tp: base + 41_500})
    assert found[tp].offset == 42 and found[tp].timestamp == base + 42_000
    assert consumer.offsets_for_times({tp: base + 10_000_000})[tp] is None
    assert consumer.beginning_offsets([tp])[tp] == 0
    assert consumer.end_offsets([tp])[tp] == 100
    consumer.close()
