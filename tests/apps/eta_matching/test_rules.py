"""Hand-built scenarios for each matching rule, on the fleets and router themselves."""

from __future__ import annotations

import random

import pytest

from apps.eta_matching import geo
from apps.eta_matching.answers import MemoryAnswers
from apps.eta_matching.fleet import Driver, RegionFleet
from apps.eta_matching.routing import DriverRouter, RegionDispatcher
from apps.eta_matching.rules import MatchRules
from apps.eta_matching.windows import MemoryAreaWindows

LAT, LON = 52.52, 13.40  # Berlin
T = 1_700_000_000.0
KM_LAT = 1 / 111.2  # degrees of latitude per km


def request(rid: str, ts: float = T, lat: float = LAT, lon: float = LON) -> dict:
    return {
        "request_id": rid,
        "rider_id": "r" + rid,
        "pickup_lat": lat,
        "pickup_lon": lon,
        "dropoff_lat": lat + 3 * KM_LAT,
        "dropoff_lon": lon,
        "ts": ts,
    }


def new_dispatcher() -> RegionDispatcher:
    """A dispatcher on dicts (the app gives it changelogged tables)."""
    return RegionDispatcher(
        MatchRules(),
        drivers={},
        cells={},
        regions={},
        waiting={},
        answers=MemoryAnswers(),
        windows=MemoryAreaWindows(),
    )


def new_fleet() -> RegionFleet:
    return new_dispatcher().fleet(geo.region_of(LAT, LON))


def fleet_with(*drivers: tuple[str, float, str, float]) -> RegionFleet:
    """Drivers (id, km north of the pickup, status, report ts)."""
    fleet = new_fleet()
    for driver_id, km, status, ts in drivers:
        fleet.join(Driver(driver_id, LAT + km * KM_LAT, LON, status, ts))
    return fleet


def test_nearest_available_driver_is_matched_and_claimed():
    fleet = fleet_with(("d1", 2.0, "available", T), ("d2", 1.0, "available", T))
    m = fleet.match(request("q1"))
    assert m["driver_id"] == "d2"
    assert abs(m["distance_km"] - 1.0) < 0.01
    # default speed 25 km/h: 1 km takes 144 s; the 3 km trip 432 s
    assert abs(m["pickup_eta_s"] - 144) < 2 and abs(m["trip_eta_s"] - 432) < 3
    assert fleet.driver("d2").claimed_by == "q1"
    # the claimed driver is never matched again: the next request gets d1
    assert fleet.match(request("q2"))["driver_id"] == "d1"
    third = fleet.match(request("q3"))
    assert third["driver_id"] is None and third["reason"] == "no_driver_within_radius"


def test_ties_go_to_the_smaller_driver_id():
    fleet = new_fleet()
    fleet.join(Driver("b", LAT + KM_LAT, LON, "available", T))
    fleet.join(Driver("a", LAT - KM_LAT, LON, "available", T))  # same distance, south
    m = fleet.match(request("q"))
    assert m["driver_id"] == "a"


def test_beyond_five_km_offline_busy_and_stale_drivers_are_not_matched():
    fleet = fleet_with(
        ("far", 5.2, "available", T),
        ("off", 0.5, "offline", T),
        ("busy", 0.5, "busy", T),
        ("stale", 0.5, "available", T - 121),
        ("fresh", 4.9, "available", T - 119),
    )
    m = fleet.match(request("q"))
    assert m["driver_id"] == "fresh"
    assert fleet.match(request("q2"))["driver_id"] is None


def test_a_claimed_driver_stays_busy_whatever_it_reports_until_its_trip_completes():
    fleet = fleet_with(("d", 1.0, "available", T))
    assert fleet.match(request("q1"))["driver_id"] == "d"
    fleet.report("d", LAT + 0.5 * KM_LAT, LON, "available", T + 10)
    assert fleet.match(request("q2", T + 11))["driver_id"] is None
    fleet.complete("d", T + 20)
    m = fleet.match(request("q3", T + 21))
    # available again at its last reported location
    assert m["driver_id"] == "d" and abs(m["distance_km"] - 0.5) < 0.01


