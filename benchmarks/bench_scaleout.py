"""Many workers on one ``streamlog broker`` (issue 15): throughput of a windowed count with
1, 2 and 4 worker processes, the pause a rebalance costs a survivor (cooperative vs
eager assignment), and failover time after ``kill -9`` with and without standby replicas.

    .venv/bin/python benchmarks/bench_scaleout.py [--scenario throughput|pause|failover|all] \\
        [--workers 1,2,4] [--launch separate|supervisor] [--records 1000000] [--keys 5000] \\
        [--rate 2000] [--settle 8] [--table-keys 5000000] [--standbys 0,1] \\
        [--session-timeout 10] [--timeout 300] [--dir DIR] [--keep]

One ``streamlog broker`` (loopback, fresh data directory, ``--group-initial-rebalance-
delay-ms 0``) serves every run; each run gets its own input and output topics (8
partitions; the output stamped with the broker's append time) and consumer group, and its
workers are ``streamlog worker benchmarks/pipelines/scaleout.py`` processes, each with its
own ``--data-dir``. The app counts per key in a tumbling window (RocksDB) and writes one
output per input carrying the input's partition and produce time and the worker's name,
so the outputs say who processed what and when. Every process is stopped at the end of
its run, on errors, on Ctrl-C and on SIGTERM.

**throughput**: ``--records`` inputs over ``--keys`` keys (JSON values, event time 1 ms
apart, 10 s windows) are written before the workers start; then N workers are started
(``--launch separate``: N ``streamlog worker`` commands; ``supervisor``: one with
``--processes N``) and timed until the group's committed offsets reach the input's end.
``total s`` runs from spawning the workers; ``join s`` until the group is first Stable
with N members; ``rec/s`` and ``MB/s`` (keys + values, 10^6 bytes) are over the whole
run. The ``steady`` figures count only the work done with all N members: the outputs
(one per input) written from the join to the last output, over that span; ``x 1
worker`` divides by the one-worker row; ``CPU %`` is the CPU over that span (100 = one
core) of the workers' process trees, the broker, this process and the rest of the
machine (its busy time less the others: other work on a shared machine), and ``worker
us/rec`` the workers' CPU per output.

**pause**: a producer in this process writes ``--rate`` records/s (over ``--keys`` keys,
stamped with the wall clock) while 2 workers process them; after ``--settle`` s a third
worker joins, and ``--settle`` s after the group is Stable again it leaves cleanly
(SIGTERM). For each event (and for the steady span before the join, the noise floor),
each input partition's pause is the longest gap between consecutive appends of its
outputs in the span from the event to ``--settle`` s after the group settled; partitions
are ``stayed`` (the same worker wrote them before and after) or ``moved``.
``assigned -> output`` is the part of a pause after the new owner logged the partition
assigned. The console prints each case's longest gap and when it began, to set beside
the workers' logs (``--keep``). Run with the app's default assignment
(``cooperative-sticky``, then ``range``) and with ``("range",)`` (eager).

**failover**: ``--table-keys`` distinct keys are written first (one window of a day,
so the table holds every key), 3 workers build the table, then the paced producer runs
and after ``--settle`` s the worker holding the most partitions is killed with SIGKILL.
Per partition it held: the time from the kill to the first output written by another
worker, and from the survivor's ``partitions assigned`` log line to that output (the part
a standby replica can shorten; the rest is the session timeout). ``found a copy`` counts
the partitions whose new owner started from a store that already held them (a standby's:
its recovery log line), ``records replayed`` what the new owners read from the changelog,
``survivors' own max pause`` the longest gap after the kill in the outputs of the
partitions the survivors already held (until 2 s after the last lost one came back).
Run once per ``--standbys`` value (the app's ``table_standby_replicas``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bench_streams import (  # benchmarks/ is on sys.path when a script runs
    CONSUMER_SETTINGS,
    OUTPUT_CONFIG,
    PRODUCER_SETTINGS,
    QUIET,
    VENV_BIN,
    BenchError,
    Broker,
    Session,
    create_topic,
    end_offsets,
)
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from machine import machine

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "pipelines", "scaleout.py")
PARTITIONS = 8
COMMIT_INTERVAL_S = 1.0
POLL_S = 0.1
TABLE_WINDOW_S = 86_400  # failover: one window (a day) holds the whole table
HOLDING = re.compile(r"^\[([^\]]+)\].*holding partitions: (.*)$", re.M)
ASSIGNED = re.compile(r"^\[([^\]]+)\].*partitions assigned: (.*)$", re.M)


# ---------------------------------------------------------------------------------------
# Workers


@dataclass
class Worker:
    """One ``streamlog worker`` of the scale-out app, in a session of its own."""

    name: str
    session: Session
    data_dir: str
    stopped: bool = False  # stopped or killed on purpose

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.stopped = True
        self.session.stop(sig)

    @property
    def log_path(self) -> str:
        return self.session.log_path

    def logs(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def holding(self, topic: str) -> list[int] | None:
        """The input partitions of the worker's last ``holding partitions`` line."""
        lines = HOLDING.findall(self.logs())
        if not lines:
            return None
        return partitions_of(lines[-1][1], topic)

    def restore(self, changelog: str, partition: int, after: float) -> Restore | None:
        """The worker's first recovery of ``changelog``'s ``partition`` logged after
        ``after`` (None: none logged)."""
        name = re.escape(f"{changelog}-{partition}")
        pattern = re.compile(
            rf"^\[([^\]]+)\].*(?:table store for {name} is up to date at offset (\d+)"
            rf"|recovering {name}: offsets \d+ to \d+ \((\d+)\) into (an empty store)?)",
            re.M,
        )
        for stamp, up_to_date, count, empty in pattern.findall(self.logs()):
            if log_time(stamp) >= after:
                if up_to_date:
                    return Restore(0, int(up_to_date) > 0)
                return Restore(int(count), not empty)
        return None

    def assigned_at(self, topic: str, partition: int, after: float) -> float | None:
        """When the worker logged ``partitions assigned`` with ``partition``, after ``after``."""
        for stamp, text in ASSIGNED.findall(self.logs()):
            at = log_time(stamp)
            if at >= after and partition in partitions_of(text, topic):
                return at
        return None


