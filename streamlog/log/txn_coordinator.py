"""The transaction coordinator (Kafka's KIP-98 / KIP-447 model), shared by the broker and
the embedded transport: plain synchronous calls over the log manager, the group offset
store and a clock. The owner (the broker, the embedded transport) maps the exceptions to
its own errors and calls ``expire`` periodically.

Public API (stable):

* ``TransactionCoordinator(logs, offsets, clock, *, max_timeout_ms=900_000,
  state_partitions=4, durable=True, transactional_id_expiration_ms=604_800_000,
  max_partitions_per_txn=10_000, max_groups_per_txn=100, max_offsets_per_txn=1_000,
  max_transactional_ids=100_000, state_topic_configs=None)``
* ``load() -> int``: read ``__transaction_state`` (created if missing), complete the
  transactions found in PrepareCommit / PrepareAbort (markers, offsets, Complete record);
  returns the number of transactional ids loaded. Every other call before it raises
  ``CoordinatorNotLoadedError``.
* ``init_producer_id(transactional_id, timeout_ms, producer_id=-1, epoch=-1) ->
  (producer_id, epoch)``: a new producer id (epoch 0) for a new transactional id, else the
  next epoch, which fences the previous instance; its open transaction is aborted first
  (abort markers at an epoch bumped once, the new instance gets the one after, as Kafka
  does). When the epoch would pass 32766 a new producer id is given with epoch 0. With
  ``producer_id``/``epoch`` (KIP-360, a producer re-initialising itself) they must be
  the current ones, else ``ProducerFencedError``.
* ``add_partitions(transactional_id, producer_id, epoch, partitions) -> {tp: error|None}``:
  adds ``(topic, partition)`` pairs to the transaction, beginning it if none is open.
  Per partition: ``None`` (added), ``UnknownTopicError`` / ``InternalTopicError``, or
  ``OperationNotAttemptedError`` when another partition of the call was refused (then
  nothing is added, as in Kafka).
* ``is_in_transaction(producer_id, epoch, topic, partition) -> bool`` and
  ``run_in_transaction(producer_id, epoch, topic, partition, append) -> append()``: the
  Produce check. ``run_in_transaction`` runs the caller's append (which passes
  ``transaction_verified=True``) under the transaction's lock, so no batch can land after
  EndTxn has begun writing markers; it raises ``ProducerFencedError`` for an older epoch
  and ``InvalidTxnStateError`` when the partition is not in an ongoing transaction.
* ``add_offsets(transactional_id, producer_id, epoch, group_id)``: adds a consumer group
  to the transaction (beginning it if needed).
* ``txn_offset_commit(transactional_id, producer_id, epoch, group_id, offsets)``: holds
  ``{(topic, partition): OffsetAndMetadata | int}`` pending for the transaction, durably
  (in its ``__transaction_state`` record, see ``txn_state.py``); they become the group's
  committed offsets only when the transaction commits. The group must have been added
  (``InvalidTxnStateError`` otherwise). The group's generation / member check is the
  caller's.
* ``end_txn(transactional_id, producer_id, epoch, commit)``: PrepareCommit/PrepareAbort
  written durably (the decision), then a marker on every partition of the transaction,
  the pending offsets committed (on commit), CompleteCommit/CompleteAbort written. A
  retry of a completed one succeeds; a commit of an aborted one (or the reverse), or an
  EndTxn with no transaction open, is ``InvalidTxnStateError``. If a marker cannot be
  written after the decision is stored, the call still succeeds (as Kafka's EndTxn does
  once PrepareX is logged) and ``expire`` retries; meanwhile calls on that id get
  ``ConcurrentTransactionsError``.
* ``expire(now_ms=None) -> ExpireReport``: aborts transactions open longer than their
  timeout, bumping the epoch so the timed-out producer is fenced (as Kafka does);
  retries completing transactions stuck in PrepareX; forgets transactional ids idle for
  ``transactional_id_expiration_ms`` (a tombstone).
* ``describe(ids) -> {id: TransactionDescription | None}`` and ``list_transactions(
  states=(), producer_ids=()) -> [TransactionListing]`` (DescribeTransactions /
  ListTransactions; states are ``TxnStatus`` values).
* ``pending_offsets(group_id) -> set[(topic, partition)]``: partitions of the group with
  offsets held by an open transaction (OffsetFetch's ``require_stable``).

Errors (``errors.py``): ``InvalidProducerIdMappingError`` (unknown transactional id, or
another producer id), ``ProducerFencedError`` (another epoch), ``ConcurrentTransactionsError``
(still completing: retry), ``InvalidTxnStateError``, ``InvalidTransactionTimeoutError``,
``InvalidTransactionalIdError``, ``InvalidGroupIdError``, ``TransactionLimitError``,
``OffsetMetadataTooLargeError``.
An ``OSError`` from storage goes up unchanged, and the state is as before the call.

Concurrency: calls on one transactional id are serialised by its lock (held while its
markers are written); calls on different ids run in parallel. Markers carry coordinator
epoch 0: there is one coordinator per data directory (the directory lock sees to it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

from streamlog.log.clock import Clock
from streamlog.log.errors import (
    ConcurrentTransactionsError,
    CoordinatorNotLoadedError,
    InvalidGroupIdError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    InvalidTransactionalIdError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    LogError,
    OffsetMetadataTooLargeError,
    OperationNotAttemptedError,
    ProducerFencedError,
    TransactionCoordinatorFencedError,
    TransactionLimitError,
    UnknownTopicError,
)
from streamlog.log.group_offsets import GroupOffsetStore, OffsetAndMetadata
from streamlog.log.manager import LogManager
from streamlog.log.records import ControlType
from streamlog.log.topic_names import check_not_internal, validate_topic_name
from streamlog.log.txn_state import (
    TRANSACTION_STATE_TOPIC,
    TransactionMetadata,
    TransactionStateStore,
    TxnStatus,
)

__all__ = [
    "TransactionCoordinator",
    "TransactionDescription",
    "TransactionListing",
    "ExpireReport",
    "TxnStatus",
    "MAX_TRANSACTIONAL_ID_BYTES",
    "MAX_OFFSET_METADATA_BYTES",
    "COORDINATOR_EPOCH",
]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
T = TypeVar("T")

MAX_EPOCH = 32767
"""Kafka's ``Short.MaxValue``: an epoch at ``MAX_EPOCH - 1`` moves to a new producer id."""
COORDINATOR_EPOCH = 0
MAX_TRANSACTIONAL_ID_BYTES = 2048
MAX_GROUP_ID_BYTES = 2048
MAX_OFFSET_METADATA_BYTES = 4096
"""Kafka's ``offset.metadata.max.bytes`` default."""


