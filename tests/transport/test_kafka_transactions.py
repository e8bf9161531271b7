"""The Kafka transport's transactional producer and read_committed consumers, against
real brokers.

Every test runs on Tansu and on ``streamlog broker`` (both have transaction
coordinators); on a broker that refuses a transactional id at InitProducerId the tests
would skip, saying so. Readers are our own consumer and, where installed, confluent-kafka's and
kafka-python's, each with both isolation levels.

Tansu's transaction quirks (seen with confluent-kafka too): it drops an aborted
transaction's records instead of keeping them behind an abort marker, and writes commit
markers only; so on Tansu a read_uncommitted reader does not see aborted records either.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

import pytest

from streamlog.log.records import ControlType, encode_batch, encode_control_batch
from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import (
    BrokerUnavailableError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionError,
    TransactionStateError,
)
from streamlog.transport.kafka import KafkaTransport
from streamlog.transport.kafka.connection import Connection
from streamlog.transport.kafka.fetcher import FetchedData, below_stable_offset
from streamlog.transport.types import OffsetAndMetadata, TopicPartition

from .test_kafka_connection import KafkaCase, kafka, read_records, run

__all__ = ["kafka"]  # the fixture, re-exported for pytest (``txn_kafka`` uses it)

pytestmark = pytest.mark.timeout(120)


# kind -> why the broker cannot run transactions (None: it can); probed once a session
_REFUSALS: dict[str, str | None] = {}


async def _refusal(case: KafkaCase) -> str | None:
    """Why the broker has no transactions, read from its own answers: ApiVersions
    without EndTxn, FindCoordinator refusing a transactional id, or InitProducerId
    refusing one (what ``streamlog broker`` does until its coordinator lands)."""
    conn = await Connection(case.host, case.port, client_id="txn-probe").open()
    try:
        if not conn.supports(ApiKey.END_TXN):
            return "its ApiVersions lacks EndTxn"
        tid = KafkaCase.name("txn-probe")
        found: Any = await conn.request(
            conn.build(ApiKey.FIND_COORDINATOR, key=tid, key_type=1, coordinator_keys=[tid])
        )
        entry = found.coordinators[0] if hasattr(found, "coordinators") else found
        if int(entry.error_code) != ErrorCode.NONE:
            code = ErrorCode(int(entry.error_code)).name
            return f"FindCoordinator for a transactional id answered {code} ({entry.error_message})"
        coordinator = await Connection(entry.host, int(entry.port), client_id="txn-probe").open()
        try:
            answer: Any = await coordinator.request(
                coordinator.build(
                    ApiKey.INIT_PRODUCER_ID,
                    transactional_id=tid,
                    transaction_timeout=10_000,
                    producer_id=-1,
                    producer_epoch=-1,
                )
            )
        finally:
            coordinator.close()
        if int(answer.error_code) != ErrorCode.NONE:
            code = ErrorCode(int(answer.error_code)).name
            return f"InitProducerId with a transactional id answered {code}"
        return None
    finally:
        conn.close()


@pytest.fixture
def txn_kafka(kafka: KafkaCase) -> KafkaCase:
    """``kafka``, skipped (with the broker's reason) where it has no transactions."""
    if kafka.kind not in _REFUSALS:
        _REFUSALS[kafka.kind] = run(_refusal(kafka))
    reason = _REFUSALS[kafka.kind]
    if reason is not None:
        pytest.skip(f"{kafka.kind} broker has no transactions: {reason}")
    return kafka


async def transactional(transport: KafkaTransport, **options: Any) -> Any:
    """An initialised transactional producer."""
    options.setdefault("transactional_id", KafkaCase.name("txn-id"))
    options.setdefault("linger_ms", 5)
    producer = transport.producer(**options)
    await producer.init_transactions()
    return producer


async def new_topic(transport: KafkaTransport, prefix: str, partitions: int = 1) -> str:
    topic = KafkaCase.name(prefix)
    await transport.admin().create_topic(topic, partitions)
    return topic


async def write_three_transactions(transport: KafkaTransport, topic: str) -> None:
    """c1-0..c1-2 committed, ``aborted`` sent then aborted, c2 committed."""
    producer = await transactional(transport)
    producer.begin_transaction()
    first = [await producer.send(topic, b"c1-%d" % i, partition=0) for i in range(3)]
    await producer.commit_transaction()
    assert [(await h).offset for h in first] == [0, 1, 2]
    producer.begin_transaction()
    aborted = await producer.send(topic, b"aborted", partition=0)
    await producer.flush()  # written to the log, then aborted
    assert (await aborted).offset == 4  # after c1's three records and their commit marker
    await producer.abort_transaction()
    producer.begin_transaction()
    await producer.send(topic, b"c2", partition=0)
    await producer.commit_transaction()
    await producer.close()


COMMITTED = [b"c1-0", b"c1-1", b"c1-2", b"c2"]
EVERYTHING = [b"c1-0", b"c1-1", b"c1-2", b"aborted", b"c2"]


def expected_committed(kind: str) -> list[bytes]:
    # Tansu lists no aborted transactions in its Fetch responses (it keeps the records
    # and writes the abort marker), so read_committed readers, Kafka's rules followed,
    # hand out aborted records there.
    return EVERYTHING if kind == "tansu" else COMMITTED


def test_commit_and_abort_as_each_isolation_level_sees_them(txn_kafka: KafkaCase) -> None:
    kafka = txn_kafka

    async def body() -> None:
        transport = kafka.transport()
        topic = await new_topic(transport, "txn-vis")
        await write_three_transactions(transport, topic)
        tp = TopicPartition(topic, 0)
        committed = transport.consumer(isolation_level="read_committed")
        committed.assign([tp])
        expected = expected_committed(kafka.kind)
        records = await read_records(committed, len(expected))
        assert [r.value for r in records] == expected
        assert await committed.position(tp) == 8  # five records and three markers
        uncommitted = transport.consumer()
        uncommitted.assign([tp])
        records = await read_records(uncommitted, len(EVERYTHING))
        assert [(r.offset, r.value) for r in records] == [
            (0, b"c1-0"),
            (1, b"c1-1"),
            (2, b"c1-2"),
            (4, b"aborted"),
            (6, b"c2"),
        ]
        await transport.close()

    run(body())


def test_peer_consumers_read_our_transactions(txn_kafka: KafkaCase) -> None:
    """confluent-kafka's, kafka-python's and aiokafka's consumers, each isolation level, over the
    transactions our producer wrote: markers never handed out, committed records in order."""
    kafka = txn_kafka
    topic = KafkaCase.name("txn-peers")

    async def write() -> None:
        transport = kafka.transport()
        await transport.admin().create_topic(topic, 1)
        await write_three_transactions(transport, topic)
        await transport.close()

    run(write())
    seen: dict[tuple[str, str], list[bytes]] = {}
    bootstrap = f"{kafka.host}:{kafka.port}"
    confluent_kafka = _maybe_import("confluent_kafka")
    kafka_python = _maybe_import("kafka")
    aiokafka = _maybe_import("aiokafka")
    if confluent_kafka is None and kafka_python is None and aiokafka is None:
        pytest.skip("none of confluent-kafka, kafka-python and aiokafka is installed")
    for level in ("read_committed", "read_uncommitted"):
        if confluent_kafka is not None:
            consumer = confluent_kafka.Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": KafkaCase.name("peer"),
                    "isolation.level": level,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                }
            )
            consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
            values: list[bytes] = []
            deadline = time.monotonic() + 20
            while len(values) < 5 and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is not None and message.error() is None:
                    values.append(message.value())
            consumer.close()
            seen[("confluent-kafka", level)] = values
        if kafka_python is not None:
            consumer = kafka_python.KafkaConsumer(
                bootstrap_servers=bootstrap,
                isolation_level=level,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            tp = kafka_python.TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            values = []
            deadline = time.monotonic() + 20
            while len(values) < 5 and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    values.extend(r.value for r in batch)
            consumer.close()
            seen[("kafka-python", level)] = values
        if aiokafka is not None:
            seen[("aiokafka", level)] = run(_aiokafka_values(aiokafka, bootstrap, topic, level))
    for (client, level), values in seen.items():
        expected = expected_committed(kafka.kind) if level == "read_committed" else EVERYTHING
        assert values == expected, (client, level)


async def _aiokafka_values(aiokafka: Any, bootstrap: str, topic: str, level: str) -> list[bytes]:
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level=level, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = aiokafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(values) < 5 and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                values.extend(r.value for r in batch)
        return values
    finally:
        await consumer.stop()


def _maybe_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def test_abort_drops_records_not_sent_yet(txn_kafka: KafkaCase) -> None:
    kafka = txn_kafka

    async def body() -> None:
        transport = kafka.transport()
        topic = await new_topic(transport, "txn-unsent")
        producer = await transactional(transport, linger_ms=60_000)
        producer.begin_transaction()
        handles = [await producer.send(topic, b"never-%d" % i, partition=0) for i in range(5)]
        await producer.abort_transaction()  # still lingering: dropped, never sent
        for handle in handles:
            with pytest.raises(TransactionError, match="aborted before the record was sent"):
                await handle
        producer.begin_transaction()
        await producer.send(topic, b"kept", partition=0)
        await producer.commit_transaction()
        tp = TopicPartition(topic, 0)
        for level in ("read_committed", "read_uncommitted"):
            consumer = transport.consumer(isolation_level=level)
            consumer.assign([tp])
            records = await read_records(consumer, 1)
            assert [(r.offset, r.value) for r in records] == [(0, b"kept")], level
        await transport.close()

    run(body())


def test_a_second_producer_with_the_same_id_fences_the_first(txn_kafka: KafkaCase) -> None:
    kafka = txn_kafka

    async def body() -> None:
        transport = kafka.transport()
        topic = await new_topic(transport, "txn-fence")
        tid = KafkaCase.name("fenced-id")
        first = await transactional(transport, transactional_id=tid)
        first.begin_transaction()
        await (await first.send(topic, b"zombie-1", partition=0))

        second = await transactional(transport, transactional_id=tid)  # fences the first
        second.begin_transaction()
        await second.send(topic, b"second", partition=0)
        await second.commit_transaction()

        late = await first.send(topic, b"zombie-2", partition=0)
        with pytest.raises(ProducerFencedError):
            await late
        with pytest.raises(ProducerFencedError):
            await first.commit_transaction()
        with pytest.raises(ProducerFencedError):  # fatal: every later call says so
            await first.send(topic, b"zombie-3", partition=0)
        with pytest.raises(ProducerFencedError):
            first.begin_transaction()
        await first.close()

        tp = TopicPartition(topic, 0)
        committed = transport.consumer(isolation_level="read_committed")
        committed.assign([tp])
        expected = [b"second"] if kafka.kind != "tansu" else [b"zombie-1", b"second"]
        records = await read_records(committed, len(expected))
        assert [r.value for r in records] == expected
        # The coordinator aborted the zombie's transaction when the second producer
        # initialised: its abort marker takes offset 1, before the second's record.
        everything = transport.consumer()
        everything.assign([tp])
        records = await read_records(everything, 2)
        assert [(r.offset, r.value) for r in records] == [(0, b"zombie-1"), (2, b"second")]
        await transport.close()

    run(body())


def test_offsets_sent_in_a_transaction_are_committed_only_with_it(txn_kafka: KafkaCase) -> None:
    kafka = txn_kafka

    async def body() -> None:
        transport = kafka.transport()
        source = await new_topic(transport, "txn-src")
        sink = await new_topic(transport, "txn-sink")
        group = KafkaCase.name("txn-group")
        tp = TopicPartition(source, 0)
        producer = await transactional(transport)
        observer = kafka.consumer(transport, group_id=group)

        producer.begin_transaction()
        await producer.send(sink, b"out-1", partition=0)
        await producer.send_offsets_to_transaction({tp: 5}, group)
        assert await observer.committed(tp) is None  # pending until the commit
        await producer.commit_transaction()
        assert await observer.committed(tp) == 5

        producer.begin_transaction()
        await producer.send(sink, b"out-2", partition=0)
        await producer.send_offsets_to_transaction({tp: OffsetAndMetadata(9, "nine")}, group)
        await producer.abort_transaction()
        assert await observer.committed(tp) == 5  # the aborted offsets never land

        producer.begin_transaction()
        await producer.send_offsets_to_transaction({tp: 12}, group)  # offsets alone
        await producer.commit_transaction()
        # Tansu commits a transaction's offsets only if it also added a partition
        # (checked by hand: with a record in each transaction, every commit lands).
        assert await observer.committed(tp) == (5 if kafka.kind == "tansu" else 12)
        await transport.close()

    run(body())


def test_offsets_of_a_group_member_carry_its_generation(txn_kafka: KafkaCase) -> None:
    """A consume-transform-produce loop: the member's group metadata goes with the
    offsets, and the group takes them."""
    kafka = txn_kafka

    async def body() -> None:
        transport = kafka.transport()
        source = await new_topic(transport, "txn-loop-src")
        sink = await new_topic(transport, "txn-loop-sink")
        group = KafkaCase.name("txn-loop")
        plain = transport.producer(linger_ms=0)
        for i in range(4):
            await plain.send_and_wait(source, b"in-%d" % i, partition=0)
        consumer = kafka.consumer(transport, group_id=group, isolation_level="read_committed")
        await consumer.subscribe([source])
        records = await read_records(consumer, 4)
        metadata = consumer.group_metadata()
        assert metadata.group_id == group and metadata.generation_id >= 0 and metadata.member_id
        producer = await transactional(transport)
        producer.begin_transaction()
        for r in records:
            await producer.send(sink, r.value.replace(b"in", b"out"), partition=0)
        tp = TopicPartition(source, 0)
        await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, metadata)
        await producer.commit_transaction()
        assert await consumer.committed(tp) == 4
        reader = transport.consumer(isolation_level="read_committed")
        reader.assign([TopicPartition(sink, 0)])
        out = await read_records(reader, 4)
        assert [r.value for r in out] == [b"out-0", b"out-1", b"out-2", b"out-3"]
        await transport.close()

    run(body())


