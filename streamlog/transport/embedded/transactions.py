"""The transaction coordinator of an embedded log, as the embedded transport owns it.

A broker runs one transaction coordinator per cluster; an embedded transport runs one per
opened log (a ``memory://`` directory, a ``file://`` data directory): the log engine's own
``TransactionCoordinator`` (``streamlog.log.txn_coordinator``, the code ``streamlog
broker`` runs too), whose state lives in the log's ``__transaction_state`` topic. This
module is what a broker adds around it, without the wire:

1. ``load``: the coordinator is made and loaded before any client exists, so that a
   transaction a killed process left half-ended (PrepareCommit / PrepareAbort) is
   completed, and one it left open is aborted when it times out or when its
   transactional id is initialised again.
2. Every ``expire_interval_ms`` the coordinator aborts the transactions open for longer
   than their ``transaction_timeout_ms`` (Kafka's
   ``transaction.abort.timed.out.transaction.cleanup.interval.ms``) and retries the
   completion of any whose markers could not be written.
3. Markers move partitions' last stable offsets: the partitions a commit or abort ended
   are told to the notifier, which wakes the ``read_committed`` consumers waiting on
   them; after an abort the transport did not ask for (a timeout, a fencing ``init``),
   every waiting consumer is woken, since which partitions it ended is the coordinator's.
4. The log's exceptions are translated into the transport's transaction errors here: a
   fenced producer epoch is ``ProducerFencedError`` (fatal), anything else a
   ``TransactionError``.

Threads: on a ``file://`` log the calls that write the coordinator's state durably
(init, offsets, end, expire: an fsync or several each) run in a worker thread, as the
embedded consumer's durable offset commits do, so the event loop keeps serving; the
coordinator serialises the calls of one transactional id itself. Adding partitions and
appending (``add_partitions``, ``run_in_transaction``) run on the loop, from the
producer's synchronous batch path. On ``memory://`` nothing is fsynced and every call
runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from streamlog.log import LogManager
from streamlog.log import OffsetAndMetadata as LogOffsetAndMetadata
from streamlog.log import errors as log_errors
from streamlog.log.txn_coordinator import TransactionCoordinator
from streamlog.transport.embedded.wakeup import Notifier
from streamlog.transport.errors import (
    ProducerFencedError,
    TransactionError,
    TransportClosedError,
)
from streamlog.transport.types import TopicPartition

__all__ = ["EmbeddedTransactions", "FENCED", "txn_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_EXPIRE_INTERVAL_MS = 1000

# The log's answers that mean a newer producer owns the transactional id: the
# coordinator's (another epoch) and a partition's (an older epoch than it has seen).
FENCED: tuple[type[log_errors.LogError], ...] = (
    log_errors.ProducerFencedError,
    log_errors.InvalidProducerEpochError,
)


class EmbeddedTransactions:
    """One log's transaction coordinator, loaded, expired and translated (see the module
    docstring). Made by ``EmbeddedTransport.start``."""

    def __init__(
        self,
        manager: LogManager,
        notifier: Notifier,
        *,
        durable: bool,
        expire_interval_ms: int = DEFAULT_EXPIRE_INTERVAL_MS,
    ) -> None:
        offsets = manager.group_offsets
        if offsets is None:
            raise TransportClosedError("the log is closed")
        self._manager = manager
        self._notifier = notifier
        self._durable = durable
        self._interval_s = max(1, expire_interval_ms) / 1000
        self._coordinator = TransactionCoordinator(manager, offsets, manager.clock, durable=durable)
        self._expiring: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._closed = False

    @property
    def coordinator(self) -> TransactionCoordinator:
        """The coordinator itself, for a broker serving the same log in this process
        (``streamlog worker``'s Kafka listener): one coordinator per data directory, so
        the listener's clients and the app's producers see one state (it is thread-safe)."""
        return self._coordinator

    # -- lifecycle -----------------------------------------------------------------------

    def load(self) -> None:
        """Step 1: read ``__transaction_state``, completing what a crash interrupted.
        Blocking (called from the transport's start thread)."""
        with _translated("loading the transaction state"):
            self._coordinator.load()

    def start_expiring(self) -> None:
        """Step 2: ``expire`` every interval, from a task of the running loop."""
        self._expiring = asyncio.get_running_loop().create_task(
            self._expire_periodically(), name="streamlog-embedded-txn-expiry"
        )

    async def _expire_periodically(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
                return  # closing
            except TimeoutError:
                pass
            try:
                await self.expire()
            except TransportClosedError:
                return
            except Exception:  # a failed pass must not stop the next ones
                log.exception("aborting timed-out transactions failed")

    async def expire(self) -> None:
        """Abort every transaction open past its timeout, now (step 2)."""
        self._check_open()
        with _translated("aborting timed-out transactions"):
            report = await self._call(self._coordinator.expire, None)
        if report.timed_out or report.completed:
            self._notifier.notify_all()

    async def close(self) -> None:
        """Stop expiring, letting a pass under way (maybe in a worker thread) finish
        first: the transport closes the log manager after this."""
        self._closed = True
        self._stopping.set()
        task, self._expiring = self._expiring, None
        if task is not None:
            await task

    # -- the coordinator's calls ---------------------------------------------------------

    async def init_producer_id(self, transactional_id: str, timeout_ms: int) -> tuple[int, int]:
        """A producer id and a new epoch for ``transactional_id`` (fencing older ones,
        whose open transaction is aborted)."""
        self._check_open()
        with _translated(f"InitProducerId of transactional id {transactional_id!r}"):
            producer_id, epoch = await self._call(
                self._coordinator.init_producer_id, transactional_id, timeout_ms
            )
        self._notifier.notify_all()  # an aborted transaction may have moved some LSOs
        return producer_id, epoch

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[tuple[str, int]],
    ) -> None:
        """Add ``partitions`` to the transaction (all or none). On the loop: the
        producer's batch path is synchronous."""
        self._check_open()
        context = f"AddPartitionsToTxn of transactional id {transactional_id!r}"
        with _translated(context):
            answer = self._coordinator.add_partitions(
                transactional_id, producer_id, epoch, sorted(set(partitions))
            )
        refused = [
            (tp, error)
            for tp, error in answer.items()
            if error is not None and not isinstance(error, log_errors.OperationNotAttemptedError)
        ]
        if refused:
            tp, error = refused[0]
            raise txn_error(error, f"{context} ({tp[0]}-{tp[1]})") from error

    def run_in_transaction(
        self,
        producer_id: int,
        epoch: int,
        topic: str,
        partition: int,
        append: Callable[[], T],
    ) -> T:
        """``append()`` (which passes ``transaction_verified``) if the partition is in
        the producer's ongoing transaction, under the transaction's lock (no batch lands
        after its markers); the log's errors are left to the caller."""
        self._check_open()
        return self._coordinator.run_in_transaction(producer_id, epoch, topic, partition, append)

    async def add_offsets(
        self, transactional_id: str, producer_id: int, epoch: int, group: str
    ) -> None:
        self._check_open()
        with _translated(f"AddOffsetsToTxn of transactional id {transactional_id!r}"):
            await self._call(
                self._coordinator.add_offsets, transactional_id, producer_id, epoch, group
            )

    async def txn_offset_commit(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        group: str,
        offsets: Mapping[tuple[str, int], LogOffsetAndMetadata],
    ) -> None:
        self._check_open()
        with _translated(f"TxnOffsetCommit of group {group!r}"):
            await self._call(
                self._coordinator.txn_offset_commit,
                transactional_id,
                producer_id,
                epoch,
                group,
                dict(offsets),
            )

    async def end_txn(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        commit: bool,
        partitions: Iterable[tuple[str, int]],
    ) -> None:
        """End the transaction (markers on every partition of it, the offsets committed
        on commit), then wake the consumers of ``partitions`` (step 3)."""
        self._check_open()
        with _translated(f"EndTxn of transactional id {transactional_id!r}"):
            await self._call(
                self._coordinator.end_txn, transactional_id, producer_id, epoch, commit
            )
        for topic, partition in partitions:
            self._notifier.notify(TopicPartition(topic, partition))

    # -- helpers -------------------------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)``: in a worker thread when it writes durably."""
        if self._durable:
            return await asyncio.to_thread(function, *args)
        return function(*args)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("the transport is closed")


@contextmanager
def _translated(context: str) -> Iterator[None]:
    """Re-raise the log's errors inside the block as the transport's (step 4)."""
    try:
        yield
    except log_errors.LogError as exc:
        raise txn_error(exc, context) from exc
    except OSError as exc:  # storage: the coordinator's state is as before the call
        raise TransactionError(f"{context}: {exc}") from exc


def txn_error(exc: log_errors.LogError, context: str) -> TransactionError:
    """The transport's error for the log's answer ``exc`` to a transaction call."""
    if isinstance(exc, FENCED):
        return ProducerFencedError(
            f"{context}: {exc}: another producer with the same transactional id has "
            "started since this one (or its transaction timed out and was aborted)"
        )
    if isinstance(exc, log_errors.LogClosedError):
        return TransactionError(f"{context}: the log is closed")
    return TransactionError(f"{context}: {exc}")