@dataclass(frozen=True)
class Restore:
    """How a worker made a table partition ready, from its recovery log lines."""

    replayed: int  # changelog records read
    from_copy: bool  # started from a store that already held some of it (a standby's)

    def __str__(self) -> str:
        source = "from its copy" if self.from_copy else "from empty"
        return f"{self.replayed:,} records replayed {source}"


def tree_cpu(roots: Sequence[int]) -> float:
    """User + system CPU seconds of the processes ``roots`` and all their descendants."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry)] = int(fields[1])
            ticks[int(entry)] = int(fields[11]) + int(fields[12])
    wanted, total = set(roots), 0
    for pid in ticks:
        p = pid
        while p > 1 and p not in wanted:
            p = parent.get(p, 0)
        if p in wanted:
            total += ticks[pid]
    return total / os.sysconf("SC_CLK_TCK")


def busy_cpu() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def partitions_of(text: str, topic: str) -> list[int]:
    """``topic [0, 3]; other [1]`` (the conductor's format) -> ``[0, 3]`` for ``topic``."""
    for part in text.split("; "):
        name, _, numbers = part.partition(" [")
        if name == topic:
            return [int(n) for n in numbers.rstrip("]").split(",") if n.strip()]
    return []


def log_time(stamp: str) -> float:
    """A worker log line's time (``2026-12-06 15:20:01,123``, local time) as epoch s."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class Fleet:
    """The workers of one run; ``close()`` stops every one still running."""

    workdir: str
    bootstrap: str
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def spawn(self, name: str, *extra: str) -> Worker:
        data_dir = os.path.join(self.workdir, name)
        os.makedirs(data_dir, exist_ok=True)
        session = Session(
            [
                os.path.join(VENV_BIN, "streamlog"),
                "worker",
                APP,
                "--broker",
                f"kafka://{self.bootstrap}",
                "--data-dir",
                data_dir,
                "--lag-interval",
                "0",
                *extra,
            ],
            os.path.join(self.workdir, f"{name}.log"),
            env={**self.env, "BENCH_WORKER": name, "BENCH_BOOTSTRAP": self.bootstrap},
        )
        worker = Worker(name, session, data_dir)
        self.workers.append(worker)
        return worker

    def cpu(self) -> float:
        """CPU seconds of the live workers and their children (a supervisor's workers)."""
        return tree_cpu([w.session.pid for w in self.workers if w.session.alive()])

    def check_alive(self) -> None:
        """Fails when a worker the harness did not stop has exited."""
        for w in self.workers:
            if not w.stopped and not w.session.alive():
                raise BenchError(f"{w.name} exited ({w.session.proc.returncode}):\n{w.logs()}")

    def close(self) -> None:
        for w in self.workers:
            w.session.stop()


# ---------------------------------------------------------------------------------------
# The log, seen from outside


class Observer:
    """The group's state and committed offsets and the topics' ends, via confluent-kafka."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.group = group
        self.topic = topic
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        # Never subscribes, so it never joins the group: it only reads offsets.
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, **CONSUMER_SETTINGS}
        )

    def close(self) -> None:
        self.consumer.close()

    def members(self) -> int:
        """Members of the group if it is Stable, else -1."""
        try:
            desc = self.admin.describe_consumer_groups([self.group])[self.group].result(timeout=5)
        except KafkaException:
            return -1
        return len(desc.members) if desc.state == ConsumerGroupState.STABLE else -1

    def committed(self) -> int:
        parts = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        got = self.consumer.committed(parts, timeout=10)
        return sum(max(tp.offset, 0) for tp in got)

    def end(self, topic: str | None = None) -> int:
        return sum(end_offsets(self.consumer, topic or self.topic, PARTITIONS).values())


def wait_for(check: Callable[[], bool], fleet: Fleet, timeout: float, what: str) -> float:
    """Poll ``check`` until true; returns the time (epoch s) it first was."""
    deadline = time.monotonic() + timeout
    while not check():
        fleet.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)
    return time.time()


@dataclass(frozen=True)
class Output:
    partition: int  # the input's
    appended: int  # ms, the broker's append time
    produced: int  # ms, the input's timestamp
    worker: str


def read_outputs(bootstrap: str, topic: str, timeout: float) -> list[Output]:
    """Every output record of the run, by partition and append time."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:6]}",
            **CONSUMER_SETTINGS,
        }
    )
    try:
        ends = end_offsets(consumer, topic, PARTITIONS)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS) if ends[p]])
        total = sum(ends.values())
        outputs: list[Output] = []
        deadline = time.monotonic() + timeout
        while len(outputs) < total:
            if time.monotonic() > deadline:
                raise BenchError(f"read {len(outputs):,} of {total:,} outputs in time")
            for msg in consumer.consume(10_000, 1.0):
                raw = msg.value()
                if msg.error() is None and raw is not None:
                    v = json.loads(raw)
                    outputs.append(Output(v["p"], msg.timestamp()[1], v["ts"], v["w"]))
        outputs.sort(key=lambda o: (o.partition, o.appended))
        return outputs
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------
# Producing input


