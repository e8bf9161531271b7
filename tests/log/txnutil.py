"""Helpers for the transaction tests: a transactional producer writing straight to a
partition log, a read_committed consumer that applies ``aborted_transactions`` as Kafka's
clients do, and a reference model of what each isolation level must show."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamlog.log.partition_log import IsolationLevel, PartitionLog
from streamlog.log.records import ControlType, decode_batch, decode_control_record, encode_batch

__all__ = ["TxnProducer", "Model", "consume", "plain_batch"]

NOW = 1_700_000_000_000


@dataclass
class TxnProducer:
    """A producer id with its epoch and next sequence, appending as a client would once
    the broker has verified its transaction (``transaction_verified=True``)."""

    producer_id: int
    epoch: int = 0
    sequence: int = 0

    def send(
        self, plog: PartitionLog, values: list[bytes], *, transactional: bool = True, key=None
    ) -> int:
        entries = [(key(v) if key else None, v, NOW, ()) for v in values]
        batch = encode_batch(
            entries,
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=self.sequence,
            transactional=transactional,
        )
        result = plog.append(batch, transaction_verified=True)
        self.sequence += len(values)
        return result.base_offset

    def end(self, plog: PartitionLog, commit: bool, coordinator_epoch: int = 0) -> int:
        kind = ControlType.COMMIT if commit else ControlType.ABORT
        return plog.write_txn_marker(
            self.producer_id, self.epoch, kind, coordinator_epoch
        ).base_offset


def plain_batch(values: list[bytes], key=None) -> bytes:
    return encode_batch([(key(v) if key else None, v, NOW, ()) for v in values])


@dataclass
class Model:
    """What was written, in offset order: (offset, producer id or -1, value) records,
    and for each transaction its records and its outcome."""

    records: list[tuple[int, int, bytes]] = field(default_factory=list)
    open: dict[int, list[int]] = field(default_factory=dict)  # pid -> offsets
    first: dict[int, int] = field(default_factory=dict)  # pid -> first offset of open txn
    aborted_offsets: set[int] = field(default_factory=set)
    aborted: list[tuple[int, int, int]] = field(default_factory=list)  # pid, first, marker

    def data(self, base: int, pid: int, values: list[bytes], transactional: bool) -> None:
        for i, v in enumerate(values):
            self.records.append((base + i, pid, v))
            if transactional:
                self.open.setdefault(pid, []).append(base + i)
                self.first.setdefault(pid, base)

    def end(self, pid: int, marker: int, commit: bool) -> None:
        offsets = self.open.pop(pid, [])
        first = self.first.pop(pid, None)
        if not commit:
            # An abort with nothing open is indexed from its own offset (as Kafka does).
            self.aborted_offsets.update(offsets)
            self.aborted.append((pid, marker if first is None else first, marker))

    def stable(self, log_end: int) -> int:
        return min(self.first.values(), default=log_end)

    def committed_view(self, log_end: int) -> list[tuple[int, bytes]]:
        lso = self.stable(log_end)
        return [(o, v) for o, _, v in self.records if o < lso and o not in self.aborted_offsets]

    def uncommitted_view(self) -> list[tuple[int, bytes]]:
        return [(o, v) for o, _, v in self.records]


def consume(
    plog: PartitionLog, isolation: IsolationLevel, max_bytes: int = 300
) -> tuple[list[tuple[int, bytes | None]], set[tuple[int, int]]]:
    """Read the whole partition in small fetches as a Kafka consumer does: with
    read_committed, drop the records of the aborted transactions each fetch lists.
    Returns the (offset, value) records seen and every (producer id, first offset)
    listed as aborted."""
    out: list[tuple[int, bytes | None]] = []
    listed: set[tuple[int, int]] = set()
    offset = plog.log_start_offset
    for _ in range(100_000):
        result = plog.read(offset, max_bytes, isolation=isolation)
        if not result.records:
            break
        pending = sorted(result.aborted_transactions or (), key=lambda t: t.first_offset)
        listed.update((t.producer_id, t.first_offset) for t in pending)
        aborting: set[int] = set()
        data = bytes(result.records)
        pos = 0
        while pos < len(data):
            size = int.from_bytes(data[pos + 8 : pos + 12], "big") + 12
            batch = decode_batch(data[pos : pos + size])
            pos += size
            header = batch.header
            offset = max(offset, header.last_offset + 1)
            while pending and pending[0].first_offset <= header.last_offset:
                aborting.add(pending.pop(0).producer_id)
            if header.is_control:
                marker = decode_control_record(batch.records[0])
                if marker.type == ControlType.ABORT:
                    aborting.discard(header.producer_id)
                continue
            if header.is_transactional and header.producer_id in aborting:
                continue
            out.extend((r.offset, r.value) for r in batch.records if r.offset >= 0)
    else:
        raise AssertionError("the reads did not reach the end")
    return out, listed
