"""Traffic for the ETA app: drivers driving a grid city, riders requesting trips.

``python -m apps.eta_matching.generate --rate R --duration S --seed N --broker URL``

Every second of the run (event time = wall-clock time, so the app's 2-minute staleness
rule means what it says) each driver moves along the streets and reports every few
seconds; riders request at ``R`` per second on average. The generator reads ``matches``:
a matched driver drives to the pickup and then the drop-off, reporting ``busy``, and a
``trips_completed`` follows at the drop-off. The drivers' speeds, starting corners,
offline spells and every request are drawn from ``--seed``; which driver takes which trip
depends on the app's answers. At the end it prints a JSON summary of what it sent and saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from apps.eta_matching.city import City, step_along
from streamlog import connect
from streamlog.transport.base import Transport
from streamlog.transport.errors import UnknownTopicError
from streamlog.transport.types import TopicPartition

REPORT_EVERY_S = 4
APP_WAIT_S = 60.0  # how long to wait for the app to create its topics


class AppNotRunningError(RuntimeError):
    """The app's topics do not exist: no worker of the app ran on this broker."""


@dataclass
class SimDriver:
    driver_id: str
    position: tuple[float, float]
    speed_kmh: float
    route: list[tuple[float, float]] = field(default_factory=list)
    trip: dict[str, Any] | None = None  # the match being driven
    leg: str = "cruise"  # cruise, to_pickup, to_dropoff
    offline_until: float = 0.0


