"""Idempotent-producer state of one partition: the last batches of each producer id.

Kafka's idempotent producer numbers its batches per partition (``baseSequence``) under a
producer id and epoch. The partition remembers, per producer, the sequence ranges and
offsets of its last five batches, so that a retried batch (the ack was lost) is answered
with the offsets it already got instead of being appended twice, and a gap in the
numbering is refused. Rules, as in Kafka's ``ProducerStateManager``:

* an epoch older than the stored one is fenced (``InvalidProducerEpochError``);
* a newer epoch, or a producer never seen, must start at sequence 0;
* a batch equal to one of the cached five (same first and last sequence) is a duplicate;
* otherwise the batch must follow the last one (sequence wraps at 2^31 - 1).

Transactions (Kafka's KIP-98): a transactional batch opens the producer's transaction on
the partition if none is open (its base offset is the transaction's first offset), and
a control batch (a COMMIT or ABORT marker the coordinator writes) ends it. While a
producer has a transaction open on the partition:

* a non-transactional batch from it is refused (``InvalidTxnStateError``), and so is a
  batch from a newer epoch: the coordinator ends the open transaction before the epoch
  moves on (its abort marker carries the new epoch);
* the partition's last stable offset cannot pass the transaction's first offset.

A marker from an epoch older than the producer's is fenced (``InvalidProducerEpochError``),
one from an older coordinator epoch too (``TransactionCoordinatorFencedError``); a marker
with a newer epoch moves the producer to it (its sequence numbers start again at 0).

The state is derived from batch headers (and the type of each marker), so it is rebuilt
by scanning the log on open (``producer_scan.py``); a snapshot written at clean shutdown
spares that scan.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field

from streamlog.log.batch_header import BatchHeader
from streamlog.log.errors import (
    InvalidProducerEpochError,
    InvalidTxnStateError,
    OutOfOrderSequenceError,
    TransactionCoordinatorFencedError,
)

__all__ = [
    "ProducerStateManager",
    "BatchMetadata",
    "CompletedTxn",
    "DuplicateBatch",
    "OutOfOrderSequenceError",
    "InvalidProducerEpochError",
]

MAX_CACHED_BATCHES = 5
SNAPSHOT_FILE = "producer-state.json"


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class DuplicateBatch:
    """A batch already in the log: where it was appended the first time."""

    original: BatchMetadata


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction a marker just ended: its producer, first offset and marker offset."""

    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool


@dataclass(slots=True)
class _ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))
    last_timestamp: int = -1
    coordinator_epoch: int = -1


