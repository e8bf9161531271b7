"""Fault injection for the worker: a broker, a steady load, several workers, and the
ledger check that counts every input. No tests here (``test_fault_injection.py`` uses it).

The app is ``apps/ledger.py``: each input id is counted in the table ``seen``. After a
run every worker is stopped, the table's changelog is read back, and each input's count is
checked: 0 is a lost input, more than 1 a re-processed one.
"""

from __future__ import annotations

import asyncio
import collections
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from streamlog.transport import open_transport
from streamlog.transport.types import TopicPartition
from tests.broker.brokerproc import BrokerProcess

from .workerproc import APPS, WorkerProcess, group_offsets, read_topic, start_together, wait_until

__all__ = ["LEDGER", "Load", "Ledger", "LedgerRun", "create_topic", "end_offsets"]

LEDGER = os.path.join(APPS, "ledger.py")
LOADGEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loadgen.py")
GROUP = "ledger"
TOPIC = "inputs"
CHANGELOG = "ledger-seen-changelog"
BUCKETS_CHANGELOG = "ledger-buckets-changelog"
BUCKETS = 20  # apps/ledger.py's
OUTPUT = "ledger-out"
REPARTITION = "ledger-tally-bucket-repartition"


async def _create_topic(url: str, topic: str, partitions: int) -> None:
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            await admin.create_topic(topic, partitions)
        finally:
            await admin.close()
    finally:
        await transport.close()


def create_topic(url: str, topic: str, partitions: int) -> None:
    asyncio.run(asyncio.wait_for(_create_topic(url, topic, partitions), 60))


async def _end_offsets(url: str, topic: str) -> dict[int, int]:
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            info = await admin.describe_topic(topic)
        finally:
            await admin.close()
        consumer = transport.consumer(group_id=None)
        try:
            tps = [TopicPartition(topic, p.partition) for p in info.partitions]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.close()
    finally:
        await transport.close()


def end_offsets(url: str, topic: str) -> dict[int, int]:
    return asyncio.run(asyncio.wait_for(_end_offsets(url, topic), 60))


@dataclass
class Load:
    """``loadgen.py`` as a child process: COUNT ids at RATE records/s (with ``keys``, a
    keyed stream of per-key sequence numbers: see loadgen.py)."""

    bootstrap: str
    count: int
    rate: float
    log_path: str
    process: subprocess.Popen[bytes] | None = None
    topic: str = TOPIC
    keys: int = 0

    def start(self) -> Load:
        args = [self.bootstrap, self.topic, str(self.count), str(self.rate)]
        if self.keys:
            args.append(str(self.keys))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, LOADGEN, *args],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        return self

    def wait(self, timeout: float) -> None:
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"load still running after {timeout} s:\n{self.logs()}") from None
        assert code == 0, f"load generator failed ({code}):\n{self.logs()}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def pause(self) -> None:
        """Stop producing (SIGSTOP) until ``resume``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def acked(self) -> int:
        """How many records have been acknowledged so far (as of the last ``sent`` line,
        written every 100 records)."""
        lines = [line for line in self.logs().splitlines() if line.startswith("sent ")]
        return int(lines[-1].split()[3]) if lines else 0

    def logs(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


@dataclass
class Ledger:
    """What a run left: each input id's count in the table, and its outputs."""

    counts: dict[str, int]
    outputs: collections.Counter[str]
    buckets: dict[str, int]
    inputs: int

    def ids(self) -> list[str]:
        return [f"{i:06d}" for i in range(self.inputs)]

    @property
    def missing(self) -> list[str]:
        """Inputs absent from the table or from the output: lost."""
        return [i for i in self.ids() if self.counts.get(i, 0) < 1 or self.outputs[i] < 1]

    @property
    def duplicates(self) -> int:
        """Inputs processed more than once, counted by their extra outputs (a table count
        can hide a re-processing: two workers may each write count 1)."""
        return sum(max(0, n - 1) for n in self.outputs.values())

    @property
    def short_buckets(self) -> dict[str, tuple[int, int]]:
        """Buckets counting fewer inputs than they hold: (counted, held). A lost input or
        a lost table write (a stale changelog value overwriting a newer one)."""
        held = collections.Counter(f"b{i % BUCKETS:02d}" for i in range(self.inputs))
        return {
            b: (self.buckets.get(b, 0), n) for b, n in held.items() if self.buckets.get(b, 0) < n
        }

    @property
    def bucket_duplicates(self) -> int:
        """Inputs counted twice in their bucket (re-processed through the repartition)."""
        return sum(self.buckets.values()) - self.inputs

    @property
    def unknown(self) -> list[str]:
        """Table keys or outputs that are no input (must be none)."""
        known = set(self.ids())
        return sorted((set(self.counts) | set(self.outputs)) - known)

    @classmethod
    def read(cls, url: str, inputs: int) -> Ledger:
        outputs = collections.Counter(
            (r.value or b"").decode() for r in read_topic(url, OUTPUT, timeout=120)
        )
        return cls(
            # both tables' keys are JSON: ``seen`` is declared the Faust way (Faust's json
            # key codec), ``buckets`` with key_serializer="json"
            _table(url, CHANGELOG, json_keys=True),
            outputs,
            _table(url, BUCKETS_CHANGELOG, json_keys=True),
            inputs,
        )