def test_calls_out_of_order_are_refused(txn_kafka: KafkaCase) -> None:
    kafka = txn_kafka

    async def body() -> None:
        transport = kafka.transport()
        topic = await new_topic(transport, "txn-order")
        plain = transport.producer()
        with pytest.raises(TransactionStateError, match="no transactional_id"):
            plain.begin_transaction()
        producer = transport.producer(transactional_id=KafkaCase.name("order-id"))
        with pytest.raises(TransactionStateError, match="uninitialized"):
            producer.begin_transaction()
        with pytest.raises(TransactionStateError, match="uninitialized"):
            await producer.send(topic, b"x", partition=0)
        await producer.init_transactions()
        with pytest.raises(TransactionStateError, match="init_transactions"):
            await producer.init_transactions()
        with pytest.raises(TransactionStateError, match="send: not possible while ready"):
            await producer.send(topic, b"x", partition=0)
        with pytest.raises(TransactionStateError, match="commit_transaction"):
            await producer.commit_transaction()
        with pytest.raises(TransactionStateError, match="abort_transaction"):
            await producer.abort_transaction()
        with pytest.raises(TransactionStateError, match="send_offsets_to_transaction"):
            await producer.send_offsets_to_transaction({TopicPartition(topic, 0): 1}, "g")
        producer.begin_transaction()
        with pytest.raises(TransactionStateError, match="begin_transaction"):
            producer.begin_transaction()
        await producer.send(topic, b"in", partition=0)
        committing = asyncio.ensure_future(producer.commit_transaction())
        await asyncio.sleep(0)  # the commit runs to its first wait: the flush
        with pytest.raises(TransactionStateError, match="send: not possible while committing"):
            await producer.send(topic, b"late", partition=0)
        await committing
        with pytest.raises(TransactionStateError, match="send: not possible while ready"):
            await producer.send(topic, b"after", partition=0)
        with pytest.raises(ValueError, match="acks=-1"):
            transport.producer(transactional_id="x", acks=1)
        consumer = transport.consumer(isolation_level="read_committed")
        consumer.assign([TopicPartition(topic, 0)])
        assert [r.value for r in await read_records(consumer, 1)] == [b"in"]
        await transport.close()

    run(body())