def value_of(i: int) -> bytes:
    return json.dumps({"id": i, "amount": i % 100}).encode()


def preload(bootstrap: str, topic: str, keys: Iterable[str], step_ms: int = 1) -> int:
    """Write one record per key (event time ``step_ms`` apart from now); returns bytes."""
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS})
    base = int(time.time() * 1000)
    size = 0
    for i, key in enumerate(keys):
        value = value_of(i)
        size += len(key) + len(value)
        while True:
            try:
                producer.produce(topic, value, key.encode(), timestamp=base + i * step_ms)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0:
        raise BenchError(f"preloading {topic}: records left undelivered")
    return size


class PacedProducer(threading.Thread):
    """Writes ``rate`` records/s over ``keys`` keys, each stamped with the wall clock.

    The confluent-kafka producer lives in the thread, so it is gone (and stops
    reconnecting) as soon as the thread ends, whatever the harness is doing then."""

    def __init__(self, bootstrap: str, topic: str, rate: float, keys: int) -> None:
        super().__init__(name="paced-producer", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.rate = rate
        self.keys = keys
        self.sent = 0
        self.halt = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, **PRODUCER_SETTINGS})
        rng = random.Random(15)
        began = time.monotonic()
        try:
            while not self.halt.is_set():
                due = int((time.monotonic() - began) * self.rate)
                while self.sent < due:
                    now = int(time.time() * 1000)
                    key = f"k{rng.randrange(self.keys)}".encode()
                    producer.produce(self.topic, value_of(self.sent), key, timestamp=now)
                    self.sent += 1
                producer.poll(0)
                time.sleep(0.002)
            left = producer.flush(30)
            if left:
                self.error = f"{left:,} record(s) undelivered"
        except (KafkaException, BufferError) as exc:
            self.error = str(exc)

    def stop(self) -> int:
        """Stops producing; returns how many records were sent (all delivered)."""
        self.halt.set()
        self.join(60)
        if self.error is not None:
            raise BenchError(f"paced producer: {self.error}")
        return self.sent

    def abandon(self) -> None:
        """On the way out after an error: stop without checking anything."""
        self.halt.set()
        if self.is_alive():
            self.join(35)


