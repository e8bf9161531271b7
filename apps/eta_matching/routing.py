"""Who owns a driver: the hand-off protocol between regions, as plain state machines.

Two steps, each keyed so that one worker sees all events of its key in order:

* ``DriverRouter`` (keyed by driver id) remembers each driver's owning region. A report in
  the same region goes to that region; a report in a new region goes to the *old* region as
  a ``leave`` naming the new one, and the router then points at the new region. Every
  event it sends for a driver carries the driver's next sequence number.
* ``RegionDispatcher`` (keyed by region) holds the region's ``RegionFleet``. A ``leave``
  removes the driver and forwards its whole state (claim included) as a ``join`` to the
  new region. Events for a driver the region does not hold yet (it is still on its way)
  wait until its ``join`` arrives.

So a driver is in at most one fleet at any time and only that fleet can claim it: two
requests on different partitions cannot take the same driver.

All state is in the stores passed in (the app's changelogged tables), so it survives a
restart and moves with its partition in a rebalance. After a crash, events since the last
commit are delivered again (at-least-once) on top of state that may include them:

* a region event for a driver whose sequence number the fleet has applied is skipped,
  and the fleet remembers the number of a driver that left, so a ``leave`` delivered again
  does not wait forever for a driver that is gone;
* a request already answered is not matched again: when it is the same record (same
  partition and offset: the worker crashed after matching it) its stored answer is sent
  again, identical, as its first sending may not have reached the log; another copy of a
  request (sent twice) gets nothing, its answer stands;
* a completion frees a driver only from the trip it names (``request_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from apps.eta_matching import geo
from apps.eta_matching.fleet import AreaWindows, Driver, RegionFleet, Rows
from apps.eta_matching.rules import MatchRules

# (region key, event) pairs to send to the region topic
Outbox = list[tuple[str, dict[str, Any]]]


class BadEventError(ValueError):
    """An input value lacks a field or has a value of the wrong kind; it is skipped."""


class Answers(Protocol):
    """Each request's answer and the record that made it (``answers.py``)."""

    def get(self, request_id: str) -> dict[str, Any] | None: ...

    def put(self, request_id: str, answer: dict[str, Any]) -> None: ...


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


