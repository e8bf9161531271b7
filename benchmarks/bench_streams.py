"""Stream processing throughput: the same pipelines in every framework, one broker, one run.

Run: ``.venv/bin/python benchmarks/bench_streams.py
[--pipeline stateless|windowed|windowed-emit|all] [--events 1000000]
[--peer-events N|ROW=N,...] [--partitions 1] [--only ROW,...] [--repeat 1] [--timeout 600]
[--commit-interval 1.0] [--guarantee at_least_once|exactly_once|both]
[--baseline CHECKOUT]``

One ``streamlog broker`` (fresh data directory in a temporary directory, stopped with
SIGTERM at the end, even on errors) serves every row. For each pipeline the script
produces the input once with confluent-kafka (JSON values ``{"id", "user", "amount",
"ts"}``, key = the user, Kafka timestamp = ``ts``) and every row reads that same topic
with a consumer group, an output topic and a state directory of its own per run.

Pipelines (the same semantics in every framework; the harness checks every output):

* ``stateless``: JSON decode -> keep ``amount >= 50`` -> map to ``{"id", "user",
  "amount_cents": amount * 100}`` -> JSON to the output topic (about half the input).
* ``windowed``: a tumbling 10 s event-time window counting events per user (100,000
  distinct users, keyed by the message key) in RocksDB-backed state; every update emits
  ``{"user", "start", "count"}`` (the window's count so far), one output per input.
  Event time advances 1 ms per event, so every window holds 10,000 events, whatever N is.
* ``windowed-emit`` (issue 11): the same count over 10,000 keys, and every update's count
  (``counts[key].current()``; Quix's ``tumbling_window(...).count().current()``) sent to
  the output keyed by the input key, ``{"user", "start", "count"}``: one output per input.

Timing, the same for every row and both pipelines, all observed from outside the row's
process: the clock starts when the row's consumer group is first seen Stable with members
(DescribeGroups, polled every 20 ms), i.e. once the framework owns its partitions, and
stops when the output topic's end offsets first add up to the output count the harness
computed from its own input (polled every 20 ms): every input event has been processed
and its output is in the broker. Process start-up (imports, topic creation, the group
join) is reported apart as ``startup s``. ``commit +s`` is how much later the row's
group had committed the input topic's end offset on every partition (state flushed,
offsets committed; at most about one ``--commit-interval``, passed to every framework,
default 1 s). ``events/s`` = N / the timed interval; ``append ev/s`` is the rate the broker
appended the outputs at, from their own timestamps (every output topic is created with
``message.timestamp.type=LogAppendTime``): the outputs stamped after the first output's
millisecond over the span to the last one's, scaled to input events (x inputs/outputs).
It leaves start-up, the group join and the harness's polling out entirely; ``x quix`` is
that rate over the Quix Streams row's, same pipeline, same run; ``MB/s`` = input value bytes / the
interval (10^6 bytes); ``CPU s`` = user + system CPU of the row's process tree over the
interval (from /proc), ``CPU %`` that over the wall time (100% = one core), ``us/event``
that per input event (steadier than events/s on a busy machine); ``broker CPU s`` the
broker's. Figures are medians over ``--repeat`` runs. After each run the harness
reads the whole output topic and checks it exactly (every kept id once with its mapped
value; the highest count of every (user, window) equal to the true count, N outputs);
a run that fails the check counts as failed. ``--baseline CHECKOUT`` adds the rows
``base-file`` and ``base-kafka``: the same pipelines run by another checkout's
``.venv/bin/streamlog`` (an older commit, to compare two versions in one run).

Processing guarantee (issue 16), ``--guarantee``: ``at_least_once`` (the default: every
row as before), ``exactly_once``, or ``both``: each row runs under each, the two
alternating run by run, side by side in the table (column ``guar.``, ALOS or EOS) with
``EOS/ALOS``, the exactly-once row's events/s over the same row's at-least-once one, and
a line per framework and pipeline after the table (events/s, append ev/s and CPU per
event, and whether issue 16's goal of >= 70% is met); ``x quix`` compares rows of the
same guarantee. The guarantee reaches the programs as ``BENCH_GUARANTEE`` (streamlog's
``processing_guarantee``) and ``--guarantee`` (the peers: Quix Streams'
``processing_guarantee="exactly-once"``, faust's ``processing_guarantee="exactly_once"``).
Under exactly-once the harness measures what a ``read_committed`` reader sees: the clock
stops when every output is committed (``committed_outputs_done``: the output's last
stable offsets, from ListOffsets with ``read_committed``, add up to the output count and
equal its end offsets, so no transaction is open on it, and the group's offsets, which
commit in the same transactions, have reached the input's end), and the exact check
reads the output ``read_committed``, so records of an aborted attempt cannot count.
``commit +s`` is then 0 by construction: the offsets commit with the outputs.

Rows are entries of ``ROWS``: a key for ``--only``, a label, a function from a ``RunSpec``
(broker, topics, group, state directory) to a command line, and a check that says why the
row cannot run. The harness starts the command in a session of its own, with the
``RunSpec`` also in the environment (``BENCH_*``), and kills the session at completion,
at ``--timeout`` and at exit. The peers (Quix Streams, faust-streaming) run from
``.venv-peers`` (``scripts/setup_peers.sh``); ``--peer-events`` gives them a smaller N
(faust is slow), either one number or ``ROW=N`` entries.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from machine import machine  # benchmarks/ is on sys.path when a script runs

__all__ = ["ROWS", "Row", "RunSpec", "main"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
PEERS_PYTHON = os.path.join(ROOT, ".venv-peers", "bin", "python")
PEERS_DIR = os.path.join(HERE, "peers")

USERS = 100_000
EMIT_KEYS = 10_000  # windowed-emit's keys (issue 11)
PIPELINES = ("stateless", "windowed", "windowed-emit")
# Processing guarantees (--guarantee), in the harness's (and streamlog's) spelling; every
# row's program maps them to its framework's own. Short names for the table.
GUARANTEES = ("at_least_once", "exactly_once")
SHORT = {"at_least_once": "ALOS", "exactly_once": "EOS"}
EOS_GOAL = 0.70  # issue 16: exactly-once at >= 70% of at-least-once throughput
WINDOW_MS = 10_000
EVENT_STEP_MS = 1  # event time advances 1 ms per input event
BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary
SEED = 20261125
POLL_S = 0.02
STOP_GRACE_S = 20.0
VERIFY_WAIT_S = 60.0
# Set explicitly on every topic the harness creates: Quix's stateful apps copy these three
# from the source topic to their changelog topics, and some brokers report only the
# configs set explicitly.
TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
# Output topics: the broker stamps every record with its append time, which the harness
# reads back to measure the rate outputs reached the log (``append ev/s``).
OUTPUT_CONFIG = {**TOPIC_CONFIG, "message.timestamp.type": "LogAppendTime"}
# The harness's own clients: no log line when the broker closes an idle connection.
QUIET = {"log.connection.close": False}
PRODUCER_SETTINGS = {
    **QUIET,
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 200_000,
    "compression.type": "none",
    "partitioner": "murmur2_random",  # Kafka's (Java client's) key partitioner
    "delivery.report.only.error": True,
}
CONSUMER_SETTINGS = {
    **QUIET,
    "fetch.queue.backoff.ms": 10,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": False,
}


class BenchError(Exception):
    """A run failed or ran out of time (the message says which and why)."""


# ---------------------------------------------------------------------------------------
# Rows: who runs the pipelines


@dataclass(frozen=True)
class RunSpec:
    """Everything a row's program needs for one run; also passed as ``BENCH_*`` variables."""

    pipeline: str  # one of PIPELINES
    bootstrap: str  # HOST:PORT of the streamlog broker
    input_topic: str
    output_topic: str
    group: str  # consumer group (or application id) the harness watches
    partitions: int  # of the input and output topics
    state_dir: str  # empty directory for the run's local state
    commit_interval: float  # seconds
    guarantee: str = "at_least_once"  # one of GUARANTEES

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == "exactly_once"

    def env(self) -> dict[str, str]:
        return {
            "BENCH_PIPELINE": self.pipeline,
            "BENCH_BOOTSTRAP": self.bootstrap,
            "BENCH_INPUT": self.input_topic,
            "BENCH_OUTPUT": self.output_topic,
            "BENCH_GROUP": self.group,
            "BENCH_PARTITIONS": str(self.partitions),
            "BENCH_STATE_DIR": self.state_dir,
            "BENCH_COMMIT_INTERVAL": str(self.commit_interval),
            "BENCH_GUARANTEE": self.guarantee,
        }

    def peer_args(self) -> list[str]:
        """The options of the programs in benchmarks/peers (see peer_args.py)."""
        return [
            "--bootstrap",
            self.bootstrap,
            "--input",
            self.input_topic,
            "--output",
            self.output_topic,
            "--group",
            self.group,
            "--partitions",
            str(self.partitions),
            "--state-dir",
            self.state_dir,
            "--commit-interval",
            str(self.commit_interval),
            "--guarantee",
            self.guarantee,
        ]


