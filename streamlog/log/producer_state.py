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

The state is derived from batch headers, so it is rebuilt by scanning the log on open;
a snapshot written at clean shutdown spares most of that scan.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field

from streamlog.log.batch_header import BatchHeader
from streamlog.log.errors import InvalidProducerEpochError, OutOfOrderSequenceError

__all__ = [
    "ProducerStateManager",
    "BatchMetadata",
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


@dataclass(slots=True)
class _ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))
    last_timestamp: int = -1


class ProducerStateManager:
    """See the module docstring. Not thread-safe: the partition log's lock covers it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._producers: dict[int, _ProducerEntry] = {}

    def __len__(self) -> int:
        return len(self._producers)

    def check(self, header: BatchHeader) -> DuplicateBatch | None:
        """Validate an incoming batch; return the original if it is a duplicate."""
        pid = header.producer_id
        if pid < 0 or header.base_sequence < 0:
            return None
        entry = self._producers.get(pid)
        epoch = header.producer_epoch
        first, last = header.base_sequence, header.last_sequence
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

    def record(self, header: BatchHeader, first_offset: int) -> None:
        """Remember a batch that was just appended at ``first_offset``."""
        pid = header.producer_id
        if pid < 0 or header.base_sequence < 0:
            return
        entry = self._producers.get(pid)
        if entry is None or header.producer_epoch > entry.epoch:
            entry = _ProducerEntry(header.producer_epoch)
            self._producers[pid] = entry
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
        """Forget producers idle since before ``older_than_ms`` (producer.id.expiration)."""
        stale = [p for p, e in self._producers.items() if e.last_timestamp < older_than_ms]
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

    # -- snapshots -----------------------------------------------------------------------

    def write_snapshot(self, offset: int) -> None:
        """Persist the state as of log end ``offset`` (at clean shutdown)."""
        data = {
            "offset": offset,
            "producers": {
                str(pid): {
                    "epoch": e.epoch,
                    "last_timestamp": e.last_timestamp,
                    "batches": [
                        [b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp]
                        for b in e.batches
                    ],
                }
                for pid, e in self._producers.items()
            },
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
                )
                for pid, e in data["producers"].items()
            }
            offset = int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            if os.path.exists(path):
                os.unlink(path)  # a stale snapshot must never be trusted after a crash
        self._producers = producers
        return offset