def test_a_failed_record_makes_the_transaction_abortable(txn_kafka: KafkaCase) -> None:
    """A batch that fails for good (here: past a 1 ms delivery timeout while its
    partition is being added to the transaction) spoils the transaction: commit raises
    ``TransactionAbortableError``, sends are refused until ``abort_transaction``, after
    which the producer goes on."""
    kafka = txn_kafka

    async def body() -> None:
        transport = kafka.transport()
        topic = await new_topic(transport, "txn-spoilt")
        producer = await transactional(transport, delivery_timeout_ms=1)
        producer.begin_transaction()
        handle = await producer.send(topic, b"late", partition=0)
        with pytest.raises(BrokerUnavailableError, match="not acknowledged within"):
            await handle
        with pytest.raises(TransactionAbortableError, match="must be aborted"):
            await producer.send(topic, b"more", partition=0)
        with pytest.raises(TransactionAbortableError, match="must be aborted"):
            await producer.commit_transaction()
        await producer.abort_transaction()
        producer.begin_transaction()  # a fresh transaction after the abort
        await producer.commit_transaction()
        await producer.close()
        consumer = transport.consumer()
        consumer.assign([TopicPartition(topic, 0)])
        assert await consumer.getmany(timeout_ms=300) == {}  # nothing was written
        await transport.close()

    run(body())