@dataclass(frozen=True)
class Row:
    """One framework: how to start it on a pipeline, and why it cannot run (or None)."""

    key: str  # for --only and --peer-events
    label: str
    command: Callable[[RunSpec], list[str]]
    unavailable: Callable[[], str | None] = lambda: None
    peer: bool = False  # takes --peer-events instead of --events
    local: bool = False  # runs on its own file:// log, not the broker (run_once_local)


def program_name(pipeline: str) -> str:
    """The file name of a pipeline's program: ``windowed-emit`` -> ``windowed_emit.py``."""
    return pipeline.replace("-", "_") + ".py"


def _peer_program(framework: str) -> Callable[[RunSpec], list[str]]:
    def command(spec: RunSpec) -> list[str]:
        program = os.path.join(PEERS_DIR, f"{framework}_{program_name(spec.pipeline)}")
        return [PEERS_PYTHON, "-u", program, *spec.peer_args()]

    return command


def _peer_missing(module: str) -> Callable[[], str | None]:
    def unavailable() -> str | None:
        if not os.access(PEERS_PYTHON, os.X_OK):
            return "n/a (run scripts/setup_peers.sh)"
        probe = subprocess.run(
            [PEERS_PYTHON, "-c", f"import {module}"], capture_output=True, timeout=60
        )
        return None if probe.returncode == 0 else "n/a (run scripts/setup_peers.sh)"

    return unavailable


def _streamlog_worker(
    broker: Callable[[RunSpec], str], venv_bin: str = VENV_BIN
) -> Callable[[RunSpec], list[str]]:
    def command(spec: RunSpec) -> list[str]:
        app = os.path.join(HERE, "pipelines", program_name(spec.pipeline))
        return [
            os.path.join(venv_bin, "streamlog"),
            "worker",
            app,
            "--broker",
            broker(spec),
            "--listen",
            "127.0.0.1:0",
            "--lag-interval",
            "0",
            "-l",
            "warning",
        ]

    return command


def _streamlog_missing(venv_bin: str = VENV_BIN) -> Callable[[], str | None]:
    def unavailable() -> str | None:
        if not os.access(os.path.join(venv_bin, "streamlog"), os.X_OK):
            return f"n/a (no {venv_bin}/streamlog: run scripts/setup.sh there)"
        return None

    return unavailable


def _file_url(spec: RunSpec) -> str:
    return f"file://{spec.state_dir}/log"


