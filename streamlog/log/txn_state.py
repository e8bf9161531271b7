"""The transaction coordinator's durable state: one record per transactional id in the
compacted internal topic ``__transaction_state``.

Every change of a transaction (a new epoch, partitions or a group added, offsets sent,
PrepareCommit/PrepareAbort, CompleteCommit/CompleteAbort) appends the transaction's whole
state as one record keyed by its transactional id, so compaction keeps the latest state
per id and a restart rebuilds the map by replaying the topic (``TransactionStateStore
.load``). An expired transactional id leaves a tombstone. The partition of an id is
``abs(java_hash(id)) % partitions``, Kafka's rule.

Record layout (big-endian, Kafka's primitive types; strings are int16 length + UTF-8):

* key: ``int16 version = 0, string transactional_id`` (Kafka's TransactionLogKey v0).
* value: ``int16 version = 0, int64 producer_id, int16 producer_epoch, int32
  timeout_ms, int8 status, [string topic, [int32 partition]] partitions, int64
  last_update_ms, int64 start_ms`` (Kafka's TransactionLogValue v0 fields, in its order),
  followed by a streamlog extension holding the transaction's consumer groups and their
  pending offsets: ``[string group, [string topic, int32 partition, int64 offset, int32
  leader_epoch, string metadata]]``. Kafka keeps pending offsets as transactional records
  in ``__consumer_offsets``; keeping them in the transaction's own record makes them as
  durable as the transaction (they survive a restart between TxnOffsetCommit and EndTxn)
  and lets ``__consumer_offsets`` hold only committed offsets. Arrays are int32 count +
  elements. Kafka tools do not read this extension.

Status ids are Kafka's (``TransactionState``): Empty 0, Ongoing 1, PrepareCommit 2,
PrepareAbort 3, CompleteCommit 4, CompleteAbort 5.

A record that does not decode is logged and skipped when loading (as in
``group_offsets.py``): one bad record loses that transaction's state, not every one's.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from streamlog.log.batch_header import peek_offsets
from streamlog.log.clock import Clock
from streamlog.log.errors import CorruptRecordError, InvalidRecordError, LogError
from streamlog.log.group_offsets import OffsetAndMetadata, java_string_hash
from streamlog.log.partition_log import AppendOrigin, PartitionLog
from streamlog.log.records import decode_batch, encode_batch
from streamlog.log.topic_names import TRANSACTION_STATE_TOPIC

__all__ = [
    "TRANSACTION_STATE_TOPIC",
    "TxnStatus",
    "TransactionMetadata",
    "TransactionStateStore",
    "encode_txn_key",
    "decode_txn_key",
    "encode_txn_value",
    "decode_txn_value",
]

log = logging.getLogger(__name__)

_KEY_VERSION = 0
_VALUE_VERSION = 0
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_VALUE_HEAD = struct.Struct(">hqhib")
_TIMES = struct.Struct(">qq")
_OFFSET = struct.Struct(">iqi")

TopicPartition = tuple[str, int]
PendingOffsets = dict[str, dict[TopicPartition, OffsetAndMetadata]]


class TxnStatus(IntEnum):
    """A transaction's state (Kafka's ``TransactionState`` ids)."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5

    @property
    def kafka_name(self) -> str:
        """The name DescribeTransactions / ListTransactions carry ("PrepareCommit")."""
        return _KAFKA_NAMES[self]

    @classmethod
    def from_kafka_name(cls, name: str) -> TxnStatus | None:
        return _BY_KAFKA_NAME.get(name)

    @property
    def is_prepare(self) -> bool:
        return self in (TxnStatus.PREPARE_COMMIT, TxnStatus.PREPARE_ABORT)

    @property
    def is_idle(self) -> bool:
        """No transaction open or completing: a new one may begin."""
        return self in (TxnStatus.EMPTY, TxnStatus.COMPLETE_COMMIT, TxnStatus.COMPLETE_ABORT)


_KAFKA_NAMES = {
    TxnStatus.EMPTY: "Empty",
    TxnStatus.ONGOING: "Ongoing",
    TxnStatus.PREPARE_COMMIT: "PrepareCommit",
    TxnStatus.PREPARE_ABORT: "PrepareAbort",
    TxnStatus.COMPLETE_COMMIT: "CompleteCommit",
    TxnStatus.COMPLETE_ABORT: "CompleteAbort",
}
_BY_KAFKA_NAME = {name: status for status, name in _KAFKA_NAMES.items()}


