"""The producer's batches: records gathered per partition, encoded once, acknowledged once.

A ``ProducerBatch`` collects ``(key, value, timestamp, headers)`` entries while it is
open, is encoded into one RecordBatch v2 when first sent (that is when an idempotent
producer gives it its sequence numbers), and keeps those bytes for retries so that a
broker can recognise a retry as a duplicate. One future per batch; each record's handle
(``RecordFuture``) reads its offset from the batch result, so a record costs no future of
its own.

``PartitionQueue`` is the per-partition state of the sender: the open batch, closed
batches waiting to be sent (oldest first), batches in flight (in send order) and failed
ones waiting to be sent again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator, Sequence
from typing import Any

from streamlog.log.records import Entry, encode_batch
from streamlog.transport.types import RecordMetadata, TopicPartition

__all__ = ["ProducerBatch", "PartitionQueue", "RecordFuture", "SentMany", "RECORD_OVERHEAD"]

# A record's framing inside a batch is at most ~25 bytes for small records (length,
# attributes, timestamp and offset deltas, key/value lengths, header count): counting 24
# keeps the estimate at or above the encoded size, so a batch never outgrows batch_size.
RECORD_OVERHEAD = 24


class ProducerBatch:
    """Records for one partition, sent and acknowledged together.

    Invariant: ``entries`` only grows while ``closed`` is false; ``data`` is the encoding
    of ``entries`` under producer id ``pid`` from ``base_sequence`` once it was sent.
    """

    __slots__ = (
        "tp",
        "serial",
        "entries",
        "size",
        "created",
        "deadline",
        "closed",
        "data",
        "pid",
        "base_sequence",
        "attempts",
        "future",
    )

    def __init__(self, tp: TopicPartition, serial: int, created: float, deadline: float) -> None:
        self.tp = tp
        self.serial = serial  # creation order within the producer
        self.entries: list[Entry] = []
        self.size = 0
        self.created = created
        self.deadline = deadline
        self.closed = False
        self.data: bytes | None = None
        self.pid = -1
        self.base_sequence = -1
        self.attempts = 0
        # (base offset, log append time or -1) once acknowledged.
        self.future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()

    def encode(self, compression: int, pid: int, epoch: int, base_sequence: int) -> bytes:
        self.data = encode_batch(
            self.entries,
            compression=compression,
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=base_sequence,
        )
        self.pid = pid
        self.base_sequence = base_sequence
        return self.data

    def done(self, base_offset: int, append_time: int) -> None:
        if not self.future.done():
            self.future.set_result((base_offset, append_time))

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)
            self.future.exception()  # mark retrieved: nobody may await these records


class RecordFuture:
    """The acknowledgement of one record: ``await`` it for its ``RecordMetadata``."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: ProducerBatch, index: int) -> None:
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.future.done()

    def result(self) -> RecordMetadata:
        """The metadata of an acknowledged record (raises if it failed or is pending)."""
        batch = self._batch
        base_offset, append_time = batch.future.result()
        timestamp = append_time if append_time >= 0 else batch.entries[self._index][2]
        offset = base_offset + self._index if base_offset >= 0 else -1
        return RecordMetadata(batch.tp.topic, batch.tp.partition, offset, timestamp)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        future = self._batch.future
        if not future.done():
            # Shielded: the batch future is shared, cancelling one waiter must not
            # cancel the others' records.
            yield from asyncio.shield(future).__await__()
        return self.result()


class SentMany:
    """What ``send_many`` returns: await it for every record's metadata, in order.

    It holds runs ``(batch, first index in the batch, count, where in the result)`` --
    ``where`` the position of the run's first record, or each one's -- rather than a
    handle per record; the metadata is made when it is asked for.
    """

    __slots__ = ("_count", "_timestamp", "_runs")

    def __init__(self, count: int, timestamp: int) -> None:
        self._count = count
        self._timestamp = timestamp
        self._runs: list[tuple[ProducerBatch, int, int, int | list[int]]] = []

    def add_run(self, batch: ProducerBatch, first: int, count: int, where: int | list[int]) -> None:
        self._runs.append((batch, first, count, where))

    def done(self) -> bool:
        return all(batch.future.done() for batch, _, _, _ in self._runs)

    def result(self) -> list[RecordMetadata]:
        """The metadata of every record, or the first failed batch's error."""
        out: list[Any] = [None] * self._count
        for batch, first, count, where in self._runs:
            base_offset, append_time = batch.future.result()
            topic, partition = batch.tp
            ts = append_time if append_time >= 0 else self._timestamp
            offsets = (
                range(base_offset + first, base_offset + first + count)
                if base_offset >= 0
                else [-1] * count
            )
            if isinstance(where, int):
                out[where : where + count] = [
                    RecordMetadata(topic, partition, offset, ts) for offset in offsets
                ]
            else:
                for position, offset in zip(where, offsets, strict=True):
                    out[position] = RecordMetadata(topic, partition, offset, ts)
        return out

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        for batch, _, _, _ in self._runs:
            if not batch.future.done():
                # Shielded, as RecordFuture: the batch future is shared.
                yield from asyncio.shield(batch.future).__await__()
        return self.result()

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<SentMany {self._count} records {state}>"


class PartitionQueue:
    """The sender's state for one partition (see the module docstring)."""

    __slots__ = (
        "tp",
        "open",
        "ready",
        "in_flight",
        "retry",
        "hold",
        "next_sequence",
        "sequence_pid",
        "backoff_until",
        "max_in_flight",
    )

    def __init__(self, tp: TopicPartition, max_in_flight: int) -> None:
        self.tp = tp
        self.open: ProducerBatch | None = None
        self.ready: deque[ProducerBatch] = deque()
        self.in_flight: list[ProducerBatch] = []
        self.retry: list[ProducerBatch] = []
        # True after a failure while batches sent after it are still in flight: nothing
        # more is sent until they are all back, then the failed ones go first, in order.
        self.hold = False
        self.next_sequence = 0
        self.sequence_pid = -1
        self.backoff_until = 0.0
        self.max_in_flight = max_in_flight

    def pending(self) -> Sequence[ProducerBatch]:
        batches = [*self.in_flight, *self.retry, *self.ready]
        if self.open is not None:
            batches.append(self.open)
        return batches