class DriverRouter:
    """The driver-id keyed step: a driver's owning region, and where each event goes.

    ``owners[driver_id]`` is ``{"region": r, "seq": n}``: the region holding the driver
    and the number of the last event sent for it.
    """

    def __init__(self, owners: Rows, region_res: int = geo.REGION_RES) -> None:
        self.owners = owners
        self.region_res = region_res

    def location(self, value: dict[str, Any], position: tuple[int, int] | None = None) -> Outbox:
        report = _report_of(value)
        driver_id = report["driver_id"]
        region = geo.region_of(report["lat"], report["lon"], self.region_res)
        owner = self.owners.get(driver_id)
        replayed = self._replayed(owner, position)
        if replayed is not None:
            return replayed
        seq = 1 if owner is None else int(owner["seq"]) + 1
        out: Outbox
        if owner is None:
            driver = {**report, "claimed_by": None, "seq": seq}
            out = [(region, {"kind": "join", "driver": driver, "seq": seq})]
        elif owner["region"] == region:
            out = [(region, {"kind": "report", **report, "seq": seq})]
        else:
            out = [(owner["region"], {"kind": "leave", "to": region, **report, "seq": seq})]
        self._remember(driver_id, region, seq, position, out)
        return out

    def completed(self, value: dict[str, Any], position: tuple[int, int] | None = None) -> Outbox:
        try:
            driver_id, ts = str(value["driver_id"]), float(value["ts"])
            request_id = None if value.get("request_id") is None else str(value["request_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadEventError(f"bad trips_completed {value!r}: {exc}") from exc
        owner = self.owners.get(driver_id)
        if owner is None:
            return []  # a driver never seen cannot be busy
        replayed = self._replayed(owner, position)
        if replayed is not None:
            return replayed
        seq = int(owner["seq"]) + 1
        event = {
            "kind": "completed",
            "driver_id": driver_id,
            "request_id": request_id,
            "ts": ts,
            "seq": seq,
        }
        out: Outbox = [(owner["region"], event)]
        self._remember(driver_id, owner["region"], seq, position, out)
        return out

    @staticmethod
    def _replayed(owner: dict[str, Any] | None, position: tuple[int, int] | None) -> Outbox | None:
        """What an input delivered again after a crash sends: its events again if it is
        the last one applied (they may not have reached the log), else nothing; None for
        an input not applied yet. A driver's inputs arrive in order on one partition."""
        if owner is None or position is None or not owner.get("at"):
            return None
        partition, offset = owner["at"]
        if partition != position[0] or position[1] > offset:
            return None
        if position[1] == offset:
            return [(str(r), dict(e)) for r, e in owner.get("out", ())]
        return []

    def _remember(
        self,
        driver_id: str,
        region: str,
        seq: int,
        position: tuple[int, int] | None,
        out: Outbox,
    ) -> None:
        self.owners[driver_id] = {
            "region": region,
            "seq": seq,
            "at": None if position is None else list(position),
            "out": [[r, e] for r, e in out],
        }


class RegionDispatcher:
    """The region keyed step: applies region events to the fleet of their region."""

    def __init__(
        self,
        rules: MatchRules,
        *,
        drivers: Rows,
        cells: Rows,
        regions: Rows,
        waiting: Rows,
        answers: Answers,
        windows: AreaWindows,
    ) -> None:
        self.rules = rules
        self.drivers, self.cells, self.regions = drivers, cells, regions
        self.waiting, self.answers, self.windows = waiting, answers, windows

    def fleet(self, region: str, windows: AreaWindows | None = None) -> RegionFleet:
        return RegionFleet(
            region,
            self.rules,
            drivers=self.drivers,
            cells=self.cells,
            regions=self.regions,
            windows=windows or self.windows,
        )

    def handle(
        self,
        region: str,
        event: dict[str, Any],
        emit_match: Callable[[dict[str, Any]], None],
        position: tuple[int, int] | None = None,
    ) -> Outbox:
        """Applies one region event; matches go to ``emit_match``, hand-offs are returned.

        ``position`` is the event's (partition, offset), which tells a request delivered
        again after a crash from another copy of it.
        """
        kind = event.get("kind")
        fleet = self.fleet(region)
        if kind == "request":
            self._answer(fleet, event["request"], emit_match, position)
            return []
        driver_id = str(event["driver"]["driver_id"] if kind == "join" else event["driver_id"])
        seq = int(event.get("seq", 0))
        last = fleet.last_seq(driver_id)
        if last is not None and seq <= last:
            return []  # applied already (delivered again after a crash)
        if kind == "join":
            driver = Driver.from_json(event["driver"])
            driver.seq = seq
            fleet.join(driver)
            return self._release_waiting(fleet, driver_id)
        if fleet.driver(driver_id) is None:  # its join is on its way: wait for it
            self._wait(region, driver_id, event)
            return []
        return self._apply(fleet, event)

    # -- requests ----------------------------------------------------------------------

    def _answer(
        self,
        fleet: RegionFleet,
        request: dict[str, Any],
        emit_match: Callable[[dict[str, Any]], None],
        position: tuple[int, int] | None,
    ) -> None:
        request_id = str(request["request_id"])
        answered = self.answers.get(request_id)
        if answered:
            if position is not None and answered.get("at") == list(position):
                emit_match(answered["match"])  # the same record again: its answer again
            return
        match = fleet.match(request)
        self.answers.put(
            request_id, {"match": match, "at": None if position is None else list(position)}
        )
        emit_match(match)

    # -- drivers -------------------------------------------------------------------------

    def _wait(self, region: str, driver_id: str, event: dict[str, Any]) -> None:
        key = f"{region}|{driver_id}"
        queued = list(self.waiting.get(key) or ())
        if all(int(e.get("seq", 0)) != int(event.get("seq", 0)) for e in queued):
            queued.append(event)
        self.waiting[key] = queued

    def _release_waiting(self, fleet: RegionFleet, driver_id: str) -> Outbox:
        key = f"{fleet.region}|{driver_id}"
        queued = sorted(self.waiting.get(key) or (), key=lambda e: int(e.get("seq", 0)))
        if key in self.waiting:
            del self.waiting[key]
        out: Outbox = []
        for event in queued:
            last = fleet.last_seq(driver_id)
            if last is not None and int(event.get("seq", 0)) <= last:
                continue
            if fleet.driver(driver_id) is None:  # left again: the rest waits for its return
                self._wait(fleet.region, driver_id, event)
                continue
            out.extend(self._apply(fleet, event))
        return out

    def _apply(self, fleet: RegionFleet, event: dict[str, Any]) -> Outbox:
        kind = event["kind"]
        driver_id = str(event["driver_id"])
        seq = int(event.get("seq", 0))
        if kind == "report":
            fleet.report(driver_id, event["lat"], event["lon"], event["status"], event["ts"], seq)
            return []
        if kind == "completed":
            fleet.complete(driver_id, event["ts"], event.get("request_id"), seq)
            return []
        if kind == "leave":
            fleet.report(driver_id, event["lat"], event["lon"], event["status"], event["ts"], seq)
            driver = fleet.leave(driver_id, seq)
            if driver is None:
                return []
            join = {"kind": "join", "driver": driver.to_json(), "seq": seq}
            return [(str(event["to"]), join)]
        raise BadEventError(f"unknown region event kind {kind!r}")