@dataclass(frozen=True, slots=True)
class TransactionMetadata:
    """One transactional id's state, as stored. Treated as immutable: the coordinator
    makes a new one (``dataclasses.replace``) for every change and stores it before it
    takes effect. ``pending_offsets`` maps each group the transaction added (AddOffsets)
    to the offsets sent for it so far (TxnOffsetCommit)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    status: TxnStatus
    partitions: frozenset[TopicPartition] = frozenset()
    last_update_ms: int = -1
    start_ms: int = -1
    pending_offsets: Mapping[str, Mapping[TopicPartition, OffsetAndMetadata]] = field(
        default_factory=dict
    )


# -- codec ---------------------------------------------------------------------------


def _string(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0x7FFF:
        raise InvalidRecordError("string longer than 32767 bytes")
    return _I16.pack(len(data)) + data


class _Reader:
    """Bounds-checked reads over one record: every length is checked against what is
    left, so a corrupt count cannot make the loader allocate or loop past the record."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, st: struct.Struct) -> tuple[int, ...]:
        if self.pos + st.size > len(self.buf):
            raise CorruptRecordError("__transaction_state record is truncated")
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return values

    def string(self) -> str:
        (n,) = self.unpack(_I16)
        if n < 0 or self.pos + n > len(self.buf):
            raise CorruptRecordError("bad string length in __transaction_state record")
        try:
            text = self.buf[self.pos : self.pos + n].decode()
        except UnicodeDecodeError:
            raise CorruptRecordError("bad UTF-8 in __transaction_state record") from None
        self.pos += n
        return text

    def count(self, min_element_bytes: int) -> int:
        (n,) = self.unpack(_I32)
        if n < 0 or n * min_element_bytes > len(self.buf) - self.pos:
            raise CorruptRecordError(f"bad array length {n} in __transaction_state record")
        return n


def encode_txn_key(transactional_id: str) -> bytes:
    return _I16.pack(_KEY_VERSION) + _string(transactional_id)


def decode_txn_key(key: bytes) -> str:
    reader = _Reader(key)
    (version,) = reader.unpack(_I16)
    if version != _KEY_VERSION:
        raise CorruptRecordError(f"unsupported __transaction_state key version {version}")
    return reader.string()


def encode_txn_value(meta: TransactionMetadata) -> bytes:
    parts = [
        _VALUE_HEAD.pack(
            _VALUE_VERSION, meta.producer_id, meta.producer_epoch, meta.timeout_ms, meta.status
        )
    ]
    by_topic: dict[str, list[int]] = {}
    for topic, partition in meta.partitions:
        by_topic.setdefault(topic, []).append(partition)
    parts.append(_I32.pack(len(by_topic)))
    for topic in sorted(by_topic):
        numbers = sorted(by_topic[topic])
        parts.append(_string(topic) + _I32.pack(len(numbers)))
        parts.append(struct.pack(f">{len(numbers)}i", *numbers))
    parts.append(_TIMES.pack(meta.last_update_ms, meta.start_ms))
    parts.append(_I32.pack(len(meta.pending_offsets)))
    for group in sorted(meta.pending_offsets):
        offsets = meta.pending_offsets[group]
        parts.append(_string(group) + _I32.pack(len(offsets)))
        for (topic, partition), value in sorted(offsets.items()):
            parts.append(_string(topic))
            parts.append(_OFFSET.pack(partition, value.offset, value.leader_epoch))
            parts.append(_string(value.metadata))
    return b"".join(parts)


