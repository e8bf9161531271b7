"""The broker's transaction coordinator driven by confluent-kafka's transactional producer,
read by read_committed and read_uncommitted consumers of confluent-kafka, kafka-python
and aiokafka, against real ``streamlog broker`` processes: commit and abort with a real
consumer's offsets, fencing, a zombie member's offsets, a timeout, a broker restart in the
middle of a transaction (killed too), and compaction of a partition with aborted
transactions; aiokafka's transactional producer too."""

from __future__ import annotations

import asyncio
import datetime
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as ATopicPartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

from streamlog.log.records import encode_batch
from streamlog.protocol import ApiKey, ErrorCode, decode_response, encode_request, request_class
from streamlog.protocol.schema import build_message

from .brokerproc import NO_REBALANCE_DELAY, BrokerProcess
from .test_broker_process import recv_frame

FAST_EXPIRY = ("--transaction-abort-interval-ms", "200")
FENCED = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(
        str(tmp_path_factory.mktemp("txn") / "data"), (*NO_REBALANCE_DELAY, *FAST_EXPIRY)
    ).start()
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"broker exited with {code}:\n{proc.logs()}"


def create_topic(bootstrap: str, name: str, partitions: int = 1, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=configs)])
    futures[name].result(15)


def txn_producer(bootstrap: str, txn_id: str, **options: object) -> Producer:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5, **options}
    )
    producer.init_transactions(15)
    return producer


# -- readers ---------------------------------------------------------------------------


