"""Events/s the ride ETA app sustains in one worker on file:// (a backlog drained).

    .venv/bin/python benchmarks/bench_eta.py [--drivers 2000] [--requests 5000] [--reports 40000]

Writes a backlog of driver reports and ride requests (seeded, in event-time order, in a
grid city) to a fresh file:// log, then starts ``streamlog worker apps/eta_matching/app.py``
on it and times until every request has its ``matches`` record. Reports input events/s
(reports + requests) over that time, which includes the worker's start-up. The backlog
creates the input topics with the log's default partition count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from apps.eta_matching.city import City  # noqa: E402
from apps.eta_matching.summary import read_all  # noqa: E402
from streamlog import connect  # noqa: E402


async def write_backlog(url: str, drivers: int, reports: int, requests: int, seed: int) -> int:
    rng, city = random.Random(seed), City()
    transport = await connect(url)
    producer = transport.producer(client_id="bench-eta")
    t0 = time.time() - 600
    n_events = reports + requests
    positions = [city.random_corner(rng) for _ in range(drivers)]
    r = 0
    for i in range(n_events):
        ts = t0 + i * (500 / n_events)
        if rng.random() < requests / n_events and r < requests:
            (plat, plon), (dlat, dlon) = (city.latlon(*city.random_corner(rng)) for _ in range(2))
            value = {
                "request_id": f"q{r}",
                "rider_id": "x",
                "pickup_lat": plat,
                "pickup_lon": plon,
                "dropoff_lat": dlat,
                "dropoff_lon": dlon,
                "ts": ts,
            }
            topic, key = "ride_requests", f"q{r}"
            r += 1
        else:
            d = rng.randrange(drivers)
            x, y = positions[d]
            positions[d] = (min(city.width_km, max(0.0, x + rng.uniform(-0.1, 0.1))), y)
            lat, lon = city.latlon(*positions[d])
            value = {"driver_id": f"d{d}", "lat": lat, "lon": lon, "status": "available", "ts": ts}
            topic, key = "driver_locations", f"d{d}"
        await producer.send(
            topic, json.dumps(value).encode(), key=key.encode(), timestamp_ms=round(ts * 1000)
        )
    await producer.flush()
    await producer.close()
    await transport.close()
    return r


async def count_matches(url: str) -> int:
    transport = await connect(url)
    try:
        return len(await read_all(transport, "matches"))
    finally:
        await transport.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drivers", type=int, default=2000)
    parser.add_argument("--reports", type=int, default=40000)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"file://{tmp}/log"
        sent = asyncio.run(write_backlog(url, args.drivers, args.reports, args.requests, 1))
        env = {**os.environ, "PYTHONPATH": ROOT}
        log = open(os.path.join(tmp, "worker.log"), "wb")
        start = time.monotonic()
        worker = subprocess.Popen(
            [
                os.path.join(ROOT, ".venv/bin/streamlog"),
                "worker",
                os.path.join(ROOT, "apps/eta_matching/app.py"),
                "--broker",
                url,
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=log,
            stderr=log,
            env=env,
        )
        try:
            listener = os.path.join(tmp, "log", ".listener")
            while not os.path.exists(listener):
                time.sleep(0.1)
            kafka = "kafka://" + open(listener).read().strip()
            while (n := asyncio.run(count_matches(kafka))) < sent:
                time.sleep(0.5)
            elapsed = time.monotonic() - start
        finally:
            worker.terminate()
            worker.wait(30)
    events = args.reports + sent
    print(
        f"{events} events ({sent} requests, {args.drivers} drivers) in {elapsed:.1f} s "
        f"(worker start included): {events / elapsed:,.0f} events/s, {n} matches"
    )


if __name__ == "__main__":
    main()