# ---------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Run:
    """What every run shares: the broker, the work directory, the settings."""

    broker: Broker
    workdir: str
    args: argparse.Namespace

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def topics(self, name: str) -> tuple[str, str, str]:
        """Fresh input and output topics and group name for one run."""
        tag = f"{name}-{uuid.uuid4().hex[:6]}"
        source, sink = f"scaleout-{tag}-in", f"scaleout-{tag}-out"
        create_topic(self.bootstrap, source, PARTITIONS)
        create_topic(self.bootstrap, sink, PARTITIONS, config=OUTPUT_CONFIG)
        return source, sink, f"scaleout-{tag}"

    def fleet(self, name: str, source: str, sink: str, group: str, **env: str) -> Fleet:
        workdir = os.path.join(self.workdir, name)
        os.makedirs(workdir, exist_ok=True)
        base = {
            "BENCH_GROUP": group,
            "BENCH_INPUT": source,
            "BENCH_OUTPUT": sink,
            "BENCH_PARTITIONS": str(PARTITIONS),
            "BENCH_COMMIT_INTERVAL": str(COMMIT_INTERVAL_S),
            "BENCH_SESSION_TIMEOUT": str(self.args.session_timeout),
        }
        return Fleet(workdir, self.bootstrap, {**base, **env})


@dataclass(frozen=True)
class Throughput:
    """One throughput run's figures (seconds are wall clock, CPU in seconds)."""

    workers: int
    records: int
    size: int  # bytes of input keys + values
    total: float  # spawning the workers -> the last input committed
    join: float  # spawning the workers -> the group Stable with every worker
    steady: int  # outputs written after the join (one per input)
    steady_s: float  # the join -> the last output
    worker_cpu: float  # over the steady part, all workers
    broker_cpu: float
    bench_cpu: float  # this process (the harness's polling clients)
    other_cpu: float  # the machine's busy time over the steady part, less all of the above
    duplicates: int  # outputs beyond one per input

    def row(self, one_worker: float) -> list[str]:
        per_rec = self.size / self.records
        rate = self.steady / self.steady_s if self.steady > 0 else float("nan")
        return [
            str(self.workers),
            f"{self.records:,}",
            f"{self.total:.1f}",
            f"{self.join:.1f}",
            f"{self.records / self.total:,.0f}",
            f"{self.size / self.total / 1e6:.2f}",
            f"{rate:,.0f}",
            f"{rate * per_rec / 1e6:.2f}",
            f"{rate / one_worker:.2f}",
            " / ".join(
                f"{100 * cpu / self.steady_s:.0f}"
                for cpu in (self.worker_cpu, self.broker_cpu, self.bench_cpu, self.other_cpu)
            ),
            f"{1e6 * self.worker_cpu / self.steady:.1f}" if self.steady > 0 else "n/a",
            f"{self.duplicates:,}",
        ]


THROUGHPUT_HEADER = [
    "workers",
    "records",
    "total s",
    "join s",
    "rec/s",
    "MB/s",
    "steady rec/s",
    "steady MB/s",
    "x 1 worker",
    "CPU % workers / broker / bench / rest",
    "worker us/rec",
    "dup outputs",
]


