"""The app on streamlog's tables answers exactly as the rules do on plain dicts.

The same seeded events (driver reports, requests, completions in one region) go through
the real app (in-process, ``memory://``: its changelogged tables, hopping-window tables
for speed and demand, the tumbling table of answers) and through the router and dispatcher
on dicts with in-memory windows (``MemoryAreaWindows``, the hand-checked rules of
test_rules.py). Every ``matches`` value must be equal, field by field: the windowed tables
give the same speeds and surge as the reference windows."""

from __future__ import annotations

import random
import time
from typing import Any

from apps.eta_matching import geo
from apps.eta_matching.app import build_app
from apps.eta_matching.routing import DriverRouter
from tests.apps.eta_matching.test_rules import KM_LAT, LAT, LON, new_dispatcher, request
from tests.dsl.helpers import run, wait_for

# recent (the log's retention would delete older records), on a whole minute
T0 = (int(time.time()) // 3600 - 2) * 3600.0
KM_LON = KM_LAT / 0.61  # degrees of longitude per km at Berlin's latitude


def seeded_events(n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(topic, value) in event-time order: 25 drivers moving in a 6 km square."""
    rng = random.Random(seed)
    drivers = {f"d{i:02}": [rng.uniform(0, 6), rng.uniform(0, 6)] for i in range(25)}
    events: list[tuple[str, dict[str, Any]]] = []
    ts_ms = int(T0 * 1000)
    claimed: list[tuple[str, str]] = []
    for i in range(n):
        ts_ms += rng.randrange(500, 4000)
        ts = ts_ms / 1000
        roll = rng.random()
        if roll < 0.15:
            x, y = rng.uniform(0, 6), rng.uniform(0, 6)
            value = request(f"q{i:03}", ts, LAT + y * KM_LAT, LON + x * KM_LON)
            value["dropoff_lat"] = LAT + rng.uniform(0, 6) * KM_LAT
            events.append(("ride_requests", value))
        elif roll < 0.2 and claimed:
            driver_id, request_id = claimed.pop(0)
            events.append(
                ("trips_completed", {"request_id": request_id, "driver_id": driver_id, "ts": ts})
            )
        else:
            driver_id = rng.choice(sorted(drivers))
            pos = drivers[driver_id]
            pos[0] = min(6.0, max(0.0, pos[0] + rng.uniform(-0.6, 0.6)))
            status = rng.choices(["available", "busy", "offline"], [0.8, 0.1, 0.1])[0]
            value = {
                "driver_id": driver_id,
                "lat": LAT + pos[1] * KM_LAT,
                "lon": LON + pos[0] * KM_LON,
                "status": status,
                "ts": ts,
            }
            events.append(("driver_locations", value))
        if events[-1][0] == "ride_requests":
            claimed.append((f"d{rng.randrange(25):02}", f"q{i:03}"))
    return events


def reference_answers(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    router, dispatcher = DriverRouter({}), new_dispatcher()
    answers: list[dict[str, Any]] = []
    for topic, value in events:
        if topic == "ride_requests":
            region = geo.region_of(value["pickup_lat"], value["pickup_lon"])
            out = [(region, {"kind": "request", "request": value})]
        elif topic == "driver_locations":
            out = router.location(value)
        else:
            out = router.completed(value)
        while out:
            region, event = out.pop(0)
            out += dispatcher.handle(region, event, answers.append)
    return answers


def test_the_app_on_tables_answers_as_the_rules_on_dicts():
    events = seeded_events(260, seed=21)
    regions = {
        geo.region_of(v["pickup_lat"] if t == "ride_requests" else v["lat"], v.get("lon", LON))
        for t, v in events
        if t != "trips_completed"
    }
    assert len(regions) == 1  # one region: no hand-off changes the order of events
    expected = reference_answers(events)
    assert 20 < len(expected) and sum(1 for m in expected if m["driver_id"]) > 10
    speeds = {m["pickup_eta_s"] / m["distance_km"] for m in expected if m["distance_km"]}
    assert len(speeds) > 3  # the windows moved the speeds off the 25 km/h default

    app = build_app(broker="memory://", partitions=1, app_id="eta-ref", store="memory://")
    got: list[dict[str, Any]] = []

    @app.agent(app.topic("matches", value_type=dict))
    async def collect(stream: Any) -> None:
        async for value in stream:
            got.append(value)

    owners = app.tables["eta-driver-owners"]
    fleet_drivers = app.tables["eta-fleet-drivers"]
    topics = {
        name: app.topic(name, value_type=dict)
        for name in ("driver_locations", "ride_requests", "trips_completed")
    }
    router = DriverRouter({})  # numbers the drivers' events as the app's router does
    region = next(iter(regions))

    async def main() -> None:
        async with app:
            for topic, value in events:
                key = value.get("driver_id") or value["request_id"]
                await topics[topic].send(key=key, value=value, timestamp=value["ts"])
                if topic == "ride_requests":
                    n = len(got) + 1
                    await wait_for(lambda n=n: len(got) >= n)
                    continue
                out = (router.location if topic == "driver_locations" else router.completed)(value)
                if not out:
                    continue
                seq = router.owners[value["driver_id"]]["seq"]
                row_key = f"{region}|{value['driver_id']}"
                # applied by the router and then by the fleet, before the next event
                await wait_for(
                    lambda seq=seq, row_key=row_key, d=value["driver_id"]: (
                        (owners.get(d) or {}).get("seq") == seq
                        and (fleet_drivers.get(row_key) or {}).get("seq") == seq
                    )
                )

    run(main(), timeout=120)
    assert got == expected
