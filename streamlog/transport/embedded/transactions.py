"""The transaction coordinator of an embedded log, as the embedded transport owns it.

A broker runs one transaction coordinator per cluster; an embedded transport runs one per
opened log (a ``memory://`` directory, a ``file://`` data directory): the log engine's own
``TransactionCoordinator`` (``streamlog.log.txn_coordinator``, the code ``streamlog
broker`` runs too), whose state lives in the log's ``__transaction_state`` topic. This
module is what a broker adds around it, without the wire:

1. ``start``: the coordinator is made and loaded before any client exists, so that a
   transaction a killed process left half-ended (PrepareCommit / PrepareAbort) is
   completed, and one it left open is aborted when it times out or when its
   transactional id is initialised again.
2. Every ``expire_interval_ms`` the coordinator aborts the transactions open for longer
   than their ``transaction_timeout_ms`` (Kafka's
   ``transaction.abort.timed.out.transaction.cleanup.interval.ms``).
3. Markers move partitions' last stable offsets: the partitions a commit or abort ended
   are told to the notifier, which wakes the ``read_committed`` consumers waiting on
   them; after an abort the transport made (a timeout, a fencing ``init``), every
   waiting consumer is woken, since which partitions it ended is the coordinator's.
4. The log's exceptions are translated into the transport's transaction errors here:
   a fenced producer epoch is ``ProducerFencedError`` (fatal), anything else a
   ``TransactionError``.

Calls run on the event loop thread, as the embedded producer's appends do, so the
coordinator's state and the partitions' producer state change in one order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

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

__all__ = ["EmbeddedTransactions", "FENCED"]

log = logging.getLogger(__name__)

DEFAULT_EXPIRE_INTERVAL_MS = 1000

# The log's answers that mean a newer producer owns the transactional id.
FENCED: tuple[type[log_errors.LogError], ...] = tuple(
    cls
    for cls in (
        log_errors.InvalidProducerEpochError,
        getattr(log_errors, "ProducerFencedError", None),
    )
    if cls is not None
)


class EmbeddedTransactions:
    """One log's transaction coordinator, loaded, expired and translated (see the module
    docstring). Made by ``EmbeddedTransport.start``."""

    def __init__(
        self,
        manager: LogManager,
        notifier: Notifier,
        *,
        expire_interval_ms: int = DEFAULT_EXPIRE_INTERVAL_MS,
    ) -> None:
        offsets = manager.group_offsets
        if offsets is None:
            raise TransportClosedError("the log is closed")
        self._manager = manager
        self._notifier = notifier
        self._interval_s = max(1, expire_interval_ms) / 1000
        self._coordinator = TransactionCoordinator(manager, offsets, manager.clock)
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    def load(self) -> None:
        """Step 1: read ``__transaction_state``, completing what a crash interrupted.
        Blocking (called from the transport's start thread)."""
        with _translated("loading the transaction state"):
            self._coordinator.load()

    def start_expiring(self) -> None:
        """Step 2: run ``expire`` every interval on the running loop."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._interval_s, self._expire_due)

    def _expire_due(self) -> None:
        self._timer = None
        if self._closed:
            return
        try:
            self.expire()
        except Exception:  # a failed pass must not stop the next ones
            log.exception("aborting timed-out transactions failed")
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._interval_s, self._expire_due)

    def expire(self) -> None:
        """Abort every transaction open past its timeout, now."""
        with _translated("aborting timed-out transactions"):
            aborted = self._coordinator.expire(self._manager.clock.time_ms())
        if aborted:
            self._notifier.notify_all()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the coordinator's calls ---------------------------------------------------------

    def init_producer_id(self, transactional_id: str, timeout_ms: int) -> tuple[int, int]:
        """A producer id and a new epoch for ``transactional_id`` (fencing older ones,
        whose open transaction is aborted)."""
        self._check_open()
        with _translated(f"InitProducerId of transactional id {transactional_id!r}"):
            producer_id, epoch = self._coordinator.init_producer_id(transactional_id, timeout_ms)
        self._notifier.notify_all()  # an aborted transaction moved some LSOs
        return int(producer_id), int(epoch)

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[tuple[str, int]],
    ) -> None:
        self._check_open()
        wanted = sorted(set(partitions))
        with _translated(f"AddPartitionsToTxn of transactional id {transactional_id!r}"):
            answer: Any = self._coordinator.add_partitions(
                transactional_id, producer_id, epoch, wanted
            )
        _raise_partition_errors(answer, transactional_id)

    def is_in_transaction(self, producer_id: int, epoch: int, topic: str, partition: int) -> bool:
        return bool(self._coordinator.is_in_transaction(producer_id, epoch, topic, partition))

    def add_offsets(self, transactional_id: str, producer_id: int, epoch: int, group: str) -> None:
        self._check_open()
        with _translated(f"AddOffsetsToTxn of transactional id {transactional_id!r}"):
            self._coordinator.add_offsets(transactional_id, producer_id, epoch, group)

    def txn_offset_commit(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        group: str,
        offsets: Mapping[tuple[str, int], LogOffsetAndMetadata],
    ) -> None:
        self._check_open()
        with _translated(f"TxnOffsetCommit of group {group!r}"):
            self._coordinator.txn_offset_commit(
                transactional_id, producer_id, epoch, group, dict(offsets)
            )

    def end_txn(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        commit: bool,
        partitions: Iterable[tuple[str, int]],
    ) -> None:
        """End the transaction (markers on every partition of it, the offsets committed
        on commit), then wake the consumers of ``partitions``."""
        self._check_open()
        with _translated(f"EndTxn of transactional id {transactional_id!r}"):
            self._coordinator.end_txn(transactional_id, producer_id, epoch, commit)
        for tp in partitions:
            self._notifier.notify(tp)

    # -- helpers -------------------------------------------------------------------------

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


def txn_error(exc: log_errors.LogError, context: str) -> TransactionError:
    """The transport's error for the log's answer ``exc`` to a transaction call."""
    if isinstance(exc, FENCED):
        return ProducerFencedError(
            f"{context}: {exc}: another producer with the same transactional id has "
            "started since this one"
        )
    if isinstance(exc, log_errors.LogClosedError):
        return TransactionError(f"{context}: the log is closed")
    return TransactionError(f"{context}: {exc}")


def _raise_partition_errors(answer: Any, transactional_id: str) -> None:
    """Raise the first error of a per-partition answer (a mapping partition -> error or
    None), if the coordinator answers that way rather than raising."""
    if not isinstance(answer, Mapping):
        return
    for tp, error in answer.items():
        if isinstance(error, log_errors.LogError):
            raise txn_error(
                error, f"AddPartitionsToTxn of transactional id {transactional_id!r} ({tp})"
            ) from error