def throughput(run: Run, n: int) -> Throughput:
    """One throughput run with ``n`` workers."""
    args = run.args
    source, sink, group = run.topics(f"tp{n}")
    began = time.perf_counter()
    size = preload(run.bootstrap, source, (f"k{i % args.keys}" for i in range(args.records)))
    print(
        f"  {n} worker(s): preloaded {args.records:,} records"
        f" in {time.perf_counter() - began:.1f} s"
    )
    fleet = run.fleet(f"throughput-{n}", source, sink, group)
    watch = Observer(run.bootstrap, group, source)
    try:
        began = time.time()
        if args.launch == "supervisor":
            fleet.spawn("supervisor", "--processes", str(n))
        else:
            for i in range(n):
                fleet.spawn(f"w{i + 1}")
        joined = wait_for(lambda: watch.members() == n, fleet, args.timeout, f"{n} members")
        at_join = watch.end(sink)
        cpu_at_join, broker_at_join, busy_at_join = fleet.cpu(), run.broker.cpu(), busy_cpu()
        bench_at_join = time.process_time()
        produced = wait_for(
            lambda: watch.end(sink) >= args.records, fleet, args.timeout, "the last output"
        )
        cpu, broker_cpu = fleet.cpu() - cpu_at_join, run.broker.cpu() - broker_at_join
        bench_cpu = time.process_time() - bench_at_join
        other_cpu = busy_cpu() - busy_at_join - cpu - broker_cpu - bench_cpu
        done = wait_for(
            lambda: watch.committed() >= args.records, fleet, args.timeout, "the last commit"
        )
        outputs = watch.end(sink)
    finally:
        watch.close()
        fleet.close()
    result = Throughput(
        n,
        args.records,
        size,
        done - began,
        joined - began,
        args.records - at_join,
        produced - joined,
        cpu,
        broker_cpu,
        bench_cpu,
        other_cpu,
        outputs - args.records,
    )
    print(
        f"  {n} worker(s): {result.total:.1f} s, joined after {result.join:.1f} s with"
        f" {at_join:,} outputs written; the last output after {produced - began:.1f} s;"
        f" {result.duplicates:,} duplicate output(s)"
    )
    return result


@dataclass(frozen=True)
class Span:
    """A stretch of a run to measure pauses in: from ``start`` to ``end`` (epoch s)."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Gap:
    """A partition's longest stretch without output: its length and when it ended."""

    seconds: float
    ended: float  # epoch s: the append that ended it

    def __str__(self) -> str:
        def clock(t: float) -> str:
            return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]

        return f"{self.seconds * 1000:,.0f} ms from {clock(self.ended - self.seconds)}"


def longest_gaps(outputs: Sequence[Output], span: Span) -> dict[int, Gap]:
    """Per input partition, the longest gap between consecutive output appends that ends
    inside ``span`` (the gap may start before it)."""
    start, end = span.start * 1000, span.end * 1000
    gaps: dict[int, Gap] = {}
    previous: Output | None = None
    for o in outputs:
        if (
            previous is not None
            and previous.partition == o.partition
            and start <= o.appended <= end
        ):
            gap = (o.appended - previous.appended) / 1000
            if o.partition not in gaps or gap > gaps[o.partition].seconds:
                gaps[o.partition] = Gap(gap, o.appended / 1000)
        previous = o
    return gaps


def owners_at(outputs: Sequence[Output], at: float) -> dict[int, str]:
    """Per input partition, the worker of its last output appended before ``at``."""
    owners: dict[int, str] = {}
    for o in outputs:
        if o.appended < at * 1000:
            owners[o.partition] = o.worker
    return owners


def holding_line(fleet: Fleet, topic: str) -> str:
    return ", ".join(f"{w.name} {w.holding(topic)}" for w in fleet.workers if w.session.alive())