def _table(url: str, changelog: str, json_keys: bool = False) -> dict[str, int]:
    """A table's contents as its changelog says: the last value of each key."""
    counts: dict[str, int] = {}
    for record in read_topic(url, changelog, timeout=120):
        key = json.loads(record.key or b"") if json_keys else (record.key or b"").decode()
        if record.value is None:
            counts.pop(key, None)
        else:
            counts[key] = int(json.loads(record.value))
    return counts


@dataclass
class LedgerRun:
    """A broker, a load and named workers of the ledger app, in ``workdir``."""

    workdir: str
    inputs: int
    rate: float
    partitions: int = 6
    store: str = "rocksdb://"
    pause: float = 0.0  # LEDGER_PAUSE
    broker: BrokerProcess = field(init=False)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    load: Load | None = None
    # what the committed offsets allowed to be processed twice, summed over failures
    redo_allowance: int = 0
    bucket_allowance: int = 0

    def __post_init__(self) -> None:
        self.broker = BrokerProcess(os.path.join(self.workdir, "broker"))

    @property
    def url(self) -> str:
        return f"kafka://{self.broker.bootstrap}"

    def start_broker(self) -> None:
        self.broker.start()
        create_topic(self.url, TOPIC, self.partitions)

    def worker(self, name: str) -> WorkerProcess:
        if name not in self.workers:
            home = os.path.join(self.workdir, name)
            os.makedirs(home, exist_ok=True)
            self.workers[name] = WorkerProcess(
                LEDGER,
                self.url,
                home,
                ("--data-dir", os.path.join(home, "data"), "--lag-interval", "0"),
                env={
                    "LEDGER_PARTITIONS": str(self.partitions),
                    "LEDGER_STORE": self.store,
                    "LEDGER_PAUSE": str(self.pause),
                },
            )
        return self.workers[name]

    def start_workers(self, *names: str) -> None:
        """Start the workers ``names`` side by side (``start_together``)."""
        start_together(self.worker(name) for name in names)

    def start_load(self) -> Load:
        self.load = Load(
            self.broker.bootstrap, self.inputs, self.rate, os.path.join(self.workdir, "load.log")
        ).start()
        return self.load

    def acked(self) -> int:
        """How many inputs the load generator has had acknowledged so far (roughly)."""
        return 0 if self.load is None else self.load.acked()

    def committed(self) -> dict[int, int]:
        return {
            tp.partition: offset
            for tp, offset in group_offsets(self.url, GROUP).items()
            if tp.topic == TOPIC
        }

    def allow_redo(self) -> None:
        """Before a failure: every record after the committed offsets may be processed
        again (at-least-once), so the duplicates it may cause are added to the allowances:
        inputs for the table ``seen`` and the output, inputs and repartitioned records for
        the table ``buckets``."""
        committed = group_offsets(self.url, GROUP)
        for topic in (TOPIC, REPARTITION):
            ends = end_offsets(self.url, topic)
            behind = sum(e - committed.get(TopicPartition(topic, p), 0) for p, e in ends.items())
            self.bucket_allowance += behind
            if topic == TOPIC:
                self.redo_allowance += behind

    def logged_redo(self) -> int:
        """What the workers said their revocations and losses leave to be done again
        (every run's log of every worker)."""
        pattern = re.compile(r"(\d+) record\(s\) processed here after the last commit")
        total = 0
        for worker in self.workers.values():
            for path in glob.glob(os.path.join(worker.workdir, "worker-*.log")):
                with open(path, errors="replace") as f:
                    total += sum(int(n) for n in pattern.findall(f.read()))
        return total

    def kill(self, name: str) -> None:
        """SIGKILL a worker; what it processed after its last commit may be redone."""
        self.allow_redo()
        self.workers[name].kill()

    def suspend(self, name: str, seconds: float) -> None:
        """SIGSTOP a worker for ``seconds`` (past its session: the group drops it), then
        SIGCONT: a worker that does not know yet that its partitions moved."""
        process = self.workers[name].process
        assert process is not None
        self.allow_redo()
        process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            process.send_signal(signal.SIGCONT)

    def bounce_broker(self, down: float, kill: bool) -> None:
        """Stop the broker (SIGKILL or SIGTERM), keep it down ``down`` s, start it again on
        the same port and data directory. The group's membership does not survive it."""
        self.allow_redo()
        if kill:
            self.broker.kill()
        else:
            code = self.broker.stop()
            assert code == 0, f"exit code {code}\n" + self.broker.logs()
        time.sleep(down)
        self.broker.start()

    def wait_drained(self, timeout: float) -> None:
        """Until every input is committed by the group (the workers caught up)."""

        def caught_up() -> bool:
            ends = end_offsets(self.url, TOPIC)
            return sum(ends.values()) >= self.inputs and self.committed() == ends

        wait_until(caught_up, timeout, "the group to commit every input", interval=0.5)

    def stop_all(self) -> dict[str, int | None]:
        codes = {}
        for name, worker in self.workers.items():
            if worker.process is not None:
                codes[name] = worker.stop(60)
        return codes

    def close(self) -> None:
        if self.load is not None:
            self.load.kill()
        for worker in self.workers.values():
            worker.kill()
        self.broker.stop()

    def ledger(self) -> Ledger:
        return Ledger.read(self.url, self.inputs)

    def logs(self) -> str:
        parts = [f"--- broker\n{self.broker.logs()[-4000:]}"]
        for name, worker in self.workers.items():
            parts.append(f"--- {name}\n{worker.logs()[-6000:]}")
        if self.load is not None:
            parts.append(f"--- load\n{self.load.logs()[-2000:]}")
        return "\n".join(parts)
