"""One region's drivers: who is available where, claims, and the match for a request.

A ``RegionFleet`` is owned by exactly one worker (the one holding the region's partition
of the internal region topic), so a claim here is a local update: no other fleet holds
the same driver at the same time (the hand-off protocol in ``routing.py`` keeps a driver
in one region's fleet at a time).

The fleet keeps nothing in memory: every driver, the h3 cell index and the per-area
windows live in the stores it is given (in the app, changelogged tables, so a worker
that takes the region over after a restart or a rebalance finds them; in the rule tests,
dicts). Keys carry the region, as several regions can share a table partition:

* ``drivers["<region>|<driver id>"]``: the driver (``Driver.to_json``), or, after it
  left for another region, ``{"left": true, "seq": n}`` so a re-delivered event from
  before the hand-off is recognised as one;
* ``cells["<region>|<h3 cell>"]``: the sorted ids of the region's drivers in that cell;
* ``regions["<region>"]``: how many drivers the region holds and the areas it has seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from apps.eta_matching import geo
from apps.eta_matching.rules import MatchRules


class Rows(Protocol):
    """What the fleet needs of a store: a table or a dict."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def __contains__(self, key: object) -> bool: ...

    def __delitem__(self, key: str) -> None: ...


class AreaWindows(Protocol):
    """Per-area hopping windows of speed samples and request counts (``windows.py``)."""

    def add_speed(self, area: str, ts: float, kmh: float) -> None: ...

    def add_demand(self, area: str, ts: float) -> None: ...

    def speed(self, area: str, now: float) -> tuple[float, int]:
        """(sum of km/h samples, sample count) in the window reported at ``now``."""
        ...

    def demand(self, area: str, now: float) -> int: ...


@dataclass
class Driver:
    driver_id: str
    lat: float
    lon: float
    status: str  # the last status the driver reported
    ts: float  # event time of the last report, s
    claimed_by: str | None = None  # request id while matched, until trips_completed
    seq: int = 0  # the router's number of the last event applied (routing.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "driver_id": self.driver_id,
            "lat": self.lat,
            "lon": self.lon,
            "status": self.status,
            "ts": self.ts,
            "claimed_by": self.claimed_by,
            "seq": self.seq,
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
            seq=int(value.get("seq", 0)),
        )


def _index_cell(driver: Driver) -> str | None:
    """The search cell a driver is indexed in: only one that a request could take (not
    claimed, last reported ``available``; staleness is checked when reading)."""
    if driver.claimed_by is not None or driver.status != "available":
        return None
    return geo.search_cell(driver.lat, driver.lon)


