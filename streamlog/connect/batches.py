"""How a table sink takes batches: what it holds until the next commit, and how it finds
the one record of a batch that the table refuses.

Both database sinks apply each batch on ``write``, in a savepoint (of the transaction
the next ``flush`` commits, for PostgreSQL; of the batch's own, for SQLite): a batch the
table refuses (a constraint, a column's type) is rolled back whole, and
``first_refused`` bisects over prefixes of its records (each prefix applied in a
savepoint of its own, then rolled back) to find the first record at fault in about
log2(n) tries. The sink applies the records before it, and raises
``refused_record_error`` for it: the runner dead-letters that record
(``BadRecordError.record``) and hands the sink the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from streamlog.connect.base import SinkRecord
from streamlog.connect.errors import BadRecordError
from streamlog.connect.rows import Delete, RowShape, Upsert, fold, record_key_text

__all__ = ["PendingRows", "operations_of", "first_refused", "refused_record_error"]


class PendingRows:
    """The row operations taken since the last commit, folded per key in the order of
    their last write (the order the table saw them in), and how many records they stand
    for. Kept so that a transaction the database ended can be applied again (the
    PostgreSQL sink's, lost with its connection)."""

    def __init__(self) -> None:
        self.operations: dict[str, Upsert | Delete] = {}
        self.records = 0

    def take(self, batch: dict[str, Upsert | Delete], records: int) -> None:
        for key, operation in batch.items():
            self.operations.pop(key, None)
            self.operations[key] = operation
        self.records += records

    def clear(self) -> None:
        self.operations.clear()
        self.records = 0


def operations_of(records: Sequence[SinkRecord], shape: RowShape) -> list[Upsert | Delete]:
    """The folded operations of records already known to be rows."""
    folded: dict[str, Upsert | Delete] = {}
    fold(folded, records, shape)
    return list(folded.values())


async def first_refused(count: int, goes_through: Callable[[int], Awaitable[bool]]) -> int:
    """The index of the record that makes a prefix fail first, for a batch of ``count``
    records that fails whole; ``goes_through(n)`` applies the first ``n`` records and
    rolls them back, saying whether the table took them."""
    good, bad = 0, count  # the first ``good`` records go through, the first ``bad`` do not
    while bad - good > 1:
        middle = (good + bad) // 2
        if await goes_through(middle):
            good = middle
        else:
            bad = middle
    return bad - 1


def refused_record_error(record: SinkRecord, error: BaseException) -> BadRecordError:
    """The ``BadRecordError`` for a record the table refused, naming it and the reason."""
    try:
        key: str | None = record_key_text(record)
    except BadRecordError:
        key = None
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return BadRecordError(
        f"{record.topic}[{record.partition}]@{record.offset} (key {key!r}): {reason}",
        record=record,
    )
