"""Run ``streamlog worker`` (and the other ``streamlog`` commands) as real processes, for
tests. No tests here.

``WorkerProcess`` starts a worker on loopback with its output in a log file, waits for a
log line, stops it with SIGTERM (bounded, SIGKILL if it hangs) or kills it with SIGKILL.
``read_topic`` and ``group_offsets`` look at a log in this process through streamlog's own
transport (``file://`` once no worker owns the directory, or ``kafka://``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamlog.transport import open_transport
from streamlog.transport.types import ConsumerRecord, TopicPartition
from streamlog.transport.url import BROKER_ENV
from tests.broker.brokerproc import STREAMLOG

__all__ = [
    "APPS",
    "WorkerProcess",
    "run_cli",
    "read_topic",
    "read_values",
    "produce",
    "group_offsets",
    "start_together",
    "wait_until",
]

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
CLI_TIMEOUT = 60.0  # seconds, for any one short command


def _environ(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != BROKER_ENV}
    env.update(extra or {})
    return env


def run_cli(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``streamlog ARGS`` to completion (bounded by ``timeout``)."""
    return subprocess.run(
        [STREAMLOG, *args],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_environ(env),
        timeout=timeout,
    )


def start_together(workers: Iterable[WorkerProcess], timeout: float = 60.0) -> None:
    """Start ``workers`` side by side, then wait until each is ready: their start-ups
    (seconds each on a loaded machine) overlap instead of adding up. On a failure every
    one of them is killed."""
    started = list(workers)
    try:
        for worker in started:
            worker.start(ready=None)
        for worker in started:
            worker.wait_for_log("worker ready", timeout)
    except BaseException:
        for worker in started:
            worker.kill()
        raise


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class WorkerProcess:
    """A ``streamlog worker APP`` child process (see the module docstring).

    Each ``start`` writes a new log file (``logs()`` is the current run's), so a test can
    check the lifecycle lines of one run.
    """

    app: str
    broker: str | None  # None: the app's own (file://./.streamlog, in workdir)
    workdir: str
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # the argv before the options (None: ``streamlog worker APP``), e.g.
    # ``(sys.executable, "app.py", "worker")`` for a program that calls ``app.main()``
    command: tuple[str, ...] | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    runs: int = 0
    returncode: int | None = None

    @property
    def data_dir(self) -> str:
        if self.broker is None:
            return os.path.join(self.workdir, ".streamlog")
        assert self.broker.startswith("file://")
        return self.broker[len("file://") :]

    def start(self, ready: str | None = "worker ready", timeout: float = 30.0) -> WorkerProcess:
        """Start; wait for the log line ``ready`` (None: do not wait)."""
        self.runs += 1
        self.returncode = None
        self.log_path = os.path.join(self.workdir, f"worker-{self.runs}.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    *(self.command or (STREAMLOG, "worker", self.app)),
                    *(("--broker", self.broker) if self.broker is not None else ()),
                    "--listen",
                    "127.0.0.1:0",
                    "--lag-interval",
                    "0",
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                env=_environ(self.env),
            )
        if ready is not None:
            try:
                self.wait_for_log(ready, timeout)
            except BaseException:
                self.kill()
                raise
        return self

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """Wait until the log holds ``text`` (a regular expression); returns the match."""
        pattern = re.compile(text)

        def found() -> str | None:
            match = pattern.search(self.logs())
            if match:
                return match.group(0)
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise AssertionError(f"worker exited ({code}) before {text!r}:\n{self.logs()}")
            return None

        return wait_until(found, timeout, f"{text!r} in the worker's log")  # type: ignore[no-any-return]

    def listener(self, timeout: float = 30.0) -> str:
        """``HOST:PORT`` of the worker's Kafka listener, from ``DATA_DIR/.listener``."""
        path = os.path.join(self.data_dir, ".listener")

        def read() -> str | None:
            try:
                with open(path) as f:
                    return f.read().strip() or None
            except FileNotFoundError:
                return None

        return wait_until(read, timeout, path)  # type: ignore[no-any-return]

    @property
    def kafka_url(self) -> str:
        """The worker's own log, reached through its Kafka listener."""
        return f"kafka://{self.listener()}"

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it overruns ``timeout``); returns the exit code."""
        proc = self.process
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                self.process = None
                raise AssertionError(
                    f"worker did not stop within {timeout} s of SIGTERM:\n{self.logs()}"
                ) from None
        self.process = None
        self.returncode = proc.returncode
        return proc.returncode

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the worker to exit by itself; returns the exit code."""
        proc = self.process
        assert proc is not None
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"worker still running after {timeout} s:\n{self.logs()}"
            ) from None
        self.process = None
        self.returncode = code
        return code

    def kill(self) -> None:
        """SIGKILL (a crash: no final commit, no clean close)."""
        proc = self.process
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            self.returncode = proc.returncode
        self.process = None

    def logs(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


async def _read_topic(url: str, topic: str, at_least: int) -> list[ConsumerRecord]:
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            info = await admin.describe_topic(topic)
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p.partition) for p in info.partitions]
        consumer = transport.consumer(group_id=None)
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            records: list[ConsumerRecord] = []
            while True:
                fetched = await consumer.getmany(timeout_ms=200)
                for batch in fetched.values():
                    records.extend(batch)
                if len(records) < at_least:
                    continue
                ends = await consumer.end_offsets(partitions)
                positions = [await consumer.position(tp) for tp in partitions]
                if all(pos >= ends[tp] for pos, tp in zip(positions, partitions, strict=True)):
                    return records
        finally:
            await consumer.close()
    finally:
        await transport.close()


def read_topic(
    url: str, topic: str, at_least: int = 0, timeout: float = 30.0
) -> list[ConsumerRecord]:
    """Every record of ``topic`` (by partition, in offset order), once it holds at least
    ``at_least`` of them (waiting up to ``timeout`` s for a worker to write them)."""
    records = asyncio.run(asyncio.wait_for(_read_topic(url, topic, at_least), timeout))
    return sorted(records, key=lambda r: (r.partition, r.offset))


def read_values(url: str, topic: str, at_least: int = 0) -> list[str]:
    """The values of ``topic`` as text, sorted (partitions interleave arbitrarily)."""
    return sorted((r.value or b"").decode() for r in read_topic(url, topic, at_least))


async def _produce(url: str, topic: str, values: list[bytes]) -> None:
    transport = open_transport(url)
    await transport.start()
    try:
        producer = transport.producer(client_id="worker-tests")
        try:
            pending = [await producer.send(topic, value) for value in values]
            await producer.flush()
            for result in pending:
                await result
        finally:
            await producer.close()
    finally:
        await transport.close()


def produce(url: str, topic: str, values: list[str], timeout: float = 60.0) -> None:
    """Send ``values`` (no key) to ``topic`` and wait for every acknowledgement."""
    encoded = [v.encode() for v in values]
    asyncio.run(asyncio.wait_for(_produce(url, topic, encoded), timeout))


async def _group_offsets(url: str, group: str) -> dict[TopicPartition, int]:
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            info = await admin.describe_group(group)
        finally:
            await admin.close()
        return {
            TopicPartition(p.topic, p.partition): p.committed_offset
            for p in info.partitions
            if p.committed_offset >= 0
        }
    finally:
        await transport.close()


def group_offsets(url: str, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets (partitions with no commit are left out)."""
    return asyncio.run(asyncio.wait_for(_group_offsets(url, group), 60))