def test_speed_window_sets_the_eta_and_waiting_samples_are_left_out():
    fleet = fleet_with(("d", 0.0, "available", T), ("w", 3.0, "available", T))
    # d drives 1 km north in 60 s: 60 km/h, in the pickup's area
    fleet.report("d", LAT + 1 * KM_LAT, LON, "available", T + 60)
    # w moves 10 m in 60 s: 0.6 km/h, a waiting driver, left out
    fleet.report("w", LAT + 3.01 * KM_LAT, LON, "available", T + 60)
    area = geo.area_of(LAT, LON)
    assert abs(fleet.speed_kmh(area, T + 61) - 60.0) < 0.5
    m = fleet.match(request("q", T + 61))
    assert m["driver_id"] == "d"
    assert abs(m["pickup_eta_s"] - 60.0) < 1.5  # 1 km at 60 km/h
    # ten minutes later the sample has left the hopping window: back to 25 km/h
    assert fleet.speed_kmh(area, T + 660) == 25.0


def test_surge_is_demand_over_supply_clamped_and_rounded():
    fleet = fleet_with(("d1", 0.3, "available", T), ("d2", 0.4, "available", T))
    surges = [fleet.match(request(f"q{i}", T + i))["surge"] for i in range(6)]
    # demand counts this request too; supply is the available drivers left in the area
    # q0: 1/2 -> 1.0; q1: 2/1 -> 2.0; q2..: 3/0 -> 3.0 clamp
    assert surges == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("fleet_size", [400, 25])  # dense: stops early; sparse: all rings
def test_ring_search_finds_exactly_the_drivers_a_full_scan_finds(fleet_size):
    rng = random.Random(7)
    fleet = new_fleet()
    for i in range(fleet_size):
        fleet.join(
            Driver(
                f"d{i:03}",
                LAT + rng.uniform(-0.08, 0.08),
                LON + rng.uniform(-0.12, 0.12),
                "available",
                T,
            )
        )
    for i in range(60):
        lat, lon = LAT + rng.uniform(-0.06, 0.06), LON + rng.uniform(-0.1, 0.1)
        free = [
            d for d in (fleet.driver(f"d{j:03}") for j in range(fleet_size)) if d.claimed_by is None
        ]
        expected = min(
            ((geo.haversine_km(lat, lon, d.lat, d.lon), d.driver_id) for d in free),
            default=None,
        )
        m = fleet.match(request(f"q{i}", lat=lat, lon=lon))
        want = expected[1] if expected and expected[0] <= 5.0 else None
        assert m["driver_id"] == want


def test_a_driver_crossing_regions_is_held_by_one_fleet_and_keeps_its_claim():
    router, dispatcher = DriverRouter({}), new_dispatcher()
    matches: list[dict] = []
    a_lat, b_lat = LAT, LAT + 0.5  # ~55 km apart: different res-4 regions
    region_a, region_b = geo.region_of(a_lat, LON), geo.region_of(b_lat, LON)
    assert region_a != region_b

    def deliver(outbox, reorder=False):
        pending = list(outbox)
        while pending:
            region, event = pending.pop(-1 if reorder else 0)
            pending.extend(dispatcher.handle(region, event, matches.append))

    deliver(
        router.location(
            {"driver_id": "d", "lat": a_lat, "lon": LON, "status": "available", "ts": T}
        )
    )
    deliver([(region_a, {"kind": "request", "request": request("q1", T + 1, a_lat)})])
    assert matches[-1]["driver_id"] == "d"
    # the driver drives into region B while on the trip, reporting "available"
    leave = router.location(
        {"driver_id": "d", "lat": b_lat, "lon": LON, "status": "available", "ts": T + 60}
    )
    report = router.location(
        {"driver_id": "d", "lat": b_lat, "lon": LON, "status": "available", "ts": T + 70}
    )
    assert leave[0][0] == region_a and report[0][0] == region_b
    # B sees the later report before A's hand-off reaches it: B waits for the join
    deliver(report)
    assert dispatcher.fleet(region_b).driver("d") is None
    deliver(leave)
    assert dispatcher.fleet(region_a).driver("d") is None
    held = dispatcher.fleet(region_b).driver("d")
    assert held.claimed_by == "q1" and held.ts == T + 70
    deliver([(region_b, {"kind": "request", "request": request("q2", T + 71, b_lat)})])
    assert matches[-1]["driver_id"] is None  # still busy with q1
    deliver(router.completed({"request_id": "q1", "driver_id": "d", "ts": T + 80}))
    deliver([(region_b, {"kind": "request", "request": request("q3", T + 81, b_lat)})])
    assert matches[-1]["driver_id"] == "d"
    assert [m["request_id"] for m in matches] == ["q1", "q2", "q3"]


