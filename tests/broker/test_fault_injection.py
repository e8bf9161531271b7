"""Fault injection against a real ``streamlog broker``: kill -9, bounce, full disk.

Each test counts what the broker acknowledged (acks=all) and checks, after the fault and a
restart, that every acknowledged record is stored at the offset it was acknowledged with,
and that each partition's offsets run without gaps. Clients are real: confluent-kafka
(librdkafka) and streamlog's own Kafka client. Every wait is bounded by a deadline; the
whole module takes well under a minute on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as CkPartition

from streamlog.log.records import encode_batch
from streamlog.protocol import ApiKey, ErrorCode, decode_response, encode_request, request_class
from streamlog.protocol.schema import build_message
from streamlog.transport.kafka import KafkaTransport

from .brokerproc import BrokerProcess
from .test_broker_process import recv_frame

pytestmark = pytest.mark.slow

KILL_CYCLES = 3
ACKS_PER_CYCLE = 1500
DEADLINE_S = 60


def _check_deadline(deadline: float, what: str) -> None:
    """Fail a polling loop that has run past ``deadline`` (a bound, not a speed check)."""
    if time.monotonic() > deadline:
        raise AssertionError(f"gave up after {DEADLINE_S} s: {what}")


def read_partitions(bootstrap: str, topic: str, partitions: int) -> dict[tuple[int, int], bytes]:
    """Every stored record of ``topic``: (partition, offset) -> value, read to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fault-reader",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(CkPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
        consumer.assign([CkPartition(topic, p, 0) for p in range(partitions)])
        got: dict[tuple[int, int], bytes] = {}
        deadline = time.monotonic() + DEADLINE_S
        while (
            any(len([o for (p2, o) in got if p2 == p]) < end for p, end in ends.items())
            and time.monotonic() < deadline
        ):
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    got[(msg.partition(), msg.offset())] = msg.value()
        return got
    finally:
        consumer.close()


def check_acknowledged(
    stored: dict[tuple[int, int], bytes], acked: dict[tuple[int, int], bytes], partitions: int
) -> None:
    missing = {k: v for k, v in acked.items() if stored.get(k) != v}
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {list(missing)[:5]}"
    for p in range(partitions):
        offsets = sorted(o for (p2, o) in stored if p2 == p)
        assert offsets == list(range(len(offsets))), f"partition {p} has gaps"


# ---------------------------------------------------------------------------------------
# kill -9 while producing with acks=all


def test_kill_9_under_acks_all_loses_nothing_confluent(tmp_path) -> None:
    broker = BrokerProcess(str(tmp_path / "data"), ("--partitions", "2")).start()
    topic = "kill9-confluent"
    acked: dict[tuple[int, int], bytes] = {}
    failed: list[KafkaError] = []

    def delivered(err: KafkaError | None, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            failed.append(err)

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 45_000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
        }
    )
    try:
        sent = 0
        deadline = time.monotonic() + DEADLINE_S
        for _ in range(KILL_CYCLES):
            target = len(acked) + ACKS_PER_CYCLE
            while len(acked) < target:
                _check_deadline(deadline, f"only {len(acked)} acks")
                try:
                    producer.produce(topic, b"ck-%d" % sent, on_delivery=delivered)
                    sent += 1
                except BufferError:
                    pass
                producer.poll(0 if sent % 100 else 0.001)
            broker.kill()  # with batches in flight
            broker.start()
        assert producer.flush(DEADLINE_S) == 0
        assert failed == []
        assert len(acked) == sent
        stored = read_partitions(broker.bootstrap, topic, 2)
        check_acknowledged(stored, acked, 2)
        # Idempotence held across the crashes: each value stored once.
        assert sorted(stored.values()) == sorted(acked.values())
    finally:
        broker.stop()