def confluent_read(
    bootstrap: str, topic: str, isolation: str, expected: int
) -> list[tuple[int, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    got: list[tuple[int, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while len(got) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                got.append((message.offset(), message.value()))
        for _ in range(2):  # nothing more comes either
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                got.append((message.offset(), message.value()))
    finally:
        consumer.close()
    return got


def kafka_python_read(bootstrap: str, topic: str, isolation: str) -> list[tuple[int, bytes]]:
    """Everything up to the end offset for the isolation level (the LSO for
    read_committed), which must be reached."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    tp = KTopicPartition(topic, 0)
    got: list[tuple[int, bytes]] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + 15
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend((r.offset, r.value) for r in records)
        assert consumer.position(tp) >= end
    finally:
        consumer.close()
    return got


def aiokafka_read(
    bootstrap: str, topic: str, isolation: str, expected: int
) -> list[tuple[int, bytes]]:
    async def read() -> list[tuple[int, bytes]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level=isolation,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        got: list[tuple[int, bytes]] = []
        try:
            tp = ATopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            deadline = time.monotonic() + 15
            while len(got) < expected and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    got.extend((m.offset, m.value) for m in messages)
            for messages in (await consumer.getmany(timeout_ms=300)).values():
                got.extend((m.offset, m.value) for m in messages)
        finally:
            await consumer.stop()
        return got

    return asyncio.run(asyncio.wait_for(read(), 60))


def last_stable_offset(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    try:
        tp = KTopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def wait_for(condition, what: str, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- commit and abort ------------------------------------------------------------------


def test_commit_and_abort_as_every_client_sees_them(broker) -> None:
    """Offsets: 0-2 committed | 3 marker | 4-5 aborted | 6 marker | 7 committed | 8 marker.
    The offsets sent with the committed transaction become the group's; those sent with
    the aborted one never do."""
    bootstrap = broker.bootstrap
    create_topic(bootstrap, "eos-in")
    create_topic(bootstrap, "eos-out")
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(6):
        plain.produce("eos-in", value=b"in%d" % i, partition=0)
    assert plain.flush(10) == 0

    source = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "eos-group",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    source.subscribe(["eos-in"])
    inputs = []
    deadline = time.monotonic() + 15
    while len(inputs) < 6 and time.monotonic() < deadline:
        message = source.poll(0.2)
        if message is not None and message.error() is None:
            inputs.append(message.value())
    assert inputs == [b"in%d" % i for i in range(6)]
    try:
        producer = txn_producer(bootstrap, "eos-app")
        producer.begin_transaction()
        for value in (b"c0", b"c1", b"c2"):
            producer.produce("eos-out", key=b"k", value=value, partition=0)
        producer.send_offsets_to_transaction(
            [TopicPartition("eos-in", 0, 3)], source.consumer_group_metadata(), 10
        )
        producer.commit_transaction(15)

        producer.begin_transaction()
        for value in (b"a0", b"a1"):
            producer.produce("eos-out", key=b"k", value=value, partition=0)
        assert producer.flush(10) == 0  # sent, so that they are in the log behind the abort
        producer.send_offsets_to_transaction(
            [TopicPartition("eos-in", 0, 6)], source.consumer_group_metadata(), 10
        )
        producer.abort_transaction(15)

        producer.begin_transaction()
        producer.produce("eos-out", key=b"k", value=b"c3", partition=0)
        producer.commit_transaction(15)
        committed = source.committed([TopicPartition("eos-in", 0)], 10)
        assert committed[0].offset == 3
    finally:
        source.close()

    only_committed = [(0, b"c0"), (1, b"c1"), (2, b"c2"), (7, b"c3")]
    everything = [(0, b"c0"), (1, b"c1"), (2, b"c2"), (4, b"a0"), (5, b"a1"), (7, b"c3")]
    assert confluent_read(bootstrap, "eos-out", "read_committed", 4) == only_committed
    assert confluent_read(bootstrap, "eos-out", "read_uncommitted", 6) == everything
    assert kafka_python_read(bootstrap, "eos-out", "read_committed") == only_committed
    assert kafka_python_read(bootstrap, "eos-out", "read_uncommitted") == everything
    assert aiokafka_read(bootstrap, "eos-out", "read_committed", 4) == only_committed
    assert aiokafka_read(bootstrap, "eos-out", "read_uncommitted", 6) == everything
    assert last_stable_offset(bootstrap, "eos-out") == 9


# -- fencing ---------------------------------------------------------------------------


def test_a_second_instance_fences_the_first_and_aborts_its_transaction(broker) -> None:
    bootstrap = broker.bootstrap
    create_topic(bootstrap, "fence-out")
    first = txn_producer(bootstrap, "fence-app")
    first.begin_transaction()
    first.produce("fence-out", value=b"zombie", partition=0)
    assert first.flush(10) == 0
    assert last_stable_offset(bootstrap, "fence-out") == 0  # held by the open transaction

    second = txn_producer(bootstrap, "fence-app")  # aborts the first's transaction
    assert last_stable_offset(bootstrap, "fence-out") == 2  # zombie + its abort marker
    with pytest.raises(KafkaException) as info:
        first.commit_transaction(10)
    assert info.value.args[0].code() in FENCED
    assert info.value.args[0].fatal()

    second.begin_transaction()
    second.produce("fence-out", value=b"fresh", partition=0)
    second.commit_transaction(15)
    assert confluent_read(bootstrap, "fence-out", "read_committed", 1) == [(2, b"fresh")]
    assert kafka_python_read(bootstrap, "fence-out", "read_uncommitted") == [
        (0, b"zombie"),
        (2, b"fresh"),
    ]


def test_offsets_of_a_member_that_left_the_group_are_refused(broker) -> None:
    """TxnOffsetCommit carries the member's generation (KIP-447): a zombie's is refused."""
    bootstrap = broker.bootstrap
    create_topic(bootstrap, "zombie-in")
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "zombie-group",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    first = Consumer(config)
    first.subscribe(["zombie-in"])
    wait_for(lambda: first.poll(0.1) is None and bool(first.assignment()), "an assignment")
    stale = first.consumer_group_metadata()
    first.close()  # leaves the group
    producer = txn_producer(bootstrap, "zombie-app")
    producer.begin_transaction()
    with pytest.raises(KafkaException) as info:
        producer.send_offsets_to_transaction([TopicPartition("zombie-in", 0, 1)], stale, 10)
    assert info.value.args[0].code() in {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
    }
    producer.abort_transaction(10)
    checker = Consumer(config)
    try:
        assert checker.committed([TopicPartition("zombie-in", 0)], 10)[0].offset < 0
    finally:
        checker.close()


# -- timeouts --------------------------------------------------------------------------


def test_a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced(broker) -> None:
    bootstrap = broker.bootstrap
    create_topic(bootstrap, "slow-out")
    producer = txn_producer(bootstrap, "slow-app", **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce("slow-out", value=b"late", partition=0)
    assert producer.flush(10) == 0
    # the coordinator aborts it: an abort marker ends it and the LSO moves past it
    wait_for(lambda: last_stable_offset(bootstrap, "slow-out") == 2, "the timeout abort")
    with pytest.raises(KafkaException) as info:
        producer.commit_transaction(10)
    assert info.value.args[0].code() in FENCED
    assert confluent_read(bootstrap, "slow-out", "read_committed", 0) == []
    assert kafka_python_read(bootstrap, "slow-out", "read_uncommitted") == [(0, b"late")]


# -- restarts --------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["sigterm", "kill -9"])
def test_a_broker_restart_in_the_middle_of_a_transaction(tmp_path, stop) -> None:
    """The transaction survives the restart: its producer commits it (every record
    visible). Another transaction open at the restart is aborted by its producer's
    successor: none of its records is ever visible to read_committed."""
    broker = BrokerProcess(str(tmp_path / "data"), NO_REBALANCE_DELAY).start()
    try:
        bootstrap = broker.bootstrap
        create_topic(bootstrap, "restart-out")
        create_topic(bootstrap, "restart-other")
        carried = txn_producer(bootstrap, "restart-app", **{"message.timeout.ms": 30_000})
        carried.begin_transaction()
        carried.produce("restart-out", value=b"r1", partition=0)
        carried.produce("restart-out", value=b"r2", partition=0)
        assert carried.flush(10) == 0
        dropped = txn_producer(bootstrap, "restart-dropped")
        dropped.begin_transaction()
        dropped.produce("restart-other", value=b"lost", partition=0)
        assert dropped.flush(10) == 0

        if stop == "sigterm":
            assert broker.stop() == 0
        else:
            broker.kill()
        broker.start()

        carried.produce("restart-out", value=b"r3", partition=0)
        carried.commit_transaction(30)
        successor = txn_producer(bootstrap, "restart-dropped")
        successor.begin_transaction()
        successor.produce("restart-other", value=b"kept", partition=0)
        successor.commit_transaction(15)

        assert kafka_python_read(bootstrap, "restart-out", "read_committed") == [
            (0, b"r1"),
            (1, b"r2"),
            (2, b"r3"),
        ]
        assert kafka_python_read(bootstrap, "restart-other", "read_committed") == [(2, b"kept")]
        assert confluent_read(bootstrap, "restart-other", "read_uncommitted", 2) == [
            (0, b"lost"),
            (2, b"kept"),
        ]
    finally:
        broker.stop()


# -- compaction ------------------------------------------------------------------------


def test_compaction_removes_aborted_records_and_keeps_committed_values(broker) -> None:
    """Keys k0-k9: committed v1, then an aborted "bad" for each, then committed v2 for
    k0-k4. The cleaner drops the aborted records without letting them hide v1."""
    bootstrap = broker.bootstrap
    topic = "compact-txn"
    create_topic(
        bootstrap,
        topic,
        **{
            "cleanup.policy": "compact",
            "segment.bytes": "400",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "100",
        },
    )
    producer = txn_producer(bootstrap, "compact-app")
    for value, keys, commit in (
        (b"v1", range(10), True),
        (b"bad", range(10), False),
        (b"v2", range(5), True),
    ):
        producer.begin_transaction()
        for k in keys:
            producer.produce(topic, key=b"k%d" % k, value=value, partition=0)
        assert producer.flush(10) == 0
        if commit:
            producer.commit_transaction(15)
        else:
            producer.abort_transaction(15)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(20):  # rolls the segments holding the transactions
        plain.produce(topic, key=b"filler", value=b"f%d" % i, partition=0)
    assert plain.flush(10) == 0

    def aborted_gone() -> bool:
        values = [v for _, v in kafka_python_read(bootstrap, topic, "read_uncommitted")]
        return b"bad" not in values and values.count(b"v1") == 5

    wait_for(aborted_gone, "compaction of the aborted transaction", timeout=20)
    latest: dict[bytes, bytes] = {}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compact-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while latest.get(b"filler") != b"f19" and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                latest[message.key()] = message.value()
    finally:
        consumer.close()
    expected = {b"k%d" % k: (b"v2" if k < 5 else b"v1") for k in range(10)}
    expected[b"filler"] = b"f19"
    assert latest == expected


# -- the APIs one by one, raw -----------------------------------------------------------


def call(port: int, api_key: ApiKey, version: int, **fields: Any) -> Any:
    body = build_message(request_class(api_key, version), **fields)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(encode_request(body, correlation_id=5, client_id="raw-txn"))
        correlation, response = decode_response(recv_frame(sock), api_key, version)
    assert correlation == 5
    return response


def test_each_api_validates_and_answers_as_kafka(broker) -> None:
    port = broker.port
    create_topic(broker.bootstrap, "raw-out")

    def init(txn_id: str | None, timeout_ms: int) -> tuple[int, int, int]:
        r = call(
            port,
            ApiKey.INIT_PRODUCER_ID,
            4,
            transactional_id=txn_id,
            transaction_timeout=timeout_ms,
        )
        return int(r.error_code), r.producer_id, r.producer_epoch

    code, pid, epoch = init("raw-app", 5000)
    assert (code, epoch) == (ErrorCode.NONE, 0)
    assert init("raw-app", 0)[0] == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert init("raw-app", 900_001)[0] == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert init("", 5000)[0] == ErrorCode.INVALID_REQUEST
    assert init("x" * 3000, 5000)[0] == ErrorCode.INVALID_REQUEST
    found = call(port, ApiKey.FIND_COORDINATOR, 4, key_type=1, coordinator_keys=["raw-app"])
    assert [(int(c.error_code), c.port) for c in found.coordinators] == [(ErrorCode.NONE, port)]

    def produce(producer_epoch: int, sequence: int) -> tuple[int, int]:
        batch = encode_batch(
            [(None, b"raw", int(time.time() * 1000), ())],
            producer_id=pid,
            producer_epoch=producer_epoch,
            base_sequence=sequence,
            transactional=True,
        )
        r = call(
            port,
            ApiKey.PRODUCE,
            9,
            transactional_id="raw-app",
            acks=-1,
            timeout=5000,
            topic_data=[{"name": "raw-out", "partition_data": [{"index": 0, "records": batch}]}],
        )
        part = r.responses[0].partition_responses[0]
        return int(part.error_code), part.base_offset

    def add(version: int, producer_epoch: int, *topics: str) -> dict[str, int] | int:
        r = call(
            port,
            ApiKey.ADD_PARTITIONS_TO_TXN,
            version,
            v3_and_below_transactional_id="raw-app",
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=producer_epoch,
            v3_and_below_topics=[{"name": t, "partitions": [0]} for t in topics],
        )
        return {
            t.name: int(p.partition_error_code)
            for t in r.results_by_topic_v3_and_below
            for p in t.results_by_partition
        }

    assert produce(0, 0) == (ErrorCode.INVALID_TXN_STATE, -1)  # not added: never accepted
    assert add(3, 0, "raw-out", "raw-missing") == {
        "raw-out": ErrorCode.OPERATION_NOT_ATTEMPTED,
        "raw-missing": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert add(3, 1, "raw-out") == {"raw-out": ErrorCode.PRODUCER_FENCED}
    assert add(1, 1, "raw-out") == {"raw-out": ErrorCode.INVALID_PRODUCER_EPOCH}  # pre-KIP-588
    assert add(3, 0, "raw-out") == {"raw-out": ErrorCode.NONE}
    assert produce(0, 0) == (ErrorCode.NONE, 0)

    described = call(
        port, ApiKey.DESCRIBE_TRANSACTIONS, 0, transactional_ids=["raw-app", "raw-unknown"]
    ).transaction_states
    ongoing, unknown = described
    assert (int(ongoing.error_code), ongoing.transaction_state) == (ErrorCode.NONE, "Ongoing")
    assert (ongoing.producer_id, ongoing.producer_epoch) == (pid, 0)
    assert ongoing.transaction_timeout == datetime.timedelta(seconds=5)
    assert [(t.topic, t.partitions) for t in ongoing.topics] == [("raw-out", (0,))]
    age = datetime.datetime.now(datetime.UTC) - ongoing.transaction_start_time
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=1)
    assert int(unknown.error_code) == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND

    def listed(**filters: Any) -> tuple[list[str], list[str]]:
        r = call(port, ApiKey.LIST_TRANSACTIONS, 1, **filters)
        assert int(r.error_code) == ErrorCode.NONE
        names = [t.transactional_id for t in r.transaction_states]
        return names, list(r.unknown_state_filters)

    assert listed(state_filters=["Ongoing", "Bogus"]) == (["raw-app"], ["Bogus"])
    assert listed(producer_id_filters=[pid]) == (["raw-app"], [])
    assert listed(state_filters=["CompleteAbort"], producer_id_filters=[pid]) == ([], [])
    assert listed(producer_id_filters=[pid], duration_filter=3_600_000) == ([], [])

    def end(committed: bool) -> int:
        r = call(
            port,
            ApiKey.END_TXN,
            3,
            transactional_id="raw-app",
            producer_id=pid,
            producer_epoch=0,
            committed=committed,
        )
        return int(r.error_code)

    # offsets held by the transaction: unstable for a require_stable fetch until it ends
    added = call(
        port,
        ApiKey.ADD_OFFSETS_TO_TXN,
        3,
        transactional_id="raw-app",
        producer_id=pid,
        producer_epoch=0,
        group_id="raw-group",
    )
    assert int(added.error_code) == ErrorCode.NONE
    sent = call(
        port,
        ApiKey.TXN_OFFSET_COMMIT,
        3,
        transactional_id="raw-app",
        group_id="raw-group",
        producer_id=pid,
        producer_epoch=0,
        generation_id=-1,
        member_id="",
        topics=[
            {
                "name": "raw-out",
                "partitions": [
                    {"partition_index": 0, "committed_offset": 17, "committed_metadata": "m"},
                    {"partition_index": 9, "committed_offset": 1, "committed_metadata": ""},
                ],
            }
        ],
    )
    assert [(p.partition_index, int(p.error_code)) for p in sent.topics[0].partitions] == [
        (0, ErrorCode.NONE),
        (9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]

    def fetched(require_stable: bool) -> tuple[int, int]:
        r = call(
            port,
            ApiKey.OFFSET_FETCH,
            8,
            groups=[
                {"group_id": "raw-group", "topics": [{"name": "raw-out", "partition_indexes": [0]}]}
            ],
            require_stable=require_stable,
        )
        partition = r.groups[0].topics[0].partitions[0]
        return int(partition.error_code), partition.committed_offset

    assert fetched(True) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
    assert fetched(False) == (ErrorCode.NONE, -1)

    assert end(True) == ErrorCode.NONE
    assert fetched(True) == (ErrorCode.NONE, 17)
    assert end(True) == ErrorCode.NONE  # a retry
    assert end(False) == ErrorCode.INVALID_TXN_STATE
    assert produce(0, 1) == (ErrorCode.INVALID_TXN_STATE, -1)  # after the end: refused
    assert listed(producer_id_filters=[pid]) == (["raw-app"], [])
    assert last_stable_offset(broker.bootstrap, "raw-out") == 2


def test_aiokafka_transactional_producer(broker) -> None:
    """aiokafka's transactional producer too (its TxnOffsetCommit carries no member
    information: the group is not checked, as in Kafka)."""
    bootstrap = broker.bootstrap
    create_topic(bootstrap, "aio-txn")

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="aio-app")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait("aio-txn", b"c1", partition=0)
                await producer.send_offsets_to_transaction(
                    {ATopicPartition("aio-txn-in", 0): 11}, "aio-group"
                )
            await producer.begin_transaction()
            await producer.send_and_wait("aio-txn", b"a1", partition=0)
            await producer.send_offsets_to_transaction(
                {ATopicPartition("aio-txn-in", 0): 99}, "aio-group"
            )
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait("aio-txn", b"c2", partition=0)
        finally:
            await producer.stop()

    create_topic(bootstrap, "aio-txn-in")
    asyncio.run(asyncio.wait_for(produce(), 60))
    assert kafka_python_read(bootstrap, "aio-txn", "read_committed") == [(0, b"c1"), (4, b"c2")]
    assert kafka_python_read(bootstrap, "aio-txn", "read_uncommitted") == [
        (0, b"c1"),
        (2, b"a1"),
        (4, b"c2"),
    ]
    checker = Consumer({"bootstrap.servers": bootstrap, "group.id": "aio-group"})
    try:
        assert checker.committed([TopicPartition("aio-txn-in", 0)], 10)[0].offset == 11
    finally:
        checker.close()