def pause(run: Run, mode: str) -> list[list[str]]:
    """One pause run (``cooperative`` or ``eager``); the table rows."""
    args = run.args
    source, sink, group = run.topics(f"pause-{mode}")
    fleet = run.fleet(f"pause-{mode}", source, sink, group, BENCH_ASSIGNMENT=mode)
    watch = Observer(run.bootstrap, group, source)
    producer = PacedProducer(run.bootstrap, source, args.rate, args.keys)
    spans: list[Span] = []
    try:
        producer.start()
        fleet.spawn("w1")
        fleet.spawn("w2")
        wait_for(lambda: watch.members() == 2, fleet, args.timeout, "2 members")
        time.sleep(args.settle)
        print(f"  {mode}: before the join: {holding_line(fleet, source)}")
        joined = time.time()
        spans.append(Span("steady", joined - args.settle / 2, joined))
        third = fleet.spawn("w3")
        wait_for(lambda: watch.members() == 3, fleet, args.timeout, "3 members")
        time.sleep(args.settle)
        print(f"  {mode}: after the join:  {holding_line(fleet, source)}")
        left = time.time()
        spans.append(Span("join", joined, left))
        third.stop()
        wait_for(lambda: watch.members() == 2, fleet, args.timeout, "2 members again")
        time.sleep(args.settle)
        print(f"  {mode}: after the leave: {holding_line(fleet, source)}")
        spans.append(Span("leave", left, time.time()))
        sent = producer.stop()
        wait_for(lambda: watch.committed() >= sent, fleet, args.timeout, "the last commit")
    finally:
        producer.abandon()
        watch.close()
        fleet.close()
    outputs = read_outputs(run.bootstrap, sink, args.timeout)
    rows = []
    for span in spans:
        before, after = owners_at(outputs, span.start), owners_at(outputs, span.end)
        gaps = longest_gaps(outputs, span)
        survivors = {"w1", "w2"}
        groups: dict[str, list[int]] = {"stayed": [], "moved": []}
        for p in sorted(gaps):
            stayed = span.label == "steady" or before.get(p) == after.get(p) in survivors
            groups["stayed" if stayed else "moved"].append(p)
        for kind, parts in groups.items():
            if span.label == "steady" and kind == "moved":
                continue
            values = [gaps[p].seconds for p in parts]
            if parts:
                worst = max(parts, key=lambda p: gaps[p].seconds)
                print(f"  {mode} {span.label} {kind}: longest p{worst} {gaps[worst]}")
            restart = [
                t
                for p in parts
                if (t := assigned_to_output(fleet, outputs, source, p, after[p], span)) is not None
            ]
            rows.append(
                [
                    mode,
                    span.label,
                    kind,
                    str(len(values)),
                    f"{1000 * statistics.median(values):,.0f}" if values else "-",
                    f"{1000 * max(values):,.0f}" if values else "-",
                    f"{1000 * statistics.median(restart):,.0f}" if restart else "-",
                ]
            )
    return rows


def assigned_to_output(
    fleet: Fleet, outputs: Sequence[Output], source: str, partition: int, owner: str, span: Span
) -> float | None:
    """Seconds from ``owner`` logging ``partition`` assigned in ``span`` to its first output
    of it after that (None: no such assignment in the span, e.g. a cooperative survivor
    that kept it)."""
    worker = next(w for w in fleet.workers if w.name == owner)
    assigned = worker.assigned_at(source, partition, span.start)
    if assigned is None or assigned > span.end:
        return None
    first = next(
        (
            o.appended / 1000
            for o in outputs
            if o.partition == partition and o.worker == owner and o.appended >= assigned * 1000
        ),
        None,
    )
    return None if first is None else first - assigned