def test_a_failed_offset_commit_makes_the_transaction_abortable(txn_kafka: KafkaCase) -> None:
    """KIP-447: offsets sent with a generation the group does not have are refused; the
    transaction can then only be aborted, after which the producer goes on."""
    kafka = txn_kafka
    kafka.skip_on_tansu("TxnOffsetCommit does not check the member's generation")

    async def body() -> None:
        transport = kafka.transport()
        source = await new_topic(transport, "txn-zombie-src")
        group = KafkaCase.name("txn-zombie")
        consumer = kafka.consumer(transport, group_id=group)
        await consumer.subscribe([source])
        metadata = consumer.group_metadata()
        stale = metadata._replace(generation_id=metadata.generation_id + 5)
        producer = await transactional(transport)
        producer.begin_transaction()
        tp = TopicPartition(source, 0)
        with pytest.raises(TransactionAbortableError):
            await producer.send_offsets_to_transaction({tp: 3}, stale)
        with pytest.raises(TransactionAbortableError):
            await producer.commit_transaction()
        await producer.abort_transaction()
        producer.begin_transaction()
        await producer.send_offsets_to_transaction({tp: 2}, metadata)
        await producer.commit_transaction()
        assert await consumer.committed(tp) == 2
        await transport.close()

    run(body())


