"""The embedded transactional producer: Kafka's KIP-98 / KIP-447 producer, in-process.

Same calls, states and errors as the Kafka transport's transactional producer
(``streamlog/transport/kafka/producer.py`` and ``transactions.py``), over the log's own
transaction coordinator (``transactions.py`` here), so that an app behaves the same with
and without a broker. The life of a transaction, as numbered steps:

1. ``init_transactions``: a producer id and a new epoch for the transactional id from
   the coordinator; every older producer with the id is fenced, a transaction one of
   them left open is aborted.
2. ``begin_transaction``: local only.
3. ``send``: records are batched as the plain embedded producer batches them (lingering,
   ``batch_size``). When a batch goes to the log its partition joins the transaction
   first (AddPartitionsToTxn: once per partition per transaction; a flush adds every
   partition it is about to write in one call), then the batch is appended with the
   producer id, epoch and per-partition sequence numbers, transactional bit set,
   ``transaction_verified``, under the coordinator's ``run_in_transaction``: only while
   the partition is in this producer's ongoing transaction at this epoch (not once a
   newer producer initialised or the transaction timed out: ``ProducerFencedError``),
   and never after the transaction's markers. The records are in the log from then on:
   read_uncommitted consumers see them, read_committed ones stop at them (the last
   stable offset).
4. ``send_offsets_to_transaction``: the group's generation and member id are checked
   against the embedded group (KIP-447: ``groups.check_txn_offsets``; a member of an
   older generation, or one the group no longer has, is refused and the transaction
   must abort), then AddOffsetsToTxn and TxnOffsetCommit: the offsets are held by the
   coordinator until the end of the transaction.
5. ``commit_transaction`` appends every open batch, then EndTxn(commit): markers on every
   partition, the offsets committed; ``abort_transaction`` drops the batches not yet
   appended (their handles raise ``TransactionError``), then EndTxn(abort). A transaction
   that touched nothing ends locally. The consumers of the partitions are woken.

Errors: ``TransactionStateError`` for a call out of order (nothing changes);
``ProducerFencedError`` once a newer producer owns the id (fatal: every later call
raises it); a failed batch or offset commit makes the transaction abortable
(``TransactionAbortableError`` from ``send`` and ``commit_transaction`` until
``abort_transaction``). Appends are synchronous and whole, so a sequence number is never
lost: there is no epoch bump after an abort, unlike the Kafka producer's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamlog.log import AppendResult
from streamlog.log import OffsetAndMetadata as LogOffsetAndMetadata
from streamlog.log import errors as log_errors
from streamlog.log.records import BatchBuilder, encode_built
from streamlog.log.topic_names import check_not_internal
from streamlog.transport.accumulator import TopicBatches
from streamlog.transport.embedded.errors import translated
from streamlog.transport.embedded.groups import check_txn_offsets
from streamlog.transport.embedded.producer import EmbeddedProducer
from streamlog.transport.embedded.transactions import FENCED, EmbeddedTransactions, txn_error
from streamlog.transport.errors import (
    GroupError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionError,
    TransactionStateError,
    TransportClosedError,
    TransportError,
)
from streamlog.transport.types import (
    ConsumerGroupMetadata,
    OffsetAndMetadata,
    TopicPartition,
    TxnState,
)

if TYPE_CHECKING:
    from streamlog.transport.embedded.transport import EmbeddedTransport

__all__ = ["EmbeddedTransactionalProducer", "TxnState"]

log = logging.getLogger(__name__)

_SEQUENCE_MASK = 0x7FFFFFFF  # sequence numbers wrap at 2^31 - 1, as Kafka's


class EmbeddedTransactionalProducer(EmbeddedProducer):
    """See the module docstring. Made by ``EmbeddedTransport.producer`` with a
    ``transactional_id``.

    Invariants: ``producer_id``/``epoch`` are the coordinator's answer to ``init`` (-1
    before); ``_added`` holds the partitions the coordinator has in the open transaction;
    ``_error`` is set exactly in the ABORTABLE_ERROR and FATAL_ERROR states; while no
    transaction is open (or it failed) ``_topics`` is empty, so that ``send`` reaches
    ``_topic``, which raises: the per-record path has no extra check.
    """

    def __init__(
        self,
        transport: EmbeddedTransport,
        transactions: EmbeddedTransactions,
        *,
        transactional_id: str,
        transaction_timeout_ms: int = 60_000,
        acks: int = -1,
        idempotent: bool = True,
        **options: Any,
    ) -> None:
        if not transactional_id:
            raise ValueError("a transactional id must be a non-empty string")
        if acks != -1 or not idempotent:
            raise ValueError("a transactional producer needs acks=-1 and idempotent=True")
        super().__init__(transport, acks=acks, idempotent=idempotent, **options)
        self._transactions = transactions
        self._transactional_id = transactional_id
        self._timeout_ms = transaction_timeout_ms
        self.state = TxnState.UNINITIALIZED
        self.producer_id = -1
        self.epoch = -1
        self._added: set[tuple[str, int]] = set()
        self._offsets_added = False
        self._sequences: dict[tuple[str, int], int] = {}
        self._error: TransactionError | None = None

    def __repr__(self) -> str:
        return (
            f"EmbeddedTransactionalProducer({self._transport.url!r}, "
            f"transactional_id={self._transactional_id!r})"
        )

    @property
    def transactional_id(self) -> str | None:
        return self._transactional_id

    # -- state ---------------------------------------------------------------------------

    def _require(self, *states: TxnState, action: str) -> None:
        """Raise unless in one of ``states``: the fatal error, the abortable one, or
        ``TransactionStateError`` naming ``action`` and the state."""
        if self._closed:
            raise TransportClosedError("the producer is closed")
        if self.state in states:
            return
        if self.state is TxnState.FATAL_ERROR and self._error is not None:
            raise self._error
        if self.state is TxnState.ABORTABLE_ERROR and self._error is not None:
            raise TransactionAbortableError(
                f"{action}: the transaction must be aborted ({self._error})"
            ) from self._error
        raise TransactionStateError(f"{action}: not possible while {self.state.value}")

    def _break(self, state: TxnState, error: TransactionError) -> None:
        log.info("transaction of %r: %s (%s)", self._transactional_id, state.value, error)
        self.state = state
        self._error = error
        self._topics.clear()  # sends reach _topic, which raises

    def _failed(self, error: TransportError) -> None:
        """A batch failed: fenced is fatal, anything else spoils the open transaction."""
        if self.state is TxnState.FATAL_ERROR:
            return
        if isinstance(error, ProducerFencedError):
            self._break(TxnState.FATAL_ERROR, error)
        elif self.state in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
            cause = error
            if not isinstance(cause, TransactionError):
                cause = TransactionAbortableError(str(error))
                cause.__cause__ = error
            self._break(TxnState.ABORTABLE_ERROR, cause)

    def _fenced(self, error: TransactionError) -> TransactionError:
        """A newer producer owns the transactional id: fatal (``error`` is returned for
        the caller to raise)."""
        if self.state is not TxnState.FATAL_ERROR:
            self._break(TxnState.FATAL_ERROR, error)
        return error

    def _finish(self) -> None:
        """No transaction open any more."""
        self._added.clear()
        self._offsets_added = False
        self._error = None
        self.state = TxnState.READY
        self._topics.clear()

    # -- steps 1 and 2 -------------------------------------------------------------------

    async def init_transactions(self) -> None:
        """Take a producer id and a new epoch for the transactional id, fencing every
        older producer with the same id (their open transaction is aborted). Call once,
        before the first transaction."""
        self._require(TxnState.UNINITIALIZED, action="init_transactions")
        producer_id, epoch = await self._transactions.init_producer_id(
            self._transactional_id, self._timeout_ms
        )
        self.producer_id, self.epoch = producer_id, epoch
        self._sequences.clear()
        self.state = TxnState.READY

    def begin_transaction(self) -> None:
        """Open a transaction: sends are allowed until it is committed or aborted."""
        self._require(TxnState.READY, action="begin_transaction")
        self.state = TxnState.IN_TRANSACTION

    # -- step 3 --------------------------------------------------------------------------

    async def _topic(self, topic: str) -> TopicBatches:
        self._require(TxnState.IN_TRANSACTION, action="send")
        return await super()._topic(topic)

    def _drain(self) -> None:
        """Append every open batch, their new partitions added to the transaction in one
        call first."""
        if self.state in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
            new = [tp for tp in self._open if tp not in self._added]
            if new:
                try:
                    self._add_partitions(new)
                except TransportError as exc:
                    self._failed(exc)  # the batches fail with it as they are appended
        super()._drain()

    def _add_partitions(self, partitions: list[tuple[str, int]]) -> None:
        for topic, _ in partitions:
            with translated():
                check_not_internal(topic, "append to")
        try:
            self._transactions.add_partitions(
                self._transactional_id, self.producer_id, self.epoch, partitions
            )
        except ProducerFencedError as exc:
            raise self._fenced(exc) from exc.__cause__
        self._added.update(partitions)

    def _write(self, topic: str, partition: int, builder: BatchBuilder) -> AppendResult:
        self._require(TxnState.IN_TRANSACTION, TxnState.COMMITTING, action="send")
        tp = (topic, partition)
        if tp not in self._added:
            self._add_partitions([tp])
        sequence = self._sequences.get(tp, 0)
        data = encode_built(
            builder,
            compression=self._compression,
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=sequence,
            transactional=True,
        )
        plog = self._manager.partition(topic, partition)
        try:
            result = self._transactions.run_in_transaction(
                self.producer_id,
                self.epoch,
                topic,
                partition,
                lambda: plog.append(data, transaction_verified=True),
            )
        except FENCED as exc:
            raise self._fenced(txn_error(exc, f"{topic}-{partition}")) from exc
        except log_errors.InvalidTxnStateError as exc:
            raise txn_error(exc, f"{topic}-{partition}") from exc
        self._sequences[tp] = (sequence + result.record_count) & _SEQUENCE_MASK
        return result

    # -- step 4 --------------------------------------------------------------------------

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group: str | ConsumerGroupMetadata,
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> None:
        """Commit ``offsets`` (the next offsets to read) for a group as part of the open
        transaction: they become the group's committed offsets only if it commits.
        ``group`` is the consuming member's ``consumer.group_metadata()`` (KIP-447: a
        member the group has fenced since cannot commit), or a group id with those given
        apart (a group without members: the defaults).

        :raises TransactionAbortableError: the group refused the offsets (an older
            generation, a member it no longer has); the transaction must be aborted.
        """
        self._require(TxnState.IN_TRANSACTION, action="send_offsets_to_transaction")
        if isinstance(group, str):
            group = ConsumerGroupMetadata(group, generation_id, member_id, group_instance_id)
        values: dict[tuple[str, int], LogOffsetAndMetadata] = {}
        for tp, value in offsets.items():
            if isinstance(value, int):
                value = OffsetAndMetadata(value)
            if value.offset < 0:
                raise GroupError(f"cannot commit a negative offset ({value.offset}) for {tp}")
            values[(tp[0], tp[1])] = LogOffsetAndMetadata(value.offset, value.metadata)
        tid, pid, epoch = self._transactional_id, self.producer_id, self.epoch
        try:
            check_txn_offsets(self._transport.groups, group, values)
            await self._transactions.add_offsets(tid, pid, epoch, group.group_id)
            self._offsets_added = True
            await self._transactions.txn_offset_commit(tid, pid, epoch, group.group_id, values)
        except ProducerFencedError as exc:
            raise self._fenced(exc) from exc.__cause__
        except TransportError as exc:
            error = TransactionAbortableError(f"TxnOffsetCommit of group {group.group_id!r}: {exc}")
            error.__cause__ = exc
            self._failed(error)
            raise error from exc

    # -- step 5 --------------------------------------------------------------------------

    @property
    def _touched(self) -> bool:
        """Whether the coordinator knows of the open transaction (EndTxn is due)."""
        return bool(self._added) or self._offsets_added

    async def commit_transaction(self) -> None:
        """Append every record of the transaction, then commit it (EndTxn): its records
        and offsets become visible to read_committed consumers together.

        :raises TransactionAbortableError: a record or offset commit of the transaction
            failed; call ``abort_transaction``.
        :raises ProducerFencedError: a newer producer owns the transactional id.
        """
        self._require(TxnState.IN_TRANSACTION, TxnState.COMMITTING, action="commit_transaction")
        self.state = TxnState.COMMITTING
        self._topics.clear()  # sends from now on reach _topic, which refuses them
        await self.flush()
        self._require(TxnState.COMMITTING, action="commit_transaction")
        await self._end(commit=True)

    async def abort_transaction(self) -> None:
        """Abort the open transaction: records not appended yet are dropped (their
        handles raise ``TransactionError``), then EndTxn marks the appended ones aborted,
        so no read_committed consumer sees them. Also ends a transaction that failed.

        :raises ProducerFencedError: a newer producer owns the transactional id (its
            initialisation aborted this transaction already).
        """
        self._require(
            TxnState.IN_TRANSACTION,
            TxnState.COMMITTING,
            TxnState.ABORTABLE_ERROR,
            action="abort_transaction",
        )
        self.state = TxnState.ABORTING
        self._topics.clear()
        self._drop_open(TransactionError("the transaction was aborted before the record was sent"))
        try:
            await self._end(commit=False)
        except TransactionError as exc:
            if self.state is not TxnState.FATAL_ERROR:
                # The next abort_transaction tries again; nothing else is allowed.
                self.state = TxnState.ABORTABLE_ERROR
                self._error = exc
            raise

    async def _end(self, commit: bool) -> None:
        if self._touched:
            try:
                await self._transactions.end_txn(
                    self._transactional_id,
                    self.producer_id,
                    self.epoch,
                    commit,
                    sorted(self._added),
                )
            except ProducerFencedError as exc:
                raise self._fenced(exc) from exc.__cause__
        self._finish()

    def _drop_open(self, error: TransportError) -> None:
        """Fail every batch not appended yet with ``error``."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for batch in list(self._open.values()):
            del self._open[(batch.topic, batch.partition)]
            self._batch_closed(batch.topic, batch.partition, batch.builder)
            batch.error = error
            batch.finish()

    # -- the rest ------------------------------------------------------------------------

    async def close(self) -> None:
        """Append the records of an open transaction (neither committing nor aborting it:
        the coordinator aborts it when it times out, or when the next producer with the
        same id initialises, as with Kafka's producer); drop those of a failed one."""
        if self._closed:
            return
        if self.state not in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
            self._drop_open(
                TransportClosedError("the producer was closed before the record was sent")
            )
        await super().close()