def test_kill_9_under_acks_all_loses_nothing_own_client(tmp_path) -> None:
    broker = BrokerProcess(str(tmp_path / "data"), ("--partitions", "2")).start()
    topic = "kill9-own"
    acked: dict[tuple[int, int], bytes] = {}

    async def body() -> int:
        transport = KafkaTransport(f"kafka://{broker.bootstrap}", connect_timeout_ms=1000)
        await transport.start()
        producer = transport.producer(acks=-1, linger_ms=2, delivery_timeout_ms=45_000)
        pending: list[tuple[bytes, asyncio.Future]] = []
        sent = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S

        def harvest() -> None:
            still = []
            for value, future in pending:
                if future.done():
                    meta = future.result()
                    acked[(meta.partition, meta.offset)] = value
                else:
                    still.append((value, future))
            pending[:] = still

        for _ in range(KILL_CYCLES):
            target = len(acked) + ACKS_PER_CYCLE
            while len(acked) < target:
                assert loop.time() < deadline, f"only {len(acked)} acks"
                value = b"own-%d" % sent
                pending.append((value, asyncio.ensure_future(await producer.send(topic, value))))
                sent += 1
                if sent % 50 == 0:
                    await asyncio.sleep(0)
                    harvest()
            await asyncio.to_thread(broker.kill)
            await asyncio.to_thread(broker.start)
        await producer.flush()
        await asyncio.wait_for(asyncio.gather(*(f for _, f in pending)), DEADLINE_S)
        harvest()
        await transport.close()
        return sent

    try:
        sent = asyncio.run(asyncio.wait_for(body(), DEADLINE_S * 2))
        assert len(acked) == sent
        stored = read_partitions(broker.bootstrap, topic, 2)
        check_acknowledged(stored, acked, 2)
        assert sorted(stored.values()) == sorted(acked.values())
    finally:
        broker.stop()


# ---------------------------------------------------------------------------------------
# bounce (SIGTERM + restart) while a consumer group consumes


def test_bounce_while_a_group_consumes_loses_no_committed_record(tmp_path) -> None:
    broker = BrokerProcess(
        str(tmp_path / "data"), ("--partitions", "3", "--group-initial-rebalance-delay-ms", "0")
    ).start()
    topic, group, total = "bounce", "bounce-group", 3000
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for i in range(total):
            producer.produce(topic, b"b-%d" % i)
            if i % 500 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "fetch.queue.backoff.ms": 10,
                "reconnect.backoff.max.ms": 200,
            }
        )
        consumer.subscribe([topic])
        processed: list[bytes] = []
        commit_failures = 0
        bounced_at = None
        deadline = time.monotonic() + DEADLINE_S
        try:
            while len(set(processed)) < total:
                _check_deadline(deadline, f"processed {len(set(processed))} of {total}")
                batch = [
                    m for m in consumer.consume(num_messages=200, timeout=0.5) if not m.error()
                ]
                if not batch:
                    continue
                processed.extend(m.value() for m in batch)
                try:
                    consumer.commit(asynchronous=False)  # after processing: at-least-once
                except KafkaException:
                    commit_failures += 1  # the broker was away: these will come again
                if bounced_at is None and len(set(processed)) >= total // 3:
                    bounced_at = len(set(processed))
                    assert broker.stop() == 0
                    broker.start()
            try:
                consumer.commit(asynchronous=False)  # in case the last commit failed
            except KafkaException as exc:
                assert exc.args[0].code() == KafkaError._NO_OFFSET  # nothing left to commit
        finally:
            consumer.close()
        assert bounced_at is not None and bounced_at < total
        assert set(processed) == {b"b-%d" % i for i in range(total)}

        # What was committed survives a further bounce: the group resumes at the end.
        assert broker.stop() == 0
        broker.start()
        checker = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
        try:
            committed = checker.committed([CkPartition(topic, p) for p in range(3)], timeout=10)
            ends = [
                checker.get_watermark_offsets(CkPartition(topic, p), timeout=10)[1]
                for p in range(3)
            ]
        finally:
            checker.close()
        assert [c.offset for c in committed] == ends
        assert sum(ends) == total
    finally:
        assert broker.stop() == 0, broker.logs()


# ---------------------------------------------------------------------------------------
# a full disk (a small tmpfs as the data directory)