class RegionFleet:
    """The drivers of one region, read from and written to the stores on every call."""

    def __init__(
        self,
        region: str,
        rules: MatchRules,
        *,
        drivers: Rows,
        cells: Rows,
        regions: Rows,
        windows: AreaWindows,
    ) -> None:
        self.region = region
        self.rules = rules
        self._drivers = drivers
        self._cells = cells
        self._regions = regions
        self._windows = windows

    # -- drivers ---------------------------------------------------------------------

    def driver(self, driver_id: str) -> Driver | None:
        """The driver if this region holds it now (not one that left)."""
        row = self._drivers.get(self._key(driver_id))
        if row is None or row.get("left"):
            return None
        return Driver.from_json(row)

    def last_seq(self, driver_id: str) -> int | None:
        """The router number of the last event applied for ``driver_id`` here (also after
        it left), or None for a driver this region never held."""
        row = self._drivers.get(self._key(driver_id))
        return None if row is None else int(row.get("seq", 0))

    def join(self, driver: Driver) -> None:
        """Takes ``driver`` into this fleet (a new driver, or one handed over by a region)."""
        before = self.driver(driver.driver_id)
        if before is None:
            self._count_driver(+1)
        self._store(driver, before)

    def leave(self, driver_id: str, seq: int) -> Driver | None:
        """Removes a driver (it moved to another region); its state goes with it."""
        driver = self.driver(driver_id)
        if driver is None:
            return None
        cell = _index_cell(driver)
        if cell is not None:
            self._unindex(driver_id, cell)
        if driver.claimed_by is not None:  # the claim goes with the driver
            self._forget_claim(driver.claimed_by)
        self._drivers[self._key(driver_id)] = {"left": True, "seq": seq}
        self._count_driver(-1)
        driver.seq = seq
        return driver

    def report(
        self, driver_id: str, lat: float, lon: float, status: str, ts: float, seq: int = 0
    ) -> None:
        """A location report: moves the driver, records a speed sample; a claim survives."""
        before = self.driver(driver_id)
        if before is None:
            raise KeyError(driver_id)
        driver = Driver(**vars(before))
        driver.seq = max(driver.seq, seq)
        if ts < driver.ts:
            self._store(driver, before)
            return  # an older report than one applied: the newer position stands
        dt = ts - driver.ts
        if dt > 0:
            kmh = geo.haversine_km(driver.lat, driver.lon, lat, lon) / dt * 3600.0
            if self.rules.min_speed_kmh <= kmh <= self.rules.max_speed_kmh:
                area = geo.area_of(lat, lon)
                self._note_area(area)
                self._windows.add_speed(area, ts, kmh)
        driver.lat, driver.lon, driver.status, driver.ts = lat, lon, status, ts
        self._store(driver, before)

    def complete(
        self, driver_id: str, ts: float, request_id: str | None = None, seq: int = 0
    ) -> None:
        """A trip ended: the driver is available again at its last reported location.

        With ``request_id``, only the trip the driver is claimed for ends it: a completion
        delivered again after a crash cannot free a driver claimed since.
        """
        before = self.driver(driver_id)
        if before is None:
            raise KeyError(driver_id)
        driver = Driver(**vars(before))
        driver.seq = max(driver.seq, seq)
        if driver.claimed_by is not None and request_id in (None, driver.claimed_by):
            self._forget_claim(driver.claimed_by)
            driver.claimed_by = None
            driver.status = "available"
            driver.ts = max(driver.ts, ts)
        self._store(driver, before)

    def is_available(self, driver: Driver, now: float) -> bool:
        return (
            driver.claimed_by is None
            and driver.status == "available"
            and now - driver.ts <= self.rules.stale_after_s
        )

    def held_count(self) -> int:
        return int((self._regions.get(self.region) or {}).get("drivers", 0))

    def areas(self) -> list[str]:
        return sorted((self._regions.get(self.region) or {}).get("areas", []))

    # -- requests --------------------------------------------------------------------

    def match(self, request: dict[str, Any]) -> dict[str, Any]:
        """The one ``matches`` value for ``request``; claims the driver it names."""
        now = float(request["ts"])
        request_id = str(request["request_id"])
        plat, plon = float(request["pickup_lat"]), float(request["pickup_lon"])
        dlat, dlon = float(request["dropoff_lat"]), float(request["dropoff_lon"])
        pickup_area = geo.area_of(plat, plon)
        self._note_area(pickup_area)
        self._windows.add_demand(pickup_area, now)
        surge = self.surge(pickup_area, now)
        best: tuple[float, str] | None = None
        best_driver: Driver | None = None
        claimed = self._claimed_for(request_id)
        if claimed is not None:  # processed again after a crash kept the claim, not the answer
            km = geo.haversine_km(plat, plon, claimed.lat, claimed.lon)
            best, best_driver = (km, claimed.driver_id), claimed
        # ring by ring outwards, stopping once no farther ring can hold a nearer driver
        for ring in range(geo.rings_for(self.rules.max_pickup_km) + 1):
            if claimed is not None or (
                best is not None and best[0] < geo.nearer_than_ring_km(ring)
            ):
                break
            for cell in geo.ring_cells(plat, plon, ring):
                if best is not None:
                    clat, clon, reach = geo.cell_reach(cell)
                    if geo.haversine_km(plat, plon, clat, clon) - reach > best[0]:
                        continue  # no point of this cell is nearer than the best so far
                for driver in self._drivers_in(cell):
                    if not self.is_available(driver, now):
                        continue
                    km = geo.haversine_km(plat, plon, driver.lat, driver.lon)
                    if km <= self.rules.max_pickup_km and (
                        best is None or (km, driver.driver_id) < best
                    ):
                        best, best_driver = (km, driver.driver_id), driver
        value: dict[str, Any] = {
            "request_id": request_id,
            "driver_id": None,
            "distance_km": None,
            "pickup_eta_s": None,
            "trip_eta_s": None,
            "surge": surge,
            "ts": now,
        }
        if best is None or best_driver is None:
            value["reason"] = (
                "no_driver_within_radius" if self.held_count() else "no_drivers_in_region"
            )
            return value
        km, driver_id = best
        driver = Driver(**vars(best_driver))
        driver.claimed_by = request_id
        self._store(driver, best_driver)
        self._drivers[self._claim_key(request_id)] = driver_id
        # when the claim took effect in event time: a request can wait in the log while
        # the driver finishes a trip that ends after the request was made
        value["claimed_ts"] = max(now, driver.ts)
        trip_km = geo.haversine_km(plat, plon, dlat, dlon)
        pickup_speed = self.speed_kmh(pickup_area, now)
        trip_speed = (pickup_speed + self.speed_kmh(geo.area_of(dlat, dlon), now)) / 2
        value.update(
            driver_id=driver_id,
            distance_km=round(km, 3),
            pickup_eta_s=round(km / pickup_speed * 3600.0, 1),
            trip_eta_s=round(trip_km / trip_speed * 3600.0, 1),
        )
        return value

    # -- speeds and surge --------------------------------------------------------------

    def speed_kmh(self, area: str, now: float) -> float:
        """Mean speed of moving drivers in ``area`` over the current hopping window."""
        total, count = self._windows.speed(area, now)
        return total / count if count else self.rules.default_speed_kmh

    def supply(self, area: str, now: float) -> int:
        """Available drivers in ``area`` now (a walk of the area's cells, not the fleet)."""
        return sum(
            1
            for cell in geo.area_cells(area)
            for driver in self._drivers_in(cell)
            if self.is_available(driver, now)
        )

    def surge(self, area: str, now: float) -> float:
        """clamp(demand / max(supply, 1), 1.0, 3.0) rounded to 0.1; demand in the window."""
        ratio = self._windows.demand(area, now) / max(self.supply(area, now), 1)
        return round(min(self.rules.surge_max, max(self.rules.surge_min, ratio)), 1)

    # -- internals -----------------------------------------------------------------------

    def _key(self, suffix: str) -> str:
        return f"{self.region}|{suffix}"

    def _claim_key(self, request_id: str) -> str:
        return self._key(f"#claim|{request_id}")

    def _claimed_for(self, request_id: str) -> Driver | None:
        driver_id = self._drivers.get(self._claim_key(request_id))
        driver = None if driver_id is None else self.driver(driver_id)
        return driver if driver is not None and driver.claimed_by == request_id else None

    def _forget_claim(self, request_id: str) -> None:
        key = self._claim_key(request_id)
        if key in self._drivers:
            del self._drivers[key]

    def _drivers_in(self, cell: str) -> Iterator[Driver]:
        for driver_id in self._cells.get(self._key(cell)) or ():
            driver = self.driver(driver_id)
            if driver is not None:
                yield driver

    def _store(self, driver: Driver, before: Driver | None) -> None:
        """Writes ``driver`` (changed from ``before``) and moves it in the cell index."""
        self._drivers[self._key(driver.driver_id)] = driver.to_json()
        old_cell = None if before is None else _index_cell(before)
        cell = _index_cell(driver)
        if old_cell != cell:
            if old_cell is not None:
                self._unindex(driver.driver_id, old_cell)
            if cell is not None:
                ids = set(self._cells.get(self._key(cell)) or ())
                ids.add(driver.driver_id)
                self._cells[self._key(cell)] = sorted(ids)

    def _unindex(self, driver_id: str, cell: str) -> None:
        key = self._key(cell)
        ids = [i for i in self._cells.get(key) or () if i != driver_id]
        if ids:
            self._cells[key] = ids
        elif key in self._cells:
            del self._cells[key]

    def _region_row(self) -> dict[str, Any]:
        return dict(self._regions.get(self.region) or {"drivers": 0, "areas": []})

    def _count_driver(self, delta: int) -> None:
        row = self._region_row()
        row["drivers"] = max(0, int(row["drivers"]) + delta)
        self._regions[self.region] = row

    def _note_area(self, area: str) -> None:
        row = self._region_row()
        if area not in row["areas"]:
            row["areas"] = sorted([*row["areas"], area])
            self._regions[self.region] = row
