"""Hostile record batches against a real ``streamlog broker`` (issue 10, items 3 and 5).

Each bad batch is sent as a raw Produce frame over loopback and must be answered with
Kafka's error code (and, from Produce v8, the message and the records at fault), leave
the partition as it was, and leave the broker serving other clients. Batches that got
into a log before appends were validated (a decompression bomb in a compacted topic) are
seeded with the log engine before the broker starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

import pytest
from crc32c import crc32c
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streamlog.log import LogManager
from streamlog.log.records import (
    Compression,
    ControlType,
    encode_batch,
    encode_control_batch,
)
from streamlog.protocol import ApiKey, ErrorCode, decode_response, encode_request, request_class
from streamlog.protocol.schema import build_message
from streamlog.transport import TopicPartition as SLTopicPartition
from streamlog.transport.errors import CorruptBatchError
from streamlog.transport.kafka.transport import KafkaTransport
from tests.log.logutil import bomb_batch

from .brokerproc import BrokerProcess
from .test_broker_process import connect, recv_frame

HEADER = struct.Struct(">qiibIhiqqqhii")
FIELDS = (
    "base_offset batch_length leader_epoch magic crc attributes last_offset_delta "
    "base_timestamp max_timestamp producer_id producer_epoch base_sequence record_count"
).split()


def now_ms() -> int:
    return int(time.time() * 1000)


def good(key: bytes | None = b"k", value: bytes = b"v", ts: int | None = None) -> bytes:
    return encode_batch([(key, value, now_ms() if ts is None else ts, ())])


def reseal(buf: bytes, **fields: int) -> bytes:
    values = dict(zip(FIELDS, HEADER.unpack_from(buf), strict=True))
    values.update(fields)
    out = bytearray(buf)
    HEADER.pack_into(out, 0, *values.values())
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def sealed(section: bytes, attributes: int = 0, count: int = 1) -> bytes:
    ts = now_ms()
    head = HEADER.pack(
        0, 49 + len(section), -1, 2, 0, attributes, count - 1, ts, ts, -1, -1, -1, count
    )
    return reseal(head + section)


def produce(sock: socket.socket, topic: str, records: bytes, version: int = 9):
    body = build_message(
        request_class(ApiKey.PRODUCE, version),
        transactional_id=None,
        acks=1,
        timeout=10_000,
        topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    )
    sock.sendall(encode_request(body, correlation_id=7, client_id="hostile"))
    correlation, response = decode_response(recv_frame(sock), ApiKey.PRODUCE, version)
    assert correlation == 7
    return response.responses[0].partition_responses[0]


def list_offset(sock: socket.socket, topic: str, timestamp: int) -> tuple[int, int]:
    """(error code, offset) of ListOffsets v5 for partition 0 at ``timestamp``."""
    body = build_message(
        request_class(ApiKey.LIST_OFFSETS, 5),
        replica_id=-1,
        isolation_level=0,
        topics=[{"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp}]}],
    )
    sock.sendall(encode_request(body, correlation_id=8, client_id="hostile"))
    _, response = decode_response(recv_frame(sock), ApiKey.LIST_OFFSETS, 5)
    part = response.topics[0].partitions[0]
    return int(part.error_code), int(part.offset)


def create(bootstrap: str, topic: str, configs: dict[str, str] | None = None) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs or {})])
    finally:
        admin.close()


def read_values(bootstrap: str, topic: str, expected: int, start: int = 0) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=15_000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, start)
    got: list[bytes] = []
    try:
        for message in consumer:
            got.append(message.value)
            if len(got) >= expected:
                break
    finally:
        consumer.close()
    return got


def bomb_16_gib() -> bytes:
    return bomb_batch(16 << 30, timestamp=now_ms())


def control_marker() -> bytes:
    return encode_control_batch(
        ControlType.COMMIT, producer_id=3, producer_epoch=0, coordinator_epoch=0, timestamp=now_ms()
    )


# name: (topic configs, bad batch, error code, words in the message, records at fault)
CASES = {
    "count-2**31-1": (
        {},
        lambda: reseal(good(), last_offset_delta=2**31 - 2, record_count=2**31 - 1),
        ErrorCode.INVALID_RECORD,
        "cannot fit",
        None,
    ),
    "count-too-small": (
        {},
        lambda: reseal(
            encode_batch([(b"a", b"1", now_ms(), ()), (b"b", b"2", now_ms(), ())]),
            last_offset_delta=0,
            record_count=1,
        ),
        ErrorCode.INVALID_RECORD,
        "follow the last",
        None,
    ),
    "garbage-varint": (
        {},
        lambda: sealed(b"\x0c\x00\x00\x00\xff\xff\xff\xff\xff\x01\x01\x00"),
        ErrorCode.INVALID_RECORD,
        "varint",
        None,
    ),
    "codec-6": (
        {},
        lambda: reseal(good(), attributes=6),
        ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
        "compression type 6",
        None,
    ),
    "garbage-gzip": (
        {},
        lambda: sealed(b"\x1f\x8b garbage, not gzip" * 3, attributes=Compression.GZIP),
        ErrorCode.INVALID_RECORD,
        "gzip",
        None,
    ),
    "zstd-bomb": (
        {},
        bomb_16_gib,
        ErrorCode.MESSAGE_TOO_LARGE,
        "once decompressed",
        None,
    ),
    "control-batch": (
        {},
        control_marker,
        ErrorCode.INVALID_RECORD,
        "not allowed to write control records",
        None,
    ),
    "transactional": (
        {},
        lambda: encode_batch(
            [(b"k", b"v", now_ms(), ())],
            producer_id=5,
            producer_epoch=0,
            base_sequence=0,
            transactional=True,
        ),
        ErrorCode.INVALID_TXN_STATE,
        "not part of an ongoing transaction",
        None,
    ),
    "timestamp-too-new": (
        {"message.timestamp.after.max.ms": "60000"},
        lambda: encode_batch([(b"k", b"v", now_ms(), ()), (b"k", b"v", now_ms() + 3_600_000, ())]),
        ErrorCode.INVALID_TIMESTAMP,
        "invalid timestamp",
        [1],
    ),
    "keyless-in-compacted": (
        {"cleanup.policy": "compact"},
        lambda: encode_batch([(None, b"v", now_ms(), ()), (b"k", b"v", now_ms(), ())]),
        ErrorCode.INVALID_RECORD,
        "1 record errors",
        [0],
    ),
    "bad-crc": (
        {},
        lambda: good()[:-1] + b"X",
        ErrorCode.CORRUPT_MESSAGE,
        "CRC",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_batch_gets_kafkas_error_and_changes_nothing(shared_broker, name) -> None:
    configs, make, code, words, record_errors = CASES[name]
    topic = f"hostile-{name.replace('*', '')}"
    create(shared_broker.bootstrap, topic, configs)
    sock = connect(shared_broker)
    try:
        assert produce(sock, topic, good(value=b"before")).error_code == ErrorCode.NONE
        bad = make()
        answer = produce(sock, topic, bad)
        assert (answer.error_code, answer.base_offset) == (code, -1)
        assert words in answer.error_message
        if record_errors is not None:
            assert [e.batch_index for e in answer.record_errors] == record_errors
            assert all(e.batch_index_error_message for e in answer.record_errors)
        else:
            assert answer.record_errors == ()
        # Produce v7 has neither the message nor record errors: the code alone.
        assert produce(sock, topic, bad, version=7).error_code == code
        assert list_offset(sock, topic, -1) == (ErrorCode.NONE, 1)
        after = produce(sock, topic, good(value=b"after"))
        assert (after.error_code, after.base_offset) == (ErrorCode.NONE, 1)
    finally:
        sock.close()
    assert read_values(shared_broker.bootstrap, topic, 2) == [b"before", b"after"]
    assert "Traceback" not in shared_broker.logs()


def test_a_forged_record_count_is_refused_and_acknowledged_records_survive_a_restart(
    broker,
) -> None:
    topic = "count-restart"
    sock = connect(broker)
    for value in (b"one", b"two"):
        assert produce(sock, topic, good(value=value)).error_code == ErrorCode.NONE
    forged = reseal(good(value=b"forged"), last_offset_delta=2**31 - 2, record_count=2**31 - 1)
    for _ in range(3):
        assert produce(sock, topic, forged).error_code == ErrorCode.INVALID_RECORD
    assert list_offset(sock, topic, -1) == (ErrorCode.NONE, 2)
    sock.close()
    assert broker.stop() == 0
    broker.start()
    sock = connect(broker)
    try:
        assert list_offset(sock, topic, -1) == (ErrorCode.NONE, 2)
        assert produce(sock, topic, good(value=b"three")).base_offset == 2
    finally:
        sock.close()
    assert read_values(broker.bootstrap, topic, 3) == [b"one", b"two", b"three"]


def broker_peak_rss(broker: BrokerProcess) -> int:
    assert broker.process is not None
    with open(f"/proc/{broker.process.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_zstd_bomb_is_answered_while_another_client_goes_on(broker) -> None:
    topic = "bomb-neighbour"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    for i in range(20):
        producer.send(topic, b"m%02d" % i).get(10)
    sock = connect(broker)
    try:
        for _ in range(3):
            answer = produce(sock, topic, bomb_16_gib())
            assert answer.error_code == ErrorCode.MESSAGE_TOO_LARGE
        for i in range(20, 40):
            producer.send(topic, b"m%02d" % i).get(10)
    finally:
        sock.close()
        producer.close()
    assert read_values(broker.bootstrap, topic, 40) == [b"m%02d" % i for i in range(40)]
    # Each bomb cost at most max.message.bytes of output, not 16 GiB.
    assert broker_peak_rss(broker) < 512 << 20
    assert broker.process is not None and broker.process.poll() is None


COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "600",
    "min.cleanable.dirty.ratio": "0.01",
}


def seed_compacted_topic_with_a_bomb(data_dir: str) -> tuple[int, int]:
    """What a log written before validation could hold: a compacted topic with k0..k4,
    a 16 GiB zstd bomb, then k0..k4 again. Returns (bomb offset, bomb timestamp)."""
    manager = LogManager.open(data_dir)
    try:
        manager.create_topic("compacted", 1, COMPACTED)
        plog = manager.partition("compacted", 0)
        ts = now_ms()
        for i in range(5):
            plog.append(encode_batch([(b"k%d" % i, b"old-%d" % i, ts, ())]))
        bomb_at = plog.log_end_offset
        plog.append_as_is(bomb_batch(16 << 30, base_offset=bomb_at, timestamp=ts + 1))
        for i in range(5):
            plog.append(encode_batch([(b"k%d" % i, b"new-%d" % i, ts + 2, ())]))
        plog.roll()
    finally:
        manager.close()
    return bomb_at, ts + 1


def wait_for(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_compacted_topic_holding_a_bomb_is_cleaned_without_crashing(tmp_path) -> None:
    data_dir = str(tmp_path / "data")
    bomb_at, bomb_ts = seed_compacted_topic_with_a_bomb(data_dir)
    checkpoint = os.path.join(data_dir, "compacted-0", "cleaner-checkpoint")
    proc = BrokerProcess(data_dir).start()
    try:
        # The maintenance pass (every second) compacts the topic around the bomb.
        assert wait_for(lambda: os.path.exists(checkpoint)), proc.logs()
        assert proc.process is not None and proc.process.poll() is None
        assert "keeping an undecodable batch" in proc.logs()
        assert proc.stop() == 0
        proc.start()  # and it starts again: no crash loop
        sock = connect(proc)
        try:
            assert list_offset(sock, "compacted", -1) == (ErrorCode.NONE, bomb_at + 6)
            # Searching by timestamp through the bomb: an error for that partition.
            assert list_offset(sock, "compacted", bomb_ts)[0] == ErrorCode.CORRUPT_MESSAGE
            assert produce(sock, "compacted", good(key=b"k9", value=b"later")).base_offset == (
                bomb_at + 6
            )
        finally:
            sock.close()
        assert read_values(proc.bootstrap, "compacted", 6, start=bomb_at + 1) == [
            *(b"new-%d" % i for i in range(5)),
            b"later",
        ]
        asyncio.run(read_past_the_bomb_with_our_consumer(proc.bootstrap, bomb_at))
        assert proc.process is not None and proc.process.poll() is None
    finally:
        assert proc.stop() == 0


async def read_past_the_bomb_with_our_consumer(bootstrap: str, bomb_at: int) -> None:
    """streamlog's own consumer raises a clear error for the bomb (the compacted-away
    records before it are gone) and reads on once told to seek past it."""
    transport = KafkaTransport(f"kafka://{bootstrap}")
    try:
        consumer = transport.consumer()
        tp = SLTopicPartition("compacted", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        with pytest.raises(CorruptBatchError) as info:
            for _ in range(50):
                await consumer.getmany(timeout_ms=200)
        error = info.value
        assert (error.topic, error.partition, error.offset, error.next_offset) == (
            "compacted",
            0,
            bomb_at,
            bomb_at + 1,
        )
        assert "inflates past" in str(error)
        with pytest.raises(CorruptBatchError):  # still there on the next poll
            await consumer.getmany(timeout_ms=200)
        consumer.seek(tp, error.next_offset)
        values: list[bytes] = []
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            values += [r.value for r in batch.get(tp, [])]
            if len(values) >= 6:
                break
        assert values == [*(b"new-%d" % i for i in range(5)), b"later"]
    finally:
        await transport.close()


def test_our_consumer_hands_out_every_record_around_an_undecodable_batch(tmp_path) -> None:
    """Partition 0 holds a, a bomb, b; partition 1 holds x, y. Nothing fetched in the same
    poll as the bomb is lost: a, x and y come out, then the error, then b after a seek."""
    data_dir = str(tmp_path / "data")
    manager = LogManager.open(data_dir)
    try:
        manager.create_topic("pair", 2)
        ts = now_ms()
        p0, p1 = manager.partition("pair", 0), manager.partition("pair", 1)
        p0.append(encode_batch([(None, b"a", ts, ())]))
        p0.append_as_is(bomb_batch(1 << 30, base_offset=1, timestamp=ts))
        p0.append(encode_batch([(None, b"b", ts, ())]))
        p1.append(encode_batch([(None, b"x", ts, ()), (None, b"y", ts, ())]))
    finally:
        manager.close()
    proc = BrokerProcess(data_dir).start()
    try:
        asyncio.run(read_around_the_bomb(proc.bootstrap))
    finally:
        assert proc.stop() == 0


async def read_around_the_bomb(bootstrap: str) -> None:
    transport = KafkaTransport(f"kafka://{bootstrap}")
    try:
        consumer = transport.consumer()
        tp0, tp1 = SLTopicPartition("pair", 0), SLTopicPartition("pair", 1)
        consumer.assign([tp0, tp1])
        consumer.seek(tp0, 0)
        consumer.seek(tp1, 0)
        got: dict[SLTopicPartition, list[bytes]] = {tp0: [], tp1: []}
        error: CorruptBatchError | None = None
        for _ in range(50):
            try:
                batch = await consumer.getmany(timeout_ms=200)
            except CorruptBatchError as e:
                error = e
                break
            for tp, records in batch.items():
                got[tp] += [r.value for r in records]
        assert got == {tp0: [b"a"], tp1: [b"x", b"y"]}
        assert error is not None and (error.partition, error.offset) == (0, 1)
        assert await consumer.position(tp0) == 1
        consumer.seek(tp0, error.next_offset)
        batch = await consumer.getmany(timeout_ms=5000)
        assert [r.value for r in batch[tp0]] == [b"b"]
    finally:
        await transport.close()
