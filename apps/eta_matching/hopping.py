"""Per-area hopping-window aggregates in event time: speed samples and request counts.

The window reported at time t is the latest hop that contains t: it starts at the last
step boundary at or before t minus (size - step), so it always covers the last full
``size`` seconds up to the next step boundary.
"""

from __future__ import annotations

import collections
import math


def window_start(now: float, size_s: float, step_s: float) -> float:
    """The start of the window reported at ``now`` (see the module docstring)."""
    return math.floor(now / step_s) * step_s + step_s - size_s


class HoppingSamples:
    """(ts, value) samples per area, trimmed to the current window as event time advances."""

    def __init__(self, size_s: float, step_s: float) -> None:
        self._size = size_s
        self._step = step_s
        self._samples: dict[str, collections.deque[tuple[float, float]]] = {}

    def window_start(self, now: float) -> float:
        return window_start(now, self._size, self._step)

    def add(self, area: str, ts: float, value: float) -> None:
        self._samples.setdefault(area, collections.deque()).append((ts, value))

    def values(self, area: str, now: float) -> list[float]:
        """The samples of ``area`` in the window containing ``now`` (older ones dropped)."""
        samples = self._samples.get(area)
        if not samples:
            return []
        start = self.window_start(now)
        while samples and samples[0][0] < start:
            samples.popleft()
        return [v for ts, v in samples if ts <= now + self._step]

    def areas(self) -> list[str]:
        return sorted(self._samples)