def _kafka_url(spec: RunSpec) -> str:
    return f"kafka://{spec.bootstrap}"


def baseline_rows(checkout: str) -> tuple[Row, ...]:
    """The streamlog rows run by another checkout's virtualenv (``--baseline``)."""
    venv_bin = os.path.join(os.path.abspath(checkout), ".venv", "bin")
    return (
        Row(
            "base-file",
            "base file://",
            _streamlog_worker(_file_url, venv_bin),
            _streamlog_missing(venv_bin),
            local=True,
        ),
        Row(
            "base-kafka",
            "base kafka://",
            _streamlog_worker(_kafka_url, venv_bin),
            _streamlog_missing(venv_bin),
        ),
    )


# Adding a framework is one entry here: Row(key, label, command, unavailable). ``command``
# turns a RunSpec into the argv of a process that runs the pipeline ``spec.pipeline`` until
# it is stopped (SIGTERM); the spec is also in its environment as BENCH_*.
ROWS: tuple[Row, ...] = (
    Row(
        "streamlog-file",
        "streamlog file://",
        _streamlog_worker(_file_url),
        _streamlog_missing(),
        local=True,
    ),
    Row(
        "streamlog-kafka",
        "streamlog kafka://",
        _streamlog_worker(_kafka_url),
        _streamlog_missing(),
    ),
    Row("quix", "Quix Streams", _peer_program("quix"), _peer_missing("quixstreams"), peer=True),
    Row("faust", "faust-streaming", _peer_program("faust"), _peer_missing("faust"), peer=True),
)


def peer_versions() -> str:
    if not os.access(PEERS_PYTHON, os.X_OK):
        return "peers: not installed (scripts/setup_peers.sh)"
    code = (
        "from importlib.metadata import version, PackageNotFoundError\n"
        "out = []\n"
        "for n in ('quixstreams', 'faust-streaming', 'confluent-kafka', 'aiokafka', 'rocksdict'):\n"
        "    try: out.append(f'{n} {version(n)}')\n"
        "    except PackageNotFoundError: out.append(f'{n} missing')\n"
        "print(', '.join(out))\n"
    )
    probe = subprocess.run([PEERS_PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    return "peers: " + (probe.stdout.strip() or probe.stderr.strip()[-200:])


# ---------------------------------------------------------------------------------------
# Processes


def cpu_seconds_of_session(sid: int) -> float:
    """User + system CPU of every live process in session ``sid`` (all threads), /proc."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields[3] is the session id (field 6 of stat)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Session:
    """A subprocess in a session of its own; ``stop()`` ends the whole session, always safe."""

    def __init__(self, args: list[str], log_path: str, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                cwd=ROOT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu(self) -> float:
        return cpu_seconds_of_session(self.proc.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _signal_session(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig: int = signal.SIGTERM, grace: float = STOP_GRACE_S) -> None:
        """``sig`` to the session, then SIGKILL to what is left after ``grace`` seconds."""
        if self.alive():
            self._signal_session(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                print(
                    f"    {os.path.basename(self.log_path)}: no exit {grace:.0f} s after "
                    f"{signal.Signals(sig).name}: killing it"
                )
        # The leader may be gone while children it started live on: SIGKILL the session.
        self._signal_session(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


class Broker:
    """``streamlog broker`` on loopback with a fresh data directory under ``workdir``."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.session: Session | None = None
        self.bootstrap = ""

    def start(self, timeout: float = 60.0) -> None:
        port_file = os.path.join(self.workdir, "broker.port")
        self.session = Session(
            [
                os.path.join(VENV_BIN, "streamlog"),
                "broker",
                "--data-dir",
                os.path.join(self.workdir, "broker-data"),
                "--listen",
                "127.0.0.1:0",
                "--port-file",
                port_file,
                # Groups join at once; the harness's clock starts after the join anyway.
                "--group-initial-rebalance-delay-ms",
                "0",
                "-l",
                "warning",
            ],
            os.path.join(self.workdir, "broker.log"),
        )
        deadline = time.monotonic() + timeout
        port = ""
        while not port:
            if not self.session.alive():
                raise BenchError(f"streamlog broker exited at start:\n{self.session.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError("streamlog broker wrote no port file in time")
            try:
                with open(port_file, encoding="ascii") as f:
                    port = f.read().strip()
            except FileNotFoundError:
                pass
            if not port:
                time.sleep(0.05)
        self.bootstrap = f"127.0.0.1:{port}"
        while True:
            try:
                AdminClient({"bootstrap.servers": self.bootstrap, **QUIET}).list_topics(timeout=2)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise BenchError(f"streamlog broker did not answer metadata: {exc}") from None
                time.sleep(0.2)

    def cpu(self) -> float:
        return self.session.cpu() if self.session else 0.0

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop(signal.SIGTERM)


# ---------------------------------------------------------------------------------------
# Input and the expected outputs


@dataclass
class Dataset:
    """One pipeline's input topic, with what its output must be."""

    pipeline: str
    topic: str
    events: int
    partitions: int
    value_bytes: int = 0
    end_offsets: dict[int, int] = field(default_factory=dict)
    # stateless: id -> (user, amount_cents) of the events that pass the filter
    kept: dict[int, tuple[str, int]] = field(default_factory=dict)
    # windowed, windowed-emit: (user, window start) -> final count
    windows: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)

    @property
    def expected_outputs(self) -> int:
        return len(self.kept) if self.pipeline == "stateless" else self.events

    @property
    def users(self) -> int:
        """How many distinct keys the input draws from."""
        return EMIT_KEYS if self.pipeline == "windowed-emit" else USERS


def events(n: int, users: int = USERS) -> Iterator[tuple[int, str, int, int]]:
    """(id, user, amount, ts) of the first ``n`` input events; the same for every n."""
    rng = random.Random(SEED)
    for i in range(n):
        yield i, f"u{rng.randrange(users)}", rng.randrange(100), BASE_TS + i * EVENT_STEP_MS


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    timeout: float = 30.0,
    config: dict[str, str] = TOPIC_CONFIG,
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)],
        operation_timeout=timeout,
    )
    try:
        futures[name].result(timeout)
    except KafkaException as exc:
        raise BenchError(f"create topic {name}: {exc}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=5).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return
        time.sleep(0.1)
    raise BenchError(f"topic {name} did not show {partitions} partitions in time")


def end_offsets(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
        for p in range(partitions)
    }


def stable_offsets(
    admin: AdminClient, topic: str, partitions: int, committed: bool = True
) -> dict[int, int]:
    """Each partition's last stable offset: ListOffsets (latest) with ``read_committed``;
    with ``committed=False`` its end offset (``read_uncommitted``).

    The end of what a ``read_committed`` reader can read; it counts the transactions'
    commit and abort markers too, so under exactly-once it runs ahead of the records.
    (Asked explicitly: a consumer's ``get_watermark_offsets`` asks with the consumer's
    own isolation level, so a ``read_committed`` consumer's "high watermark" is the LSO.)
    """
    isolation = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    futures = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)},
        isolation_level=isolation,
        request_timeout=10,
    )
    return {tp.partition: future.result(timeout=15).offset for tp, future in futures.items()}


