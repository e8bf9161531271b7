"""Consumer-group committed offsets, kept as Kafka keeps them: in ``__consumer_offsets``.

Each commit appends records to the partition of ``__consumer_offsets`` that owns the group
(``abs(java_hash(group)) % partitions``, Kafka's rule) and updates an in-memory map once the
append is done. The topic is compacted, so the latest commit per (group, topic, partition)
survives; a deleted group leaves tombstones. On start the map is rebuilt by replaying the
topic. Records use Kafka's own schemas, so the bytes mean the same thing to Kafka tools:

* key, version 1: ``int16 version, string group, string topic, int32 partition``
* value, version 3: ``int16 version, int64 offset, int32 leader epoch, string metadata,
  int64 commit timestamp``

Other key versions (Kafka's group metadata, version 2) are skipped when loading, and so
is a record that does not decode (logged with its offset): a bad record never stops a start.
Only the broker writes this topic (``LogManager.append`` refuses internal topics).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streamlog.log.batch_header import peek_offsets
from streamlog.log.clock import Clock
from streamlog.log.errors import CorruptRecordError, InvalidRecordError, LogError
from streamlog.log.partition_log import AppendOrigin, PartitionLog
from streamlog.log.records import decode_batch, encode_batch
from streamlog.log.topic_names import CONSUMER_OFFSETS_TOPIC

__all__ = [
    "OFFSETS_TOPIC",
    "OffsetAndMetadata",
    "GroupOffsetStore",
    "java_string_hash",
    "encode_offset_key",
    "decode_offset_key",
    "encode_offset_value",
    "decode_offset_value",
]

log = logging.getLogger(__name__)

OFFSETS_TOPIC = CONSUMER_OFFSETS_TOPIC
_OFFSET_KEY_VERSION = 1
_OFFSET_VALUE_VERSION = 3
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_VALUE_HEAD = struct.Struct(">hqi")


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    metadata: str = ""
    leader_epoch: int = -1
    commit_timestamp: int = -1


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _string(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0x7FFF:
        raise InvalidRecordError("string longer than 32767 bytes")
    return _I16.pack(len(data)) + data


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = _I16.unpack_from(buf, pos)
    pos += 2
    if n < 0 or pos + n > len(buf):
        raise CorruptRecordError("bad string length in __consumer_offsets record")
    return buf[pos : pos + n].decode(), pos + n


def encode_offset_key(group: str, topic: str, partition: int) -> bytes:
    return _I16.pack(_OFFSET_KEY_VERSION) + _string(group) + _string(topic) + _I32.pack(partition)


def decode_offset_key(key: bytes) -> tuple[str, str, int] | None:
    """(group, topic, partition), or None for a key that is not an offset commit."""
    try:
        (version,) = _I16.unpack_from(key, 0)
        if version not in (0, 1):
            return None
        group, pos = _read_string(key, 2)
        topic, pos = _read_string(key, pos)
        (partition,) = _I32.unpack_from(key, pos)
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"bad __consumer_offsets key: {exc}") from None
    return group, topic, partition


def encode_offset_value(value: OffsetAndMetadata) -> bytes:
    return (
        _VALUE_HEAD.pack(_OFFSET_VALUE_VERSION, value.offset, value.leader_epoch)
        + _string(value.metadata)
        + struct.pack(">q", value.commit_timestamp)
    )


def decode_offset_value(data: bytes) -> OffsetAndMetadata:
    try:
        version, offset, epoch = _VALUE_HEAD.unpack_from(data, 0)
        if version != _OFFSET_VALUE_VERSION:
            raise CorruptRecordError(f"unsupported offset value version {version}")
        metadata, pos = _read_string(data, 14)
        (timestamp,) = struct.unpack_from(">q", data, pos)
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"bad __consumer_offsets value: {exc}") from None
    return OffsetAndMetadata(offset, metadata, epoch, timestamp)


class GroupOffsetStore:
    """Committed offsets per group, durable in ``__consumer_offsets``; thread-safe."""

    def __init__(self, partitions: Sequence[PartitionLog], clock: Clock, durable: bool = True):
        self._logs = list(partitions)
        self._clock = clock
        self._durable = durable
        self._offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def topic_configs() -> dict[str, str]:
        return {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)}

    def partition_for(self, group: str) -> int:
        """The ``__consumer_offsets`` partition, hence the coordinator, of ``group``."""
        return (java_string_hash(group) & 0x7FFFFFFF) % len(self._logs)

    def load(self) -> int:
        """Rebuild the map from the topic; returns the number of records replayed.

        A record that does not decode is logged (partition, offset, reason) and skipped,
        and a batch that cannot be read ends the replay of its partition only: whatever
        else is stored still loads, and the broker starts. Dropping one bad commit
        loses at most that commit; refusing to start would lose every group's.
        """
        offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        count = 0
        for partition, plog in enumerate(self._logs):
            count += self._replay(partition, plog, offsets)
        with self._lock:
            self._offsets = {g: o for g, o in offsets.items() if o}
        return count

    def _replay(
        self,
        partition: int,
        plog: PartitionLog,
        offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]],
    ) -> int:
        count = 0
        next_offset = plog.log_start_offset
        batches = plog.iter_batches()
        while True:
            try:
                raw = next(batches, None)
            except LogError as exc:
                _skipped(partition, next_offset, f"{exc}; the rest of this partition is not read")
                return count
            if raw is None:
                return count
            base_offset, _, last_offset = peek_offsets(raw, 0)
            next_offset = last_offset + 1
            try:
                batch = decode_batch(raw)
            except LogError as exc:
                _skipped(partition, base_offset, f"batch does not decode: {exc}")
                continue
            if batch.header.is_control:
                continue
            for record in batch.records:
                count += 1
                try:
                    _apply(record.key, record.value, offsets)
                except LogError as exc:
                    _skipped(partition, record.offset, str(exc))

    def commit(
        self, group: str, offsets: Mapping[tuple[str, int], OffsetAndMetadata | int]
    ) -> None:
        """Durably store ``offsets`` for ``group`` (all or none: one batch, one append)."""
        if not offsets:
            return
        now = self._clock.time_ms()
        values: dict[tuple[str, int], OffsetAndMetadata] = {}
        entries = []
        for (topic, partition), value in offsets.items():
            if isinstance(value, int):
                value = OffsetAndMetadata(value)
            if value.commit_timestamp < 0:
                value = OffsetAndMetadata(value.offset, value.metadata, value.leader_epoch, now)
            values[(topic, partition)] = value
            entries.append(
                (encode_offset_key(group, topic, partition), encode_offset_value(value), now, ())
            )
        plog = self._logs[self.partition_for(group)]
        with self._lock:
            plog.append(encode_batch(entries), AppendOrigin.COORDINATOR)
            if self._durable:
                plog.flush()
            self._offsets.setdefault(group, {}).update(values)

    def fetch(
        self, group: str, partitions: Iterable[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], OffsetAndMetadata]:
        with self._lock:
            stored = self._offsets.get(group, {})
            if partitions is None:
                return dict(stored)
            return {tp: stored[tp] for tp in partitions if tp in stored}

    def groups(self) -> list[str]:
        with self._lock:
            return sorted(self._offsets)

    def delete_group(self, group: str) -> int:
        """Tombstone every committed offset of ``group``; returns how many there were."""
        with self._lock:
            stored = self._offsets.get(group)
            if not stored:
                return 0
            now = self._clock.time_ms()
            entries = [(encode_offset_key(group, t, p), None, now, ()) for t, p in stored]
            plog = self._logs[self.partition_for(group)]
            plog.append(encode_batch(entries), AppendOrigin.COORDINATOR)
            if self._durable:
                plog.flush()
            del self._offsets[group]
            return len(entries)


def _apply(
    key: bytes | None,
    value: bytes | None,
    offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]],
) -> None:
    """Apply one ``__consumer_offsets`` record to ``offsets``; raises ``LogError`` if bad."""
    if key is None:
        return
    parsed = decode_offset_key(key)
    if parsed is None:
        return  # group metadata (key version 2): membership is not kept across restarts
    group, topic, partition = parsed
    if value is None:
        offsets.get(group, {}).pop((topic, partition), None)
    else:
        offsets.setdefault(group, {})[(topic, partition)] = decode_offset_value(value)


def _skipped(partition: int, offset: int, reason: str) -> None:
    log.warning(
        "%s-%d offset %d: skipped while loading committed offsets: %s",
        OFFSETS_TOPIC,
        partition,
        offset,
        reason,
    )