# ---------------------------------------------------------------------------------------
# The fetcher's read_committed filter, over batches encoded by the log's own codec. Tansu
# (the only broker here with transactions) lists no aborted transactions in its Fetch
# responses, so this is where the filter meets interleaved transactions of two producers.

_A, _B = 1001, 2002  # producer ids


def _txn_log() -> list[tuple[int, bytes]]:
    """(base offset, batch) of one partition: producer A's transaction at 0-1 aborted at
    3, B's at 2 and 4 committed at 5, A's next at 6 committed at 7, then a plain batch."""
    ts = 1_700_000_000_000

    def data(offset: int, pid: int, *values: bytes) -> bytes:
        entries = [(None, v, ts, ()) for v in values]
        return encode_batch(
            entries, base_offset=offset, producer_id=pid, producer_epoch=0, transactional=True
        )

    def marker(offset: int, pid: int, kind: ControlType) -> bytes:
        return encode_control_batch(
            kind,
            producer_id=pid,
            producer_epoch=0,
            coordinator_epoch=0,
            timestamp=ts,
            base_offset=offset,
        )

    return [
        (0, data(0, _A, b"a0", b"a1")),
        (2, data(2, _B, b"b0")),
        (3, marker(3, _A, ControlType.ABORT)),
        (4, data(4, _B, b"b1")),
        (5, marker(5, _B, ControlType.COMMIT)),
        (6, data(6, _A, b"a2")),
        (7, marker(7, _A, ControlType.COMMIT)),
        (8, encode_batch([(None, b"n0", ts, ())], base_offset=8)),
    ]