def produce_input(
    bootstrap: str, pipeline: str, n: int, partitions: int, timeout: float
) -> Dataset:
    """Write the first ``n`` events to a fresh topic; remember what the output must be."""
    data = Dataset(pipeline, f"bench-{pipeline}-in-{n}-{uuid.uuid4().hex[:6]}", n, partitions)
    create_topic(bootstrap, data.topic, partitions)
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None and len(failures) < 5:
            failures.append(str(err))

    producer = Producer(
        {"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS, "on_delivery": on_delivery}
    )
    encode = msgspec.json.encode
    deadline = time.monotonic() + timeout
    for i, user, amount, ts in events(n, data.users):
        value = encode({"id": i, "user": user, "amount": amount, "ts": ts})
        data.value_bytes += len(value)
        if pipeline == "stateless":
            if amount >= 50:
                data.kept[i] = (user, amount * 100)
        else:
            data.windows[(user, ts - ts % WINDOW_MS)] += 1
        while True:
            try:
                producer.produce(data.topic, value, user.encode(), timestamp=ts)
                break
            except BufferError:
                producer.poll(0.01)
                if time.monotonic() > deadline:
                    raise BenchError(f"producing {data.topic}: queue full at {i:,}/{n:,}") from None
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(max(deadline - time.monotonic(), 1.0))
    if left or failures:
        raise BenchError(f"producing {data.topic}: {left:,} undelivered; {'; '.join(failures)}")
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe", **QUIET})
    try:
        data.end_offsets = end_offsets(probe, data.topic, partitions)
    finally:
        probe.close()
    if sum(data.end_offsets.values()) != n:
        raise BenchError(f"{data.topic} holds {sum(data.end_offsets.values()):,} of {n:,} events")
    return data


# ---------------------------------------------------------------------------------------
# One run of one row


@dataclass
class Sample:
    seconds: float
    startup: float
    cpu: float
    broker_cpu: float
    commit_lag: float  # from the last output to the commit of the last input offset
    append_rate: float = float("nan")  # input events/s from the outputs' append times


class Output(NamedTuple):
    """One output record as the harness reads it back."""

    key: bytes | None
    value: bytes
    timestamp: int  # ms; the broker's append time (output topics are LogAppendTime)


def append_rate(outputs: list[Output], inputs: int) -> float:
    """Input events/s from the outputs' broker append times (see the module docstring).

    The outputs stamped with the first millisecond are the start line; the rest over the
    span from it to the last stamp is the rate outputs reached the log, times
    inputs/outputs to count input events (1 for the windowed pipelines).
    """
    if not outputs:
        return float("nan")
    first = min(o.timestamp for o in outputs)
    last = max(o.timestamp for o in outputs)
    if last <= first:
        return float("nan")
    after_first = sum(1 for o in outputs if o.timestamp > first)
    return after_first / ((last - first) / 1000) * inputs / len(outputs)


class Watcher:
    """Looks at a run from outside: its group's state, committed offsets, output ends."""

    def __init__(self, bootstrap: str, spec: RunSpec) -> None:
        self.spec = spec
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        # Never subscribes, so it never joins the group: it only reads offsets. Under
        # exactly-once it reads read_committed, so its OffsetFetch asks for stable offsets
        # (KIP-447): a transaction's offsets count once the transaction has committed.
        isolation = "read_committed" if spec.exactly_once else "read_uncommitted"
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": spec.group,
                "isolation.level": isolation,
                **CONSUMER_SETTINGS,
            }
        )

    def close(self) -> None:
        """Close the consumer and drop the admin client (librdkafka destroys it when the
        last reference goes; a file:// row's listener stops right after, and a live admin
        client would log its failed reconnects)."""
        self.consumer.close()
        del self.admin

    def group_stable(self) -> bool:
        try:
            desc = self.admin.describe_consumer_groups([self.spec.group])[self.spec.group].result(
                timeout=5
            )
        except KafkaException:
            return False
        return desc.state == ConsumerGroupState.STABLE and len(desc.members) > 0

    def committed_all(self, ends: dict[int, int]) -> bool:
        """Whether the group has committed ``ends`` (partition -> end offset) or beyond.

        Not yet when the answer is an error: under exactly-once a broker answers
        UNSTABLE_OFFSET_COMMIT while a transaction holds offsets of the group (KIP-447),
        which the client may give up retrying within the timeout.
        """
        parts = [TopicPartition(self.spec.input_topic, p) for p in ends]
        try:
            answer = self.consumer.committed(parts, timeout=5)
        except KafkaException:
            return False
        if any(tp.error is not None for tp in answer):
            return False
        got = {tp.partition: tp.offset for tp in answer}
        return all(got[p] >= end for p, end in ends.items())

    def output_count(self) -> int:
        return sum(
            end_offsets(self.consumer, self.spec.output_topic, self.spec.partitions).values()
        )

    def outputs_done(self, expected: int, input_ends: dict[int, int]) -> bool:
        """Whether the run's ``expected`` outputs are all in the output topic, as its
        readers see them: at-least-once, the end offsets; exactly-once, what a
        ``read_committed`` reader sees (see ``committed_outputs_done``)."""
        if not self.spec.exactly_once:
            return self.output_count() >= expected
        return committed_outputs_done(
            self.admin, self.spec, expected, input_ends, self.committed_all
        )


