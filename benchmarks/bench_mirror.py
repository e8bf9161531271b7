"""Mirror throughput: ``streamlog mirror --once`` from a ``streamlog broker`` into another
``streamlog broker`` and into Tansu, in one run.

Run: ``.venv/bin/python benchmarks/bench_mirror.py [--records 200000] [--size 100]
[--partitions 4] [--repeat 3] [--only streamlog|tansu] [--compression none|lz4|...]
[--timeout 300]``

The source is a ``streamlog broker`` on a fresh data directory, filled once with N records
of an 8-byte key and an S-byte value (random bytes, partition ``i % P``) by a
confluent-kafka producer. Each repeat starts a fresh target (``streamlog broker`` on a
new data directory, stopped with SIGTERM; Tansu with its in-memory engine, killed) and
runs the real CLI as a user would, ``streamlog mirror --from SOURCE --to TARGET --topics
bench --once``, as a subprocess. Two figures per run:

* ``wall``: N over the subprocess's wall time, from spawn to exit (Python start-up,
  connecting, creating the target topic and the mirror's state topics, the copy, the
  last checkpoint, the summary): what a user waits for;
* ``copy``: the records/s of the mirror's own summary line (N over ``Mirror.run``'s
  elapsed time, which starts after start-up and connection).

MB/s counts keys and values (N x (8 + S) bytes, 10^6 bytes to a MB). ``mirror CPU`` is the
mirror process's CPU time (user + system, from the children's rusage) over its wall time,
``source``/``target CPU`` the brokers' (100% = one core). A run whose summary does not say
N records were mirrored counts as failed; the exit status is then 1. Every process is
stopped at the end, even on errors.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from bench_broker import (  # benchmarks/ is on sys.path when a script runs
    VENV_BIN,
    BrokerProcess,
    PhaseError,
    StreamlogBroker,
    TansuBroker,
    cpu_seconds,
    create_topic,
    tansu_version,
)
from confluent_kafka import Producer
from machine import machine

__all__ = ["main"]

KEY_SIZE = 8
TOPIC = "bench"
SUMMARY = re.compile(
    r"^mirrored (?P<records>[\d,]+) records .* in (?P<seconds>[\d.]+) s: "
    r"(?P<rate>[\d,]+) records/s, (?P<mbps>[\d,.]+) MB/s",
    re.MULTILINE,
)


@dataclass
class Run:
    wall_s: float
    copy_rate: float  # records/s from the mirror's summary
    mirror_cpu: float  # CPU seconds / wall seconds
    source_cpu: float
    target_cpu: float


@dataclass
class Result:
    runs: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def fill_source(bootstrap: str, records: int, size: int, partitions: int, timeout: float) -> None:
    """N keyed records of ``size``-byte values into ``TOPIC``, every delivery checked."""
    create_topic(bootstrap, TOPIC, partitions, timeout)
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 200_000,
            "acks": "1",
            "on_delivery": on_delivery,
            "delivery.report.only.error": True,
        }
    )
    value = os.urandom(size)
    deadline = time.monotonic() + timeout
    for i in range(records):
        while True:
            try:
                producer.produce(
                    TOPIC, value, key=b"%08d" % (i % 100_000_000), partition=i % partitions
                )
                break
            except BufferError:
                producer.poll(0.01)
                if time.monotonic() > deadline:
                    raise PhaseError(
                        f"filling the source: queue full after {timeout:.0f} s"
                    ) from None
    left = producer.flush(max(deadline - time.monotonic(), 1))
    if left or failures:
        raise PhaseError(f"filling the source: {left} undelivered, {len(failures)} failed")


def mirror_once(
    source: BrokerProcess, target: BrokerProcess, records: int, compression: str, timeout: float
) -> Run:
    """One ``streamlog mirror --once`` run into a fresh target, measured."""
    command = [
        os.path.join(VENV_BIN, "streamlog"),
        "mirror",
        "--from",
        f"kafka://{source.bootstrap}",
        "--to",
        f"kafka://{target.bootstrap}",
        "--topics",
        TOPIC,
        "--once",
        "--compression",
        compression,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    source_cpu, target_cpu = cpu_seconds(source.pid), cpu_seconds(target.pid)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise PhaseError(f"the mirror did not finish in {timeout:.0f} s") from None
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise PhaseError(f"the mirror exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    found = SUMMARY.search(done.stdout)
    if found is None:
        raise PhaseError(f"no summary line in the mirror's output: {done.stdout[:300]!r}")
    copied = int(found["records"].replace(",", ""))
    if copied != records:
        raise PhaseError(f"the mirror copied {copied:,} records, not {records:,}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(
        wall_s=wall,
        copy_rate=float(found["rate"].replace(",", "")),
        mirror_cpu=cpu / wall,
        source_cpu=(cpu_seconds(source.pid) - source_cpu) / wall,
        target_cpu=(cpu_seconds(target.pid) - target_cpu) / wall,
    )


def report(results: dict[str, Result], records: int, size: int) -> None:
    megabytes = records * (KEY_SIZE + size) / 1e6
    print()
    print(
        f"{'target':<10} {'runs':>4} {'wall rec/s':>11} {'wall MB/s':>10} {'copy rec/s':>11} "
        f"{'copy MB/s':>10} {'mirror CPU':>11} {'source CPU':>11} {'target CPU':>11}"
    )
    for name, result in results.items():
        if not result.runs:
            print(f"{name:<10} {0:>4}  failed: {'; '.join(result.errors)}")
            continue
        runs = result.runs
        wall = statistics.median(r.wall_s for r in runs)
        copy = statistics.median(r.copy_rate for r in runs)
        print(
            f"{name:<10} {len(runs):>4} {records / wall:>11,.0f} {megabytes / wall:>10,.2f} "
            f"{copy:>11,.0f} {copy * (KEY_SIZE + size) / 1e6:>10,.2f} "
            f"{statistics.median(r.mirror_cpu for r in runs):>10.0%} "
            f"{statistics.median(r.source_cpu for r in runs):>10.0%} "
            f"{statistics.median(r.target_cpu for r in runs):>10.0%}"
        )
        for error in result.errors:
            print(f"{'':<10} failed run: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", "-n", type=int, default=200_000)
    parser.add_argument("--size", "-s", type=int, default=100, help="value bytes (default 100)")
    parser.add_argument("--partitions", "-p", type=int, default=4)
    parser.add_argument("--repeat", "-r", type=int, default=3)
    parser.add_argument("--only", choices=("streamlog", "tansu"))
    parser.add_argument(
        "--compression", choices=("none", "gzip", "snappy", "lz4", "zstd"), default="none"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per step")
    args = parser.parse_args(argv)
    targets = [args.only] if args.only else ["streamlog", "tansu"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"machine: {machine()}")
    print(f"tansu: {tansu_version()}")
    print(
        f"records={args.records:,} key={KEY_SIZE} B value={args.size} B "
        f"partitions={args.partitions} repeat={args.repeat} compression={args.compression}",
        flush=True,
    )
    results = {name: Result() for name in targets}
    workdirs: list[str] = []
    source = StreamlogBroker(tempfile.mkdtemp(prefix="bench-mirror-source-"))
    workdirs.append(source.workdir)
    try:
        source.start()
        started = time.perf_counter()
        fill_source(source.bootstrap, args.records, args.size, args.partitions, args.timeout)
        print(f"source filled in {time.perf_counter() - started:.1f} s", flush=True)
        for name in targets:
            for r in range(args.repeat):
                workdir = tempfile.mkdtemp(prefix=f"bench-mirror-{name}-")
                workdirs.append(workdir)
                target: BrokerProcess = (
                    StreamlogBroker(workdir) if name == "streamlog" else TansuBroker(workdir)
                )
                try:
                    target.start()
                    run = mirror_once(source, target, args.records, args.compression, args.timeout)
                    results[name].runs.append(run)
                    print(
                        f"  {name} repeat {r + 1}/{args.repeat}: {run.wall_s:.2f} s wall, "
                        f"{run.copy_rate:,.0f} records/s copying",
                        flush=True,
                    )
                except PhaseError as exc:
                    results[name].errors.append(str(exc))
                    print(f"  {name} repeat {r + 1}/{args.repeat} failed: {exc}", flush=True)
                finally:
                    target.stop()
    except PhaseError as exc:
        print(f"failed: {exc}", flush=True)
        return 1
    finally:
        source.stop()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, args.records, args.size)
    return 1 if any(r.errors for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
