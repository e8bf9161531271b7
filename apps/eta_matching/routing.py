"""Who owns a driver: the hand-off protocol between regions, as plain state machines.

Two steps, each keyed so that one worker sees all events of its key in order:

* ``DriverRouter`` (keyed by driver id) remembers each driver's owning region. A report in
  the same region goes to that region; a report in a new region goes to the *old* region as
  a ``leave`` naming the new one, and the router then points at the new region.
* ``RegionDispatcher`` (keyed by region) holds a ``RegionFleet``. A ``leave`` removes the
  driver and forwards its whole state (claim included) as a ``join`` to the new region.
  Events for a driver the region does not hold yet (it is still on its way) wait in a
  per-driver queue until its ``join`` arrives.

So a driver is in at most one fleet at any time and only that fleet can claim it: two
requests on different partitions cannot take the same driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.eta_matching import geo
from apps.eta_matching.fleet import Driver, RegionFleet
from apps.eta_matching.rules import MatchRules

# (region key, event) pairs to send to the region topic
Outbox = list[tuple[str, dict[str, Any]]]


class BadEventError(ValueError):
    """An input value lacks a field or has a value of the wrong kind; it is skipped."""


def _report_of(value: dict[str, Any]) -> dict[str, Any]:
    try:
        report: dict[str, Any] = {
            "driver_id": str(value["driver_id"]),
            "lat": float(value["lat"]),
            "lon": float(value["lon"]),
            "status": str(value["status"]),
            "ts": float(value["ts"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise BadEventError(f"bad driver location {value!r}: {exc}") from exc
    if report["status"] not in ("available", "busy", "offline"):
        raise BadEventError(f"bad driver status {report['status']!r}")
    if not (-90 <= report["lat"] <= 90 and -180 <= report["lon"] <= 180):
        raise BadEventError(f"position out of range in {value!r}")
    return report


@dataclass
class DriverRouter:
    """The driver-id keyed step: a driver's owning region, and where each event goes."""

    region_of_driver: dict[str, str] = field(default_factory=dict)
    region_res: int = geo.REGION_RES

    def location(self, value: dict[str, Any]) -> Outbox:
        report = _report_of(value)
        driver_id = report["driver_id"]
        region = geo.region_of(report["lat"], report["lon"], self.region_res)
        owner = self.region_of_driver.get(driver_id)
        self.region_of_driver[driver_id] = region
        if owner is None:
            return [(region, {"kind": "join", "driver": {**report, "claimed_by": None}})]
        if owner == region:
            return [(region, {"kind": "report", **report})]
        return [(owner, {"kind": "leave", "to": region, **report})]

    def completed(self, value: dict[str, Any]) -> Outbox:
        try:
            driver_id, ts = str(value["driver_id"]), float(value["ts"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadEventError(f"bad trips_completed {value!r}: {exc}") from exc
        owner = self.region_of_driver.get(driver_id)
        if owner is None:
            return []  # a driver never seen cannot be busy
        return [(owner, {"kind": "completed", "driver_id": driver_id, "ts": ts})]


@dataclass
class RegionDispatcher:
    """The region keyed step: one fleet per region this worker owns."""

    rules: MatchRules = field(default_factory=MatchRules)
    fleets: dict[str, RegionFleet] = field(default_factory=dict)
    waiting: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # request ids answered (id -> ts), so a request sent twice is answered once; trimmed
    # to the last ``answered_kept_s`` seconds of event time
    answered: dict[str, float] = field(default_factory=dict)
    answered_kept_s: float = 3600.0

    def fleet(self, region: str) -> RegionFleet:
        fleet = self.fleets.get(region)
        if fleet is None:
            fleet = self.fleets[region] = RegionFleet(self.rules)
        return fleet

    def handle(
        self, region: str, event: dict[str, Any], emit_match: Callable[[dict[str, Any]], None]
    ) -> Outbox:
        """Applies one region event; matches go to ``emit_match``, hand-offs are returned."""
        kind = event.get("kind")
        fleet = self.fleet(region)
        if kind == "request":
            request = event["request"]
            request_id, ts = str(request["request_id"]), float(request["ts"])
            if request_id in self.answered:
                return []  # a duplicate of an answered request: its answer stands
            self.answered[request_id] = ts
            self._trim_answered(ts)
            emit_match(fleet.match(request))
            return []
        if kind == "join":
            driver = Driver.from_json(event["driver"])
            fleet.join(driver)
            out: Outbox = []
            for queued in self.waiting.pop((region, driver.driver_id), []):
                out.extend(self._apply(region, fleet, queued))
            return out
        driver_id = str(event["driver_id"])
        if driver_id not in fleet.drivers or (region, driver_id) in self.waiting:
            self.waiting.setdefault((region, driver_id), []).append(event)
            return []
        return self._apply(region, fleet, event)

    def _trim_answered(self, now: float) -> None:
        """Forgets answers older than the keep time (dicts keep insertion order)."""
        horizon = now - self.answered_kept_s
        while self.answered:
            oldest_id = next(iter(self.answered))
            if self.answered[oldest_id] >= horizon:
                break
            del self.answered[oldest_id]

    def _apply(self, region: str, fleet: RegionFleet, event: dict[str, Any]) -> Outbox:
        kind = event["kind"]
        driver_id = str(event["driver_id"])
        if driver_id not in fleet.drivers:  # left again while events were queued
            self.waiting.setdefault((region, driver_id), []).append(event)
            return []
        if kind == "report":
            fleet.report(driver_id, event["lat"], event["lon"], event["status"], event["ts"])
            return []
        if kind == "completed":
            fleet.complete(driver_id, event["ts"])
            return []
        if kind == "leave":
            fleet.report(driver_id, event["lat"], event["lon"], event["status"], event["ts"])
            driver = fleet.leave(driver_id)
            if driver is None:
                return []
            return [(str(event["to"]), {"kind": "join", "driver": driver.to_json()})]
        raise BadEventError(f"unknown region event kind {kind!r}")
