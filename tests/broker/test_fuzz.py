"""A bounded fuzz run against a real broker: it stays up, small, quiet and serving.

The corpus is captured, not stored: a recording proxy sits between a broker and real
clients (kafka-python, confluent-kafka, our own client) while they create topics,
produce with every codec, consume in groups and commit, and keeps every request frame.
The null-array requests of every API join it. From fixed seeds, ``fuzz_cases`` then
draws mutated frames (bit flips, counts and lengths set to edge values, cuts, splices),
random frames, size prefixes that lie both ways, and pipelined bursts; sixteen
connections send them to a broker serving the captured data directory, each case
followed by an ApiVersions probe, so every case ends in an answer, a close or (for a
fuzzed long poll) our own time limit.

Afterwards the broker process must be alive, its peak resident memory (VmHWM in
/proc/PID/status) within a bound of where it started, its log free of tracebacks, and a
real client must still produce and consume. Compression bombs have a test of their own.
"""

from __future__ import annotations

import asyncio
import datetime
import struct
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewPartitions,
    NewTopic,
)

from streamlog.protocol import (
    ApiKey,
    ErrorCode,
    build_message,
    decode_response,
    encode_request,
    request_class,
)
from streamlog.transport import TopicPartition as OurTopicPartition
from streamlog.transport import open_transport
from tests.protocol.null_requests import null_array_requests

from .brokerproc import BrokerProcess
from .fuzz_frames import FuzzCase, RecordingProxy, compression_bomb, fuzz_cases
from .test_broker_process import connect, recv_frame

SEEDS = (20261, 20262, 20263)
CASES_PER_SEED = 500
WORKERS = 16
CASE_TIMEOUT = 2.0  # a fuzzed long poll or group join may wait longer: we stop waiting
MAX_GROWTH_MIB = 64  # measured: ~12 MiB for the fuzz run, ~3 MiB for stored bombs
PROBE_ID = 0x7A11BABE
PROBE = encode_request(
    build_message(request_class(ApiKey.API_VERSIONS, 0)), correlation_id=PROBE_ID, client_id="p"
)


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of a process, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


# ---- the corpus: what real clients send ---------------------------------------------


