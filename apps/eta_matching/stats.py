"""What the live page shows of this worker's regions: matches per minute, unmatched
reasons, and surge and speed by area (each worker serves the regions it owns)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import h3

from apps.eta_matching.routing import RegionDispatcher
from apps.eta_matching.windows import TableAreaWindows

MINUTES_KEPT = 30


class LiveStats:
    def __init__(
        self, dispatcher: RegionDispatcher, windows: TableAreaWindows, regions: Any
    ) -> None:
        self.dispatcher = dispatcher
        self.windows = windows
        self.regions = regions  # the fleet's regions table: the regions held here
        self.per_minute: Counter[int] = Counter()  # event-time minute -> matched
        self.unmatched_per_minute: Counter[int] = Counter()
        self.reasons: Counter[str] = Counter()
        self.latest_ts = 0.0

    def record(self, match: dict[str, Any]) -> None:
        ts = float(match["ts"])
        self.latest_ts = max(self.latest_ts, ts)
        minute = int(ts // 60)
        if match.get("driver_id") is None:
            self.unmatched_per_minute[minute] += 1
            self.reasons[str(match.get("reason"))] += 1
        else:
            self.per_minute[minute] += 1
        for old in [m for m in self.per_minute if m < minute - MINUTES_KEPT]:
            del self.per_minute[old]
        for old in [m for m in self.unmatched_per_minute if m < minute - MINUTES_KEPT]:
            del self.unmatched_per_minute[old]

    def snapshot(self) -> dict[str, Any]:
        now = self.latest_ts
        areas = []
        frozen = self.windows.frozen(now)
        for region in sorted({str(k) for k, _ in self.regions.items()}):
            fleet = self.dispatcher.fleet(region, frozen)
            for area in fleet.areas():
                lat, lon = h3.cell_to_latlng(area)
                areas.append(
                    {
                        "area": area,
                        "lat": lat,
                        "lon": lon,
                        "surge": fleet.surge(area, now),
                        "speed_kmh": round(fleet.speed_kmh(area, now), 1),
                        "available": fleet.supply(area, now),
                    }
                )
        minutes = sorted(set(self.per_minute) | set(self.unmatched_per_minute))
        return {
            "latest_ts": now,
            "per_minute": [
                {
                    "minute": m * 60,
                    "matched": self.per_minute[m],
                    "unmatched": self.unmatched_per_minute[m],
                }
                for m in minutes
            ],
            "reasons": dict(self.reasons),
            "areas": sorted(areas, key=lambda a: a["area"]),
        }