def failover(run: Run, standbys: int) -> list[str]:
    """One failover run with ``table_standby_replicas=standbys``; the table row."""
    args = run.args
    source, sink, group = run.topics(f"failover-{standbys}")
    preload(run.bootstrap, source, (f"k{i}" for i in range(args.table_keys)), step_ms=0)
    fleet = run.fleet(
        f"failover-{standbys}",
        source,
        sink,
        group,
        BENCH_WINDOW_S=str(TABLE_WINDOW_S),
        BENCH_STANDBY_REPLICAS=str(standbys),
    )
    watch = Observer(run.bootstrap, group, source)
    producer = PacedProducer(run.bootstrap, source, args.rate, args.table_keys)
    try:
        for i in range(3):
            fleet.spawn(f"w{i + 1}")
        wait_for(lambda: watch.members() == 3, fleet, args.timeout, "3 members")
        wait_for(
            lambda: watch.committed() >= args.table_keys, fleet, args.timeout, "the table built"
        )
        producer.start()
        time.sleep(args.settle)
        victim = max(fleet.workers, key=lambda w: len(w.holding(source) or []))
        lost = victim.holding(source) or []
        print(f"  standbys={standbys}: before the kill: {holding_line(fleet, source)}")
        killed = time.time()
        victim.stop(signal.SIGKILL)
        ends = {p: o for p, o in end_offsets(watch.consumer, sink, PARTITIONS).items()}
        seen = watch_after_kill(run.bootstrap, sink, ends, lost, victim.name, killed, args)
        firsts = seen.back
        back = {p: at for p, (at, _) in firsts.items()}
        print(f"  standbys={standbys}: after the kill:  {holding_line(fleet, source)}")
        producer.stop()
        changelog = f"{group}-counts-changelog"
        owners = {w.name: w for w in fleet.workers}
        restored = {p: owners[w].restore(changelog, p, killed) for p, (_, w) in firsts.items()}
        assigned = {
            p: min(
                (
                    t
                    for w in fleet.workers
                    if w is not victim
                    if (t := w.assigned_at(source, p, killed)) is not None
                ),
                default=None,
            )
            for p in lost
        }
    finally:
        producer.abandon()
        watch.close()
        fleet.close()
    total = [back[p] - killed for p in lost]
    recovery = [back[p] - a for p in lost if (a := assigned[p]) is not None]
    print(
        f"  standbys={standbys}: killed {victim.name} holding {lost};"
        + "".join(
            f" p{p} back on {firsts[p][1]} after {back[p] - killed:.2f} s"
            f" ({restored[p] or 'no recovery logged'});"
            for p in lost
        )
    )
    copies = sum(1 for r in restored.values() if r is not None and r.from_copy)
    replayed = sum(r.replayed for r in restored.values() if r is not None)
    return [
        str(standbys),
        f"{args.table_keys:,}",
        str(len(lost)),
        str(copies),
        f"{replayed:,}",
        f"{max(seen.kept_gaps.values(), default=math.nan):.2f}",
        f"{statistics.median(total):.2f}",
        f"{max(total):.2f}",
        f"{statistics.median(recovery):.2f}" if recovery else "n/a",
        f"{max(recovery):.2f}" if recovery else "n/a",
    ]


@dataclass
class AfterKill:
    """The outputs after a kill: when (and on which worker) each lost partition came back,
    and the longest gap in each other partition's outputs meanwhile (the survivors')."""

    back: dict[int, tuple[float, str]] = field(default_factory=dict)
    kept_gaps: dict[int, float] = field(default_factory=dict)


