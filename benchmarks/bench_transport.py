"""Transport throughput: streamlog's transports next to kafka-python and aiokafka, one run.

Run: ``.venv/bin/python benchmarks/bench_transport.py [--messages 1000000]
[--peer-messages N] [--repeat 1] [--dir DIR] [--only NAME[,NAME]] [--timeout 300]``

Rows, each producing N unkeyed 100-byte values to a fresh one-partition topic and then
consuming them back from offset 0:

* ``embedded memory://``: ``EmbeddedTransport`` on tmpfs (``/dev/shm``), in-process.
* ``embedded file://``: ``EmbeddedTransport`` on ``--dir`` (default: the system temporary
  directory, i.e. the disk), in-process.
* ``kafka:// (streamlog)``: streamlog's own Kafka-protocol client against a ``streamlog
  broker`` subprocess (fresh data directory under ``--dir``, stopped with SIGTERM).
* ``kafka-python`` and ``aiokafka``: the same broker, the same topic shape.

Producers: ``linger_ms=5``, batches up to 1 MiB, acks=all, no idempotence, no
compression; a send loop that awaits each ``send`` (queues the record) and one
``flush`` at the end, timed from the first send to the end of the flush. Consumers:
``assign`` the partition, seek to the beginning, poll (up to 10,000 records, 1 s timeout)
until all N arrived, timed from the assignment. Each client first runs a 20,000-record
warm-up in a topic of its own. Figures: records/s and MB/s (values only, N x 100 bytes,
1 MB = 10^6 bytes), the median over ``--repeat`` runs; ``vs kafka://`` is the row's rate
over the streamlog kafka transport's (the issue's goal: embedded >= 3x).

Batch rows (``... send_many``; produce only, their consumers are the rows above): the
same N records queued 10,000 per call with the producer's batch API, then one ``flush``:
``Producer.send_many`` for streamlog's transports, ``create_batch``/``send_batch`` for
aiokafka (one ``append`` per record into its batch builder, each batch sent when full);
kafka-python has no batch API. Their ``vs kafka://`` is over the kafka transport's
``send_many`` row. The end offset is checked after each run.

kafka-python is slow (tens of thousands of records/s): ``--peer-messages`` gives the
peers a smaller N (rates stay comparable; the default is N). Rows whose client cannot be
imported print "n/a (not available)"; a phase that fails or passes ``--timeout`` prints
its error and the run exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from machine import machine  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]

VALUE_SIZE = 100
WARMUP = 20_000
POLL_RECORDS = 10_000
BATCH_BYTES = 1 << 20
LINGER_MS = 5
HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(os.path.dirname(HERE), ".venv", "bin")
BATCH_CALL = 10_000  # records per send_many call in the batch rows
ROWS = (
    "memory",
    "file",
    "kafka",
    "kafka-python",
    "aiokafka",
    "memory-batch",
    "file-batch",
    "kafka-batch",
    "aiokafka-batch",
)
LABELS = {
    "memory": "embedded memory://",
    "file": "embedded file://",
    "kafka": "kafka:// (streamlog)",
    "kafka-python": "kafka-python",
    "aiokafka": "aiokafka",
    "memory-batch": "memory:// send_many",
    "file-batch": "file:// send_many",
    "kafka-batch": "kafka:// send_many",
    "aiokafka-batch": "aiokafka send_batch",
}
# The row each row's "vs kafka://" is taken over.
BASELINE = {name: "kafka-batch" if name.endswith("-batch") else "kafka" for name in ROWS}


class Unavailable(Exception):
    """The client of a row cannot be imported (yet)."""


# ---------------------------------------------------------------------------------------
# machine and broker


def filesystem(path: str) -> str:
    """The mount (device and type) holding ``path``, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                device, mount, kind = line.split()[:3]
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(
                    mount
                ) >= len(best[0]):
                    best = (mount, device, kind)
    except OSError:
        pass
    return f"{best[1]} ({best[2]}) mounted on {best[0] or '?'}"


def load_average() -> str:
    """1, 5 and 15-minute load averages: other processes take cores the kafka rows need."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


class Broker:
    """A ``streamlog broker`` subprocess on a free loopback port."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap = ""

    def start(self, timeout: float = 60.0) -> None:
        port_file = os.path.join(self.workdir, "port")
        log_path = os.path.join(self.workdir, "broker.log")
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    os.path.join(VENV_BIN, "streamlog"),
                    "broker",
                    "--data-dir",
                    os.path.join(self.workdir, "data"),
                    "--listen",
                    "127.0.0.1:0",
                    "--port-file",
                    port_file,
                    "-l",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(log_path, encoding="utf-8", errors="replace") as f:
                    raise RuntimeError(f"streamlog broker exited:\n{f.read()[-2000:]}")
            try:
                with open(port_file, encoding="ascii") as f:
                    port = f.read().strip()
                if port:
                    self.bootstrap = f"127.0.0.1:{port}"
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise RuntimeError("streamlog broker wrote no port file in time")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ---------------------------------------------------------------------------------------
# one client: produce N, then consume N


