"""A partition's open batch in the embedded producer, and the handles on its records.

``Batch`` holds the codec's ``BatchBuilder`` (the records, encoded as they are sent)
until the producer appends it, then the outcome: base offset and append time, or the
error. Nothing waits on a batch unless someone awaits a record before the append: the
one asyncio future per batch is made on demand.

``RecordFuture`` is what ``send`` returns for one record; ``SentMany`` what
``send_many`` returns for many: both read their records' metadata from the batches.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Generator
from typing import Any

from streamlog.log.records import BatchBuilder, batch_builder
from streamlog.transport.errors import ProduceError, TransportError
from streamlog.transport.types import RecordMetadata, metadata_run

__all__ = ["Batch", "RecordFuture", "SentMany"]


class Batch:
    """The records waiting for one partition, then the outcome of their append.

    ``builder`` holds the encoded records until the append (then None); each record's
    ``RecordFuture`` is ``(this batch, index, timestamp)``, made by the builder.
    """

    __slots__ = (
        "topic",
        "partition",
        "builder",
        "base_offset",
        "append_time",
        "error",
        "waiter",
    )

    def __init__(
        self, topic: str, partition: int, limit: int, clock: Callable[[], int] | None
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.builder: BatchBuilder | None = batch_builder(limit, self, RecordFuture, clock)
        self.base_offset = -1
        self.append_time = -1
        self.error: TransportError | None = None
        self.waiter: asyncio.Future[None] | None = None

    @property
    def done(self) -> bool:
        return self.base_offset >= 0 or self.error is not None

    def open_builder(self) -> BatchBuilder:
        """The builder of a batch not appended yet; ``ProduceError`` once it was (a
        batch is appended once)."""
        builder = self.builder
        if builder is None:
            raise ProduceError(f"the batch for {self.topic}-{self.partition} was appended")
        return builder

    def finish(self) -> None:
        self.builder = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def raise_error(self) -> None:
        """Raise this batch's error, if it failed (a fresh copy for each raise)."""
        error = self.error
        if error is not None:
            raise type(error)(*error.args) from error.__cause__

    def wait(self) -> Generator[Any, None, None]:
        """Wait until the batch is appended or failed (``yield from`` in ``__await__``)."""
        if not self.done:
            if self.waiter is None:
                self.waiter = asyncio.get_running_loop().create_future()
            yield from self.waiter.__await__()


class RecordFuture(tuple):  # type: ignore[type-arg]
    """What ``send`` returns: await it for the record's ``RecordMetadata``.

    A 3-tuple (batch, index in the batch, timestamp) made by the batch's builder as it
    encodes the record: the cheapest object there is, and one is made per record.
    """

    __slots__ = ()

    def done(self) -> bool:
        return bool(self[0].done)

    def result(self) -> RecordMetadata:
        """The metadata, or the error, of a record whose batch was appended."""
        batch, index, timestamp = self
        batch.raise_error()
        if batch.base_offset < 0:
            raise asyncio.InvalidStateError("the record has not been appended yet")
        if batch.append_time >= 0:
            timestamp = batch.append_time
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + index, timestamp)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        yield from self[0].wait()
        return self.result()

    def __repr__(self) -> str:
        batch, index, _ = self
        state = "done" if batch.done else "pending"
        return f"<RecordFuture {batch.topic}-{batch.partition} #{index} {state}>"


# Where a run of records of one batch goes in send_many's result: the position of the
# first (the run is contiguous there), or each one's position.
Where = int | list[int]


class SentMany:
    """What ``send_many`` returns: await it for every record's metadata, in order.

    It holds runs ``(batch, first index in the batch, count, where in the result)``
    rather than a handle per record; the metadata is made when it is asked for.
    """

    __slots__ = ("_count", "_timestamp", "_runs")

    def __init__(self, count: int, timestamp: int) -> None:
        self._count = count
        self._timestamp = timestamp
        self._runs: list[tuple[Batch, int, int, Where]] = []

    def add_run(self, batch: Batch, first: int, count: int, where: Where) -> None:
        self._runs.append((batch, first, count, where))

    def done(self) -> bool:
        return all(batch.done for batch, _, _, _ in self._runs)

    def result(self) -> list[RecordMetadata]:
        """The metadata of every record, or the first failed batch's error."""
        out: list[Any] = [None] * self._count
        for batch, first, count, where in self._runs:
            batch.raise_error()
            if batch.base_offset < 0:
                raise asyncio.InvalidStateError("the records have not been appended yet")
            topic, partition = batch.topic, batch.partition
            base = batch.base_offset + first
            ts = batch.append_time if batch.append_time >= 0 else self._timestamp
            run = metadata_run(topic, partition, range(base, base + count), ts)
            if isinstance(where, int):
                out[where : where + count] = run
            else:
                for position, metadata in zip(where, run, strict=True):
                    out[position] = metadata
        return out

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        for batch, _, _, _ in self._runs:
            yield from batch.wait()
        return self.result()

    async def highest_offsets(self) -> dict[int, int]:
        """Partition -> highest offset of these records, once all are appended (or the
        first failed batch's error), with no metadata object per record."""
        await _appended(self._runs)
        highest: dict[int, int] = {}
        for batch, first, count, _ in self._runs:
            batch.raise_error()
            last = batch.base_offset + first + count - 1
            highest[batch.partition] = max(highest.get(batch.partition, -1), last)
        return highest

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<SentMany {self._count} records {state}>"


@types.coroutine
def _appended(runs: list[tuple[Batch, int, int, Where]]) -> Generator[Any, None, None]:
    """Wait until every run's batch is appended or failed."""
    for batch, _, _, _ in runs:
        yield from batch.wait()