def _kafka_python_session(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(
        [
            NewTopic("fz-kp", 3, 1, topic_configs={"retention.ms": "3600000"}),
            NewTopic("fz-gone", 1, 1),
        ]
    )
    admin.create_partitions({"fz-kp": NewPartitions(4)})
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "fz-kp")])
    admin.delete_topics(["fz-gone"])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
    for i in range(30):
        producer.send("fz-kp", key=b"k%d" % i, value=b"v%d" % i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(
        "fz-kp",
        bootstrap_servers=bootstrap,
        group_id="fz-kp-g",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    assert len(list(consumer)) == 30
    consumer.commit()
    consumer.close()


def _confluent_session(bootstrap: str) -> None:
    for codec in ("lz4", "zstd", "snappy"):
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": codec,
                "enable.idempotence": True,
            }
        )
        for i in range(30):
            producer.produce("fz-ck", key=b"k%d" % i, value=b"%s %d" % (codec.encode(), i))
        assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fz-ck-g",
            "auto.offset.reset": "earliest",
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.subscribe(["fz-ck"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 90 and time.monotonic() < deadline:
        got += sum(1 for m in consumer.consume(100, 0.5) if m.error() is None)
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == 90


async def _our_session(bootstrap: str) -> None:
    transport = open_transport(f"kafka://{bootstrap}")
    await transport.start()
    try:
        producer = transport.producer(compression="zstd")
        for i in range(30):
            await producer.send("fz-ours", b"v%d" % i, key=b"k%d" % i)
        await producer.flush()
        await producer.close()
        consumer = transport.consumer(group_id="fz-ours-g")
        consumer.assign([OurTopicPartition("fz-ours", 0)])
        got = 0
        deadline = time.monotonic() + 20
        while got < 30 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            got += sum(len(records) for records in batches.values())
        await consumer.commit()
        await consumer.close()
        assert got == 30
    finally:
        await transport.close()


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> tuple[str, list[bytes]]:
    """(data directory the clients wrote, their request frames, deduplicated)."""
    root = tmp_path_factory.mktemp("fuzz")
    data_dir = str(root / "data")
    broker = BrokerProcess(
        data_dir,
        ("--advertised-host", "127.0.0.2", "--group-initial-rebalance-delay-ms", "0"),
    ).start()
    proxy = RecordingProxy("127.0.0.2", broker.port, ("127.0.0.1", broker.port))
    try:
        bootstrap = f"127.0.0.2:{broker.port}"
        _kafka_python_session(bootstrap)
        _confluent_session(bootstrap)
        asyncio.run(_our_session(bootstrap))
    finally:
        proxy.close()
        assert broker.stop() == 0, broker.logs()
    # Keep every distinct frame, but no more than 20 of one API and version (consumers
    # send hundreds of near-identical fetches and heartbeats).
    per_api: Counter[bytes] = Counter()
    corpus: list[bytes] = []
    for frame in dict.fromkeys(proxy.frames):
        if per_api[frame[:4]] < 20:
            per_api[frame[:4]] += 1
            corpus.append(frame)
    return data_dir, corpus


def test_the_corpus_covers_what_clients_do(captured) -> None:
    _, corpus = captured
    apis = {struct.unpack_from(">h", frame)[0] for frame in corpus}
    wanted = {
        ApiKey.PRODUCE,
        ApiKey.FETCH,
        ApiKey.LIST_OFFSETS,
        ApiKey.METADATA,
        ApiKey.OFFSET_COMMIT,
        ApiKey.OFFSET_FETCH,
        ApiKey.FIND_COORDINATOR,
        ApiKey.JOIN_GROUP,
        ApiKey.SYNC_GROUP,
        ApiKey.API_VERSIONS,
        ApiKey.CREATE_TOPICS,
        ApiKey.DELETE_TOPICS,
        ApiKey.CREATE_PARTITIONS,
        ApiKey.DESCRIBE_CONFIGS,
        ApiKey.INIT_PRODUCER_ID,
    }
    assert wanted <= apis, sorted(ApiKey(a).name for a in wanted - apis)


# ---- the run --------------------------------------------------------------------------


async def _read_until_probe(reader: asyncio.StreamReader) -> None:
    while True:
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        body = await reader.readexactly(size)
        if body[:4] == struct.pack(">i", PROBE_ID):
            return


async def _fuzz(port: int, cases: list[FuzzCase]) -> Counter[str]:
    """Send every case; count how each ended: answered, closed, cut, or timeout."""
    queue: asyncio.Queue[FuzzCase] = asyncio.Queue()
    for case in cases:
        queue.put_nowait(case)
    outcomes: Counter[str] = Counter()

    async def worker() -> None:
        writer: asyncio.StreamWriter | None = None
        reader: asyncio.StreamReader | None = None
        while not queue.empty():
            case = queue.get_nowait()
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            try:
                writer.write(case.data)
                if case.close_after:
                    outcome = "cut"
                else:
                    writer.write(PROBE)
                    await asyncio.wait_for(
                        asyncio.gather(writer.drain(), _read_until_probe(reader)), CASE_TIMEOUT
                    )
                    outcome = "answered"
            except TimeoutError:
                outcome = "timeout"
            except (ConnectionError, asyncio.IncompleteReadError):
                outcome = "closed"
            outcomes[outcome] += 1
            if outcome != "answered":
                writer.close()
                writer = reader = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return outcomes


def _round_trip(bootstrap: str, topic: str, n: int) -> list[int]:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        producer.produce(topic, value=b"%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-g"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        got.extend(int(m.value()) for m in consumer.consume(100, 0.5) if m.error() is None)
    consumer.close()
    return got


def _assert_healthy(proc: BrokerProcess, rss_before_kib: int) -> None:
    assert proc.process is not None and proc.process.poll() is None, proc.logs()[-3000:]
    growth_mib = (memory_kib(proc.process.pid, "VmHWM") - rss_before_kib) / 1024
    assert growth_mib < MAX_GROWTH_MIB, f"peak resident memory grew by {growth_mib:.0f} MiB"
    logs = proc.logs()
    assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000 :][:6000]
    assert "Unhandled exception" not in logs
    # asyncio's own complaint about writing to a socket the client has closed.
    assert "socket.send() raised exception" not in logs


def test_fuzzed_frames_leave_the_broker_up_small_and_serving(captured) -> None:
    data_dir, corpus = captured
    # Every null-array request once, beside the mutations of what clients send.
    null_arrays = [
        FuzzCase("null-array", encode_request(case.request, correlation_id=9, client_id="n"))
        for case in null_array_requests()
    ]
    proc = BrokerProcess(data_dir, ("--frame-timeout-ms", "1000")).start()
    try:
        assert _round_trip(proc.bootstrap, "fz-before", 10) == list(range(10))
        assert proc.process is not None
        rss_before = memory_kib(proc.process.pid, "VmRSS")
        cases = [case for seed in SEEDS for case in fuzz_cases(seed, corpus, CASES_PER_SEED)]
        cases += null_arrays
        outcomes = asyncio.run(_fuzz(proc.port, cases))
        assert sum(outcomes.values()) == len(cases) == 1500 + 200
        # Both kinds of ending happen, so the cases reach past the framing.
        assert outcomes["answered"] > 300 and outcomes["closed"] > 300, outcomes
        _assert_healthy(proc, rss_before)
        assert _round_trip(proc.bootstrap, "fz-after", 50) == list(range(50))
    finally:
        assert proc.stop() == 0, proc.logs()[-3000:]


# ---- compression bombs ----------------------------------------------------------------

BOMBS = {"gzip": 256, "zstd": 256, "lz4": 200, "snappy": 16}  # MiB each inflates to


def _produce(sock, topic: str, batch: bytes) -> int:
    body = build_message(
        request_class(ApiKey.PRODUCE, 9),
        acks=1,
        timeout=datetime.timedelta(seconds=10),
        topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
    )
    sock.sendall(encode_request(body, correlation_id=1, client_id="bomber"))
    _, response = decode_response(recv_frame(sock), ApiKey.PRODUCE, 9)
    return response.responses[0].partition_responses[0].error_code


def _list_offsets_by_time(sock, topic: str, timestamp: int) -> int:
    body = build_message(
        request_class(ApiKey.LIST_OFFSETS, 7),
        replica_id=-1,
        isolation_level=0,
        topics=[{"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp}]}],
    )
    sock.sendall(encode_request(body, correlation_id=2, client_id="bomber"))
    _, response = decode_response(recv_frame(sock), ApiKey.LIST_OFFSETS, 7)
    return response.topics[0].partitions[0].error_code


def test_compression_bombs_leave_the_broker_small(tmp_path) -> None:
    """A Produce whose batch inflates to hundreds of MiB, with each codec; then the
    requests that make the broker read records (ListOffsets by time, Fetch)."""
    proc = BrokerProcess(str(tmp_path / "data")).start()
    try:
        assert _round_trip(proc.bootstrap, "warm", 10) == list(range(10))
        assert proc.process is not None
        rss_before = memory_kib(proc.process.pid, "VmRSS")
        sock = connect(proc)
        now = int(time.time() * 1000)
        for codec, megabytes in BOMBS.items():
            code = _produce(sock, f"bomb-{codec}", compression_bomb(codec, megabytes, now))
            # inflated past max.message.bytes while being validated: refused, not stored
            assert code == ErrorCode.MESSAGE_TOO_LARGE, codec
            code = _list_offsets_by_time(sock, f"bomb-{codec}", now - 1000)
            assert code == ErrorCode.NONE, codec
        sock.close()
        _assert_healthy(proc, rss_before)
        assert _round_trip(proc.bootstrap, "after-bombs", 20) == list(range(20))
    finally:
        assert proc.stop() == 0, proc.logs()[-3000:]