@dataclass
class Sample:
    produce_s: float
    consume_s: float | None  # None: not measured (batch rows)
    records: int


Phase = Callable[[str, int], Awaitable[Sample]]


def new_topic(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


async def streamlog_round(url: str, topic: str, n: int, batch: bool = False) -> Sample:
    """Produce then consume ``n`` records with a streamlog transport at ``url``; with
    ``batch``, produce with ``send_many`` and check the end offset instead of consuming."""
    from streamlog.transport import TopicPartition, open_transport

    try:
        transport = open_transport(url)
    except ImportError as exc:
        raise Unavailable(str(exc)) from None
    await transport.start()
    try:
        await transport.admin().create_topic(topic, 1)
        producer = transport.producer(
            linger_ms=LINGER_MS, batch_size=BATCH_BYTES, acks=-1, idempotent=False
        )
        value = bytes(VALUE_SIZE)
        if batch:
            chunk = [value] * BATCH_CALL
            send_many = producer.send_many
            started = time.perf_counter()
            for start in range(0, n, BATCH_CALL):
                await send_many(topic, chunk[: n - start], partition=0)
        else:
            send = producer.send
            started = time.perf_counter()
            for _ in range(n):
                await send(topic, value, partition=0)
        await producer.flush()
        produce_s = time.perf_counter() - started
        await producer.close()

        consumer = transport.consumer(max_poll_records=POLL_RECORDS)
        tp = TopicPartition(topic, 0)
        if batch:
            end = (await consumer.end_offsets([tp]))[tp]
            await consumer.close()
            if end != n:
                raise RuntimeError(f"send_many wrote {end} records, not {n}")
            return Sample(produce_s, None, n)

        started = time.perf_counter()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = 0
        while got < n:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                got += len(records)
        consume_s = time.perf_counter() - started
        await consumer.close()
        return Sample(produce_s, consume_s, n)
    finally:
        await transport.close()


async def aiokafka_round(bootstrap: str, topic: str, n: int, batch: bool = False) -> Sample:
    try:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    except ImportError as exc:
        raise Unavailable(str(exc)) from None
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=LINGER_MS,
        max_batch_size=BATCH_BYTES,
        max_request_size=BATCH_BYTES + 4096,
        acks="all",
        enable_idempotence=False,
    )
    await producer.start()
    value = bytes(VALUE_SIZE)
    try:
        if batch:
            started = time.perf_counter()
            builder = producer.create_batch()
            for _ in range(n):
                if builder.append(key=None, value=value, timestamp=None) is None:
                    await producer.send_batch(builder, topic, partition=0)
                    builder = producer.create_batch()
                    builder.append(key=None, value=value, timestamp=None)
            await producer.send_batch(builder, topic, partition=0)
        else:
            started = time.perf_counter()
            for _ in range(n):
                await producer.send(topic, value, partition=0)
        await producer.flush()
        produce_s = time.perf_counter() - started
    finally:
        await producer.stop()
    if batch:
        return await aiokafka_check_end(bootstrap, topic, n, produce_s)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=50 * 1024 * 1024,
        max_partition_fetch_bytes=BATCH_BYTES,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        started = time.perf_counter()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = 0
        while got < n:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=POLL_RECORDS)
            for records in fetched.values():
                got += len(records)
        consume_s = time.perf_counter() - started
    finally:
        await consumer.stop()
    return Sample(produce_s, consume_s, n)


async def aiokafka_check_end(bootstrap: str, topic: str, n: int, produce_s: float) -> Sample:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    if end != n:
        raise RuntimeError(f"aiokafka send_batch wrote {end} records, not {n}")
    return Sample(produce_s, None, n)


def kafka_python_round(bootstrap: str, topic: str, n: int) -> Sample:
    try:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
        from kafka.admin import KafkaAdminClient, NewTopic
    except ImportError as exc:
        raise Unavailable(str(exc)) from None
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=LINGER_MS,
        batch_size=BATCH_BYTES,
        max_request_size=BATCH_BYTES + 4096,
        acks="all",
        enable_idempotence=False,
    )
    value = bytes(VALUE_SIZE)
    try:
        started = time.perf_counter()
        for _ in range(n):
            producer.send(topic, value, partition=0)
        producer.flush()
        produce_s = time.perf_counter() - started
    finally:
        producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=50 * 1024 * 1024,
        max_partition_fetch_bytes=BATCH_BYTES,
    )
    try:
        tp = TopicPartition(topic, 0)
        started = time.perf_counter()
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = 0
        while got < n:
            for records in consumer.poll(timeout_ms=1000, max_records=POLL_RECORDS).values():
                got += len(records)
        consume_s = time.perf_counter() - started
    finally:
        consumer.close()
    return Sample(produce_s, consume_s, n)