def committed_outputs_done(
    admin: AdminClient,
    spec: RunSpec,
    expected: int,
    input_ends: dict[int, int],
    committed_all: Callable[[dict[int, int]], bool],
) -> bool:
    """Under exactly-once: every output committed, i.e. visible to ``read_committed``.

    The output's last stable offsets add up to at least ``expected`` (cheap, and first);
    but they count the commit markers too, so that alone would stop the clock up to one
    marker per transaction early. Then: no transaction is open on the output (each
    partition's last stable offset is its end offset: nothing undecided), and the group's
    committed offsets, which commit in the same transaction as the outputs of the
    events before them, have reached the input's end: the transaction holding the last
    input's outputs has committed. Together, every output is committed and readable.
    """
    stable = stable_offsets(admin, spec.output_topic, spec.partitions)
    if sum(stable.values()) < expected:
        return False
    ends = stable_offsets(admin, spec.output_topic, spec.partitions, committed=False)
    if stable != ends:
        return False
    return committed_all(input_ends)


def wait_until(check: Callable[[], bool], session: Session, deadline: float, what: str) -> float:
    """Poll ``check`` until true; the time it first was. Fails if the row's process exits."""
    while True:
        if check():
            return time.perf_counter()
        if not session.alive():
            raise BenchError(
                f"the process exited ({session.proc.returncode}) before {what}:\n"
                + session.log_tail()
            )
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}:\n" + session.log_tail())
        time.sleep(POLL_S)


def read_output(
    bootstrap: str, topic: str, partitions: int, expected: int, committed: bool = False
) -> list[Output]:
    """Every record in ``topic``, once its end offsets reach ``expected`` (bounded wait).

    ``committed``: read as a ``read_committed`` reader does (exactly-once rows), up to the
    last stable offsets, without the records of aborted transactions, so the check counts
    only what such a reader sees (the consumer's end offsets are then the LSOs: librdkafka
    asks ListOffsets with the consumer's isolation level). Reading ends when every
    partition has reported its end (partition EOF) at or past the end offset read at the
    start.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-verify-{uuid.uuid4().hex[:6]}",
            **CONSUMER_SETTINGS,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "enable.partition.eof": True,
        }
    )
    try:
        deadline = time.monotonic() + VERIFY_WAIT_S
        ends = end_offsets(consumer, topic, partitions)
        while sum(ends.values()) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            ends = end_offsets(consumer, topic, partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p]])
        values: list[Output] = []
        reached = {p: -1 for p in range(partitions) if ends[p]}  # partition -> EOF offset
        while any(reached[p] < ends[p] for p in reached):
            if time.monotonic() > deadline + VERIFY_WAIT_S:
                raise BenchError(
                    f"read {len(values):,} outputs; partition ends {reached} short of {ends}"
                )
            for msg in consumer.consume(10_000, 1.0):
                err = msg.error()
                if err is not None:
                    part, end = msg.partition(), msg.offset()
                    if err.code() == KafkaError._PARTITION_EOF and part is not None:
                        reached[part] = -1 if end is None else end
                    continue
                value = msg.value()
                if value is not None:
                    values.append(Output(msg.key(), value, msg.timestamp()[1]))
        return values
    finally:
        consumer.close()


def verify(data: Dataset, outputs: list[Output]) -> None:
    """The outputs are exactly what the pipeline's semantics give for the input."""
    decode = msgspec.json.decode
    if len(outputs) != data.expected_outputs:
        raise BenchError(f"{len(outputs):,} outputs, expected {data.expected_outputs:,}")
    if data.pipeline == "stateless":
        seen: set[int] = set()
        for _, raw, _ in outputs:
            out = decode(raw)
            i = out["id"]
            if data.kept.get(i) != (out["user"], out["amount_cents"]) or i in seen:
                raise BenchError(f"unexpected or repeated output {raw!r}")
            seen.add(i)
        return
    best: dict[tuple[str, int], int] = {}
    keyed = data.pipeline == "windowed-emit"
    for key, raw, _ in outputs:
        out = decode(raw)
        if keyed and key != out["user"].encode():
            raise BenchError(f"output keyed {key!r}, not by its user: {raw!r}")
        pair = (out["user"], out["start"])
        best[pair] = max(best.get(pair, 0), out["count"])
    if best != data.windows:
        pair = next(p for p in {*best, *data.windows} if best.get(p) != data.windows.get(p))
        raise BenchError(
            f"window counts differ, e.g. {pair}: got {best.get(pair)}, "
            f"expected {data.windows.get(pair)}"
        )