def decode_txn_value(transactional_id: str, data: bytes) -> TransactionMetadata:
    """The state stored in a value; ``CorruptRecordError`` if it does not decode."""
    reader = _Reader(data)
    version, producer_id, epoch, timeout_ms, status = reader.unpack(_VALUE_HEAD)
    if version != _VALUE_VERSION:
        raise CorruptRecordError(f"unsupported __transaction_state value version {version}")
    try:
        txn_status = TxnStatus(status)
    except ValueError:
        raise CorruptRecordError(f"unknown transaction status {status}") from None
    partitions: set[TopicPartition] = set()
    for _ in range(reader.count(6)):
        topic = reader.string()
        for _ in range(reader.count(4)):
            (partition,) = reader.unpack(_I32)
            partitions.add((topic, partition))
    last_update_ms, start_ms = reader.unpack(_TIMES)
    pending: PendingOffsets = {}
    for _ in range(reader.count(6)):
        group = reader.string()
        offsets = pending.setdefault(group, {})
        for _ in range(reader.count(20)):
            topic = reader.string()
            partition, offset, leader_epoch = reader.unpack(_OFFSET)
            metadata = reader.string()
            offsets[(topic, partition)] = OffsetAndMetadata(offset, metadata, leader_epoch)
    return TransactionMetadata(
        transactional_id,
        producer_id,
        epoch,
        timeout_ms,
        txn_status,
        frozenset(partitions),
        last_update_ms,
        start_ms,
        pending,
    )


# -- the store -----------------------------------------------------------------------


class TransactionStateStore:
    """Writes and replays ``__transaction_state``. Not thread-safe on its own: the
    coordinator serialises writes per transactional id, and each partition log has its
    own lock for the append itself."""

    def __init__(self, partitions: Sequence[PartitionLog], clock: Clock, durable: bool = True):
        if not partitions:
            raise InvalidRecordError("__transaction_state needs at least one partition")
        self._logs = list(partitions)
        self._clock = clock
        self._durable = durable

    @staticmethod
    def topic_configs() -> dict[str, str]:
        return {
            "cleanup.policy": "compact",
            "segment.bytes": str(100 * 1024 * 1024),
            "max.message.bytes": str(16 * 1024 * 1024),
        }

    def partition_for(self, transactional_id: str) -> int:
        return (java_string_hash(transactional_id) & 0x7FFFFFFF) % len(self._logs)

    def write(self, meta: TransactionMetadata, *, sync: bool = True) -> None:
        """Store ``meta`` before the caller acts on it: flushed to disk when the store is
        durable, unless ``sync`` is False (a state that, if lost, is rebuilt from the
        one before it: see the coordinator's ``_complete``)."""
        entry = (
            encode_txn_key(meta.transactional_id),
            encode_txn_value(meta),
            self._clock.time_ms(),
            (),
        )
        self._append(meta.transactional_id, entry, sync)

    def delete(self, transactional_id: str) -> None:
        """A tombstone: compaction then forgets the id (not flushed: an id that comes
        back after a crash is forgotten again by the next expiry)."""
        key = encode_txn_key(transactional_id)
        self._append(transactional_id, (key, None, self._clock.time_ms(), ()), False)

    def _append(
        self,
        transactional_id: str,
        entry: tuple[bytes, bytes | None, int, tuple[()]],
        sync: bool,
    ) -> None:
        plog = self._logs[self.partition_for(transactional_id)]
        plog.append(encode_batch([entry]), AppendOrigin.COORDINATOR)
        if self._durable and sync:
            plog.sync_records()

    def load(self) -> dict[str, TransactionMetadata]:
        """The latest state of every transactional id stored (tombstones removed)."""
        states: dict[str, TransactionMetadata | None] = {}
        for partition, plog in enumerate(self._logs):
            self._replay(partition, plog, states)
        return {k: v for k, v in states.items() if v is not None}

    def _replay(
        self, partition: int, plog: PartitionLog, states: dict[str, TransactionMetadata | None]
    ) -> None:
        next_offset = plog.log_start_offset
        batches = plog.iter_batches()
        while True:
            try:
                raw = next(batches, None)
            except LogError as exc:
                _skipped(partition, next_offset, f"{exc}; the rest of this partition is not read")
                return
            if raw is None:
                return
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
                try:
                    if record.key is None:
                        raise CorruptRecordError("record without a key")
                    txn_id = decode_txn_key(record.key)
                    states[txn_id] = (
                        None if record.value is None else decode_txn_value(txn_id, record.value)
                    )
                except LogError as exc:
                    _skipped(partition, record.offset, str(exc))


def _skipped(partition: int, offset: int, reason: str) -> None:
    log.warning(
        "%s-%d offset %d: skipped while loading transaction state: %s",
        TRANSACTION_STATE_TOPIC,
        partition,
        offset,
        reason,
    )
