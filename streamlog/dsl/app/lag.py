"""Consumer lag: how many records of each assigned partition this worker has not
processed yet, for the ``--lag-interval`` log line and the web endpoint's ``/stats`` and
``/metrics``.

A partition's lag is its log end offset minus the first offset not acknowledged yet
(what the next commit would store), not minus the fetch position: fetched records still
waiting in an agent's inbox, or in an agent's hands, are not done. A partition nothing
was fetched from yet counts from its position. Measured on demand (two offset requests
per call), so it is as fresh as the log end offsets, and bounded in time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamlog.dsl.app.app import App

__all__ = ["PartitionLag", "ConsumerLag", "measure_lag", "LAG_TIMEOUT_S"]

LAG_TIMEOUT_S = 5.0
"""How long one measurement may wait for the broker's offsets (a web request waits on it)."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One assigned partition: its log end, the first offset not processed, the gap."""

    topic: str
    partition: int
    end_offset: int
    processed_offset: int  # the first offset not acknowledged yet (what a commit stores)

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.processed_offset)


@dataclass(frozen=True, slots=True)
class ConsumerLag:
    """The lag of every partition assigned to this worker, by (topic, partition)."""

    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def by_topic(self) -> dict[str, int]:
        topics: dict[str, int] = {}
        for p in self.partitions:
            topics[p.topic] = topics.get(p.topic, 0) + p.lag
        return topics

    def as_json(self) -> dict[str, Any]:
        """What ``/stats`` shows under ``lag``."""
        return {
            "total": self.total,
            "topics": dict(sorted(self.by_topic().items())),
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "end_offset": p.end_offset,
                    "processed_offset": p.processed_offset,
                    "lag": p.lag,
                }
                for p in self.partitions
            ],
        }


async def measure_lag(app: App, timeout: float = LAG_TIMEOUT_S) -> ConsumerLag | None:
    """The lag of the partitions assigned now (module docstring); None before the
    consumer exists. Transport errors and a broker slower than ``timeout`` propagate
    (``TransportError``, ``TimeoutError``): the caller reports them as it sees fit."""
    consumer = app.conductor.consumer
    if consumer is None:
        return None

    async def measure() -> ConsumerLag:
        assigned = sorted(consumer.assignment())
        ends = await consumer.end_offsets(assigned) if assigned else {}
        rows = []
        for tp in assigned:
            if tp not in ends:
                continue
            tracker = app.conductor.trackers.get(tp)
            if tracker is not None and not tracker.revoked and tracker.next_offset >= 0:
                done = tracker.committable()
            else:
                done = await consumer.position(tp)
            rows.append(PartitionLag(tp.topic, tp.partition, ends[tp], done))
        return ConsumerLag(tuple(rows))

    return await asyncio.wait_for(measure(), timeout)
