"""What log compaction does with transactions (Kafka's ``CleanedTransactionMetadata``).

The cleaner walks batches in offset order, below the last stable offset only (every
transaction there has ended). The partition's aborted transactions (from the
``.txnindex`` files) say which producer's batches belong to an aborted transaction: from
a transaction's first offset until its abort marker, that producer's transactional
batches are aborted. The rules, as in Kafka:

* records of aborted transactions are removed, and kept out of the key -> offset map (an
  aborted write must not hide the committed value before it);
* an ABORT marker is kept while the pass saw batches of its transaction (they are
  removed in this pass; a consumer reading the old segments may still need the marker),
  and a COMMIT marker while the pass saw batches of its transaction (its records may
  still be there); otherwise the marker may go, but only once ``delete.retention.ms``
  has passed: the pass that first finds it removable stamps its delete horizon (as a
  tombstone's), a pass after the horizon drops it;
* an aborted transaction's ``.txnindex`` entry stays exactly as long as its marker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from streamlog.log.batch_header import BatchHeader
from streamlog.log.records import ControlType
from streamlog.log.txn_index import AbortedTxn

__all__ = ["TransactionTracker"]


@dataclass(slots=True)
class _OpenAbort:
    txn: AbortedTxn
    observed: bool = False


class TransactionTracker:
    """Follows the transactions of a walk that starts at ``start``; see the module
    docstring. ``aborted`` must hold every aborted transaction with records at or after
    ``start`` in the range walked (``PartitionLog.aborted_transactions``)."""

    def __init__(self, aborted: Iterable[AbortedTxn], start: int) -> None:
        self._pending = deque(
            sorted((t for t in aborted if t.last_offset >= start), key=lambda t: t.first_offset)
        )
        self._aborting: dict[int, _OpenAbort] = {}
        self._committing: set[int] = set()

    def _reach(self, offset: int) -> None:
        pending = self._pending
        while pending and pending[0].first_offset <= offset:
            txn = pending.popleft()
            self._aborting[txn.producer_id] = _OpenAbort(txn)

    def is_aborted(self, header: BatchHeader) -> bool:
        """Whether a data batch belongs to an aborted transaction (then it is removed)."""
        self._reach(header.last_offset)
        if not header.is_transactional:
            return False
        pid = header.producer_id
        open_abort = self._aborting.get(pid)
        if open_abort is not None:
            open_abort.observed = True
            return True
        self._committing.add(pid)
        return False

    def on_marker(
        self, header: BatchHeader, control_type: ControlType
    ) -> tuple[bool, AbortedTxn | None]:
        """(whether the marker may be removed once its horizon passed, the index entry
        of the transaction it aborts, if any)."""
        self._reach(header.last_offset)
        pid = header.producer_id
        if control_type == ControlType.ABORT:
            open_abort = self._aborting.pop(pid, None)
            if open_abort is None:
                return True, None
            return not open_abort.observed, open_abort.txn
        if pid in self._committing:
            self._committing.discard(pid)
            return False, None
        return True, None