# ---------------------------------------------------------------------------------------
# the run


@dataclass
class Row:
    name: str
    samples: list[Sample] = field(default_factory=list)
    status: str = ""  # "" when measured, else why not

    def produce_rate(self) -> float:
        return statistics.median(s.records / s.produce_s for s in self.samples)

    def consume_rate(self) -> float | None:
        if any(s.consume_s is None for s in self.samples):
            return None
        return statistics.median(s.records / s.consume_s for s in self.samples if s.consume_s)


def run_row(name: str, args: argparse.Namespace, workdir: str, broker: Broker | None) -> Row:
    row = Row(name)
    batch = name.endswith("-batch")
    client = name.removesuffix("-batch")
    n = args.messages if client in ("memory", "file", "kafka") else args.peer_messages

    def once(count: int) -> Sample:
        topic = new_topic(name.replace("-", ""))
        if client == "memory":
            coro = streamlog_round("memory://", topic, count, batch)
        elif client == "file":
            path = os.path.join(workdir, f"file-{uuid.uuid4().hex[:8]}")
            try:
                return asyncio.run(
                    asyncio.wait_for(
                        streamlog_round(f"file://{path}", topic, count, batch), args.timeout
                    )
                )
            finally:
                shutil.rmtree(path, ignore_errors=True)
        elif broker is None:
            raise Unavailable("no broker")
        elif client == "kafka":
            coro = streamlog_round(f"kafka://{broker.bootstrap}", topic, count, batch)
        elif client == "aiokafka":
            coro = aiokafka_round(broker.bootstrap, topic, count, batch)
        else:
            return kafka_python_round(broker.bootstrap, topic, count)
        return asyncio.run(asyncio.wait_for(coro, args.timeout))

    try:
        once(WARMUP)
        for _ in range(args.repeat):
            row.samples.append(once(n))
    except Unavailable as exc:
        row.status = "n/a (not available)"
        print(f"  {LABELS[name]}: not available ({exc})", flush=True)
    except Exception as exc:  # report and go on with the other rows
        row.status = f"failed: {type(exc).__name__}: {exc}"
        print(f"  {LABELS[name]}: {row.status}", flush=True)
    else:
        consume = row.consume_rate()
        print(
            f"  {LABELS[name]}: produce {row.produce_rate():,.0f}/s"
            + ("" if consume is None else f", consume {consume:,.0f}/s"),
            flush=True,
        )
    return row


def report(rows: list[Row]) -> None:
    measured = {r.name: r for r in rows if r.samples}
    header = (
        f"{'transport':<22} {'produce rec/s':>14} {'MB/s':>7} {'vs kafka://':>11}   "
        f"{'consume rec/s':>14} {'MB/s':>7} {'vs kafka://':>11}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        if not row.samples:
            print(f"{LABELS[row.name]:<22} {row.status}")
            continue
        base = measured.get(BASELINE[row.name])
        cells = []
        for rate, base_rate in (
            (row.produce_rate(), base.produce_rate() if base else None),
            (row.consume_rate(), base.consume_rate() if base else None),
        ):
            if rate is None:
                cells.append(f"{'-':>14} {'-':>7} {'-':>11}")
                continue
            ratio = f"{rate / base_rate:.2f}x" if base_rate else "-"
            cells.append(f"{rate:>14,.0f} {rate * VALUE_SIZE / 1e6:>7.1f} {ratio:>11}")
        print(f"{LABELS[row.name]:<22} {cells[0]}   {cells[1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--peer-messages", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma list of {ROWS}")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.peer_messages is None:
        args.peer_messages = args.messages
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {ROWS}")

    from streamlog.transport.embedded.transport import memory_base_dir

    print(f"machine: {machine()}")
    print(f"load average at start: {load_average()}")
    print(f"memory:// lives in {memory_base_dir() or tempfile.gettempdir()}")
    print(f"file:// and the broker's data in {args.dir}: {filesystem(args.dir)}")
    print(
        f"records: {args.messages:,} x {VALUE_SIZE} B (peers: {args.peer_messages:,}), "
        f"one partition, linger {LINGER_MS} ms, batches <= {BATCH_BYTES} B, acks=all, "
        f"poll <= {POLL_RECORDS:,}, repeat {args.repeat} (median), warm-up {WARMUP:,}"
    )
    workdir = tempfile.mkdtemp(prefix="bench-transport-", dir=args.dir)
    broker: Broker | None = None
    rows: list[Row] = []
    try:
        if any(name.startswith(("kafka", "aiokafka")) for name in only):
            broker = Broker(workdir)
            broker.start()
            print(f"streamlog broker on {broker.bootstrap}")
        for name in ROWS:
            if name in only:
                rows.append(run_row(name, args, workdir, broker))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report(rows)
    print(f"load average at end: {load_average()} (the kafka rows need both cores)")
    return 1 if any(r.status.startswith("failed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
