"""The commit sequence, written once: tables, outputs and source offsets, in this order.

A ``Checkpoint`` collects what processing did since the last commit: one
``PartitionTransaction`` per store partition written, and the acknowledgements of the
records produced to output topics. ``commit(source_offsets)`` then runs:

1. **prepare** every open transaction: each sends its changed keys to its changelog
   partition (deletes as tombstones), queued in one go;
2. **flush the producer and await every acknowledgement**: the changelog records of
   step 1 and every output record produced while processing (``send``/``track``);
3. **flush each store partition** with the highest changelog offset acknowledged for it,
   changes and offset in one atomic write;
4. **commit the source offsets** to the consumer group (the ``commit`` callable);
5. **start fresh transactions**: the committed ones are dropped, and the next
   ``transaction()`` call for a partition opens a new one.

Why this order: a source offset is committed only once everything its records caused is
durable (outputs and changelogs acknowledged, stores written), so a crash at any point
re-delivers records and never skips one (at-least-once). A store is written only after
its changelog is acknowledged, so it never records a change its changelog lacks.

A failure of step 4 alone leaves the checkpoint usable (``OffsetsNotCommittedError``):
everything the events caused is durable, so a later commit covers their offsets, or the
partitions' next owner processes them again (a rebalance, a group coordinator that
restarted). A failure before step 4 commits no source offset: ``commit`` raises ``CheckpointError``
(with the step and the cause) and the checkpoint is closed. What was sent or written
before the failure stays: changelog records already acknowledged are replayed into the
store by the next recovery, and the re-delivered source records are processed again on
top of them. That is at-least-once for table updates too; the worker's way out of a
failed commit is the crash path: close the stores, recover them from their changelogs,
seek the sources to their committed offsets, and make a new ``Checkpoint``.

Under exactly-once (``transaction`` given: ``exactly_once.TransactionalSends``, the
producer every output went through) steps 1-2 are the same, inside the producer's open
transaction; then step 4 comes before step 3 and is the transaction's commit: the source
offsets are handed to the transaction and it commits, so outputs, changelog records and
offsets become visible together to read_committed readers, or (aborted) never. Stores are
written only after that commit, so a store never records a change of an aborted
transaction; a crash between the commit and step 3 leaves the store behind its changelog,
which recovery replays. A failure at any step aborts the transaction (when it is not
committed yet) and raises ``CheckpointError``; nothing of the events since the last
commit is visible, and they must be processed again from the committed offsets.

Transport-agnostic: the producer is any ``streamlog.transport.Producer``, and the offset
commit is a callable (``consumer.commit`` usually), so the streams core decides how
offsets are committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NoReturn, Protocol

from streamlog.state.errors import (
    CheckpointClosedError,
    CheckpointError,
    ExactlyOnceError,
    OffsetsNotCommittedError,
    TransactionAbortedError,
)
from streamlog.state.stores import StorePartition
from streamlog.state.transaction import PartitionTransaction
from streamlog.transport.base import Producer
from streamlog.transport.types import Header, RecordMetadata, TopicPartition

__all__ = ["Checkpoint", "CommitOffsets", "TransactionCommit"]

log = logging.getLogger(__name__)

CommitOffsets = Callable[[Mapping[TopicPartition, int]], Awaitable[None]]
"""Commits source offsets (next offset to read, per partition) for the consumer group."""


class TransactionCommit(Protocol):
    """How an exactly-once checkpoint ends its producer's transaction
    (``exactly_once.TransactionalSends``)."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the transaction with the source offsets (aborts it on failure)."""
        ...

    async def abort(self) -> None:
        """Abort the transaction and begin the next one."""
        ...

    @property
    def usable(self) -> bool:
        """False once the producer cannot transact any more (fenced)."""
        ...