def run_once(
    row: Row,
    data: Dataset,
    broker: Broker,
    workdir: str,
    commit_interval: float,
    timeout: float,
    guarantee: str = "at_least_once",
) -> Sample:
    run_id = f"{SHORT[guarantee].lower()}-{uuid.uuid4().hex[:8]}"
    spec = RunSpec(
        pipeline=data.pipeline,
        bootstrap=broker.bootstrap,
        input_topic=data.topic,
        output_topic=f"bench-{data.pipeline}-out-{row.key}-{run_id}",
        group=f"bench-{row.key}-{data.pipeline}-{run_id}",
        partitions=data.partitions,
        state_dir=os.path.join(workdir, f"state-{row.key}-{run_id}"),
        commit_interval=commit_interval,
        guarantee=guarantee,
    )
    os.makedirs(spec.state_dir)
    create_topic(broker.bootstrap, spec.output_topic, spec.partitions, config=OUTPUT_CONFIG)
    watcher = Watcher(broker.bootstrap, spec)
    log_path = os.path.join(workdir, f"{row.key}-{data.pipeline}-{run_id}.log")
    session: Session | None = None
    try:
        deadline = time.monotonic() + timeout
        launched = time.perf_counter()
        session = Session(row.command(spec), log_path, spec.env())
        started = wait_until(watcher.group_stable, session, deadline, "the group to be Stable")
        cpu0, broker0 = session.cpu(), broker.cpu()
        expected = data.expected_outputs
        finished = wait_until(
            lambda: watcher.outputs_done(expected, data.end_offsets),
            session,
            deadline,
            f"{expected:,} outputs" + (" committed" if spec.exactly_once else ""),
        )
        cpu1, broker1 = session.cpu(), broker.cpu()
        committed = wait_until(
            lambda: watcher.committed_all(data.end_offsets),
            session,
            deadline,
            "the group's commits to reach the input's end offsets",
        )
        sample = Sample(
            seconds=finished - started,
            startup=started - launched,
            cpu=cpu1 - cpu0,
            broker_cpu=broker1 - broker0,
            commit_lag=committed - finished,
        )
    finally:
        watcher.close()
        if session is not None:
            session.stop()
    outputs = read_output(
        broker.bootstrap,
        spec.output_topic,
        spec.partitions,
        data.expected_outputs,
        committed=spec.exactly_once,
    )
    verify(data, outputs)
    sample.append_rate = append_rate(outputs, data.events)
    shutil.rmtree(spec.state_dir, ignore_errors=True)
    return sample


def fill_local_log(url: str, data: Dataset, output_topic: str) -> None:
    """Write the dataset's input, byte for byte as ``produce_input`` did, into a file:// log."""
    import asyncio

    from streamlog.transport import open_transport

    async def fill() -> None:
        transport = open_transport(url)
        await transport.start()
        try:
            admin = transport.admin()
            await admin.create_topic(data.topic, data.partitions, TOPIC_CONFIG)
            await admin.create_topic(output_topic, data.partitions, OUTPUT_CONFIG)
            await admin.close()
            producer = transport.producer(linger_ms=5)
            encode = msgspec.json.encode
            for i, user, amount, ts in events(data.events, data.users):
                value = encode({"id": i, "user": user, "amount": amount, "ts": ts})
                await producer.send(data.topic, value, key=user.encode(), timestamp_ms=ts)
            await producer.flush()
            await producer.close()
        finally:
            await transport.close()

    asyncio.run(fill())


