"""The producer's batches: records encoded as they are sent, framed once, acknowledged once.

A ``ProducerBatch`` holds the codec's ``BatchBuilder`` while it is open: each ``send``
encodes its record into it at once (no per-record entry kept, no second pass) and gets
back its handle, made by the builder. The batch is framed into one RecordBatch v2
(compression applied) when it is first sent: that is when an idempotent producer gives
it its producer id, epoch and base sequence. The framed bytes are kept for retries, so a
broker recognises a retry as a duplicate; if the producer had to take a new producer id
in between, the kept bytes are re-stamped (the three header fields and the CRC), not
re-encoded. One future per batch; each record's handle (``RecordFuture``) reads its offset
from the batch result, so a record costs no future of its own.

``PartitionQueue`` is the per-partition state of the sender: the open batch, closed
batches waiting to be sent (oldest first), batches in flight (in send order) and failed
ones waiting to be sent again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator, Sequence
from typing import Any

from streamlog.log.batch_header import HEADER_SIZE, PRODUCER_FIELDS, PRODUCER_ID_AT, write_crc
from streamlog.log.records import BatchBuilder, batch_builder, encode_built
from streamlog.transport.errors import ProduceError
from streamlog.transport.types import RecordMetadata, TopicPartition, metadata_run

__all__ = ["ProducerBatch", "PartitionQueue", "RecordFuture", "SentMany", "restamp"]


def restamp(data: bytes, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
    """The framed batch ``data`` under another producer id, epoch and base sequence.

    The records section (compressed or not) is untouched; only the three header fields
    and the CRC over them change: the same bytes ``encode_built`` would give with these
    arguments.
    """
    if len(data) < HEADER_SIZE:
        raise ValueError(f"a record batch is at least {HEADER_SIZE} bytes, not {len(data)}")
    buf = bytearray(data)
    PRODUCER_FIELDS.pack_into(buf, PRODUCER_ID_AT, producer_id, producer_epoch, base_sequence)
    write_crc(buf, 0, len(buf))
    return bytes(buf)


class ProducerBatch:
    """Records for one partition, sent and acknowledged together.

    Invariant: ``builder`` takes records while the batch is open and until it is first
    sent (then None); ``count`` and ``size`` are fixed when it closes; ``data`` is the
    framing of its records under producer id ``pid`` from ``base_sequence`` once it was
    sent.
    """

    __slots__ = (
        "tp",
        "serial",
        "builder",
        "count",
        "size",
        "created",
        "deadline",
        "data",
        "pid",
        "base_sequence",
        "attempts",
        "future",
    )

    def __init__(
        self, tp: TopicPartition, serial: int, created: float, deadline: float, limit: int
    ) -> None:
        self.tp = tp
        self.serial = serial  # creation order within the producer
        # Records without a timestamp get the wall clock's now, read by the builder.
        self.builder: BatchBuilder | None = batch_builder(limit, self, RecordFuture)
        self.count = 0
        self.size = 0
        self.created = created
        self.deadline = deadline
        self.data: bytes | None = None
        self.pid = -1
        self.base_sequence = -1
        self.attempts = 0
        # (base offset, log append time or -1) once acknowledged.
        self.future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()

    def open_builder(self) -> BatchBuilder:
        """The builder of a batch not framed yet; ``ProduceError`` once it was (a framed
        batch takes no more records)."""
        builder = self.builder
        if builder is None:
            raise ProduceError(f"batch {self.serial} for {self.tp} is framed already")
        return builder

    def close(self) -> int:
        """Stop taking records; the number it holds (``count``, ``size`` now fixed)."""
        builder = self.builder
        if builder is not None:
            self.count = builder.count
            self.size = builder.size
        return self.count

    def encode(
        self,
        compression: int,
        pid: int,
        epoch: int,
        base_sequence: int,
        *,
        transactional: bool = False,
    ) -> bytes:
        """Frame the records (the first time) or re-stamp the framed bytes (after a new
        producer id) under ``pid``/``epoch`` from ``base_sequence``; ``transactional``
        sets the batch's transactional bit (kept by a re-stamp)."""
        builder = self.builder
        if builder is not None:
            self.data = encode_built(
                builder,
                compression=compression,
                producer_id=pid,
                producer_epoch=epoch,
                base_sequence=base_sequence,
                transactional=transactional,
            )
            self.builder = None
        elif self.data is not None:
            self.data = restamp(self.data, pid, epoch, base_sequence)
        else:
            raise ValueError(f"batch {self.serial} for {self.tp} has no records to send")
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


class RecordFuture(tuple[ProducerBatch, int, int]):
    """The acknowledgement of one record: ``await`` it for its ``RecordMetadata``.

    A 3-tuple (batch, index in the batch, timestamp) made by the batch's builder as it
    encodes the record: the cheapest object there is, and one is made per record.
    """

    __slots__ = ()

    def done(self) -> bool:
        return self[0].future.done()

    def result(self) -> RecordMetadata:
        """The metadata of an acknowledged record (raises if it failed or is pending)."""
        batch, index, timestamp = self
        base_offset, append_time = batch.future.result()
        if append_time >= 0:
            timestamp = append_time
        offset = base_offset + index if base_offset >= 0 else -1
        return RecordMetadata(batch.tp.topic, batch.tp.partition, offset, timestamp)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        future = self[0].future
        if not future.done():
            # Shielded: the batch future is shared, cancelling one waiter must not
            # cancel the others' records.
            yield from asyncio.shield(future).__await__()
        return self.result()

    def __repr__(self) -> str:
        batch, index, _ = self
        state = "done" if batch.future.done() else "pending"
        return f"<RecordFuture {batch.tp.topic}-{batch.tp.partition} #{index} {state}>"


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
            run = metadata_run(topic, partition, offsets, ts)
            if isinstance(where, int):
                out[where : where + count] = run
            else:
                for position, metadata in zip(where, run, strict=True):
                    out[position] = metadata
        return out

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        for batch, _, _, _ in self._runs:
            if not batch.future.done():
                # Shielded, as RecordFuture: the batch future is shared.
                yield from asyncio.shield(batch.future).__await__()
        return self.result()

    async def highest_offsets(self) -> dict[int, int]:
        """Partition -> highest offset of these records (-1 without offsets: acks=0),
        once all are acknowledged (or the first failure), with no metadata object per
        record."""
        highest: dict[int, int] = {}
        for batch, first, count, _ in self._runs:
            if not batch.future.done():
                await asyncio.shield(batch.future)  # shared, as in ``__await__``
            base_offset, _ = batch.future.result()
            last = base_offset + first + count - 1 if base_offset >= 0 else -1
            partition = batch.tp.partition
            highest[partition] = max(highest.get(partition, -1), last)
        return highest

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