class Checkpoint:
    """The work between two commits, and the commit sequence (module docstring).

    Reusable after a successful ``commit``; closed for good after a failed one or
    ``discard``. One event loop uses it; calls must not overlap a running ``commit``.

    ``ack_timeout_ms`` bounds step 2 (None: as long as the transport's own delivery
    timeout lets the acknowledgements take).
    """

    def __init__(
        self,
        producer: Producer,
        commit: CommitOffsets,
        *,
        ack_timeout_ms: int | None = None,
        transaction: TransactionCommit | None = None,
    ) -> None:
        self._producer = producer
        self._commit = commit
        self._transaction = transaction
        self._ack_timeout = None if ack_timeout_ms is None else ack_timeout_ms / 1000
        self._transactions: dict[StorePartition, PartitionTransaction] = {}
        self._outputs: list[Awaitable[RecordMetadata]] = []
        self._closed: str | None = None  # why, once closed
        self._committing = False

    def __repr__(self) -> str:
        state = f"closed: {self._closed}" if self._closed else "open"
        return (
            f"Checkpoint({len(self._transactions)} transactions, "
            f"{len(self._outputs)} outputs, {state})"
        )

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def empty(self) -> bool:
        """True when a commit would send, write and wait for nothing but the offsets."""
        return not self._outputs and not any(t.changes for t in self._transactions.values())

    def _check_usable(self) -> None:
        if self._closed is not None:
            raise CheckpointClosedError(f"this checkpoint is closed ({self._closed})")
        if self._committing:
            raise CheckpointClosedError("a commit of this checkpoint is running")

    # -- what processing does ------------------------------------------------------------

    def transaction(
        self, store: StorePartition, changelog: TopicPartition | None
    ) -> PartitionTransaction:
        """The open transaction of ``store`` (made on first use after each commit).

        A caller may keep the returned transaction while its ``open`` is True: the
        checkpoint lets go of a transaction only once it was prepared (a commit) or failed
        (a failed commit, ``discard``), after which ``open`` is False for good.
        """
        found = self._transactions.get(store)
        if found is None:
            self._check_usable()
            found = self._transactions[store] = PartitionTransaction(store, changelog)
        elif found.changelog != changelog:
            raise ValueError(
                f"{store!r} is changelogged to {found.changelog}, not {changelog}, "
                "in this checkpoint"
            )
        return found

    def reader(self, store: StorePartition) -> PartitionTransaction | StorePartition:
        """What a read of ``store`` sees now, at any time, a running commit included: its
        transaction in this checkpoint (open, or being committed), else the store itself.

        Never opens a transaction (a commit may be running), so reads from outside
        processing (web views, timers, tests) never fail or leave one behind.
        """
        found = self._transactions.get(store)
        return store if found is None else found

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Produce an output record whose acknowledgement the next commit waits for."""
        self._check_usable()
        ack = await self._producer.send(
            topic, value, key=key, partition=partition, headers=headers, timestamp_ms=timestamp_ms
        )
        self._outputs.append(ack)
        return ack

    def track(self, ack: Awaitable[RecordMetadata]) -> None:
        """Make the next commit wait for a record produced elsewhere with this producer."""
        self._check_usable()
        self._outputs.append(ack)

    # -- the commit ----------------------------------------------------------------------

    async def commit(self, source_offsets: Mapping[TopicPartition, int]) -> None:
        """Run the commit sequence of the module docstring; ``CheckpointError`` on failure.

        ``source_offsets`` are the next offsets to read, per source partition (may be
        empty: tables and outputs are still made durable).
        """
        self._check_usable()
        self._committing = True
        try:
            await self._make_durable(source_offsets)
            # (5) fresh transactions, made on demand by transaction(): the committed ones
            # are done with whatever step 4 does (what it commits is durable now).
            self._transactions = {}
            self._outputs = []
            # (4) commit the source offsets (under exactly-once: done, in the transaction)
            if source_offsets and self._transaction is None:
                try:
                    await self._commit(dict(source_offsets))
                except Exception as exc:
                    log.warning("source offsets not committed: %s: %s", type(exc).__name__, exc)
                    raise OffsetsNotCommittedError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._committing = False

    async def _make_durable(self, source_offsets: Mapping[TopicPartition, int]) -> None:
        """Steps 1-3, and under exactly-once step 4 (the transaction's commit, with
        ``source_offsets``) before step 3; a failure closes the checkpoint and raises
        ``CheckpointError`` (exactly-once: after aborting the transaction if it was not
        committed; ``TransactionAbortedError`` when its commit aborted it)."""
        transactions = list(self._transactions.values())
        transaction = self._transaction
        step = 1
        try:
            await self._prepare(transactions)
            step = 2
            await self._acknowledge(transactions)
            if transaction is not None:
                step = 4
                await transaction.commit(source_offsets)
            # (3) flush each store partition with its changelog offset
            step = 3
            for partition_transaction in transactions:
                partition_transaction.flush()
        except BaseException as exc:
            if transaction is not None:
                await self._end_failed_transaction(transaction, step, exc)
            self._raise_failed(step, exc)

    async def _end_failed_transaction(
        self, transaction: TransactionCommit, step: int, exc: BaseException
    ) -> None:
        """Abort a transaction a failure left open; a commit that aborted it itself, the
        producer usable, raises ``TransactionAbortedError`` (the caller redoes the work)."""
        if step < 4:
            try:
                await transaction.abort()
            except Exception as abort_exc:  # noqa: BLE001 - the first failure is raised
                log.error("aborting the transaction failed too: %r", abort_exc)
        elif step == 4 and isinstance(exc, ExactlyOnceError) and transaction.usable:
            self._closed = f"transaction aborted: {exc}"
            self._drop()
            raise TransactionAbortedError(str(exc)) from exc

    async def _prepare(self, transactions: list[PartitionTransaction]) -> None:
        """Step 1: each changed key produced to its changelog."""
        for transaction in transactions:
            await transaction.prepare(self._producer)

    async def _acknowledge(self, transactions: list[PartitionTransaction]) -> None:
        """Step 2: the producer flushed, every acknowledgement awaited."""
        try:
            async with asyncio.timeout(self._ack_timeout):
                await self._producer.flush()
                for ack in self._outputs:
                    await ack
                for transaction in transactions:
                    await transaction.acknowledged()
        except TimeoutError as exc:
            raise CheckpointError(
                2, f"acknowledgements not received within {self._ack_timeout} s"
            ) from exc

    def _raise_failed(self, step: int, exc: BaseException) -> NoReturn:
        self._fail(step, exc)
        if not isinstance(exc, Exception):
            raise exc  # cancellation and exits pass through as they are
        if isinstance(exc, CheckpointError):
            raise exc
        raise CheckpointError(step, f"{type(exc).__name__}: {exc}") from exc

    def _fail(self, step: int, exc: BaseException) -> None:
        self._closed = f"commit failed at step {step}: {type(exc).__name__}: {exc}"
        log.error("%s; source offsets not committed", self._closed)
        self._drop()

    def _drop(self) -> None:
        for transaction in self._transactions.values():
            transaction.fail()
        self._transactions = {}
        self._outputs = []

    def discard(self) -> None:
        """Drop every transaction and output without committing; closes the checkpoint
        (a shutdown or a revocation that will not commit)."""
        if self._committing:
            raise CheckpointClosedError("a commit of this checkpoint is running")
        self._drop()
        if self._closed is None:
            self._closed = "discarded"
