"""A transactional producer's dealings with its transaction coordinator (KIP-98, KIP-447).

The producer (``producer.py``) owns the records; this module owns the transaction: its
state, the producer id and epoch, which partitions and groups it has touched, and the
requests to the coordinators. The life of a transactional producer, as numbered steps:

1. ``init``: find the transaction coordinator of the transactional id (FindCoordinator,
   key type 1) and ask it for a producer id (InitProducerId with the transactional id).
   The coordinator bumps the id's epoch, which fences every older producer with the same
   transactional id, and aborts a transaction one of them left open. Retried while the
   coordinator moves, loads, or is still ending that transaction (CONCURRENT_TRANSACTIONS).
2. ``begin``: local only; the coordinator hears of the transaction at step 3 or 4.
3. Before the first batch of a partition is sent in a transaction, the sender asks
   ``may_send``: the partition is added (AddPartitionsToTxn, once per partition per
   transaction, partitions asked for meanwhile go in one request) and its batches wait
   until the coordinator has answered. Batches carry the producer id, epoch and
   per-partition sequence numbers as an idempotent producer's do, with the
   transactional bit set.
4. ``send_offsets``: AddOffsetsToTxn (the group's offsets partition joins the
   transaction) to the transaction coordinator, then TxnOffsetCommit to the group's
   coordinator with the consumer's generation and member id (KIP-447: a member the group
   has fenced gets ILLEGAL_GENERATION, and the transaction must abort). The offsets become
   the group's committed offsets only when the transaction commits.
5. ``end``: EndTxn (commit or abort) once the producer has sent or dropped every batch;
   the coordinator writes the markers. A transaction that touched nothing ends locally.

Errors: INVALID_PRODUCER_EPOCH / PRODUCER_FENCED mean a newer producer owns the
transactional id: ``ProducerFencedError``, fatal (every later call raises it). A failed
record or offset commit makes the transaction abortable (``TransactionAbortableError``
from commit; ``abort_transaction`` recovers). A call out of order raises
``TransactionStateError`` and changes nothing. Coordinator moves and retriable errors are
retried for the request timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import (
    BrokerUnavailableError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionError,
    TransactionStateError,
    TransportError,
)
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.errors import COORDINATOR_ERRORS, error_for, is_retriable
from streamlog.transport.kafka.offsets import (
    TRANSACTION_KEY,
    GroupCoordinator,
    find_coordinator,
    offsets_by_topic,
)
from streamlog.transport.kafka.util import log, spawn
from streamlog.transport.types import OffsetAndMetadata, TopicPartition, TxnState

__all__ = ["TransactionManager", "TxnState", "FENCED_ERRORS"]

_BACKOFF = 0.05

# Answers meaning a newer producer owns the transactional id.
FENCED_ERRORS = frozenset(
    {
        ErrorCode.INVALID_PRODUCER_EPOCH,
        ErrorCode.PRODUCER_FENCED,
        ErrorCode.TRANSACTION_COORDINATOR_FENCED,
    }
)
# Answers after which nothing this producer does can succeed.
_FATAL_ERRORS = frozenset(
    {
        ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        ErrorCode.INVALID_TRANSACTION_TIMEOUT,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    }
)
# Retried although Kafka does not flag them retriable: the coordinator is finishing the
# previous transaction of this id (markers being written).
_RETRY_ERRORS = frozenset({ErrorCode.CONCURRENT_TRANSACTIONS})


class TransactionManager:
    """The transaction state of one transactional producer (see the module docstring).

    Invariants: ``producer_id``/``epoch`` are the coordinator's last answer (-1 before
    ``init``); ``added`` holds the partitions the coordinator has in the open transaction
    and ``_pending`` those asked for but not yet added; ``error`` is set exactly in the
    ABORTABLE_ERROR and FATAL_ERROR states (and ``broken`` with it).
    """

    def __init__(
        self,
        cluster: Cluster,
        transactional_id: str,
        *,
        transaction_timeout_ms: int,
        wake_sender: Callable[[], None],
        halt_sends: Callable[[], None],
    ) -> None:
        if not transactional_id:
            raise ValueError("a transactional id must be a non-empty string")
        self.cluster = cluster
        self.transactional_id = transactional_id
        self.timeout_ms = transaction_timeout_ms
        self.state = TxnState.UNINITIALIZED
        self.producer_id = -1
        self.epoch = -1
        self.added: set[TopicPartition] = set()
        self.error: TransactionError | None = None
        self.broken = asyncio.Event()
        self.sequences_lost = False  # a bump of the epoch is due before the next transaction
        self._pending: set[TopicPartition] = set()
        self._adding: asyncio.Task[None] | None = None
        self._offsets_added = False
        self._coordinator: int | None = None
        self._wake_sender = wake_sender
        self._halt_sends = halt_sends

    # ------------------------------------------------------------------ state

    def require(self, *states: TxnState, action: str) -> None:
        """Raise unless in one of ``states``: the fatal error, the abortable one, or
        ``TransactionStateError`` naming ``action`` and the state."""
        if self.state in states:
            return
        if self.state is TxnState.FATAL_ERROR and self.error is not None:
            raise self.error
        if self.state is TxnState.ABORTABLE_ERROR and self.error is not None:
            raise TransactionAbortableError(
                f"{action}: the transaction must be aborted ({self.error})"
            ) from self.error
        raise TransactionStateError(f"{action}: not possible while {self.state.value}")

    def check_send(self) -> None:
        """Raise unless a record may be sent now (a transaction is open)."""
        self.require(TxnState.IN_TRANSACTION, action="send")

    def begin(self) -> None:
        self.require(TxnState.READY, action="begin_transaction")
        self.state = TxnState.IN_TRANSACTION

    def start_commit(self) -> None:
        """The producer is flushing the transaction's records before EndTxn: no more
        sends (the partitions still to be added are added). Also a retry of a commit
        whose EndTxn was not answered in time."""
        self.require(TxnState.IN_TRANSACTION, TxnState.COMMITTING, action="commit_transaction")
        self.state = TxnState.COMMITTING

    def start_abort(self) -> None:
        """The producer is dropping the transaction's unsent records before EndTxn (also
        after a failure, or a commit whose EndTxn failed)."""
        self.require(
            TxnState.IN_TRANSACTION,
            TxnState.ABORTABLE_ERROR,
            TxnState.COMMITTING,
            action="abort_transaction",
        )
        self.state = TxnState.ABORTING

    def abort_failed(self, error: TransactionError) -> None:
        """EndTxn(abort), or the epoch bump after it, did not go through: the next
        ``abort_transaction`` tries again (nothing else is allowed meanwhile)."""
        if self.state is not TxnState.FATAL_ERROR:
            self.state = TxnState.ABORTABLE_ERROR
            self.error = error
            self.broken.set()

    def abortable(self, error: BaseException) -> None:
        """Something in the open transaction failed: it can only be aborted now."""
        if self.state in (TxnState.FATAL_ERROR, TxnState.ABORTING, TxnState.ABORTABLE_ERROR):
            return
        if self.state in (TxnState.UNINITIALIZED, TxnState.READY):
            return  # nothing open to spoil
        cause = error
        if not isinstance(cause, TransactionError):
            cause = TransactionAbortableError(str(error))
        self._break(TxnState.ABORTABLE_ERROR, cause)

    def fenced(self, error: TransactionError) -> None:
        """A newer producer owns the transactional id (or the id was refused): fatal."""
        if self.state is not TxnState.FATAL_ERROR:
            self._break(TxnState.FATAL_ERROR, error)

    def _break(self, state: TxnState, error: TransactionError) -> None:
        log.info("transaction of %r: %s (%s)", self.transactional_id, state.value, error)
        self.state = state
        self.error = error
        self.broken.set()
        self._halt_sends()
        self._wake_sender()

    # ------------------------------------------------------------------ step 1

    async def init(self) -> None:
        """Take a producer id and epoch for the transactional id (fencing older ones)."""
        self.require(TxnState.UNINITIALIZED, action="init_transactions")
        await self._init_producer_id(-1, -1)
        self.state = TxnState.READY

    async def bump_epoch(self) -> None:
        """A new epoch under the same id, when sequence numbers were lost (a batch was
        dropped after it was sent): the partitions' sequences start again at 0."""
        await self._init_producer_id(self.producer_id, self.epoch)
        self.sequences_lost = False

    async def _init_producer_id(self, producer_id: int, epoch: int) -> None:
        response = await self._coordinator_request(
            ApiKey.INIT_PRODUCER_ID,
            "InitProducerId",
            _top_level_code,
            transactional_id=self.transactional_id,
            transaction_timeout=self.timeout_ms,
            producer_id=producer_id,
            producer_epoch=epoch,
        )
        self.producer_id = int(response.producer_id)
        self.epoch = int(response.producer_epoch)

    # ------------------------------------------------------------------ step 3

    def may_send(self, tp: TopicPartition) -> bool:
        """Whether batches of ``tp`` may go out now; if it is not in the transaction yet,
        it is asked for (and the sender woken when it is in)."""
        if self.state not in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
            return False
        if tp in self.added:
            return True
        self._pending.add(tp)
        if self._adding is None or self._adding.done():
            self._adding = spawn(self._add_partitions(), "streamlog-txn-add-partitions")
        return False

    async def _add_partitions(self) -> None:
        try:
            while self._pending and self.state in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
                wanted = sorted(self._pending)
                by_topic: dict[str, list[int]] = {}
                for tp in wanted:
                    by_topic.setdefault(tp.topic, []).append(tp.partition)
                await self._coordinator_request(
                    ApiKey.ADD_PARTITIONS_TO_TXN,
                    "AddPartitionsToTxn",
                    _partition_codes,
                    v3_and_below_transactional_id=self.transactional_id,
                    v3_and_below_producer_id=self.producer_id,
                    v3_and_below_producer_epoch=self.epoch,
                    v3_and_below_topics=[
                        {"name": topic, "partitions": parts} for topic, parts in by_topic.items()
                    ],
                )
                self.added.update(wanted)
                self._pending.difference_update(wanted)
        except TransportError as e:
            self.abortable(e)  # (a fenced answer has made the state fatal already)
        finally:
            self._wake_sender()

    # ------------------------------------------------------------------ step 4

    async def send_offsets(
        self,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        group_id: str,
        *,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
    ) -> None:
        self.require(TxnState.IN_TRANSACTION, action="send_offsets_to_transaction")
        try:
            await self._coordinator_request(
                ApiKey.ADD_OFFSETS_TO_TXN,
                "AddOffsetsToTxn",
                _top_level_code,
                transactional_id=self.transactional_id,
                producer_id=self.producer_id,
                producer_epoch=self.epoch,
                group_id=group_id,
            )
            self._offsets_added = True
            await self._txn_offset_commit(
                offsets, group_id, generation_id, member_id, group_instance_id
            )
        except ProducerFencedError:
            raise
        except TransactionError as e:
            if self.state is not TxnState.FATAL_ERROR:
                self.abortable(e)
            raise

    async def _txn_offset_commit(
        self,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
    ) -> None:
        by_topic = offsets_by_topic(offsets)
        group = GroupCoordinator(self.cluster, group_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cluster.request_timeout
        while True:
            last: TransportError
            try:
                response: Any = await group.request(
                    ApiKey.TXN_OFFSET_COMMIT,
                    transactional_id=self.transactional_id,
                    group_id=group_id,
                    producer_id=self.producer_id,
                    producer_epoch=self.epoch,
                    generation_id=generation_id,
                    member_id=member_id,
                    group_instance_id=group_instance_id,
                    topics=[{"name": t, "partitions": p} for t, p in by_topic.items()],
                )
                code = _partition_codes(response)
            except BrokerUnavailableError as e:
                code, last = ErrorCode.NETWORK_EXCEPTION, e
            if code == ErrorCode.NONE:
                return
            if code in COORDINATOR_ERRORS:
                group.invalidate()
            context = f"TxnOffsetCommit of group {group_id!r}"
            if code != ErrorCode.NETWORK_EXCEPTION:
                last = self._error(code, context)
            if not self._retriable(code) or loop.time() > deadline:
                raise last
            await asyncio.sleep(_BACKOFF)

    # ------------------------------------------------------------------ step 5

    @property
    def touched(self) -> bool:
        """Whether the coordinator knows of the open transaction (EndTxn is due)."""
        return bool(self.added) or self._offsets_added

    async def end(self, commit: bool) -> None:
        """EndTxn, if the coordinator knows of the transaction; then no transaction is
        open. The producer has sent (commit) or dropped (abort) every batch by now."""
        if self.touched:
            await self._coordinator_request(
                ApiKey.END_TXN,
                "EndTxn",
                _top_level_code,
                transactional_id=self.transactional_id,
                producer_id=self.producer_id,
                producer_epoch=self.epoch,
                committed=commit,
            )
        self.finish()

    def finish(self) -> None:
        """No transaction open any more (after EndTxn, or one that touched nothing)."""
        self.added.clear()
        self._pending.clear()
        self._offsets_added = False
        if self._adding is not None:
            self._adding.cancel()
            self._adding = None
        self.error = None
        self.broken.clear()
        self.state = TxnState.READY

    def close(self) -> None:
        if self._adding is not None:
            self._adding.cancel()

    # ------------------------------------------------------------------ requests

    async def _coordinator_request(
        self,
        api_key: ApiKey,
        name: str,
        code_of: Callable[[Any], int],
        **values: Any,
    ) -> Any:
        """One request to the transaction coordinator, retried while it moves, loads or
        is busy ending a transaction, for at most the request timeout; raises the
        ``TransactionError`` of a final error (fenced errors also make the state fatal)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cluster.request_timeout
        context = f"{name} of transactional id {self.transactional_id!r}"
        while True:
            last: TransportError
            try:
                code, message, response = await self._request_once(api_key, code_of, values)
            except BrokerUnavailableError as e:
                self._coordinator = None
                code, last = ErrorCode.NETWORK_EXCEPTION, e
            else:
                if code == ErrorCode.NONE:
                    return response
                if code in COORDINATOR_ERRORS:
                    self._coordinator = None
                last = self._error(code, f"{context}{message}")
            if not self._retriable(code) or loop.time() > deadline:
                if isinstance(last, TransactionError):
                    raise last
                raise TransactionError(f"{context}: {last}") from last
            log.debug("%s: retrying after %s", context, last)
            await asyncio.sleep(_BACKOFF)

    async def _request_once(
        self, api_key: ApiKey, code_of: Callable[[Any], int], values: dict[str, Any]
    ) -> tuple[int, str, Any]:
        """(error code, what the broker said, response) of one attempt: finding the
        coordinator if needed, then the request."""
        if self._coordinator is None:
            code, node, message = await find_coordinator(
                self.cluster, self.transactional_id, TRANSACTION_KEY
            )
            if code != ErrorCode.NONE:
                return code, f" (FindCoordinator: {message or 'no coordinator'})", None
            self._coordinator = node
        conn = await self.cluster.connection(self._coordinator, "txn")
        response = await conn.request(conn.build(api_key, **values))
        return code_of(response), "", response

    @staticmethod
    def _retriable(code: int) -> bool:
        return (
            code == ErrorCode.NETWORK_EXCEPTION
            or code in COORDINATOR_ERRORS
            or code in _RETRY_ERRORS
            or (is_retriable(code) and code not in FENCED_ERRORS)
        )

    def _error(self, code: int, context: str) -> TransactionError:
        """The exception for ``code``; fenced and fatal codes also set the fatal state."""
        if code in FENCED_ERRORS:
            error: TransactionError = ProducerFencedError(
                f"{error_for(code, context)}: another producer with transactional id "
                f"{self.transactional_id!r} has started since this one"
            )
            self.fenced(error)
            return error
        if code in _FATAL_ERRORS:
            error = TransactionError(str(error_for(code, context)))
            if self.state is not TxnState.UNINITIALIZED:
                self.fenced(error)
            return error
        if self._retriable(code):
            return TransactionError(str(error_for(code, context)))
        return TransactionAbortableError(str(error_for(code, context)))


def _top_level_code(response: Any) -> int:
    return int(response.error_code)


def _partition_codes(response: Any) -> int:
    """The first error among a response's partitions (OPERATION_NOT_ATTEMPTED, said of
    the partitions another one's error held back, only if it is the only one)."""
    topics: Iterable[Any] = (
        getattr(response, "results_by_topic_v3_and_below", None)
        or getattr(response, "topics", None)
        or ()
    )
    found = ErrorCode.NONE
    for topic in topics:
        partitions: Iterable[Any] = (
            getattr(topic, "results_by_partition", None) or getattr(topic, "partitions", None) or ()
        )
        for p in partitions:
            code = int(getattr(p, "partition_error_code", getattr(p, "error_code", 0)))
            if code == ErrorCode.NONE:
                continue
            if code != ErrorCode.OPERATION_NOT_ATTEMPTED:
                return code
            found = ErrorCode.OPERATION_NOT_ATTEMPTED
    return int(found)
