"""Fetch long polling, max_bytes and offsets, spoken directly with our wire codec."""

from __future__ import annotations

import socket
import threading
import time

from kafka import KafkaProducer

from streamlog.log.records import iter_batches
from streamlog.protocol import ApiKey, decode_response, encode_request, request_class
from streamlog.protocol.schema import build_message

from .test_broker_process import recv_frame


def fetch(
    sock: socket.socket,
    topic: str,
    offset: int,
    *,
    max_wait_ms: int,
    min_bytes: int,
    max_bytes: int = 1 << 20,
    partition_max_bytes: int = 1 << 20,
    cid: int = 1,
):
    request = build_message(
        request_class(ApiKey.FETCH, 12),
        replica_id=-1,
        max_wait=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=1,
        session_id=0,
        session_epoch=-1,
        topics=[
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": 0,
                        "current_leader_epoch": -1,
                        "fetch_offset": offset,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": partition_max_bytes,
                    }
                ],
            }
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
    sock.sendall(encode_request(request, correlation_id=cid, client_id="lp"))
    correlation, response = decode_response(recv_frame(sock), ApiKey.FETCH, 12)
    assert correlation == cid
    return response.responses[0].partitions[0]


def records(partition) -> list[bytes | None]:
    return [r.value for b in iter_batches(partition.records or b"") for r in b.records]


def test_a_waiting_fetch_wakes_up_when_data_arrives(broker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    producer.send("lp", b"first").get(10)
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=15)
    try:
        # Nothing past offset 1 yet: with 30 s of max_wait the answer can only come back
        # within the socket's 15 s timeout if the produce below wakes the fetch up.
        threading.Timer(0.5, lambda: producer.send("lp", b"second").get(10)).start()
        partition = fetch(sock, "lp", 1, max_wait_ms=30_000, min_bytes=1)
        assert partition.error_code == 0
        assert records(partition) == [b"second"]
        assert partition.high_watermark == 2 and partition.last_stable_offset == 2
    finally:
        sock.close()
        producer.close()


def test_a_fetch_with_nothing_to_read_returns_empty_after_max_wait(broker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send("lp-empty", b"x").get(10)
    producer.close()
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=15)
    try:
        started = time.monotonic()
        partition = fetch(sock, "lp-empty", 1, max_wait_ms=300, min_bytes=1)
        waited = time.monotonic() - started
        assert partition.error_code == 0 and records(partition) == []
        assert waited >= 0.25  # it did wait for data rather than answering at once
        # Out of range: an error for that partition, the connection still usable.
        partition = fetch(sock, "lp-empty", 5, max_wait_ms=0, min_bytes=0, cid=2)
        assert partition.error_code == 1  # OFFSET_OUT_OF_RANGE
        partition = fetch(sock, "lp-empty", 0, max_wait_ms=0, min_bytes=0, cid=3)
        assert records(partition) == [b"x"]
    finally:
        sock.close()


def test_max_bytes_limits_the_answer_but_returns_at_least_one_batch(broker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, batch_size=1)
    for i in range(20):
        producer.send("lp-max", b"v%02d" % i + b"." * 1000).get(10)
    producer.close()
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=15)
    try:
        small = fetch(
            sock, "lp-max", 0, max_wait_ms=0, min_bytes=0, max_bytes=10, partition_max_bytes=10
        )
        assert len(records(small)) == 1  # one whole batch although larger than max_bytes
        batch_size = len(small.records)  # every batch here holds one same-sized record
        some = fetch(sock, "lp-max", 3, max_wait_ms=0, min_bytes=0, max_bytes=5000, cid=2)
        got = records(some)
        # as many whole batches as fit in max_bytes, from the one holding offset 3
        assert [v[:3] for v in got] == [b"v%02d" % i for i in range(3, 3 + 5000 // batch_size)]
    finally:
        sock.close()