def _take_all(parts: list[tuple[bytes, list[tuple[int, int]] | None]]) -> tuple[list[Any], int]:
    """Every record the fetch results ``parts`` hand out, and the position after."""
    tp = TopicPartition("t", 0)
    aborting: set[int] = set()
    out: list[Any] = []
    position = 0
    for data, aborted in parts:
        fetched = FetchedData(tp, 0, data, aborted)
        used_up = False
        while not used_up:
            position, used_up = fetched.take(2, position, out, aborting)
    return out, position


def test_read_committed_drops_aborted_transactions_by_producer_and_first_offset() -> None:
    log = b"".join(batch for _, batch in _txn_log())
    records, position = _take_all([(log, [(0, _A)])])
    assert [(r.offset, r.value) for r in records] == [
        (2, b"b0"),
        (4, b"b1"),
        (6, b"a2"),
        (8, b"n0"),
    ]
    assert position == 9  # markers and dropped batches are stepped over
    records, position = _take_all([(log, None)])  # read_uncommitted: everything but markers
    assert [r.value for r in records] == [b"a0", b"a1", b"b0", b"b1", b"a2", b"n0"]
    assert position == 9


def test_an_abort_marker_in_a_later_fetch_ends_the_abort() -> None:
    """The aborted transaction is listed by the fetch holding its records; the next fetch
    (listing none) holds its abort marker; the one after (listing another producer's
    aborted transaction) holds A's next, committed, transaction: it is handed out."""
    batches = [batch for _, batch in _txn_log()]
    parts = [
        (b"".join(batches[:2]), [(0, _A)]),
        (b"".join(batches[2:5]), []),
        (b"".join(batches[5:]), [(100, 9999)]),
    ]
    records, position = _take_all(parts)
    assert [(r.offset, r.value) for r in records] == [
        (2, b"b0"),
        (4, b"b1"),
        (6, b"a2"),
        (8, b"n0"),
    ]
    assert position == 9


def test_an_aborted_transaction_that_wrote_nothing_here_drops_nothing_after_it() -> None:
    """A transaction that added the partition but wrote nothing to it leaves only its
    abort marker, listed as an aborted transaction whose first offset is the marker's.
    The same producer's next, committed, transaction is handed out (noting the listed
    abort only at A's next data batch, after the marker, dropped every later batch of A:
    an exactly-once app's outputs past such an abort were lost to our read_committed
    readers)."""
    ts = 1_700_000_000_000
    abort = encode_control_batch(
        ControlType.ABORT, producer_id=_A, producer_epoch=0, coordinator_epoch=0,
        timestamp=ts, base_offset=0,
    )  # fmt: skip
    data = encode_batch(
        [(None, b"a1", ts, ())], base_offset=1, producer_id=_A, producer_epoch=1,
        transactional=True,
    )  # fmt: skip
    commit = encode_control_batch(
        ControlType.COMMIT, producer_id=_A, producer_epoch=1, coordinator_epoch=0,
        timestamp=ts, base_offset=2,
    )  # fmt: skip
    records, position = _take_all([(abort + data + commit, [(0, _A)])])
    assert [(r.offset, r.value) for r in records] == [(1, b"a1")]
    assert position == 3
    # the same with the marker alone in the first fetch (the next fetch, from offset 1,
    # lists nothing: the transaction ended before it)
    records, position = _take_all([(abort, [(0, _A)]), (data + commit, [])])
    assert [(r.offset, r.value) for r in records] == [(1, b"a1")]
    assert position == 3


def test_read_committed_stops_at_the_last_stable_offset() -> None:
    log = _txn_log()
    data = b"".join(batch for _, batch in log)
    assert below_stable_offset(data, 5) == b"".join(batch for offset, batch in log if offset < 5)
    assert below_stable_offset(data, 0) == b""
    assert below_stable_offset(data, 9) == data
    assert below_stable_offset(data, 1) == b""  # the batch 0-1 ends past 1: left for later