def watch_after_kill(
    bootstrap: str,
    sink: str,
    ends: dict[int, int],
    lost: list[int],
    victim: str,
    killed: float,
    args: argparse.Namespace,
) -> AfterKill:
    """Reads the outputs from ``ends`` (the output ends at the kill) until every partition
    in ``lost`` has output from a worker other than ``victim``, and 2 s more."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fo-{uuid.uuid4().hex[:6]}",
            **CONSUMER_SETTINGS,
        }
    )
    seen = AfterKill()
    last = {p: killed for p in range(PARTITIONS) if p not in lost}
    try:
        consumer.assign([TopicPartition(sink, p, o) for p, o in ends.items()])
        deadline = time.monotonic() + args.timeout
        until = math.inf
        while time.monotonic() < until:
            if len(seen.back) < len(lost) and time.monotonic() > deadline:
                missing = sorted(set(lost) - set(seen.back))
                raise BenchError(f"partitions {missing} produced no output in {args.timeout} s")
            for msg in consumer.consume(10_000, 0.5):
                raw = msg.value()
                if msg.error() is not None or raw is None:
                    continue
                v, at = json.loads(raw), msg.timestamp()[1] / 1000
                p = v["p"]
                if p in last:
                    seen.kept_gaps[p] = max(seen.kept_gaps.get(p, 0.0), at - last[p])
                    last[p] = at
                elif p not in seen.back and v["w"] != victim:
                    seen.back[p] = (at, v["w"])
            if len(seen.back) == len(lost) and until == math.inf:
                until = time.monotonic() + 2.0
    finally:
        consumer.close()
    return seen


# ---------------------------------------------------------------------------------------
# Reporting and the command line


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def throughput_table(run: Run) -> str:
    results = [throughput(run, int(n)) for n in run.args.workers.split(",")]
    base = next((r for r in results if r.workers == 1 and r.steady > 0), None)
    one = base.steady / base.steady_s if base else float("nan")
    return table(THROUGHPUT_HEADER, [r.row(one) for r in results])


def pause_table(run: Run) -> str:
    rows = [row for mode in ("cooperative", "eager") for row in pause(run, mode)]
    header = [
        "assignment",
        "event",
        "partitions",
        "n",
        "p50 pause ms",
        "max pause ms",
        "p50 assigned -> output ms",
    ]
    return table(header, rows)


def failover_table(run: Run) -> str:
    rows = [failover(run, int(s)) for s in run.args.standbys.split(",")]
    header = [
        "standbys",
        "table keys",
        "partitions lost",
        "found a copy",
        "records replayed",
        "survivors' own max pause s",
        "kill -> output p50 s",
        "max s",
        "assigned -> output p50 s",
        "max s",
    ]
    return table(header, rows)


SCENARIOS: dict[str, Callable[[Run], str]] = {
    "throughput": throughput_table,
    "pause": pause_table,
    "failover": failover_table,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scenario", choices=("throughput", "pause", "failover", "all"), default="all")
    p.add_argument("--workers", default="1,2,4", help="throughput: worker counts (default 1,2,4)")
    p.add_argument(
        "--launch",
        choices=("separate", "supervisor"),
        default="separate",
        help="throughput: N `streamlog worker` commands, or one with --processes N",
    )
    p.add_argument("--records", type=int, default=1_000_000, help="throughput: input records")
    p.add_argument("--keys", type=int, default=5_000, help="keys of the counted input")
    p.add_argument("--rate", type=float, default=2_000, help="pause, failover: records/s")
    p.add_argument("--settle", type=float, default=8.0, help="seconds before and after events")
    p.add_argument("--table-keys", type=int, default=5_000_000, help="failover: table size")
    p.add_argument("--standbys", default="0,1", help="failover: table_standby_replicas values")
    p.add_argument(
        "--session-timeout",
        type=float,
        default=10.0,
        help="the app's broker_session_timeout, seconds (the broker accepts 6 and up)",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="bound on every wait, seconds")
    p.add_argument("--dir", default=None, help="where the broker's and workers' data go")
    p.add_argument(
        "--keep", action="store_true", help="keep the data and the workers' logs (path printed)"
    )
    return p.parse_args(argv)


def _raise_on_signal(signum: int, _frame: types.FrameType | None) -> None:
    raise SystemExit(f"stopped by {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = tuple(SCENARIOS) if args.scenario == "all" else (args.scenario,)
    print(f"machine: {machine()}")
    print(
        f"settings: scenarios {', '.join(scenarios)}; {PARTITIONS} partitions; workers"
        f" {args.workers}; records {args.records:,}; keys {args.keys:,}; rate {args.rate:,.0f}/s;"
        f" launch {args.launch}; settle {args.settle} s; table keys {args.table_keys:,};"
        f" standbys {args.standbys};"
        f" session timeout {args.session_timeout} s; commit interval {COMMIT_INTERVAL_S} s;"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    # Ctrl-C even when started from a shell that ignores SIGINT in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    workdir = tempfile.mkdtemp(prefix="bench-scaleout-", dir=args.dir)
    broker = Broker(workdir)
    reports: list[str] = []
    failed = False
    try:
        broker.start()
        print(f"broker: streamlog broker at {broker.bootstrap}, data in {workdir}")
        run = Run(broker, workdir, args)
        for scenario in scenarios:
            print(f"{scenario}:")
            try:
                reports.append(SCENARIOS[scenario](run))
            except (BenchError, KafkaException, OSError) as exc:
                failed = True
                print(f"  {scenario}: FAILED: {exc}")
    finally:
        broker.stop()
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for report in reports:
        print()
        print(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