def test_a_request_sent_twice_is_answered_once():
    router, dispatcher = DriverRouter({}), new_dispatcher()
    matches: list[dict] = []
    region = geo.region_of(LAT, LON)
    for region_key, event in router.location(
        {"driver_id": "d", "lat": LAT, "lon": LON, "status": "available", "ts": T}
    ):
        dispatcher.handle(region_key, event, matches.append)
    for _ in range(2):
        dispatcher.handle(
            region, {"kind": "request", "request": request("q", T + 1)}, matches.append
        )
    assert [(m["request_id"], m["driver_id"]) for m in matches] == [("q", "d")]


def test_bad_inputs_are_refused_with_a_clear_error():
    import pytest

    from apps.eta_matching.app import _request_of
    from apps.eta_matching.routing import BadEventError

    router = DriverRouter({})
    good = {"driver_id": "d", "lat": LAT, "lon": LON, "status": "available", "ts": T}
    for bad in (
        {**good, "status": "sleeping"},
        {**good, "lat": float("nan")},
        {**good, "lon": 500},
        {k: v for k, v in good.items() if k != "ts"},
        {**good, "lat": "north"},
    ):
        with pytest.raises(BadEventError):
            router.location(bad)
    assert router.owners == {}  # nothing was half-applied
    with pytest.raises(BadEventError):
        _request_of({**request("q"), "pickup_lat": float("inf")})
    with pytest.raises(BadEventError):
        _request_of({"request_id": "q"})
    assert _request_of(request("q"))["pickup_lat"] == LAT


def test_a_request_that_waited_for_a_trip_to_end_is_claimed_at_the_trip_end():
    fleet = fleet_with(("d", 1.0, "available", T))
    first = fleet.match(request("q1", T + 1))
    assert first["claimed_ts"] == T + 1
    fleet.complete("d", T + 20)
    # made at T + 15, processed after the completion at T + 20
    late = fleet.match(request("q2", T + 15))
    assert late["driver_id"] == "d" and late["ts"] == T + 15 and late["claimed_ts"] == T + 20


def test_events_delivered_again_after_a_crash_change_nothing():
    router, dispatcher = DriverRouter({}), new_dispatcher()
    matches: list[dict] = []
    a_lat, b_lat = LAT, LAT + 0.5
    region_a, region_b = geo.region_of(a_lat, LON), geo.region_of(b_lat, LON)

    def deliver(outbox, at=None):
        for region, event in outbox:
            dispatcher.handle(region, event, matches.append, at)

    loc = {"driver_id": "d", "lat": a_lat, "lon": LON, "status": "available", "ts": T}
    joined = router.location(loc, (0, 10))
    # the router's input delivered again: the same events (the first may be lost), and
    # an older input of the same partition sends nothing
    assert router.location(loc, (0, 10)) == joined
    deliver(joined)
    deliver(joined)  # the region skips a sequence number it applied
    assert dispatcher.fleet(region_a).held_count() == 1
    deliver([(region_a, {"kind": "request", "request": request("q1", T + 1, a_lat)})], (3, 7))
    assert [m["driver_id"] for m in matches] == ["d"]
    # the same request record again: its stored answer again, identical
    deliver([(region_a, {"kind": "request", "request": request("q1", T + 1, a_lat)})], (3, 7))
    assert matches[1] == matches[0]
    # another copy of the request (another offset): nothing, the answer stands
    deliver([(region_a, {"kind": "request", "request": request("q1", T + 1, a_lat)})], (3, 9))
    assert len(matches) == 2
    leave = router.location({**loc, "lat": b_lat, "ts": T + 60}, (0, 11))
    assert router.location({**loc, "ts": T + 5}, (0, 9)) == []  # older than applied
    handoff = []
    for region, event in leave:
        handoff += dispatcher.handle(region, event, matches.append)
    # the leave again after the hand-off: skipped, not queued waiting for the driver
    for region, event in leave:
        assert dispatcher.handle(region, event, matches.append) == []
    assert dispatcher.waiting == {}
    deliver(handoff)
    deliver(handoff)  # a join delivered twice installs the driver once
    held = dispatcher.fleet(region_b).driver("d")
    assert held.claimed_by == "q1" and dispatcher.fleet(region_b).held_count() == 1
    assert dispatcher.fleet(region_a).held_count() == 0
    # a completion of another trip (an old one, delivered again) does not free it
    deliver(router.completed({"request_id": "q0", "driver_id": "d", "ts": T + 61}))
    assert dispatcher.fleet(region_b).driver("d").claimed_by == "q1"
    deliver(router.completed({"request_id": "q1", "driver_id": "d", "ts": T + 62}))
    assert dispatcher.fleet(region_b).driver("d").claimed_by is None
