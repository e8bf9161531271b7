"""Counters and latency histograms the runtime keeps for ``/metrics`` and the status page.

Plain numbers in the objects that own them (one set per app, nothing global), read when
someone asks: the web server turns them into Prometheus metric families
(``streamlog.dsl.app.web.metrics``). Updates are cheap enough for the per-batch path:
an agent's events are counted per batch it takes, and a processing latency is observed
once per batch (the time its last event was done), never per event.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

__all__ = ["Histogram", "AgentMeter", "LATENCY_BUCKETS"]

# seconds: Prometheus' client default buckets, with finer steps below 5 ms, where a
# stream processor's batches mostly fall
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Histogram:
    """Observations counted in fixed buckets (upper bounds, ``le``), with their sum: what a
    Prometheus histogram exposes. ``counts[i]`` holds the observations in bucket i alone
    (not cumulative); the last slot is +Inf."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """(``le`` label, observations at or below it), +Inf last: Prometheus' buckets."""
        out = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class AgentMeter:
    """One agent's counts: events taken per source topic, and the processing latency of
    its batches (from the batch being handed to the agent's inbox until the agent asks
    past its last event: the latency of that event, inbox wait included)."""

    __slots__ = ("events_in", "latency")

    def __init__(self) -> None:
        self.events_in: dict[str, int] = {}
        self.latency = Histogram()

    def taken(self, batch: Any) -> None:
        """The agent starts on ``batch`` (a ``Batch``)."""
        tracker = batch.tracker
        if tracker is not None:
            topic = tracker.topic
        else:
            topic = getattr(batch.source, "name", None) or "(channel)"
        self.events_in[topic] = self.events_in.get(topic, 0) + len(batch.records)

    def done(self, batch: Any) -> None:
        """The agent asked past ``batch``'s last event (observed once per batch)."""
        handed = batch.handed_at
        if handed:
            batch.handed_at = 0.0
            self.latency.observe(time.monotonic() - handed)
