"""read_committed consumers we did not write (confluent-kafka, kafka-python) against a
``streamlog broker`` serving a partition that holds committed, aborted and open
transactions.

The broker has no transaction coordinator yet, so the transactions are written with the
log engine's API into the data directory while the broker is stopped; the broker then
serves them: Fetch's last stable offset and aborted_transactions, ListOffsets'
isolation level, and an open transaction that survives a broker restart."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

from streamlog.log.manager import LogManager
from streamlog.log.records import ControlType, encode_batch

from .brokerproc import BrokerProcess

TOPIC = "txn-reads"
A, B, C = 900_001, 900_002, 900_003


def _write(plog, values: list[bytes], producer_id: int = -1, sequence: int = -1) -> None:
    now = int(time.time() * 1000)
    batch = encode_batch(
        [(None, v, now, ()) for v in values],
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=sequence,
        transactional=producer_id >= 0,
    )
    plog.append(batch, transaction_verified=producer_id >= 0)


def _prepare(data_dir: str) -> None:
    """Offsets: 0 p0 | 1-2 A | 3 B | 4 p1 | 5 A commits | 6 B aborts | 7 C (open) | 8 p2."""
    with LogManager.open(data_dir) as manager:
        manager.create_topic(TOPIC, 1)
        plog = manager.partition(TOPIC, 0)
        _write(plog, [b"p0"])
        _write(plog, [b"a1", b"a2"], A, 0)
        _write(plog, [b"b1"], B, 0)
        _write(plog, [b"p1"])
        plog.write_txn_marker(A, 0, ControlType.COMMIT, 0)
        plog.write_txn_marker(B, 0, ControlType.ABORT, 0)
        _write(plog, [b"c1"], C, 0)
        _write(plog, [b"p2"])
        assert (plog.last_stable_offset, plog.log_end_offset) == (7, 9)


def _confluent(bootstrap: str, isolation: str, expected: int) -> list[tuple[int, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rc-{isolation}-{time.monotonic_ns()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    got: list[tuple[int, bytes]] = []
    try:
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        deadline = time.monotonic() + 20
        while len(got) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append((message.offset(), message.value()))
        # Nothing past what is expected comes in the next fetches either.
        for _ in range(4):
            message = consumer.poll(0.3)
            if message is not None and message.error() is None:
                got.append((message.offset(), message.value()))
    finally:
        consumer.close()
    return got


def _kafka_python(bootstrap: str, isolation: str) -> tuple[list[tuple[int, bytes]], int]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    tp = KTopicPartition(TOPIC, 0)
    got: list[tuple[int, bytes]] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=300)
            for records in batches.values():
                got.extend((r.offset, r.value) for r in records)
            if consumer.position(tp) >= end and not batches:
                break
    finally:
        consumer.close()
    return got, end


COMMITTED_BEFORE = [(0, b"p0"), (1, b"a1"), (2, b"a2"), (4, b"p1")]


def test_read_committed_clients_see_committed_records_up_to_the_lso(tmp_path) -> None:
    data_dir = str(tmp_path / "data")
    _prepare(data_dir)
    broker = BrokerProcess(data_dir).start()
    try:
        assert _confluent(broker.bootstrap, "read_committed", 4) == COMMITTED_BEFORE
        everything = _confluent(broker.bootstrap, "read_uncommitted", 7)
        assert [v for _, v in everything] == [b"p0", b"a1", b"a2", b"b1", b"p1", b"c1", b"p2"]
        got, end = _kafka_python(broker.bootstrap, "read_committed")
        assert (got, end) == (COMMITTED_BEFORE, 7)  # ListOffsets latest = LSO
        assert _kafka_python(broker.bootstrap, "read_uncommitted")[1] == 9
    finally:
        assert broker.stop() == 0, broker.logs()
    # The open transaction is still open after the broker's restart; once its marker is
    # written, read_committed readers get the rest.
    with LogManager.open(data_dir) as manager:
        plog = manager.partition(TOPIC, 0)
        assert plog.last_stable_offset == 7
        plog.write_txn_marker(C, 0, ControlType.COMMIT, 0)
    broker = BrokerProcess(data_dir).start()
    try:
        after = COMMITTED_BEFORE + [(7, b"c1"), (8, b"p2")]
        assert _confluent(broker.bootstrap, "read_committed", 6) == after
        assert _kafka_python(broker.bootstrap, "read_committed") == (after, 10)
    finally:
        assert broker.stop() == 0, broker.logs()


def test_earliest_is_the_log_start_for_read_committed_even_before_an_open_transaction(
    tmp_path,
) -> None:
    """A partition whose first record is in an open transaction: its last stable offset
    is 0, and ListOffsets earliest still answers 0 (the log start, as Kafka's does for
    either isolation), not -1; latest answers the LSO, a time lookup past it -1."""
    data_dir = str(tmp_path / "data")
    with LogManager.open(data_dir) as manager:
        manager.create_topic(TOPIC, 1)
        plog = manager.partition(TOPIC, 0)
        _write(plog, [b"c1"], C, 0)
        assert (plog.last_stable_offset, plog.log_end_offset) == (0, 1)
    broker = BrokerProcess(data_dir).start()
    try:
        tp = KTopicPartition(TOPIC, 0)
        for isolation, latest in (("read_committed", 0), ("read_uncommitted", 1)):
            consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level=isolation)
            try:
                assert consumer.beginning_offsets([tp]) == {tp: 0}
                assert consumer.end_offsets([tp]) == {tp: latest}
                found = consumer.offsets_for_times({tp: 0})[tp]
                assert (found is None) == (isolation == "read_committed")
            finally:
                consumer.close()
    finally:
        assert broker.stop() == 0, broker.logs()
