"""The ride ETA app (``apps/eta_matching``) in one worker, on ``file://`` and on ``kafka://``:
the events/s it sustains draining a backlog, and its matching latency (request to match)
under a steady paced load.

    .venv/bin/python benchmarks/bench_eta.py [--logs file,kafka] [--drivers 5000] \\
        [--reports 45000] [--requests 5000] [--rates 25%,1000,2000] [--seconds 30] \\
        [--warmup 5] [--request-share 0.1] [--trip-s 2] [--timeout 300] [--no-drain]

Each run (one drain, one paced rate) gets a fresh log: a ``file://`` directory, or a
``streamlog broker`` process on loopback (fresh data directory; stopped with SIGTERM at
the end, even on errors); the four public topics created with the app's 4 partitions;
and one ``streamlog worker apps/eta_matching/app.py`` (stopped with SIGTERM). The bench's
own clients are streamlog's transport in this process. On ``file://`` the worker owns the
directory, so the bench reaches the log through the worker's Kafka listener
(``DATA_DIR/.listener``), served inside the worker's process.

Both phases start the same way: every one of ``--drivers`` drivers reports ``available``,
and the bench waits until the app's group has committed everything (the fleet is online).

**drain**: ``--reports`` driver reports (random walks on the grid city's corners) and
``--requests`` ride requests spread evenly among them (seeded, event time over 60 s, so no
driver goes stale), written as fast as this process can while the worker drains them.
Timed from the first record written to the arrival of the last request's ``matches``
record at a consumer in this process; events/s and MB/s (keys + JSON values of the input,
10^6 bytes) over that time. Nothing completes a trip here, so a driver is matched at most
once: keep ``--requests`` at or below ``--drivers``. (Writing the whole backlog before the
worker starts does not measure matching: requests take one hop through the log to the
matcher, driver reports two, so the requests overtake the reports and all come out
unmatched.)

**paced**: a steady load at each rate of ``--rates`` events/s (``N%`` is N% of the same
log's drain rate, measured first in the same run): ``--request-share`` ride requests, the
rest driver reports, every record stamped with the wall clock as its event time, for
``--warmup`` + ``--seconds`` seconds. When a match names a driver, the bench sends its
``trips_completed`` ``--trip-s`` seconds later, so drivers come back; completions are
counted as events (``achieved`` is above the target by about that much).
Latency is per request sent after the warm-up: from ``time.monotonic()`` just before this
process hands the request to its producer to the moment its ``matches`` record comes out
of this process's consumer (``getmany``). It includes the producer's 5 ms linger and its
trip to the log, the worker's fetch of ``ride_requests``, the app's two hops through the
log (``ride_requests`` -> ``eta-matching-eta-region-events`` -> the matcher ->
``matches``), the fetch back, and any wait for a core or for this process's event loop
(which produces the load too): what a client of the app sees on this machine. ``trend``
is the median latency of the last quarter of the measured requests over the first's:
about 1 below saturation; well above 1 means a queue was building (the rate is above
what the worker sustains) and the percentiles grow with ``--seconds``. ``unanswered``
counts measured requests with no ``matches`` record ``--timeout`` s after the load.

``CPU %`` is each process's user + system time over the timed interval (/proc; 100 = one
core): the worker, the broker (0 on ``file://``), this process. ``worker waiting %`` is
the time the worker's main thread was runnable but had no core (/proc/PID/schedstat): on
a 2-core machine shared with other work, a worker well under 100% CPU while latency grows
is being crowded out, not idle. ``worker us/event`` is the worker's CPU per input event
(per event sent during the measured seconds, for paced runs): steadier than the rates on
a shared machine. The script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from machine import machine  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

from apps.eta_matching.city import City  # noqa: E402
from streamlog.transport import open_transport  # noqa: E402
from streamlog.transport.base import Producer  # noqa: E402
from streamlog.transport.types import TopicPartition  # noqa: E402
from tests.broker.brokerproc import BrokerProcess  # noqa: E402
from tests.worker.workerproc import WorkerProcess  # noqa: E402

APP = os.path.join(ROOT, "apps", "eta_matching", "app.py")
PARTITIONS = 4  # the app's default (ETA_PARTITIONS)
GROUP = "eta-matching"  # the app's id (ETA_APP_ID)
TOPICS = ("driver_locations", "ride_requests", "trips_completed", "matches")
READY_TIMEOUT = 60.0


class Deployment:
    """One run's log (a ``file://`` directory or a ``streamlog broker``) and its worker."""

    def __init__(self, kind: str, tmp: str) -> None:
        self.kind = kind
        self.tmp = tmp
        self.broker: BrokerProcess | None = None
        self.worker: WorkerProcess | None = None
        if kind == "file":
            self.url = f"file://{tmp}/log"
        else:
            self.broker = BrokerProcess(os.path.join(tmp, "broker")).start()
            self.url = f"kafka://{self.broker.bootstrap}"
        asyncio.run(create_topics(self.url))

    def start_worker(self) -> float:
        """Starts the worker; returns the seconds from spawn to ``worker ready``."""
        workdir = os.path.join(self.tmp, "worker")
        os.makedirs(workdir, exist_ok=True)
        self.worker = WorkerProcess(
            APP, self.url, workdir, extra_args=("--web-port", "0"), env={"PYTHONPATH": ROOT}
        )
        began = time.monotonic()
        self.worker.start(timeout=READY_TIMEOUT)
        return time.monotonic() - began

    @property
    def client_url(self) -> str:
        """Where this process reaches the log while the worker runs."""
        if self.kind == "file" and self.worker is not None:
            return self.worker.kafka_url
        return self.url

    def cpu(self) -> CpuSample:
        """CPU seconds so far of the worker, the broker (0 for ``file://``) and this process,
        and the seconds the worker's main thread has waited for a core."""
        worker = self.worker.process.pid if self.worker and self.worker.process else 0
        broker = self.broker.process.pid if self.broker and self.broker.process else 0
        return CpuSample(
            time.monotonic(),
            process_cpu(worker),
            process_cpu(broker),
            time.process_time(),
            runqueue_wait(worker),
        )

    def close(self) -> None:
        try:
            if self.worker is not None:
                try:
                    self.worker.stop()
                finally:
                    self.worker.kill()
        finally:
            if self.broker is not None:
                self.broker.stop()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (0 for pid 0), from /proc."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_wait(pid: int) -> float:
    """Seconds a process's main thread has been runnable but waiting for a core."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):  # kernels without schedstats
        return math.nan


@dataclass(frozen=True)
class CpuSample:
    at: float
    worker: float
    broker: float
    bench: float
    worker_waiting: float


@dataclass(frozen=True)
class Usage:
    """What the processes used between two samples (fractions of one core)."""

    worker: float
    broker: float
    bench: float
    worker_waiting: float
    worker_seconds: float

    @classmethod
    def between(cls, a: CpuSample, b: CpuSample) -> Usage:
        span = b.at - a.at
        return cls(
            (b.worker - a.worker) / span,
            (b.broker - a.broker) / span,
            (b.bench - a.bench) / span,
            (b.worker_waiting - a.worker_waiting) / span,
            b.worker - a.worker,
        )

    def cells(self, events: int) -> str:
        """``CPU % worker / broker / bench | worker waiting % | worker us/event``."""
        share = " / ".join(f"{100 * x:.0f}" for x in (self.worker, self.broker, self.bench))
        per_event = 1e6 * self.worker_seconds / events if events else math.nan
        return f"{share} | {100 * self.worker_waiting:.0f} | {per_event:.0f}"


NO_USAGE = Usage(math.nan, math.nan, math.nan, math.nan, math.nan)
CpuClock = Callable[[], CpuSample]


async def create_topics(url: str) -> None:
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            for topic in TOPICS:
                await admin.create_topic(topic, PARTITIONS)
        finally:
            await admin.close()
    finally:
        await transport.close()


class Traffic:
    """Seeded driver reports and ride requests on the grid city, as (topic, key, value)."""

    def __init__(self, seed: int, drivers: int) -> None:
        self.rng = random.Random(seed)
        self.city = City()
        self.positions = [self.city.random_corner(self.rng) for _ in range(drivers)]

    def report(self, driver: int, ts: float) -> tuple[str, bytes, bytes]:
        x, y = self.positions[driver]
        x = min(self.city.width_km, max(0.0, x + self.rng.uniform(-0.1, 0.1)))
        self.positions[driver] = (x, y)
        lat, lon = self.city.latlon(x, y)
        value = {"driver_id": f"d{driver}", "lat": lat, "lon": lon, "status": "available", "ts": ts}
        return "driver_locations", f"d{driver}".encode(), json.dumps(value).encode()

    def any_report(self, ts: float) -> tuple[str, bytes, bytes]:
        return self.report(self.rng.randrange(len(self.positions)), ts)

    def request(self, request_id: str, ts: float) -> tuple[str, bytes, bytes]:
        pickup, dropoff = (self.city.random_corner(self.rng) for _ in range(2))
        (plat, plon), (dlat, dlon) = self.city.latlon(*pickup), self.city.latlon(*dropoff)
        value = {
            "request_id": request_id,
            "rider_id": "x",
            "pickup_lat": plat,
            "pickup_lon": plon,
            "dropoff_lat": dlat,
            "dropoff_lon": dlon,
            "ts": ts,
        }
        return "ride_requests", request_id.encode(), json.dumps(value).encode()


async def send(producer: Producer, record: tuple[str, bytes, bytes], ts: float) -> int:
    """Queues one record; returns its size (key + value)."""
    topic, key, value = record
    await producer.send(topic, value, key=key, timestamp_ms=round(ts * 1000))
    return len(key) + len(value)


async def wait_caught_up(url: str, timeout: float) -> None:
    """Until the app's group has committed every record of every topic it reads (the
    fleet online before the drain starts)."""
    transport = open_transport(url)
    await transport.start()
    admin = transport.admin()
    deadline = time.monotonic() + timeout
    try:
        while True:
            info = await admin.describe_group(GROUP)
            lags = {(p.topic, p.partition): p.lag for p in info.partitions}
            if any(t == "driver_locations" for t, _ in lags) and not any(lags.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app's group did not catch up in {timeout} s: {lags}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
        await transport.close()


async def tail_matches(
    url: str, on_match: Callable[[dict[str, Any], float], None], done: Callable[[], bool]
) -> None:
    """Reads ``matches`` from the beginning, calling ``on_match(value, arrival)`` for each
    record as it comes out of ``getmany``, until ``done()``."""
    transport = open_transport(url)
    await transport.start()
    consumer = transport.consumer(group_id=None, client_id="bench-eta-matches")
    try:
        tps = [TopicPartition("matches", p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not done():
            for records in (await consumer.getmany(timeout_ms=50)).values():
                arrival = time.monotonic()
                for record in records:
                    on_match(json.loads(record.value or b"null"), arrival)
    finally:
        await consumer.close()
        await transport.close()


def completion(request_id: str, driver_id: str, ts: float) -> tuple[str, bytes, bytes]:
    value = {"request_id": request_id, "driver_id": driver_id, "ts": ts}
    return "trips_completed", driver_id.encode(), json.dumps(value).encode()


@dataclass
class DrainResult:
    events: int = 0  # reports + requests
    size: int = 0
    seconds: float = 0.0
    matched: int = 0
    unmatched: int = 0
    usage: Usage = NO_USAGE


async def drain_backlog(url: str, cpu: CpuClock, args: argparse.Namespace) -> DrainResult:
    """Every driver online and processed, then the backlog written as fast as this process
    can while the worker drains it."""
    result = DrainResult()
    traffic = Traffic(1, args.drivers)
    transport = open_transport(url)
    await transport.start()
    producer = transport.producer(client_id="bench-eta")
    t0 = time.time()
    for driver in range(len(traffic.positions)):
        await send(producer, traffic.report(driver, t0), t0)
    await producer.flush()
    await wait_caught_up(url, args.timeout)
    last = [0.0]

    def on_match(value: dict[str, Any], arrival: float) -> None:
        if value.get("driver_id") is None:
            result.unmatched += 1
        else:
            result.matched += 1
        last[0] = arrival

    def done() -> bool:
        return result.matched + result.unmatched >= args.requests

    tail = asyncio.create_task(tail_matches(url, on_match, done))
    try:
        began, cpu_before = time.monotonic(), cpu()
        n_events = args.reports + args.requests
        every = n_events / args.requests  # exactly ``requests`` requests, spread evenly
        span = 60.0  # seconds of event time: no driver goes stale (120 s) in the backlog
        r = 0
        for i in range(n_events):
            ts = t0 + 1 + i * (span / n_events)
            if r < args.requests and i >= r * every:
                record = traffic.request(f"q{r}", ts)
                r += 1
            else:
                record = traffic.any_report(ts)
            result.size += await send(producer, record, ts)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # the tail reads meanwhile
        result.events = n_events
        await producer.flush()
        await asyncio.wait_for(tail, args.timeout)
        result.seconds = last[0] - began
        result.usage = Usage.between(cpu_before, cpu())
    finally:
        tail.cancel()
        await producer.close()
        await transport.close()
    return result


def drain(kind: str, args: argparse.Namespace) -> DrainResult:
    with tempfile.TemporaryDirectory() as tmp:
        deployment = Deployment(kind, tmp)
        try:
            deployment.start_worker()
            return asyncio.run(drain_backlog(deployment.client_url, deployment.cpu, args))
        finally:
            deployment.close()


@dataclass
class PacedResult:
    target: float
    sent: int = 0  # events sent in the measured seconds
    size: int = 0
    completions: int = 0
    latencies: list[float] = field(default_factory=list)
    sent_times: list[float] = field(default_factory=list)  # of each latency's request
    matched: int = 0
    unanswered: int = 0
    duplicates: int = 0
    usage: Usage = NO_USAGE


async def paced_load(url: str, rate: float, cpu: CpuClock, args: argparse.Namespace) -> PacedResult:
    result = PacedResult(rate)
    traffic = Traffic(2, args.drivers)
    sent_at: dict[str, float] = {}  # request id -> monotonic send time, until answered
    measured: set[str] = set()  # requests sent after the warm-up
    completions: deque[tuple[float, str, str]] = deque()  # (due, driver id, request id)
    answered: set[str] = set()
    loading = [True]

    def on_match(value: dict[str, Any], arrival: float) -> None:
        request_id = value["request_id"]
        sent = sent_at.pop(request_id, None)
        if sent is None:
            result.duplicates += request_id in answered
            return
        answered.add(request_id)
        if request_id in measured:
            result.latencies.append(arrival - sent)
            result.sent_times.append(sent)
            result.matched += value.get("driver_id") is not None
        if value.get("driver_id") is not None:
            completions.append((arrival + args.trip_s, value["driver_id"], request_id))

    def done() -> bool:
        return not loading[0] and not (measured & sent_at.keys())

    transport = open_transport(url)
    await transport.start()
    producer = transport.producer(client_id="bench-eta-load")
    tail = asyncio.create_task(tail_matches(url, on_match, done))
    try:
        for driver in range(args.drivers):
            ts = time.time()
            await send(producer, traffic.report(driver, ts), ts)
        await producer.flush()
        await wait_caught_up(url, args.timeout)
        start = time.monotonic()
        measure_from = start + args.warmup
        end = measure_from + args.seconds
        n = requests = 0
        cpu_before: CpuSample | None = None
        while (now := time.monotonic()) < end:
            counted = now >= measure_from
            if counted and cpu_before is None:
                cpu_before = cpu()
            while completions and completions[0][0] <= now:
                _, driver_id, request_id = completions.popleft()
                ts = time.time()
                size = await send(producer, completion(request_id, driver_id, ts), ts)
                if counted:
                    result.completions += 1
                    result.sent += 1
                    result.size += size
            due = int((now - start) * rate)
            while n < due:
                ts = time.time()
                if traffic.rng.random() < args.request_share:
                    request_id = f"p{requests}"
                    requests += 1
                    record = traffic.request(request_id, ts)
                    sent_at[request_id] = time.monotonic()
                    if counted:
                        measured.add(request_id)
                else:
                    record = traffic.any_report(ts)
                size = await send(producer, record, ts)
                n += 1
                if counted:
                    result.sent += 1
                    result.size += size
            await asyncio.sleep(0.001)
        if cpu_before is not None:
            result.usage = Usage.between(cpu_before, cpu())
        await producer.flush()
        loading[0] = False
        try:
            await asyncio.wait_for(asyncio.shield(tail), args.timeout)
        except TimeoutError:
            result.unanswered = len(measured & sent_at.keys())
    finally:
        loading[0] = False
        tail.cancel()
        try:
            await tail
        except asyncio.CancelledError:
            pass
        await producer.close()
        await transport.close()
    return result


def paced(kind: str, rate: float, args: argparse.Namespace) -> PacedResult:
    with tempfile.TemporaryDirectory() as tmp:
        deployment = Deployment(kind, tmp)
        try:
            deployment.start_worker()
            return asyncio.run(paced_load(deployment.client_url, rate, deployment.cpu, args))
        finally:
            deployment.close()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def trend(p: PacedResult) -> float:
    """Median latency of the requests sent in the last quarter of the measured seconds
    over that of the first quarter: about 1 below saturation, growing with the run's
    length above it (a queue building up)."""
    pairs = sorted(zip(p.sent_times, p.latencies, strict=True))
    quarter = len(pairs) // 4
    if quarter == 0:
        return math.nan
    first = [lat for _, lat in pairs[:quarter]]
    last = [lat for _, lat in pairs[-quarter:]]
    return percentile(last, 50) / percentile(first, 50)


def rate_of(spec: str, drain_rate: float | None) -> float:
    if spec.endswith("%"):
        if drain_rate is None:
            raise SystemExit(f"--rates {spec}: needs the drain's rate, which was not measured")
        return round(float(spec[:-1]) / 100 * drain_rate)
    return float(spec)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", default="file,kafka", help="file, kafka or both")
    parser.add_argument("--drivers", type=int, default=5000)
    parser.add_argument("--reports", type=int, default=45_000, help="drain: driver reports")
    parser.add_argument(
        "--requests", type=int, default=5_000, help="drain: ride requests (<= --drivers)"
    )
    parser.add_argument("--rates", default="25%,1000,2000", help="paced: events/s, N%% of drain")
    parser.add_argument("--seconds", type=float, default=30.0, help="paced: measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="paced: seconds not measured")
    parser.add_argument("--request-share", type=float, default=0.1)
    parser.add_argument("--trip-s", type=float, default=2.0, help="paced: match to completion")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-drain", action="store_true", help="paced runs only")
    args = parser.parse_args()
    logs = [kind.strip() for kind in args.logs.split(",") if kind.strip()]
    if not logs or set(logs) - {"file", "kafka"}:
        raise SystemExit(f"--logs {args.logs!r}: file, kafka or both")
    print(machine())
    print(f"load average before: {loadavg()}")
    print(
        f"settings: drivers {args.drivers}, partitions {PARTITIONS}, drain {args.reports} "
        f"reports + {args.requests} requests, paced rates {args.rates} for {args.warmup:g} + "
        f"{args.seconds:g} s, request share {args.request_share:g}, trip {args.trip_s:g} s"
    )
    drains: dict[str, DrainResult] = {}
    if not args.no_drain:
        print(
            "\ndrain (every driver online first; then the backlog written while the worker"
            " drains it, timed from its first record to the last request's match)"
        )
        print(
            "| log | events | s | events/s | MB/s | matched | unmatched "
            "| CPU % worker / broker / bench | worker waiting % | worker us/event |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for kind in logs:
            d = drains[kind] = drain(kind, args)
            print(
                f"| {kind}:// | {d.events:,} | {d.seconds:.2f} | {d.events / d.seconds:,.0f} | "
                f"{d.size / d.seconds / 1e6:.2f} | {d.matched:,} | {d.unmatched:,} | "
                f"{d.usage.cells(d.events)} |",
                flush=True,
            )
    print("\npaced (latency: request sent -> its matches record received, in this process)")
    print(
        "| log | target ev/s | achieved ev/s | MB/s | requests | p50 ms | p99 ms | max ms "
        "| trend | matched | unanswered | CPU % worker / broker / bench | worker waiting % "
        "| worker us/event |"
    )
    print("| --- |" + " ---: |" * 13)
    for kind in logs:
        drain_rate = None
        if kind in drains:
            drain_rate = drains[kind].events / drains[kind].seconds
        for spec in args.rates.split(","):
            rate = rate_of(spec.strip(), drain_rate)
            p = paced(kind, rate, args)
            lat = p.latencies or [math.nan]
            ms = [1000 * percentile(lat, q) for q in (50, 99, 100)]
            label = f"{rate:,.0f}" + (f" ({spec.strip()})" if spec.strip().endswith("%") else "")
            print(
                f"| {kind}:// | {label} | {p.sent / args.seconds:,.0f} | "
                f"{p.size / args.seconds / 1e6:.2f} | {len(p.latencies):,} | {ms[0]:.1f} | "
                f"{ms[1]:.1f} | {ms[2]:.1f} | {trend(p):.1f} | "
                f"{p.matched / max(len(p.latencies), 1):.0%} | {p.unanswered} | "
                f"{p.usage.cells(p.sent)} |",
                flush=True,
            )
            if p.duplicates:
                print(f"  !! {p.duplicates} requests answered more than once")
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