class ProducerStateManager:
    """See the module docstring. Not thread-safe: the partition log's lock covers it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._producers: dict[int, _ProducerEntry] = {}
        # producer id -> first offset of its open transaction on this partition
        self._ongoing: dict[int, int] = {}
        # segment base offset -> digest of its .txnindex entries, from the snapshot loaded
        self.snapshot_txn_digests: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._producers)

    # -- transactions --------------------------------------------------------------------

    @property
    def ongoing_transactions(self) -> dict[int, int]:
        """Producer id -> first offset of each transaction open on the partition (a copy)."""
        return dict(self._ongoing)

    def first_unstable_offset(self) -> int | None:
        """The first offset of the earliest open transaction, or None when none is open."""
        ongoing = self._ongoing
        return min(ongoing.values()) if ongoing else None

    def check_marker(self, producer_id: int, epoch: int, coordinator_epoch: int) -> None:
        """Refuse a marker from a fenced producer epoch or coordinator epoch."""
        entry = self._producers.get(producer_id)
        if entry is None:
            return
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"transaction marker for producer {producer_id} has epoch {epoch}, older "
                f"than the current epoch {entry.epoch}"
            )
        if coordinator_epoch < entry.coordinator_epoch:
            raise TransactionCoordinatorFencedError(
                f"transaction marker for producer {producer_id} comes from coordinator epoch "
                f"{coordinator_epoch}, older than {entry.coordinator_epoch}"
            )

    def complete(
        self,
        producer_id: int,
        epoch: int,
        coordinator_epoch: int,
        marker_offset: int,
        timestamp: int,
        aborted: bool,
    ) -> CompletedTxn:
        """Apply a marker appended at ``marker_offset``: end the producer's open
        transaction and move the producer to ``epoch``. A marker that finds nothing open
        (the coordinator retrying, or a log whose aborted records compaction removed)
        ends a transaction of its own offset only, as in Kafka, so that replaying a log
        indexes the same aborts as writing it did."""
        entry = self._producers.get(producer_id)
        if entry is None or epoch > entry.epoch:
            entry = _ProducerEntry(epoch)
            self._producers[producer_id] = entry
        entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        entry.last_timestamp = max(entry.last_timestamp, timestamp)
        first = self._ongoing.pop(producer_id, marker_offset)
        return CompletedTxn(producer_id, first, marker_offset, aborted)

    def stable_offset_after(self, completed: CompletedTxn) -> int:
        """The last stable offset once ``completed`` has ended (for its index entry)."""
        first = self.first_unstable_offset()
        return completed.last_offset + 1 if first is None else first

    # -- idempotence ---------------------------------------------------------------------

    def check(self, header: BatchHeader) -> DuplicateBatch | None:
        """Validate an incoming batch; return the original if it is a duplicate."""
        pid = header.producer_id
        if pid < 0 or header.base_sequence < 0:
            return None
        entry = self._producers.get(pid)
        epoch = header.producer_epoch
        first, last = header.base_sequence, header.last_sequence
        if self._ongoing and pid in self._ongoing:
            self._check_in_transaction(header, entry)
        if entry is None or epoch > entry.epoch:
            if first != 0:
                raise OutOfOrderSequenceError(
                    f"producer {pid} epoch {epoch}: first sequence must be 0, got {first}"
                )
            return None
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {pid} epoch {epoch} is older than the current epoch {entry.epoch}"
            )
        for cached in entry.batches:
            if cached.first_seq == first and cached.last_seq == last:
                return DuplicateBatch(cached)
        expected = (entry.batches[-1].last_seq + 1) & 0x7FFFFFFF if entry.batches else 0
        if first != expected:
            raise OutOfOrderSequenceError(
                f"producer {pid} epoch {epoch}: expected sequence {expected}, got {first}"
            )
        return None

    def _check_in_transaction(self, header: BatchHeader, entry: _ProducerEntry | None) -> None:
        pid = header.producer_id
        if entry is not None and header.producer_epoch > entry.epoch:
            raise InvalidTxnStateError(
                f"producer {pid} has a transaction open at epoch {entry.epoch}: a batch "
                f"from epoch {header.producer_epoch} must wait for its marker"
            )
        if not header.is_transactional and (entry is None or header.producer_epoch == entry.epoch):
            raise InvalidTxnStateError(
                f"producer {pid} has a transaction open on this partition: expected a "
                "transactional batch"
            )

    def record(self, header: BatchHeader, first_offset: int) -> None:
        """Remember a batch that was just appended at ``first_offset`` (a transactional
        one opens its producer's transaction here if none is open)."""
        pid = header.producer_id
        if pid < 0 or header.base_sequence < 0:
            return
        entry = self._producers.get(pid)
        if entry is None or header.producer_epoch > entry.epoch:
            coordinator_epoch = entry.coordinator_epoch if entry is not None else -1
            entry = _ProducerEntry(header.producer_epoch, coordinator_epoch=coordinator_epoch)
            self._producers[pid] = entry
        if header.is_transactional and pid not in self._ongoing:
            self._ongoing[pid] = first_offset
        entry.batches.append(
            BatchMetadata(
                header.base_sequence,
                header.last_sequence,
                first_offset,
                first_offset + header.last_offset_delta,
                header.max_timestamp,
            )
        )
        entry.last_timestamp = max(entry.last_timestamp, header.max_timestamp)

    def expire(self, older_than_ms: int) -> int:
        """Forget producers idle since before ``older_than_ms`` (producer.id.expiration);
        never one with a transaction open."""
        stale = [
            p
            for p, e in self._producers.items()
            if e.last_timestamp < older_than_ms and p not in self._ongoing
        ]
        for pid in stale:
            del self._producers[pid]
        return len(stale)

    def truncate(self, offset: int) -> None:
        """Forget batches at or past ``offset`` (after a log truncation)."""
        for pid in list(self._producers):
            entry = self._producers[pid]
            kept = [b for b in entry.batches if b.last_offset < offset]
            if kept:
                entry.batches = deque(kept, maxlen=MAX_CACHED_BATCHES)
            else:
                del self._producers[pid]
        self._ongoing = {p: first for p, first in self._ongoing.items() if first < offset}

    # -- snapshots -----------------------------------------------------------------------

    def write_snapshot(self, offset: int, txn_index_digests: dict[int, int] | None = None) -> None:
        """Persist the state as of log end ``offset`` (at clean shutdown), with a digest
        of each segment's aborted-transaction index by base offset: an index that does
        not match its digest at the next open is rebuilt from the log."""
        data = {
            "offset": offset,
            "txn_indexes": {str(base): d for base, d in (txn_index_digests or {}).items()},
            "producers": {
                str(pid): {
                    "epoch": e.epoch,
                    "last_timestamp": e.last_timestamp,
                    "coordinator_epoch": e.coordinator_epoch,
                    "batches": [
                        [b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp]
                        for b in e.batches
                    ],
                }
                for pid, e in self._producers.items()
            },
            "ongoing": {str(pid): first for pid, first in self._ongoing.items()},
        }
        path = os.path.join(self.directory, SNAPSHOT_FILE)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(path + ".tmp", path)

    def load_snapshot(self) -> int | None:
        """Load the snapshot and delete it; return the offset it reflects, or None."""
        path = os.path.join(self.directory, SNAPSHOT_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            producers = {
                int(pid): _ProducerEntry(
                    int(e["epoch"]),
                    deque(
                        (BatchMetadata(*map(int, b)) for b in e["batches"]),
                        maxlen=MAX_CACHED_BATCHES,
                    ),
                    int(e["last_timestamp"]),
                    int(e.get("coordinator_epoch", -1)),
                )
                for pid, e in data["producers"].items()
            }
            offset = int(data["offset"])
            ongoing = {int(pid): int(first) for pid, first in data.get("ongoing", {}).items()}
            digests = {int(b): int(d) for b, d in data.get("txn_indexes", {}).items()}
            if any(not 0 <= first < offset for first in ongoing.values()):
                raise ValueError("an open transaction outside the log")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        finally:
            if os.path.exists(path):
                os.unlink(path)  # a stale snapshot must never be trusted after a crash
        self._producers = producers
        self._ongoing = ongoing
        self.snapshot_txn_digests = digests
        return offset
