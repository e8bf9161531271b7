"""Which offsets may be committed: at-least-once bookkeeping per source partition.

The conductor hands records to agents in ``Batch``es, one per (partition, subscriber), in
offset order. An agent acknowledges an event when it asks for the next one (or explicitly,
after ``noack()``), so within a batch acknowledgements arrive in order and a batch keeps
only a count. A partition's committable offset is the first offset some subscriber has not
acknowledged yet; everything before it has been processed by every agent reading the topic.

Outputs produced while processing are not tracked here: the commit sequence flushes the
producer before committing (see ``Conductor.commit``), so an offset is committed only after
every record produced before its acknowledgement is acknowledged by the log.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Batch", "PartitionTracker"]


class PartitionTracker:
    """Pending batches of one source partition, across every agent that reads it."""

    __slots__ = (
        "topic",
        "partition",
        "pending",
        "next_offset",
        "first_offset",
        "revoked",
        "committed",
    )

    def __init__(self, topic: str, partition: int, next_offset: int = -1) -> None:
        self.topic = topic
        self.partition = partition
        self.pending: deque[Batch] = deque()
        self.next_offset = next_offset  # one past the last record dispatched; -1: none yet
        self.first_offset = -1  # the first record dispatched (where this owner started)
        self.revoked = False
        self.committed = -1

    def revoke(self) -> None:
        """The partition went to another owner (or is being re-read): its batches, queued
        or half read, are abandoned unacknowledged, and nothing of it is committed here."""
        self.revoked = True
        for batch in self.pending:
            batch.revoked = True

    def processed_uncommitted(self) -> int:
        """Records some agent has processed past the last commit (the most of any one
        agent): what the partition's next owner, starting from the committed offset, will
        process again. For the log line of a revocation or a loss."""
        if self.next_offset < 0:
            return 0
        low = self.committable()
        start = self.committed if self.committed >= 0 else self.first_offset
        done = max(0, low - start)  # processed by every agent, not committed
        # Past ``low``: the batches of one fetch (one per agent) share their records list;
        # count the agent that got furthest in each.
        ahead: dict[int, int] = {}
        for batch in self.pending:
            records = batch.records
            count = sum(1 for record in records[: batch.acked] if record.offset >= low)
            count += sum(1 for i in batch.out_of_order or () if records[i].offset >= low)
            key = id(records)
            ahead[key] = max(ahead.get(key, 0), count)
        return done + sum(ahead.values())

    def committable(self) -> int:
        """The offset to commit: the first unacknowledged one, or the end of what was sent."""
        pending = self.pending
        while pending and pending[0].complete:
            pending.popleft()
        lowest = self.next_offset
        for batch in pending:
            if not batch.complete:
                offset = batch.records[batch.acked].offset
                if offset < lowest:
                    lowest = offset
        return lowest


class Batch:
    """Records of one partition for one subscriber, decoded lazily as they are read.

    ``acked`` counts acknowledged records from the front. Manual acknowledgements out of
    order (after ``noack()``) are parked in ``out_of_order`` until the gap before them closes.
    """

    __slots__ = (
        "records",
        "tracker",
        "loads_key",
        "loads_value",
        "acked",
        "out_of_order",
        "source",
        "revoked",
        "handed_at",
    )

    def __init__(
        self,
        records: Sequence[Any],
        tracker: PartitionTracker | None,
        loads_key: Callable[[Any], Any],
        loads_value: Callable[[Any], Any],
        source: Any = None,
    ) -> None:
        self.records = records
        self.tracker = tracker
        self.loads_key = loads_key
        self.loads_value = loads_value
        self.acked = 0
        self.out_of_order: set[int] | None = None
        self.source = source  # the Topic or Channel the records belong to
        # Set by ``PartitionTracker.revoke``: readers stop at the next record.
        self.revoked = False
        # When it was handed out (monotonic s): an agent's processing latency starts here;
        # 0.0 once observed (``runtime.meters.AgentMeter.done``).
        self.handed_at = time.monotonic()

    @property
    def complete(self) -> bool:
        """Every record of the batch is acknowledged."""
        return self.acked >= len(self.records)

    def ack_upto(self, index: int) -> None:
        """Everything before ``index`` is processed (the automatic, in-order path)."""
        if index > self.acked:
            self.acked = index
            if self.out_of_order:
                self._absorb(self.out_of_order)

    def ack_one(self, index: int) -> None:
        """Record ``index`` alone is processed (``stream.ack(event)`` after ``noack()``)."""
        if index < self.acked:
            return
        if index == self.acked:
            self.acked += 1
            if self.out_of_order:
                self._absorb(self.out_of_order)
            return
        if self.out_of_order is None:
            self.out_of_order = set()
        self.out_of_order.add(index)

    def _absorb(self, parked: set[int]) -> None:
        parked.difference_update(range(self.acked))
        while self.acked in parked:
            parked.discard(self.acked)
            self.acked += 1