async def open_broker(url: str, wait_for_worker: float = 0.0) -> Transport:
    """The transport for ``url``; a ``file://`` directory a worker holds is reached through
    the worker's Kafka listener (its address in ``DATA_DIR/.listener``)."""
    return await connect(url, wait_for_worker=wait_for_worker)


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed)
        self.city = City()
        self.rate = args.rate
        self.duration = args.duration
        self.scale = max(1, int(args.time_scale))  # event-time seconds per wall second
        self.prefix = args.topic_prefix
        self.drivers = [
            SimDriver(
                f"driver-{i:04d}",
                self.city.random_corner(self.rng),
                self.rng.uniform(18.0, 40.0),
            )
            for i in range(args.drivers)
        ]
        self.by_id = {d.driver_id: d for d in self.drivers}
        self.sent = {"driver_locations": 0, "ride_requests": 0, "trips_completed": 0}
        self.matched = 0
        self.unmatched = 0
        self.next_request = 0
        # requests sent and not answered yet: where to drive when a match names a driver
        self.pending: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        self.said_waiting = False

    async def run(self, transport: Transport) -> dict[str, Any]:
        producer = transport.producer(client_id="eta-generate")
        consumer = transport.consumer(group_id=None)
        try:
            matches_topic = f"{self.prefix}matches"
            await self._follow(transport, consumer, matches_topic)
            wall = time.time()
            # a faster clock starts in the past so the run ends about now in event time
            start = wall - self.duration * (self.scale - 1)
            for tick in range(int(self.duration)):
                await asyncio.sleep(max(0.0, wall + tick - time.time()))
                await self._tick(producer, start + tick * self.scale, tick)
                await self._read_matches(consumer)
            await producer.flush()
        finally:
            await producer.close()
            await consumer.close()
        return {
            "sent": self.sent,
            "matched_seen": self.matched,
            "unmatched_seen": self.unmatched,
        }

    async def _follow(self, transport: Transport, consumer: Any, topic: str) -> None:
        """Reads ``matches`` from its end. The app creates it: a worker started in the
        background a moment ago may not have yet, so this waits (``APP_WAIT_S``)."""
        admin = transport.admin()
        deadline = time.monotonic() + APP_WAIT_S
        try:
            while True:
                try:
                    info = await admin.describe_topic(topic)
                    break
                except UnknownTopicError:
                    if time.monotonic() >= deadline:
                        raise AppNotRunningError(
                            f"topic {topic!r} does not exist after {APP_WAIT_S:.0f} s: "
                            "start the app (streamlog worker apps/eta_matching/app.py) "
                            "on the same broker first"
                        ) from None
                    if not self.said_waiting:
                        print(f"waiting for the app to create {topic!r} ...", file=sys.stderr)
                        self.said_waiting = True
                    await asyncio.sleep(0.2)
        finally:
            await admin.close()
        tps = [TopicPartition(topic, p.partition) for p in info.partitions]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)

    async def _send(self, producer: Any, topic: str, key: str, value: dict[str, Any]) -> None:
        await producer.send(
            f"{self.prefix}{topic}",
            json.dumps(value).encode(),
            key=key.encode(),
            timestamp_ms=round(value["ts"] * 1000),
        )
        self.sent[topic] += 1

    async def _tick(self, producer: Any, now: float, tick: int) -> None:
        for i, driver in enumerate(self.drivers):
            await self._drive(producer, driver, now)
            if (tick + i) % max(1, REPORT_EVERY_S // self.scale) == 0:
                await self._report(producer, driver, now)
        # requests: a Poisson count per second (Knuth's method, fine for small rates)
        limit, k, p = pow(2.718281828459045, -self.rate), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        for _ in range(k):
            await self._request(producer, now)

    async def _drive(self, producer: Any, driver: SimDriver, now: float) -> None:
        if driver.offline_until > now:
            return
        if (
            driver.trip is None
            and driver.leg == "cruise"
            and self.rng.random() < 0.002 * self.scale
        ):
            driver.offline_until = now + self.rng.uniform(20, 90)
            await self._report(producer, driver, now)
            return
        if not driver.route:
            if driver.leg == "to_pickup" and driver.trip is not None:
                driver.leg = "to_dropoff"
                driver.route = self.city.route(driver.position, driver.trip["dropoff"])
            elif driver.leg == "to_dropoff" and driver.trip is not None:
                trip, driver.trip, driver.leg = driver.trip, None, "cruise"
                await self._send(
                    producer,
                    "trips_completed",
                    driver.driver_id,
                    {"request_id": trip["request_id"], "driver_id": driver.driver_id, "ts": now},
                )
                await self._report(producer, driver, now)
            else:
                driver.route = self.city.route(driver.position, self.city.random_corner(self.rng))
        driver.position, driver.route = step_along(
            driver.position, driver.route, driver.speed_kmh * self.scale / 3600.0
        )

    async def _report(self, producer: Any, driver: SimDriver, now: float) -> None:
        lat, lon = self.city.latlon(*driver.position)
        status = (
            "offline"
            if driver.offline_until > now
            else ("busy" if driver.trip is not None else "available")
        )
        await self._send(
            producer,
            "driver_locations",
            driver.driver_id,
            {"driver_id": driver.driver_id, "lat": lat, "lon": lon, "status": status, "ts": now},
        )

    async def _request(self, producer: Any, now: float) -> None:
        pickup = self.city.random_corner(self.rng)
        dropoff = self.city.corner_near(self.rng, pickup, 3.0)
        request_id = f"req-{self.next_request:06d}"
        self.next_request += 1
        (plat, plon), (dlat, dlon) = self.city.latlon(*pickup), self.city.latlon(*dropoff)
        await self._send(
            producer,
            "ride_requests",
            request_id,
            {
                "request_id": request_id,
                "rider_id": f"rider-{self.rng.randrange(10_000):04d}",
                "pickup_lat": plat,
                "pickup_lon": plon,
                "dropoff_lat": dlat,
                "dropoff_lon": dlon,
                "ts": now,
            },
        )
        self.pending[request_id] = (pickup, dropoff)

    async def _read_matches(self, consumer: Any) -> None:
        for records in (await consumer.getmany(timeout_ms=0)).values():
            for record in records:
                match = json.loads(record.value)
                if match["request_id"] not in self.pending:
                    continue  # a copy of an answer already seen (sent again after a crash)
                where = self.pending.pop(match["request_id"])
                if match.get("driver_id") is None:
                    self.unmatched += 1
                    continue
                self.matched += 1
                driver = self.by_id.get(match["driver_id"])
                if driver is None or where is None:
                    continue
                pickup, dropoff = where
                driver.trip = {"request_id": match["request_id"], "dropoff": dropoff}
                driver.leg = "to_pickup"
                driver.route = self.city.route(driver.position, pickup)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m apps.eta_matching.generate", description=__doc__
    )
    parser.add_argument("--rate", type=float, default=2.0, help="ride requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drivers", type=int, default=60)
    parser.add_argument(
        "--broker",
        default="file://./.streamlog",
        help="file://PATH (a running worker's data dir: reached via its listener) or kafka://HOST:PORT",
    )
    parser.add_argument(
        "--time-scale",
        type=int,
        default=1,
        help="event-time seconds per wall-clock second (trips finish sooner in short runs)",
    )
    parser.add_argument("--topic-prefix", default="", help="prefix of the four topics' names")
    parser.add_argument(
        "--wait-for-worker",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="file://: wait this long for a worker to serve the log before opening it "
        "(one started a moment before in the background); 0: do not wait",
    )
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    generator = Generator(args)
    transport = await open_broker(args.broker, args.wait_for_worker)
    try:
        return await generator.run(transport)
    finally:
        await transport.close()


if __name__ == "__main__":
    try:
        print(json.dumps(asyncio.run(main(sys.argv[1:]))))
    except AppNotRunningError as exc:
        sys.exit(f"error: {exc}")
