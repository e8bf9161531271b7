"""The per-area hopping windows (speed samples, request counts) a fleet reads and writes.

``TableAreaWindows`` keeps them in two streamlog hopping-window tables (the app's); the
window reported at event time t is the oldest hop still containing t, the one covering
the last ``size`` seconds up to the next step (``delta(size - step)``: the newest hop that
held ``t - (size - step)``). ``FrozenAreaWindows`` is a copy of those windows read once
for the live page, outside any event. ``MemoryAreaWindows`` is the same rule on plain
samples, for the rule tests.
"""

from __future__ import annotations

from typing import Any

from apps.eta_matching.hopping import HoppingSamples, window_start


def add_speed_sample(value: Any, kmh: float) -> list[float]:
    """A speed window's value: [sum of km/h samples, sample count]."""
    total, count = value if value else (0.0, 0)
    return [float(total) + kmh, int(count) + 1]


class TableAreaWindows:
    """Reads and writes at the current event's time: call it from an agent only."""

    def __init__(self, speeds: Any, demand: Any, size_s: float, step_s: float) -> None:
        self.speeds = speeds  # app.Table(..., default=list).hopping(size, step, ...)
        self.demand_table = demand  # app.Table(..., default=int).hopping(size, step, ...)
        self._back = size_s - step_s
        self.size_s, self.step_s = size_s, step_s

    def add_speed(self, area: str, ts: float, kmh: float) -> None:
        self.speeds.apply(area, add_speed_sample, kmh)

    def add_demand(self, area: str, ts: float) -> None:
        self.demand_table[area] += 1

    def speed(self, area: str, now: float) -> tuple[float, int]:
        value = self.speeds[area].delta(self._back)
        return (float(value[0]), int(value[1])) if value else (0.0, 0)

    def demand(self, area: str, now: float) -> int:
        return int(self.demand_table[area].delta(self._back))

    def frozen(self, now: float) -> FrozenAreaWindows:
        """The windows reported at ``now`` in every partition this worker holds."""
        start_ms = round(window_start(now, self.size_s, self.step_s) * 1000)
        speeds = {
            area: (float(v[0]), int(v[1]))
            for (area, window), v in self.speeds.items()
            if round(window.start) == start_ms and v
        }
        demand = {
            area: int(v)
            for (area, window), v in self.demand_table.items()
            if round(window.start) == start_ms
        }
        return FrozenAreaWindows(speeds, demand)


class FrozenAreaWindows:
    """Windows read once (for the live page); writing to them is a bug."""

    def __init__(self, speeds: dict[str, tuple[float, int]], demand: dict[str, int]) -> None:
        self._speeds, self._demand = speeds, demand

    def add_speed(self, area: str, ts: float, kmh: float) -> None:
        raise TypeError("frozen windows are read-only")

    def add_demand(self, area: str, ts: float) -> None:
        raise TypeError("frozen windows are read-only")

    def speed(self, area: str, now: float) -> tuple[float, int]:
        return self._speeds.get(area, (0.0, 0))

    def demand(self, area: str, now: float) -> int:
        return self._demand.get(area, 0)


class MemoryAreaWindows:
    """The same windows on in-memory samples (the rule tests' store)."""

    def __init__(self, size_s: float = 300.0, step_s: float = 60.0) -> None:
        self._speeds = HoppingSamples(size_s, step_s)
        self._demand = HoppingSamples(size_s, step_s)

    def add_speed(self, area: str, ts: float, kmh: float) -> None:
        self._speeds.add(area, ts, kmh)

    def add_demand(self, area: str, ts: float) -> None:
        self._demand.add(area, ts, 1.0)

    def speed(self, area: str, now: float) -> tuple[float, int]:
        samples = self._speeds.values(area, now)
        return (sum(samples), len(samples))

    def demand(self, area: str, now: float) -> int:
        return len(self._demand.values(area, now))
