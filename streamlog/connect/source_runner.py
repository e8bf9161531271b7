"""Runs one ``Source``: polls it, produces its records, checkpoints its position.

The guarantees (docs/connect.md, "The runner's guarantees"):

* A position is saved (``offsets.py``) only after every record up to it is acknowledged
  by the log, so a restart never skips a record the source handed over.
* A restart reads back what the log acknowledged *after* the saved position (a kill -9
  between the acknowledgement and the checkpoint): the records from the checkpoint's
  ``ends`` to the partitions' current ends. What the source reads again is matched against
  them, in order per partition (same key and value), and not produced a second time. A
  record that differs (another producer writes the topic too, or the outside system
  changed) ends the matching with a warning: from there it is at-least-once.
* Partitions are chosen deterministically, so a record read again goes where it went the
  first time: by key (Kafka's murmur2), or for a null key by a stable hash of the record's
  position.
* Before the first record of a source that never checkpointed, a checkpoint with no
  position and the partitions' ends is written, so a crash in the first second leaves
  something to match against.
* A source with ``acknowledged(position)`` is told after every non-empty poll, once the
  records are acknowledged (the webhook answers its requests then).
* A source with ``rereads = False`` never hands over a record twice (a webhook: a request
  is answered once its records are durable, and not sent again): nothing is read back
  after a restart.

The runner has its own idempotent producer (``acks=-1``), so its flushes wait for its own
records only and an exactly-once app's transactions never hold a source's records.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from streamlog.connect.base import Position, Source, SourceRecord
from streamlog.connect.errors import SourceError
from streamlog.connect.offsets import OffsetStore, SavedPosition, read_to_end
from streamlog.transport import partition_for_key
from streamlog.transport.base import Producer, SentRecords, Transport
from streamlog.transport.types import RecordMetadata, TopicPartition

__all__ = ["SourceRunner", "SourceTarget", "null_key_partition"]

log = logging.getLogger(__name__)

Dumps = Callable[[Any], bytes | None]


@dataclass(frozen=True, slots=True)
class SourceTarget:
    """Where a source's records go and how they are encoded (the topic's codecs)."""

    topic: str
    dumps_key: Dumps
    dumps_value: Dumps


# Canonical JSON (keys sorted, anything else as its str): 0.26 us a position, where
# json.dumps(sort_keys=True) took 2.3 us, a seventh of a keyless record's cost in an app.
_CANONICAL_JSON = msgspec.json.Encoder(enc_hook=str, order="sorted")


def null_key_partition(position: Position, partitions: int) -> int:
    """The partition of a record with no key: a stable hash of its position (CRC-32 of its
    canonical JSON), the same in every run."""
    return zlib.crc32(_CANONICAL_JSON.encode(position)) % partitions


class SourceRunner:
    """One source, on the worker that runs it (the app's leader). ``run`` until
    ``request_stop`` or the end of a source read once; ``status`` for the web server."""

    def __init__(
        self,
        source: Source,
        target: SourceTarget,
        *,
        transport: Transport,
        offsets: OffsetStore,
        checkpoint_interval: float = 2.8,
        linger_ms: int = 5,
        client_id: str = "streamlog-connect",
    ) -> None:
        self.source = source
        self.name = source.name
        self.target = target
        self._transport = transport
        self._offsets = offsets
        self._interval = checkpoint_interval
        self._linger_ms = linger_ms
        self._client_id = client_id
        self._stop = asyncio.Event()
        self._told = getattr(source, "acknowledged", None)
        # what one run knows
        self._partitions = 1
        self._position: Position = None
        self._ends: dict[int, int] = {}
        self._sent: list[tuple[int, SentRecords | Awaitable[RecordMetadata]]] = []
        self._unsaved = False  # records produced (or matched) since the last checkpoint
        # read back after a restart, per partition: (offset, key, value) not matched yet
        self._expected: dict[int, deque[tuple[int, bytes | None, bytes | None]]] | None = None
        # counters for status() and /metrics, kept across runs
        self.records = 0  # produced to the topic
        self.matched = 0  # found in the log after a restart, not produced again
        self.checkpoints = 0
        self.errors = 0
        self.last_error: str | None = None
        self.state = "idle"
        self.finished = False

    def __repr__(self) -> str:
        return f"<SourceRunner {self.name} -> {self.target.topic} {self.state}>"

    def request_stop(self) -> None:
        """Stop after the poll in hand: its records are produced and checkpointed."""
        self._stop.set()

    def allow_run(self) -> None:
        """Forget an earlier ``request_stop`` (before a new ``run``: the caller decides,
        so a stop asked for while the run is being set up is not lost)."""
        self._stop.clear()

    def status(self) -> dict[str, Any]:
        """The source's own status with the runner's counters added."""
        try:
            status = dict(self.source.status())
        except Exception as exc:  # noqa: BLE001 - a status page must not fail
            status = {"status_error": repr(exc)}
        status.setdefault("name", self.name)
        status.setdefault("kind", "source")
        status["topic"] = self.target.topic
        status["state"] = self.state
        status["produced"] = self.records
        status["matched_after_restart"] = self.matched
        status["checkpoints"] = self.checkpoints
        status["runner_errors"] = self.errors
        status["runner_last_error"] = self.last_error
        status.setdefault("position", self._position)
        return status

    def failed(self, exc: BaseException) -> None:
        """Count a failure of a run (the caller retries it after a backoff)."""
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.state = "failed"

    # ------------------------------------------------------------------ one run

    async def run(self) -> None:
        """Start the source at its saved position, produce until asked to stop (or the
        source ends), checkpoint, close the source. Raises what went wrong, with no
        checkpoint after the last one (the next run matches what the log acknowledged
        since, module docstring). Returns at once,
        the source not started, after a ``request_stop`` not undone by ``allow_run``."""
        if self._stop.is_set():
            return
        self.state = "starting"
        producer = self._transport.producer(
            acks=-1, linger_ms=self._linger_ms, idempotent=True, client_id=self._client_id
        )
        try:
            await self._resume(producer)
            self.state = "running"
            try:
                await self._loop(producer)
            finally:
                await self._close_source()
            self.state = "finished" if self.finished else "stopped"
        finally:
            await producer.close()

    async def _resume(self, producer: Producer) -> None:
        topic = self.target.topic
        self._partitions = await producer.partitions_for(topic)
        saved = await self._offsets.load(self.name)
        self._sent = []
        self._expected = None
        if saved is None:
            self._ends = await self._end_offsets()
            self._position = None
            await self._offsets.save(producer, self.name, SavedPosition(None, dict(self._ends)))
            self.checkpoints += 1
        else:
            self._position = saved.position
            self._ends = dict(saved.ends)
            if getattr(self.source, "rereads", True):
                await self._read_back(saved.ends)
        self._unsaved = False
        await self.source.start(self._position)
        log.info("source %s started at %r -> %s", self.name, self._position, topic)

    async def _end_offsets(self) -> dict[int, int]:
        consumer = self._transport.consumer(client_id=f"streamlog-connect-{self.name}")
        try:
            tps = [TopicPartition(self.target.topic, p) for p in range(self._partitions)]
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.close()
        return {tp.partition: offset for tp, offset in ends.items()}

    async def _read_back(self, ends: dict[int, int]) -> None:
        """The records acknowledged after the checkpoint, to match (module docstring)."""
        starts: dict[TopicPartition, int | None] = {
            TopicPartition(self.target.topic, p): o for p, o in ends.items() if p < self._partitions
        }
        if not starts:
            return
        consumer = self._transport.consumer(client_id=f"streamlog-connect-{self.name}")
        try:
            tails = await read_to_end(consumer, starts)
        finally:
            await consumer.close()
        expected = {
            tp.partition: deque((r.offset, r.key, r.value) for r in records)
            for tp, records in tails.items()
            if records
        }
        for tp, records in tails.items():
            if records:
                self._ends[tp.partition] = records[-1].offset + 1
        count = sum(len(q) for q in expected.values())
        if count:
            log.info(
                "source %s: %d record(s) in %s after its checkpoint: matched with what the "
                "source reads again instead of produced twice",
                self.name,
                count,
                self.target.topic,
            )
            self._expected = expected

    async def _loop(self, producer: Producer) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self._interval
        while not self._stop.is_set():
            try:
                batch = await self.source.poll()
            except StopAsyncIteration:
                self.finished = True
                break
            if batch:
                await self._produce(producer, batch)
                if self._told is not None:
                    await self._acknowledge(producer)
                    await self._told(self._position)
            if loop.time() >= due:
                await self._checkpoint(producer)
                due = loop.time() + self._interval
        await self._checkpoint(producer)
        if self.finished:
            log.info("source %s: read to its end (%d record(s) produced)", self.name, self.records)

    async def _produce(self, producer: Producer, batch: Sequence[SourceRecord]) -> None:
        """Encode, place and queue ``batch`` (records with no headers or timestamp of their
        own go per partition in one ``send_many``)."""
        topic = self.target.topic
        dumps_key, dumps_value = self.target.dumps_key, self.target.dumps_value
        partitions = self._partitions
        plain: dict[int, tuple[list[bytes | None], list[bytes | None]]] = {}
        for record in batch:
            try:
                key = dumps_key(record.key)
                value = dumps_value(record.value)
            except Exception as exc:
                raise SourceError(
                    f"source {self.name}: a record at position {record.position!r} does not "
                    f"encode for {topic}: {exc}"
                ) from exc
            if key is None:
                partition = null_key_partition(record.position, partitions)
            else:
                partition = partition_for_key(key, partitions)
            self._position = record.position
            self._unsaved = True
            if self._expected is not None and self._matches(partition, key, value):
                self.matched += 1
                continue
            if record.headers or record.timestamp_ms is not None:
                if plain:  # keep the order within each partition
                    await self._send_plain(producer, plain)
                ack = await producer.send(
                    topic,
                    value,
                    key=key,
                    partition=partition,
                    headers=record.headers,
                    timestamp_ms=record.timestamp_ms,
                )
                self._sent.append((partition, ack))
            else:
                keys, values = plain.setdefault(partition, ([], []))
                keys.append(key)
                values.append(value)
            self.records += 1
        if plain:
            await self._send_plain(producer, plain)

    async def _send_plain(
        self,
        producer: Producer,
        plain: dict[int, tuple[list[bytes | None], list[bytes | None]]],
    ) -> None:
        for partition, (keys, values) in plain.items():
            sent = await producer.send_many(
                self.target.topic, values, keys=keys, partition=partition
            )
            self._sent.append((partition, sent))
        plain.clear()

    def _matches(self, partition: int, key: bytes | None, value: bytes | None) -> bool:
        expected = self._expected
        if expected is None:
            return False
        queue = expected.get(partition)
        if not queue:
            return False
        _, expected_key, expected_value = queue[0]
        if expected_key == key and expected_value == value:
            queue.popleft()
            if not any(expected.values()):
                self._expected = None
            return True
        log.warning(
            "source %s: a record read again differs from the one the log holds in %s[%d] "
            "after the checkpoint (another producer writes the topic, or the outside system "
            "changed): matching stops, the %d record(s) left unmatched may be produced twice",
            self.name,
            self.target.topic,
            partition,
            sum(len(q) for q in expected.values()),
        )
        self._expected = None
        return False

    async def _acknowledge(self, producer: Producer) -> None:
        """Wait for every record produced so far; advance ``ends`` past them."""
        await producer.flush()
        sent, self._sent = self._sent, []
        ends = self._ends
        for partition, pending in sent:
            if hasattr(pending, "highest_offsets"):
                for p, offset in (await pending.highest_offsets()).items():
                    if offset >= 0:
                        ends[p] = max(ends.get(p, 0), offset + 1)
            else:
                metadata = await pending
                if metadata.offset >= 0:
                    ends[partition] = max(ends.get(partition, 0), metadata.offset + 1)

    async def _checkpoint(self, producer: Producer) -> None:
        """Save the position once everything up to it is acknowledged."""
        await self._acknowledge(producer)
        if not self._unsaved:
            return
        began = time.monotonic()
        ends = dict(self._ends)
        for partition, queue in (self._expected or {}).items():
            if queue:  # not matched yet: a restart from here must read them back again
                ends[partition] = queue[0][0]
        await self._offsets.save(producer, self.name, SavedPosition(self._position, ends))
        self._unsaved = False
        self.checkpoints += 1
        log.debug(
            "source %s: checkpoint at %r (%.1f ms)",
            self.name,
            self._position,
            (time.monotonic() - began) * 1000,
        )

    async def _close_source(self) -> None:
        try:
            await self.source.close()
        except Exception as exc:  # noqa: BLE001 - closing: log and go on
            log.warning("source %s: closing failed: %r", self.name, exc)
