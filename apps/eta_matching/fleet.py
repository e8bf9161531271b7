"""One region's drivers: who is available where, claims, and the match for a request.

A ``RegionFleet`` is owned by exactly one worker (the one holding the region's partition
of the internal region topic), so a claim here is a local dict update: no other fleet
holds the same driver at the same time (the hand-off protocol in ``routing.py`` keeps a
driver in one region's fleet at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.eta_matching import geo
from apps.eta_matching.hopping import HoppingSamples
from apps.eta_matching.rules import MatchRules


@dataclass
class Driver:
    driver_id: str
    lat: float
    lon: float
    status: str  # the last status the driver reported
    ts: float  # event time of the last report, s
    claimed_by: str | None = None  # request id while matched, until trips_completed

    def to_json(self) -> dict[str, Any]:
        return {
            "driver_id": self.driver_id,
            "lat": self.lat,
            "lon": self.lon,
            "status": self.status,
            "ts": self.ts,
            "claimed_by": self.claimed_by,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Driver:
        return cls(
            driver_id=str(value["driver_id"]),
            lat=float(value["lat"]),
            lon=float(value["lon"]),
            status=str(value["status"]),
            ts=float(value["ts"]),
            claimed_by=value.get("claimed_by"),
        )


@dataclass
class RegionFleet:
    rules: MatchRules = field(default_factory=MatchRules)
    drivers: dict[str, Driver] = field(default_factory=dict)
    _cells: dict[str, set[str]] = field(default_factory=dict)
    _cell_of: dict[str, str] = field(default_factory=dict)
    _speeds: HoppingSamples | None = None
    _demand: HoppingSamples | None = None

    def __post_init__(self) -> None:
        self._speeds = HoppingSamples(self.rules.window_size_s, self.rules.window_step_s)
        self._demand = HoppingSamples(self.rules.window_size_s, self.rules.window_step_s)

    # -- drivers ---------------------------------------------------------------------

    def join(self, driver: Driver) -> None:
        """Takes ``driver`` into this fleet (a new driver, or one handed over by a region)."""
        self.drivers[driver.driver_id] = driver
        self._index(driver)

    def leave(self, driver_id: str) -> Driver | None:
        """Removes a driver (it moved to another region); its state goes with it."""
        driver = self.drivers.pop(driver_id, None)
        cell = self._cell_of.pop(driver_id, None)
        if cell is not None:
            self._cells[cell].discard(driver_id)
        return driver

    def report(self, driver_id: str, lat: float, lon: float, status: str, ts: float) -> None:
        """A location report: moves the driver, records a speed sample; a claim survives."""
        driver = self.drivers[driver_id]
        if ts < driver.ts:
            return  # an older report than one applied: the newer position stands
        dt = ts - driver.ts
        if dt > 0:
            kmh = geo.haversine_km(driver.lat, driver.lon, lat, lon) / dt * 3600.0
            if self.rules.min_speed_kmh <= kmh <= self.rules.max_speed_kmh:
                self._speed_samples().add(geo.area_of(lat, lon), ts, kmh)
        driver.lat, driver.lon, driver.status, driver.ts = lat, lon, status, ts
        self._index(driver)

    def complete(self, driver_id: str, ts: float) -> None:
        """A trip ended: the driver is available again at its last reported location."""
        driver = self.drivers[driver_id]
        driver.claimed_by = None
        driver.status = "available"
        driver.ts = max(driver.ts, ts)

    def is_available(self, driver: Driver, now: float) -> bool:
        return (
            driver.claimed_by is None
            and driver.status == "available"
            and now - driver.ts <= self.rules.stale_after_s
        )

    # -- requests --------------------------------------------------------------------

    def match(self, request: dict[str, Any]) -> dict[str, Any]:
        """The one ``matches`` value for ``request``; claims the driver it names."""
        now = float(request["ts"])
        plat, plon = float(request["pickup_lat"]), float(request["pickup_lon"])
        dlat, dlon = float(request["dropoff_lat"]), float(request["dropoff_lon"])
        pickup_area = geo.area_of(plat, plon)
        self._demand_samples().add(pickup_area, now, 1.0)
        surge = self.surge(pickup_area, now)
        best: tuple[float, str] | None = None
        for cell in geo.cells_around(plat, plon, geo.rings_for(self.rules.max_pickup_km)):
            for driver_id in self._cells.get(cell, ()):
                driver = self.drivers[driver_id]
                if not self.is_available(driver, now):
                    continue
                km = geo.haversine_km(plat, plon, driver.lat, driver.lon)
                if km <= self.rules.max_pickup_km and (best is None or (km, driver_id) < best):
                    best = (km, driver_id)
        value: dict[str, Any] = {
            "request_id": request["request_id"],
            "driver_id": None,
            "distance_km": None,
            "pickup_eta_s": None,
            "trip_eta_s": None,
            "surge": surge,
            "ts": now,
        }
        if best is None:
            value["reason"] = "no_driver_within_radius" if self.drivers else "no_drivers_in_region"
            return value
        km, driver_id = best
        driver = self.drivers[driver_id]
        driver.claimed_by = str(request["request_id"])
        # when the claim took effect in event time: a request can wait in the log while
        # the driver finishes a trip that ends after the request was made
        value["claimed_ts"] = max(now, driver.ts)
        trip_km = geo.haversine_km(plat, plon, dlat, dlon)
        trip_speed = (
            self.speed_kmh(pickup_area, now) + self.speed_kmh(geo.area_of(dlat, dlon), now)
        ) / 2
        value.update(
            driver_id=driver_id,
            distance_km=round(km, 3),
            pickup_eta_s=round(km / self.speed_kmh(pickup_area, now) * 3600.0, 1),
            trip_eta_s=round(trip_km / trip_speed * 3600.0, 1),
        )
        return value

    # -- speeds and surge --------------------------------------------------------------

    def speed_kmh(self, area: str, now: float) -> float:
        """Mean speed of moving drivers in ``area`` over the current hopping window."""
        samples = self._speed_samples().values(area, now)
        return sum(samples) / len(samples) if samples else self.rules.default_speed_kmh

    def supply(self, area: str, now: float) -> int:
        """Available drivers in ``area`` now (a walk of the area's cells, not the fleet)."""
        return sum(
            1
            for cell in geo.area_cells(area)
            for driver_id in self._cells.get(cell, ())
            if self.is_available(self.drivers[driver_id], now)
        )

    def surge(self, area: str, now: float) -> float:
        """clamp(demand / max(supply, 1), 1.0, 3.0) rounded to 0.1; demand in the window."""
        demand = len(self._demand_samples().values(area, now))
        ratio = demand / max(self.supply(area, now), 1)
        return round(min(self.rules.surge_max, max(self.rules.surge_min, ratio)), 1)

    def areas(self) -> list[str]:
        return sorted(set(self._demand_samples().areas()) | set(self._speed_samples().areas()))

    # -- internals -----------------------------------------------------------------------

    def _index(self, driver: Driver) -> None:
        cell = geo.search_cell(driver.lat, driver.lon)
        old = self._cell_of.get(driver.driver_id)
        if old == cell:
            return
        if old is not None:
            self._cells[old].discard(driver.driver_id)
        self._cells.setdefault(cell, set()).add(driver.driver_id)
        self._cell_of[driver.driver_id] = cell

    def _speed_samples(self) -> HoppingSamples:
        if self._speeds is None:  # set by __post_init__; a dataclass field cannot say so
            raise RuntimeError("fleet not initialised")
        return self._speeds

    def _demand_samples(self) -> HoppingSamples:
        if self._demand is None:
            raise RuntimeError("fleet not initialised")
        return self._demand