@dataclass(frozen=True, slots=True)
class TransactionDescription:
    """What DescribeTransactions reports of one transactional id."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    state: TxnStatus
    timeout_ms: int
    start_ms: int
    partitions: tuple[TopicPartition, ...]
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TransactionListing:
    """What ListTransactions reports of one transactional id."""

    transactional_id: str
    producer_id: int
    state: TxnStatus


@dataclass(frozen=True, slots=True)
class ExpireReport:
    """What one ``expire`` pass did (transactional ids)."""

    timed_out: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    forgotten: tuple[str, ...] = ()


class _Txn:
    """One transactional id in memory: its stored state and the lock that serialises
    calls on it. ``meta`` is None only while the id is being created; ``removed`` is set
    when it is forgotten, so a caller that waited on the lock looks it up again."""

    __slots__ = ("lock", "meta", "removed")

    def __init__(self, meta: TransactionMetadata | None) -> None:
        self.lock = threading.Lock()
        self.meta = meta
        self.removed = False


class TransactionCoordinator:
    """See the module docstring."""

    def __init__(
        self,
        logs: LogManager,
        offsets: GroupOffsetStore,
        clock: Clock,
        *,
        max_timeout_ms: int = 900_000,
        state_partitions: int = 4,
        durable: bool = True,
        transactional_id_expiration_ms: int = 604_800_000,
        max_partitions_per_txn: int = 10_000,
        max_groups_per_txn: int = 100,
        max_offsets_per_txn: int = 1_000,
        max_transactional_ids: int = 100_000,
        state_topic_configs: Mapping[str, str] | None = None,
    ) -> None:
        self._logs = logs
        self._offsets = offsets
        self._clock = clock
        self.max_timeout_ms = max_timeout_ms
        self._state_partitions = state_partitions
        self._durable = durable
        self._id_expiration_ms = transactional_id_expiration_ms
        self.max_partitions_per_txn = max_partitions_per_txn
        self.max_groups_per_txn = max_groups_per_txn
        self.max_offsets_per_txn = max_offsets_per_txn
        self.max_transactional_ids = max_transactional_ids
        self._topic_configs = {
            **TransactionStateStore.topic_configs(),
            **(state_topic_configs or {}),
        }
        self._lock = threading.Lock()  # guards the two maps (never held during I/O)
        self._txns: dict[str, _Txn] = {}
        self._by_pid: dict[int, _Txn] = {}
        self._state: TransactionStateStore | None = None

    # -- loading -------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._state is not None

    def load(self) -> int:
        """See the module docstring. Call once, before serving."""
        plogs = self._logs.internal_topic_logs(
            TRANSACTION_STATE_TOPIC, self._state_partitions, self._topic_configs
        )
        store = TransactionStateStore(plogs, self._clock, durable=self._durable)
        states = store.load()
        txns = {txn_id: _Txn(meta) for txn_id, meta in states.items()}
        with self._lock:
            self._txns = txns
            self._by_pid = {t.meta.producer_id: t for t in txns.values() if t.meta is not None}
            self._state = store
        for txn_id, txn in txns.items():
            if txn.meta is not None and txn.meta.status.is_prepare:
                with txn.lock:
                    log.info("completing transaction %r found in %s", txn_id, txn.meta.status)
                    self._complete_or_defer(txn)
        return len(states)

    def _store_handle(self) -> TransactionStateStore:
        store = self._state
        if store is None:
            raise CoordinatorNotLoadedError("the transaction coordinator is not loaded")
        return store

    # -- producer ids --------------------------------------------------------------------

    def init_producer_id(
        self, transactional_id: str, timeout_ms: int, producer_id: int = -1, epoch: int = -1
    ) -> tuple[int, int]:
        """See the module docstring."""
        _check_transactional_id(transactional_id)
        if not isinstance(timeout_ms, int) or not 0 < timeout_ms <= self.max_timeout_ms:
            raise InvalidTransactionTimeoutError(
                f"transaction timeout {timeout_ms} ms is not in [1, {self.max_timeout_ms}]"
            )
        with self._locked(transactional_id, create=True) as txn:
            now = self._clock.time_ms()
            meta = txn.meta
            if meta is None:
                new = TransactionMetadata(
                    transactional_id,
                    self._logs.allocate_producer_id(),
                    0,
                    timeout_ms,
                    TxnStatus.EMPTY,
                    last_update_ms=now,
                )
                self._store(txn, new)
                return new.producer_id, new.producer_epoch
            if producer_id >= 0 and (producer_id, epoch) != (meta.producer_id, meta.producer_epoch):
                raise ProducerFencedError(
                    f"transactional id {transactional_id!r}: producer {producer_id} epoch "
                    f"{epoch} is not the current one"
                )
            if meta.status.is_prepare:
                self._try_complete(txn)
            elif meta.status is TxnStatus.ONGOING:
                self._abort_fencing(txn, now)
                if self._meta(txn).status.is_prepare:
                    raise ConcurrentTransactionsError(
                        f"transactional id {transactional_id!r}: the fenced instance's "
                        "transaction is still being aborted"
                    )
            meta = self._meta(txn)
            if meta.producer_epoch >= MAX_EPOCH - 1:
                next_id, next_epoch = self._logs.allocate_producer_id(), 0
            else:
                next_id, next_epoch = meta.producer_id, meta.producer_epoch + 1
            new = replace(
                meta,
                producer_id=next_id,
                producer_epoch=next_epoch,
                timeout_ms=timeout_ms,
                status=TxnStatus.EMPTY,
                partitions=frozenset(),
                pending_offsets={},
                start_ms=-1,
                last_update_ms=now,
            )
            self._store(txn, new)
            return next_id, next_epoch

    # -- a transaction's contents --------------------------------------------------------

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, LogError | None]:
        """See the module docstring."""
        wanted = list(dict.fromkeys(partitions))
        with self._locked(transactional_id) as txn:
            meta = self._checked(txn, producer_id, epoch)
            self._check_can_begin(meta)
            errors: dict[TopicPartition, LogError] = {}
            for topic, partition in wanted:
                try:
                    check_not_internal(topic, "add to a transaction")
                    self._logs.partition(topic, partition)
                except LogError as exc:
                    errors[(topic, partition)] = exc
            if errors:
                return {
                    tp: errors.get(tp)
                    or OperationNotAttemptedError(f"{tp[0]}-{tp[1]}: another partition failed")
                    for tp in wanted
                }
            began = self._begin(meta)
            merged = began.partitions.union(wanted)
            if len(merged) > self.max_partitions_per_txn:
                raise TransactionLimitError(
                    f"a transaction may span at most {self.max_partitions_per_txn} partitions"
                )
            if began is not meta or merged != meta.partitions:
                self._store(txn, replace(began, partitions=merged))
            return dict.fromkeys(wanted)

    def add_offsets(
        self, transactional_id: str, producer_id: int, epoch: int, group_id: str
    ) -> None:
        """See the module docstring."""
        if not isinstance(group_id, str) or not group_id:
            raise InvalidGroupIdError("a group id must be a non-empty string")
        if len(group_id.encode()) > MAX_GROUP_ID_BYTES:
            raise InvalidGroupIdError(f"group id is longer than {MAX_GROUP_ID_BYTES} bytes")
        with self._locked(transactional_id) as txn:
            meta = self._checked(txn, producer_id, epoch)
            self._check_can_begin(meta)
            began = self._begin(meta)
            if group_id in began.pending_offsets:
                if began is not meta:
                    self._store(txn, began)
                return
            if len(began.pending_offsets) >= self.max_groups_per_txn:
                raise TransactionLimitError(
                    f"a transaction may commit offsets of at most {self.max_groups_per_txn} groups"
                )
            pending = {**began.pending_offsets, group_id: {}}
            self._store(txn, replace(began, pending_offsets=pending))

    def txn_offset_commit(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata | int],
    ) -> None:
        """See the module docstring."""
        values: dict[TopicPartition, OffsetAndMetadata] = {}
        for (topic, partition), value in offsets.items():
            if isinstance(value, int):
                value = OffsetAndMetadata(value)
            if len(value.metadata.encode()) > MAX_OFFSET_METADATA_BYTES:
                raise OffsetMetadataTooLargeError(
                    f"offset metadata for {topic}-{partition} is longer than "
                    f"{MAX_OFFSET_METADATA_BYTES} bytes"
                )
            validate_topic_name(topic)
            values[(topic, partition)] = OffsetAndMetadata(
                value.offset, value.metadata, value.leader_epoch
            )
        with self._locked(transactional_id) as txn:
            meta = self._checked(txn, producer_id, epoch)
            if meta.status is not TxnStatus.ONGOING or group_id not in meta.pending_offsets:
                raise InvalidTxnStateError(
                    f"transactional id {transactional_id!r} has not added group {group_id!r} "
                    f"to an ongoing transaction (state {meta.status.kafka_name})"
                )
            merged = {**meta.pending_offsets[group_id], **values}
            total = sum(len(o) for g, o in meta.pending_offsets.items() if g != group_id)
            if total + len(merged) > self.max_offsets_per_txn:
                raise TransactionLimitError(
                    f"a transaction may hold at most {self.max_offsets_per_txn} offsets"
                )
            pending = {**meta.pending_offsets, group_id: merged}
            now = self._clock.time_ms()
            self._store(txn, replace(meta, pending_offsets=pending, last_update_ms=now))

    # -- the Produce check ---------------------------------------------------------------

    def is_in_transaction(self, producer_id: int, epoch: int, topic: str, partition: int) -> bool:
        """True when ``producer_id`` at ``epoch`` has added the partition to its ongoing
        transaction (a racy read: use ``run_in_transaction`` to append)."""
        txn = self._by_pid.get(producer_id)
        meta = txn.meta if txn is not None else None
        return (
            meta is not None
            and meta.producer_id == producer_id
            and meta.producer_epoch == epoch
            and meta.status is TxnStatus.ONGOING
            and (topic, partition) in meta.partitions
        )

    def run_in_transaction(
        self, producer_id: int, epoch: int, topic: str, partition: int, append: Callable[[], T]
    ) -> T:
        """See the module docstring."""
        self._store_handle()
        with self._lock:
            txn = self._by_pid.get(producer_id)
        if txn is None:
            raise InvalidTxnStateError(
                f"record was not part of an ongoing transaction: producer {producer_id} "
                "has none at this coordinator"
            )
        with txn.lock:
            meta = txn.meta
            if meta is not None and meta.producer_id == producer_id:
                if epoch < meta.producer_epoch:
                    raise ProducerFencedError(
                        f"producer {producer_id} epoch {epoch} is fenced by epoch "
                        f"{meta.producer_epoch}"
                    )
                if self.is_in_transaction(producer_id, epoch, topic, partition):
                    return append()
            raise InvalidTxnStateError(
                f"record was not part of an ongoing transaction: producer {producer_id} "
                f"epoch {epoch} has not added {topic}-{partition} to one"
            )

    # -- ending --------------------------------------------------------------------------

    def end_txn(self, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> None:
        """See the module docstring."""
        prepare = TxnStatus.PREPARE_COMMIT if commit else TxnStatus.PREPARE_ABORT
        complete = TxnStatus.COMPLETE_COMMIT if commit else TxnStatus.COMPLETE_ABORT
        with self._locked(transactional_id) as txn:
            meta = self._checked(txn, producer_id, epoch)
            if meta.status is complete:
                return  # a retry of an EndTxn that succeeded
            if meta.status is prepare:
                self._try_complete(txn)
                return
            if meta.status is not TxnStatus.ONGOING:
                raise InvalidTxnStateError(
                    f"transactional id {transactional_id!r} cannot "
                    f"{'commit' if commit else 'abort'} in state {meta.status.kafka_name}"
                )
            now = self._clock.time_ms()
            self._store(txn, replace(meta, status=prepare, last_update_ms=now))
            self._complete_or_defer(txn)

    def expire(self, now_ms: int | None = None) -> ExpireReport:
        """See the module docstring."""
        self._store_handle()
        now = self._clock.time_ms() if now_ms is None else now_ms
        with self._lock:
            items = list(self._txns.items())
        timed_out: list[str] = []
        completed: list[str] = []
        forgotten: list[str] = []
        for txn_id, txn in items:
            with txn.lock:
                meta = txn.meta
                if txn.removed or meta is None:
                    continue
                if meta.status is TxnStatus.ONGOING and now - meta.start_ms > meta.timeout_ms:
                    log.info(
                        "transactional id %r: transaction open for %d ms (timeout %d ms): "
                        "aborting it and fencing producer %d epoch %d",
                        txn_id,
                        now - meta.start_ms,
                        meta.timeout_ms,
                        meta.producer_id,
                        meta.producer_epoch,
                    )
                    self._abort_fencing(txn, now)
                    timed_out.append(txn_id)
                elif meta.status.is_prepare:
                    if self._complete_or_defer(txn):
                        completed.append(txn_id)
                elif meta.status.is_idle and now - meta.last_update_ms > self._id_expiration_ms:
                    self._store_handle().delete(txn_id)
                    self._forget(txn)
                    forgotten.append(txn_id)
        return ExpireReport(tuple(timed_out), tuple(completed), tuple(forgotten))

    # -- describing ----------------------------------------------------------------------

    def describe(
        self, transactional_ids: Iterable[str]
    ) -> dict[str, TransactionDescription | None]:
        """See the module docstring (None: an id the coordinator does not know)."""
        self._store_handle()
        result: dict[str, TransactionDescription | None] = {}
        for txn_id in transactional_ids:
            txn = self._txns.get(txn_id)
            meta = txn.meta if txn is not None else None
            result[txn_id] = None if meta is None else _describe(meta)
        return result

    def list_transactions(
        self, states: Iterable[TxnStatus] = (), producer_ids: Iterable[int] = ()
    ) -> list[TransactionListing]:
        """See the module docstring (an empty filter matches everything)."""
        self._store_handle()
        wanted_states = set(states)
        wanted_pids = set(producer_ids)
        with self._lock:
            metas = [t.meta for t in self._txns.values() if t.meta is not None]
        return sorted(
            (
                TransactionListing(m.transactional_id, m.producer_id, m.status)
                for m in metas
                if (not wanted_states or m.status in wanted_states)
                and (not wanted_pids or m.producer_id in wanted_pids)
            ),
            key=lambda listing: listing.transactional_id,
        )

    def pending_offsets(self, group_id: str) -> set[TopicPartition]:
        """See the module docstring."""
        with self._lock:
            metas = [t.meta for t in self._txns.values() if t.meta is not None]
        pending: set[TopicPartition] = set()
        for meta in metas:  # a completed transaction holds none
            pending.update(meta.pending_offsets.get(group_id, {}))
        return pending

    # -- internals -----------------------------------------------------------------------

    @contextmanager
    def _locked(self, transactional_id: str, create: bool = False) -> Iterator[_Txn]:
        """The id's entry with its lock held (created empty if ``create``)."""
        while True:
            self._store_handle()
            with self._lock:
                txn = self._txns.get(transactional_id)
                if txn is None and create:
                    if len(self._txns) >= self.max_transactional_ids:
                        raise TransactionLimitError(
                            f"the coordinator holds {len(self._txns)} transactional ids, "
                            "its maximum"
                        )
                    txn = self._txns[transactional_id] = _Txn(None)
            if txn is None:
                raise InvalidProducerIdMappingError(
                    f"transactional id {transactional_id!r} is not known to the coordinator"
                )
            with txn.lock:
                if txn.removed:
                    continue
                if txn.meta is None and not create:
                    raise InvalidProducerIdMappingError(
                        f"transactional id {transactional_id!r} is being created"
                    )
                try:
                    yield txn
                finally:
                    if txn.meta is None:  # creation failed: leave no trace
                        self._forget(txn, transactional_id)
                return

    def _forget(self, txn: _Txn, transactional_id: str | None = None) -> None:
        txn.removed = True
        with self._lock:
            if txn.meta is not None:
                transactional_id = txn.meta.transactional_id
                if self._by_pid.get(txn.meta.producer_id) is txn:
                    del self._by_pid[txn.meta.producer_id]
            if transactional_id is not None and self._txns.get(transactional_id) is txn:
                del self._txns[transactional_id]

    def _store(self, txn: _Txn, meta: TransactionMetadata, *, sync: bool = True) -> None:
        """Write ``meta`` (durably unless ``sync`` is False), then make it the id's state
        (in that order: a failed write changes nothing)."""
        self._store_handle().write(meta, sync=sync)
        old = txn.meta
        with self._lock:
            if old is not None and old.producer_id != meta.producer_id:
                if self._by_pid.get(old.producer_id) is txn:
                    del self._by_pid[old.producer_id]
            self._by_pid[meta.producer_id] = txn
            txn.meta = meta

    @staticmethod
    def _meta(txn: _Txn) -> TransactionMetadata:
        meta = txn.meta
        if meta is None:
            raise InvalidProducerIdMappingError("transactional id is being created")
        return meta

    def _checked(self, txn: _Txn, producer_id: int, epoch: int) -> TransactionMetadata:
        meta = self._meta(txn)
        if meta.producer_id != producer_id:
            raise InvalidProducerIdMappingError(
                f"transactional id {meta.transactional_id!r} belongs to producer "
                f"{meta.producer_id}, not {producer_id}"
            )
        if meta.producer_epoch != epoch:
            raise ProducerFencedError(
                f"transactional id {meta.transactional_id!r}: producer {producer_id} epoch "
                f"{epoch} is fenced (current epoch {meta.producer_epoch})"
            )
        return meta

    @staticmethod
    def _check_can_begin(meta: TransactionMetadata) -> None:
        if meta.status.is_prepare:
            raise ConcurrentTransactionsError(
                f"transactional id {meta.transactional_id!r}: the previous transaction is "
                f"still completing ({meta.status.kafka_name})"
            )

    def _begin(self, meta: TransactionMetadata) -> TransactionMetadata:
        """``meta`` if its transaction is ongoing, else a new ongoing transaction."""
        if meta.status is TxnStatus.ONGOING:
            return meta
        now = self._clock.time_ms()
        return replace(
            meta,
            status=TxnStatus.ONGOING,
            partitions=frozenset(),
            pending_offsets={},
            start_ms=now,
            last_update_ms=now,
        )

    def _abort_fencing(self, txn: _Txn, now: int) -> None:
        """Abort the ongoing transaction with the epoch bumped (if it can be), so that
        its producer is fenced on every partition and at the coordinator."""
        meta = self._meta(txn)
        epoch = meta.producer_epoch + 1 if meta.producer_epoch < MAX_EPOCH else MAX_EPOCH
        self._store(
            txn,
            replace(meta, producer_epoch=epoch, status=TxnStatus.PREPARE_ABORT, last_update_ms=now),
        )
        self._complete_or_defer(txn)

    def _try_complete(self, txn: _Txn) -> None:
        if not self._complete_or_defer(txn):
            raise ConcurrentTransactionsError(
                f"transactional id {self._meta(txn).transactional_id!r}: its transaction "
                "markers could not be written yet; retry"
            )

    def _complete_or_defer(self, txn: _Txn) -> bool:
        """Complete a PrepareX transaction; on a storage failure log it, leave it in
        PrepareX for ``expire`` to retry, and return False."""
        try:
            self._complete(txn)
        except (OSError, LogError) as exc:
            meta = self._meta(txn)
            log.warning(
                "transactional id %r: could not complete %s yet (%s); will retry",
                meta.transactional_id,
                meta.status.kafka_name,
                exc,
            )
            return False
        return True

    def _complete(self, txn: _Txn) -> None:
        """The commit protocol after the decision is stored:

        1. a marker on every partition of the transaction (flushed when durable);
        2. on commit, the pending offsets become the groups' committed offsets (flushed);
        3. CompleteCommit / CompleteAbort stored, not flushed: steps 1-2 are on disk by
           then, so if a crash loses it the PrepareX before it is found at load and the
           steps are repeated (one fsync less per transaction).

        Each step may be repeated after a crash: a marker for a transaction already ended
        on a partition ends an empty one, and committing the same offsets twice is
        harmless.
        """
        meta = self._meta(txn)
        commit = meta.status is TxnStatus.PREPARE_COMMIT
        kind = ControlType.COMMIT if commit else ControlType.ABORT
        written = []
        for topic, partition in sorted(meta.partitions):
            try:
                plog = self._logs.partition(topic, partition)
            except UnknownTopicError:
                log.warning(
                    "transaction marker for deleted partition %s-%d skipped", topic, partition
                )
                continue
            try:
                plog.write_txn_marker(
                    meta.producer_id, meta.producer_epoch, kind, COORDINATOR_EPOCH
                )
            except (InvalidProducerEpochError, TransactionCoordinatorFencedError) as exc:
                log.warning("transaction marker on %s-%d not written: %s", topic, partition, exc)
                continue
            written.append(plog)
        if self._durable:
            for plog in written:
                plog.sync_records()
        if commit:
            for group, offsets in sorted(meta.pending_offsets.items()):
                if offsets:
                    self._offsets.commit(group, offsets)
        self._store(
            txn,
            replace(
                meta,
                status=TxnStatus.COMPLETE_COMMIT if commit else TxnStatus.COMPLETE_ABORT,
                partitions=frozenset(),
                pending_offsets={},
                last_update_ms=self._clock.time_ms(),
            ),
            sync=False,
        )


def _check_transactional_id(value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidTransactionalIdError("a transactional id must be a non-empty string")
    if len(value.encode()) > MAX_TRANSACTIONAL_ID_BYTES:
        raise InvalidTransactionalIdError(
            f"a transactional id is longer than {MAX_TRANSACTIONAL_ID_BYTES} bytes"
        )


def _describe(meta: TransactionMetadata) -> TransactionDescription:
    return TransactionDescription(
        meta.transactional_id,
        meta.producer_id,
        meta.producer_epoch,
        meta.status,
        meta.timeout_ms,
        meta.start_ms if meta.status is TxnStatus.ONGOING or meta.status.is_prepare else -1,
        tuple(sorted(meta.partitions)),
        tuple(sorted(meta.pending_offsets)),
    )