@pytest.fixture
def small_tmpfs(tmp_path) -> Iterator[str]:
    """A 6 MiB tmpfs mounted for the test, or a skip saying why it cannot be."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield str(mount_point)
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=30, check=False)


def raw_produce(port: int, topic: str, value: bytes) -> tuple[int, int]:
    """(error code, base offset) of a one-record acks=-1 Produce to partition 0."""
    batch = encode_batch([(None, value, int(time.time() * 1000), ())])
    body = build_message(
        request_class(ApiKey.PRODUCE, 9),
        transactional_id=None,
        acks=-1,
        timeout=5000,
        topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(encode_request(body, correlation_id=1, client_id="disk-full"))
        _, response = decode_response(recv_frame(sock), ApiKey.PRODUCE, 9)
    answer = response.responses[0].partition_responses[0]
    return int(answer.error_code), int(answer.base_offset)


def fill_one_by_one(port: int, topic: str, acked: dict[tuple[int, int], bytes]) -> int:
    """Produce 4 KiB records one per request until one fails; returns its error code."""
    for i in range(2000):
        value = (b"raw-%d-%d" % (len(acked), i)).ljust(4096, b".")
        code, offset = raw_produce(port, topic, value)
        if code != ErrorCode.NONE:
            return code
        acked[(0, offset)] = value
    raise AssertionError("the disk never filled up")


def test_a_full_disk_answers_storage_errors_loses_nothing_and_recovers(
    tmp_path, small_tmpfs
) -> None:
    ballasts = [os.path.join(small_tmpfs, f"ballast-{i}") for i in range(2)]
    for path in ballasts:  # freed later, one at a time, to make room again
        with open(path, "wb") as f:
            f.write(b"\0" * (1 << 20))
    broker = BrokerProcess(os.path.join(small_tmpfs, "data"), side_dir=str(tmp_path)).start()
    topic = "disk-full"
    acked: dict[tuple[int, int], bytes] = {}
    errors: list[int] = []

    def delivered(err: KafkaError | None, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            errors.append(err.code())

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "retries": 0,  # see each storage error instead of retrying it
            "linger.ms": 5,
            "message.timeout.ms": 20_000,
        }
    )
    try:
        # 1. Fill the disk with librdkafka's batches, then with single records.
        sent = 0
        deadline = time.monotonic() + DEADLINE_S
        while not errors:
            _check_deadline(deadline, f"no storage error after {sent} records")
            producer.produce(topic, (b"%08d" % sent).ljust(4096, b"."), on_delivery=delivered)
            sent += 1
            if sent % 50 == 0:
                producer.flush(10)
        assert producer.flush(20) == 0
        assert set(errors) == {KafkaError.KAFKA_STORAGE_ERROR}
        assert len(acked) > 100  # the disk filled up, it was not full from the start
        assert fill_one_by_one(broker.port, topic, acked) == ErrorCode.KAFKA_STORAGE_ERROR
        assert broker.process is not None and broker.process.poll() is None  # still serving
        stored = read_partitions(broker.bootstrap, topic, 1)
        check_acknowledged(stored, acked, 1)
        assert len(stored) == len(acked)  # a failed append left nothing behind

        # 2. Room again: produces succeed where the log left off, with no restart.
        os.unlink(ballasts[0])
        code, offset = raw_produce(broker.port, topic, b"after")
        assert (code, offset) == (ErrorCode.NONE, len(acked))
        acked[(0, offset)] = b"after"

        # 3. Full again, and stopped while full: a clean exit, nothing lost.
        assert fill_one_by_one(broker.port, topic, acked) == ErrorCode.KAFKA_STORAGE_ERROR
        assert broker.stop() == 0
        os.unlink(ballasts[1])
        broker.start()
        stored = read_partitions(broker.bootstrap, topic, 1)
        check_acknowledged(stored, acked, 1)
        assert len(stored) == len(acked)
        code, offset = raw_produce(broker.port, topic, b"after restart")
        assert (code, offset) == (ErrorCode.NONE, len(acked))
        assert "produce to disk-full-0 failed" in broker.logs()
    finally:
        producer.flush(5)
        assert broker.stop() == 0, broker.logs()