def read_local_output(
    url: str, topic: str, partitions: int, committed: bool = False
) -> list[Output]:
    """Every record in a file:// log's ``topic``; ``committed``: as ``read_committed`` reads
    (up to the last stable offsets, no aborted records), as ``read_output``."""
    import asyncio

    from streamlog.transport import open_transport
    from streamlog.transport.types import TopicPartition as TP

    async def read() -> list[Output]:
        transport = open_transport(url)
        await transport.start()
        consumer = transport.consumer(
            isolation_level="read_committed" if committed else "read_uncommitted"
        )
        try:
            tps = [TP(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            values: list[Output] = []
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + VERIFY_WAIT_S
            # Positions, not counts: a committed read skips markers and aborted records.
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                if time.monotonic() > deadline:
                    raise BenchError(f"read {len(values):,} outputs of {topic} in time")
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(
                        Output(r.key, r.value, r.timestamp) for r in records if r.value is not None
                    )
            return values
        finally:
            await consumer.close()
            await transport.close()

    return asyncio.run(read())


def run_once_local(
    row: Row,
    data: Dataset,
    workdir: str,
    commit_interval: float,
    timeout: float,
    guarantee: str = "at_least_once",
) -> Sample:
    """A row on its own ``file://`` log: the input is written into that log first.

    The worker serves its log over the Kafka protocol (``--listen 127.0.0.1:0``, address in
    ``DATA_DIR/.listener``), and starts that listener as soon as the log is open, before it
    creates topics, recovers tables or consumes anything. The clock starts when the
    listener file appears and stops when the output topic's end offsets, read through the
    listener, reach the expected count: so this row's time also includes the app's own
    start (topic checks, table recovery, the group join), which the broker rows do not
    count. The group lives in the worker (an embedded group, invisible to
    DescribeGroups), so ``commit +s`` is not measured. Under exactly-once the clock stops
    as for a broker row (``committed_outputs_done``), the group's committed offsets read
    through the listener too.
    """
    run_id = f"{SHORT[guarantee].lower()}-{uuid.uuid4().hex[:8]}"
    spec = RunSpec(
        pipeline=data.pipeline,
        bootstrap="",
        input_topic=data.topic,
        output_topic=f"bench-{data.pipeline}-out-{row.key}-{run_id}",
        group=f"bench-{row.key}-{data.pipeline}-{run_id}",
        partitions=data.partitions,
        state_dir=os.path.join(workdir, f"state-{row.key}-{run_id}"),
        commit_interval=commit_interval,
        guarantee=guarantee,
    )
    os.makedirs(spec.state_dir)
    log_dir = os.path.join(spec.state_dir, "log")
    url = f"file://{log_dir}"
    fill_local_log(url, data, spec.output_topic)
    log_path = os.path.join(workdir, f"{row.key}-{data.pipeline}-{run_id}.log")
    listener = os.path.join(log_dir, ".listener")
    session: Session | None = None
    watcher: Watcher | None = None
    try:
        deadline = time.monotonic() + timeout
        launched = time.perf_counter()
        session = Session(row.command(spec), log_path, spec.env())
        started = wait_until(lambda: os.path.exists(listener), session, deadline, "the listener")
        with open(listener) as f:
            address = f.read().strip()
        cpu0 = session.cpu()
        watcher = Watcher(address, spec)
        expected = data.expected_outputs
        finished = wait_until(
            lambda: watcher.outputs_done(expected, data.end_offsets),
            session,
            deadline,
            f"{expected:,} outputs" + (" committed" if spec.exactly_once else ""),
        )
        cpu1 = session.cpu()
        sample = Sample(
            seconds=finished - started,
            startup=started - launched,
            cpu=cpu1 - cpu0,
            broker_cpu=0.0,
            commit_lag=float("nan"),
        )
    finally:
        if watcher is not None:
            watcher.close()
        if session is not None:
            session.stop()
    outputs = read_local_output(url, spec.output_topic, spec.partitions, spec.exactly_once)
    verify(data, outputs)
    sample.append_rate = append_rate(outputs, data.events)
    shutil.rmtree(spec.state_dir, ignore_errors=True)
    return sample


# ---------------------------------------------------------------------------------------
# Report


@dataclass
class Result:
    row: Row
    pipeline: str
    events: int
    value_bytes: int
    guarantee: str = "at_least_once"
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str = ""

    def median(self, key: Callable[[Sample], float]) -> float:
        return statistics.median(key(s) for s in self.samples)

    def rate(self) -> float:
        """Input events/s over the timed interval (median)."""
        return self.events / self.median(lambda s: s.seconds)

    def appended(self) -> float:
        return self.median(lambda s: s.append_rate)

    def us_per_event(self) -> float:
        return self.median(lambda s: s.cpu) / self.events * 1e6


def eos_pairs(results: list[Result]) -> list[tuple[Result, Result]]:
    """(at-least-once, exactly-once) results of the same row and pipeline, both measured."""
    alos = {
        (r.row.key, r.pipeline): r for r in results if r.guarantee == "at_least_once" and r.samples
    }
    return [
        (alos[(r.row.key, r.pipeline)], r)
        for r in results
        if r.guarantee == "exactly_once" and r.samples and (r.row.key, r.pipeline) in alos
    ]


def print_table(results: list[Result]) -> None:
    """The figures, a row per framework, pipeline and guarantee; then, when both guarantees
    ran, a line per framework and pipeline comparing them (issue 16's goal)."""
    both = len({r.guarantee for r in results}) > 1
    head = (
        f"{'row':<18} {'pipeline':<13} {'guar.':<5} {'events':>9} {'events/s':>10} "
        f"{'append ev/s':>11} {'x quix':>6} "
        + (f"{'EOS/ALOS':>8} " if both else "")
        + f"{'MB/s':>6} {'CPU s':>7} {'CPU %':>6} {'us/event':>8} "
        f"{'broker CPU s':>12} {'startup s':>9} {'commit +s':>9} {'runs':>5}"
    )
    print(head)
    print("-" * len(head))
    quix = {
        (r.pipeline, r.guarantee): r.appended()
        for r in results
        if r.row.key == "quix" and r.samples
    }
    eos_ratio = {id(eos): eos.rate() / alos.rate() for alos, eos in eos_pairs(results)}
    for r in results:
        lead = f"{r.row.label:<18} {r.pipeline:<13} {SHORT[r.guarantee]:<5} {r.events:>9,}"
        if r.skipped:
            print(f"{lead} {r.skipped}")
            continue
        if not r.samples:
            print(f"{lead} failed: {r.errors[0].splitlines()[0] if r.errors else '?'}")
            continue
        secs = r.median(lambda s: s.seconds)
        cpu = r.median(lambda s: s.cpu)
        runs = f"{len(r.samples)}/{len(r.samples) + len(r.errors)}"
        appended = r.appended()
        ratio = appended / quix.get((r.pipeline, r.guarantee), float("nan"))
        versus = f"{eos_ratio[id(r)]:>8.2f} " if id(r) in eos_ratio else f"{'':>8} "
        print(
            f"{lead} {r.events / secs:>10,.0f} {appended:>11,.0f} {ratio:>6.2f} "
            + (versus if both else "")
            + f"{r.value_bytes / secs / 1e6:>6.2f} "
            f"{cpu:>7.2f} {cpu / secs * 100:>5.0f}% {cpu / r.events * 1e6:>8.1f} "
            f"{r.median(lambda s: s.broker_cpu):>12.2f} "
            f"{r.median(lambda s: s.startup):>9.2f} {r.median(lambda s: s.commit_lag):>9.2f} "
            f"{runs:>5}"
        )
    pairs = eos_pairs(results)
    if pairs:
        print()
        print(
            f"EOS / ALOS (issue 16's goal: exactly-once at >= {EOS_GOAL:.0%} of at-least-once"
            " throughput; events/s decides, append ev/s leaves the last commit's wait out):"
        )
        for alos, eos in pairs:
            by_rate = eos.rate() / alos.rate()
            by_append = eos.appended() / alos.appended()
            cpu = eos.us_per_event() / alos.us_per_event()
            verdict = "meets the goal" if by_rate >= EOS_GOAL else "MISSES the goal"
            print(
                f"  {eos.row.label:<18} {eos.pipeline:<13} events/s {by_rate:.2f}"
                f"  append ev/s {by_append:.2f}  CPU us/event x{cpu:.2f}  {verdict}"
            )


# ---------------------------------------------------------------------------------------
# Command line


def parse_peer_events(text: str | None, events: int, rows: tuple[Row, ...]) -> dict[str, int]:
    """``N`` or ``ROW=N,...`` (or both: ``N,faust=M``) -> events per peer row key."""
    counts = {r.key: events for r in rows if r.peer}
    for part in filter(None, (text or "").split(",")):
        key, eq, number = part.rpartition("=")
        n = int(number.replace("_", ""))
        if not eq:
            counts = dict.fromkeys(counts, n)
        elif key in counts:
            counts[key] = n
        else:
            raise SystemExit(f"--peer-events: {key!r} is not a peer row ({', '.join(counts)})")
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pipeline", choices=(*PIPELINES, "all"), default="all")
    parser.add_argument("--events", type=int, default=1_000_000, help="input events per run")
    parser.add_argument(
        "--peer-events",
        help="events for the peer rows: N, or ROW=N entries (e.g. 'faust=50000'); default --events",
    )
    parser.add_argument("--partitions", type=int, default=1, help="input topic partitions")
    parser.add_argument(
        "--only", help="comma-separated row keys: " + ", ".join(r.key for r in ROWS)
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per row (median shown)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--commit-interval", type=float, default=1.0, help="seconds, every row")
    parser.add_argument(
        "--guarantee",
        choices=(*GUARANTEES, "both"),
        default="at_least_once",
        help="processing guarantee of every row; both: each row runs under each, side by side,"
        " with EOS / ALOS ratios (issue 16)",
    )
    parser.add_argument("--dir", help="where the broker's data and the state go (default: tmp)")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also run the streamlog rows with CHECKOUT/.venv/bin/streamlog (rows base-file,"
        " base-kafka): another version of streamlog in the same run",
    )
    return parser.parse_args(argv)


def _raise_on_signal(signum: int, _frame: types.FrameType | None) -> None:
    raise SystemExit(f"stopped by {signal.Signals(signum).name}")


def run_row(
    result: Result,
    attempt: int,
    data: Dataset,
    broker: Broker,
    workdir: str,
    args: argparse.Namespace,
) -> None:
    """One run of ``result``'s row under its guarantee; its sample or its error recorded."""
    row, name = result.row, f"{result.row.label} {data.pipeline} {SHORT[result.guarantee]}"
    try:
        if row.local:
            s = run_once_local(
                row, data, workdir, args.commit_interval, args.timeout, result.guarantee
            )
        else:
            s = run_once(
                row, data, broker, workdir, args.commit_interval, args.timeout, result.guarantee
            )
    except (BenchError, KafkaException, OSError) as exc:
        result.errors.append(str(exc))
        print(f"  {name} run {attempt + 1}: FAILED: {exc}")
        return
    result.samples.append(s)
    print(
        f"  {name} run {attempt + 1}: {result.events / s.seconds:,.0f} events/s"
        f" ({s.seconds:.2f} s, CPU {s.cpu:.2f} s, startup {s.startup:.2f} s,"
        f" commit +{s.commit_lag:.2f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    every = ROWS[:2] + baseline_rows(args.baseline) + ROWS[2:] if args.baseline else ROWS
    rows = every
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in {r.key for r in every}]
        if unknown:
            raise SystemExit(f"--only: unknown rows {unknown}; rows: {[r.key for r in every]}")
        rows = tuple(r for r in every if r.key in keys)
    peer_events = parse_peer_events(args.peer_events, args.events, every)
    pipelines = PIPELINES if args.pipeline == "all" else (args.pipeline,)
    guarantees = GUARANTEES if args.guarantee == "both" else (args.guarantee,)
    counts = {r.key: peer_events.get(r.key, args.events) for r in rows}

    print(f"machine: {machine()}")
    print(peer_versions())
    print(
        f"settings: pipelines {', '.join(pipelines)}; events {args.events:,}"
        + "".join(f"; {k} {n:,}" for k, n in counts.items() if n != args.events)
        + f"; {args.partitions} input partition(s); {USERS:,} users ({EMIT_KEYS:,} for"
        f" windowed-emit); window {WINDOW_MS} ms;"
        f" commit interval {args.commit_interval} s;"
        f" guarantee {', '.join(guarantees)}; repeat {args.repeat};"
        f" timeout {args.timeout:.0f} s per run"
    )
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    workdir = tempfile.mkdtemp(prefix="bench-streams-", dir=args.dir)
    broker = Broker(workdir)
    results: list[Result] = []
    available = {r.key: r.unavailable() for r in rows}
    try:
        if not all(available.values()):
            broker.start()
            print(f"broker: streamlog broker at {broker.bootstrap}, data in {workdir}")
        for pipeline in pipelines:
            datasets: dict[int, Dataset] = {}
            for row in rows:
                n = counts[row.key]
                if available[row.key]:
                    results.extend(
                        Result(row, pipeline, n, 0, g, skipped=available[row.key] or "")
                        for g in guarantees
                    )
                    continue
                if n not in datasets:
                    t0 = time.perf_counter()
                    datasets[n] = produce_input(
                        broker.bootstrap, pipeline, n, args.partitions, args.timeout
                    )
                    print(
                        f"input: {n:,} {pipeline} events ({datasets[n].value_bytes / 1e6:.1f} MB"
                        f" of values) in {datasets[n].topic}, {time.perf_counter() - t0:.1f} s"
                    )
                data = datasets[n]
                runnable = [Result(row, pipeline, n, data.value_bytes, g) for g in guarantees]
                results.extend(runnable)
                # Guarantees alternate run by run, so that a busy spell on the shared
                # machine falls on both rather than on one.
                for attempt in range(args.repeat):
                    for result in runnable:
                        run_row(result, attempt, data, broker, workdir, args)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(results)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
