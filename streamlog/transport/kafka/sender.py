"""The producer's sender: one task that sends closed batches and handles the answers.

It closes batches that have lingered ``linger_ms``, and sends ready ones (framed when
first sent), one Produce request per leader with at most one batch per partition, up to
``max_in_flight`` batches per partition (five, Kafka's limit for idempotent ordering).
It is the only writer of Produce requests, so the order in which batches reach a
connection is the order of their sequence numbers.

Idempotence (the default with ``acks=-1``): the producer gets a producer id from
InitProducerId and numbers each partition's records from 0; a batch's sequence numbers
are fixed when it is first sent, so a retried batch the broker already has is answered as
a duplicate with its original offset. Retries keep the order:

1. A batch that fails with a retriable error (or a lost connection) is set aside and the
   partition is put on hold: nothing new is sent to it.
2. Batches sent after it come back too (usually OUT_OF_ORDER_SEQUENCE_NUMBER: the broker
   saw a gap) and are set aside as well.
3. When none is in flight, the set-aside batches go back to the front of the queue in
   sequence order, after ``retry_backoff_ms``, one in flight until the first succeeds.
4. If the broker has lost track of the producer (UNKNOWN_PRODUCER_ID, or an
   out-of-order answer with nothing failed before it) or a batch failed for good (its
   sequence numbers would leave a gap), the producer takes a new producer id; batches
   sent under the old one are re-stamped with it, numbered from sequence 0, when they
   are retried (their records' bytes do not change).

A batch is retried until ``delivery_timeout_ms`` after it was created, then failed
(``ProduceError``, saying it gave up). One refused for a reason a retry cannot change
(INVALID_TIMESTAMP, INVALID_RECORD, CORRUPT_MESSAGE...) fails at once with
``RecordRejectedError``, so that a caller can tell a refusal from an outage.

Transactional producers (a ``TransactionManager``, ``transactions.py``): the producer id
and epoch come from the manager (``use_producer_id``), not from step 4; a partition's
batches wait until the manager has added it to the transaction (``may_send``); batches
carry the transactional bit and Produce requests the transactional id. A fenced answer
(INVALID_PRODUCER_EPOCH, PRODUCER_FENCED) fails the batch with ``ProducerFencedError``
and makes the producer fatal; lost sequence state or a batch failed for good makes the
open transaction abortable instead of taking a new producer id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import (
    BrokerUnavailableError,
    ProduceError,
    ProducerFencedError,
    RecordRejectedError,
    TransportError,
)
from streamlog.transport.kafka.batches import PartitionQueue, ProducerBatch
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.connection import Connection
from streamlog.transport.kafka.errors import error_for, is_retriable
from streamlog.transport.kafka.transactions import FENCED_ERRORS, TransactionManager
from streamlog.transport.kafka.util import log, millis, spawn
from streamlog.transport.types import TopicPartition

__all__ = ["Sender"]

_METADATA_ERRORS = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.NOT_ENOUGH_REPLICAS,
    }
)
_PRODUCER_STATE_ERRORS = frozenset(
    {ErrorCode.UNKNOWN_PRODUCER_ID, ErrorCode.INVALID_PRODUCER_EPOCH}
)


class Sender:
    """Sends the batches of a producer's partition queues (see the module docstring).

    The producer owns the queues and the batching; the sender reads ``queues`` and
    ``open_batches`` (shared, not copied), calls ``close_batch`` for lingered batches,
    ``release`` for every batch it finishes, ``refresh_metadata`` when leaders moved and
    ``failed`` once if it fails itself (``failure`` is set by then).
    """

    def __init__(
        self,
        cluster: Cluster,
        queues: dict[tuple[str, int], PartitionQueue],
        open_batches: dict[TopicPartition, PartitionQueue],
        *,
        acks: int,
        idempotent: bool,
        compression: int,
        max_in_flight: int,
        linger: float,
        delivery_timeout: float,
        backoff: float,
        close_batch: Callable[[PartitionQueue], None],
        release: Callable[[ProducerBatch], None],
        refresh_metadata: Callable[[], None],
        failed: Callable[[], None],
        transaction: TransactionManager | None = None,
    ) -> None:
        self._cluster = cluster
        self._queues = queues
        self._open = open_batches
        self._acks = acks
        self._idempotent = idempotent
        self._compression = compression
        self._max_in_flight = max_in_flight
        self._linger = linger
        self._delivery_timeout = delivery_timeout
        self._backoff = backoff
        self._close_batch = close_batch
        self._release = release
        self._refresh_metadata_soon = refresh_metadata
        self._failed = failed
        self._transaction = transaction
        self._transactional_id = None if transaction is None else transaction.transactional_id
        self._pid = -1
        self._epoch = -1
        self._pid_task: asyncio.Task[None] | None = None
        self._pid_error: TransportError | None = None
        self._connecting: dict[int, asyncio.Task[None]] = {}
        self._node_backoff: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.failure: TransportError | None = None
        # Set on every answer handled: what a transactional abort waits on for the
        # batches in flight to come back.
        self.answered = asyncio.Event()

    def wake(self) -> None:
        """Something changed (a batch closed, an answer came): look again."""
        self._wake.set()
        if self._task is None and not self._closed:
            self._task = spawn(self._run(), "streamlog-producer-sender")

    def close(self) -> None:
        """Stop sending (batches still queued are the producer's to fail)."""
        self._closed = True
        for task in (self._task, self._pid_task, *self._connecting.values()):
            if task is not None:
                task.cancel()

    # ------------------------------------------------------------------ producer id

    def use_producer_id(self, producer_id: int, epoch: int) -> None:
        """A transactional producer's id and epoch (from its coordinator): every
        partition's sequences start again at 0 under them."""
        self._pid = producer_id
        self._epoch = epoch
        for queue in self._queues.values():
            queue.sequence_pid = -1
        self.wake()

    def _reset_producer_id(self) -> None:
        """Take a new producer id (sequences restart at 0 under it); a transactional
        producer's transaction becomes abortable instead (it bumps its epoch when it
        aborts)."""
        if not self._idempotent:
            return
        if self._transaction is not None:
            self._transaction.sequences_lost = True
            self._transaction.abortable(ProduceError("the broker lost this producer's sequences"))
            return
        if self._pid_task is None or self._pid_task.done():
            self._pid = -1
            self._pid_task = spawn(self._init_producer_id(), "streamlog-producer-id")

    async def _init_producer_id(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._delivery_timeout
        while True:
            try:
                conn = await self._cluster.any_connection()
                if not conn.supports(ApiKey.INIT_PRODUCER_ID):
                    log.warning("%s has no InitProducerId: idempotence is off", conn.address)
                    self._idempotent = False
                    break
                response: Any = await conn.request(
                    conn.build(
                        ApiKey.INIT_PRODUCER_ID,
                        transactional_id=None,
                        transaction_timeout=60_000,
                        producer_id=-1,
                        producer_epoch=-1,
                    )
                )
                code = int(response.error_code)
                if code == ErrorCode.NONE:
                    self._pid = int(response.producer_id)
                    self._epoch = int(response.producer_epoch)
                    self._pid_error = None
                    break
                error: TransportError = error_for(code, "InitProducerId")
                if not is_retriable(code):
                    self._pid_error = error
                    break
            except BrokerUnavailableError as e:
                error = e
            if loop.time() > deadline:
                self._pid_error = error
                break
            await asyncio.sleep(self._backoff)
        self.wake()

    # ------------------------------------------------------------------ the sender

    def _guarded(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception as e:
            self._fatal(e)

    def _fatal(self, error: BaseException) -> None:
        """A failure of the sender itself (a bug): fail every batch and every later send
        rather than leave ``flush`` waiting for answers that will never be handled."""
        log.error("the producer's sender failed", exc_info=error)
        self.failure = TransportError(f"the producer's sender failed: {error!r}")
        self._closed = True
        self._failed()
        for queue in self._queues.values():
            for batch in queue.pending():
                batch.fail(self.failure)
                self._release(batch)
            queue.ready.clear()
            queue.in_flight.clear()
            queue.retry.clear()

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as e:
            self._fatal(e)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        if self._idempotent and self._transaction is None:
            self._reset_producer_id()
        while not self._closed:
            wake.clear()
            now = loop.time()
            next_check = self._close_lingering(now)
            if self._pid_error is not None:
                self._fail_all_waiting(self._pid_error)
            elif not self._idempotent or self._pid >= 0:
                retry_at = self._drain(now)
                if retry_at is not None:
                    next_check = retry_at if next_check is None else min(next_check, retry_at)
            expiry = self._expire(now)
            if expiry is not None:
                next_check = expiry if next_check is None else min(next_check, expiry)
            if next_check is None:
                await wake.wait()
            else:
                delay = next_check - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(wake.wait(), delay)
                    except TimeoutError:
                        pass

    def _close_lingering(self, now: float) -> float | None:
        next_check: float | None = None
        for queue in list(self._open.values()):
            batch = queue.open
            if batch is None:  # nothing open there: nothing lingers
                continue
            due = batch.created + self._linger
            if due <= now:
                self._close_batch(queue)
            elif next_check is None or due < next_check:
                next_check = due
        return next_check

    def _expire(self, now: float) -> float | None:
        """Fail waiting batches past their delivery deadline; the next deadline to watch."""
        next_deadline: float | None = None
        for queue in self._queues.values():
            while queue.ready and queue.ready[0].deadline <= now and not queue.in_flight:
                batch = queue.ready.popleft()
                self._fail_batch(batch, self._timeout_error(batch))
            if queue.ready:
                deadline = queue.ready[0].deadline
                if next_deadline is None or deadline < next_deadline:
                    next_deadline = deadline
        return next_deadline

    def _timeout_error(self, batch: ProducerBatch) -> TransportError:
        return BrokerUnavailableError(
            f"{batch.tp.topic}[{batch.tp.partition}]: not acknowledged within "
            f"{self._delivery_timeout:g} s (kafka://{self._cluster.bootstrap_text})"
        )

    def _fail_all_waiting(self, error: TransportError) -> None:
        for queue in self._queues.values():
            while queue.ready:
                self._fail_batch(queue.ready.popleft(), error)

    def _drain(self, now: float) -> float | None:
        """Send what can be sent; the earliest time a backed-off partition may go again."""
        retry_at: float | None = None
        transaction = self._transaction
        while True:
            by_node: dict[int, list[ProducerBatch]] = {}
            connections: dict[int, Connection] = {}
            for queue in self._queues.values():
                if not queue.ready or queue.hold or len(queue.in_flight) >= queue.max_in_flight:
                    continue
                if queue.backoff_until > now:
                    if retry_at is None or queue.backoff_until < retry_at:
                        retry_at = queue.backoff_until
                    continue
                if queue.in_flight and queue.in_flight[-1].pid != self._pid:
                    continue  # wait for the old producer id's batches before using the new
                tp = queue.tp
                if transaction is not None and not transaction.may_send(tp):
                    continue  # not in the transaction yet (or none open to send in)
                node = self._cluster.leader(tp.topic, tp.partition)
                if node < 0:
                    self._refresh_metadata_soon()
                    continue
                if self._node_backoff.get(node, 0.0) > now:
                    until = self._node_backoff[node]
                    if retry_at is None or until < retry_at:
                        retry_at = until
                    continue
                conn = self._cluster.ready_connection(node)
                if conn is None:
                    self._connect_soon(node)
                    continue
                connections[node] = conn
                by_node.setdefault(node, []).append(self._prepare(queue))
            if not by_node:
                return retry_at
            for node, batches in by_node.items():
                self._send_request(connections[node], node, batches)

    def _prepare(self, queue: PartitionQueue) -> ProducerBatch:
        batch = queue.ready.popleft()
        if batch.data is None or (self._idempotent and batch.pid != self._pid):
            sequence = -1
            if self._idempotent:
                if queue.sequence_pid != self._pid:
                    queue.sequence_pid = self._pid
                    queue.next_sequence = 0
                sequence = queue.next_sequence
                queue.next_sequence = (sequence + batch.count) & 0x7FFFFFFF
            batch.encode(
                self._compression,
                self._pid,
                self._epoch,
                sequence,
                transactional=self._transaction is not None,
            )
        queue.in_flight.append(batch)
        return batch

    def _connect_soon(self, node: int) -> None:
        if node in self._connecting:
            return

        async def connect() -> None:
            try:
                await self._cluster.connection(node)
            except TransportError as e:
                log.debug("producer cannot reach broker %d: %s", node, e)
                loop = asyncio.get_running_loop()
                self._node_backoff[node] = loop.time() + self._backoff * 5
                self._refresh_metadata_soon()
            finally:
                self._connecting.pop(node, None)
                self.wake()

        self._connecting[node] = spawn(connect(), f"streamlog-producer-connect-{node}")

    def _send_request(self, conn: Connection, node: int, batches: list[ProducerBatch]) -> None:
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for batch in batches:
            by_topic.setdefault(batch.tp.topic, []).append(
                {"index": batch.tp.partition, "records": batch.data}
            )
        request = conn.build(
            ApiKey.PRODUCE,
            transactional_id=self._transactional_id,
            acks=self._acks,
            timeout=int(self._cluster.request_timeout * 1000),
            topic_data=[
                {"name": topic, "partition_data": parts} for topic, parts in by_topic.items()
            ],
        )
        future = conn.send(request, expect_response=self._acks != 0)
        future.add_done_callback(lambda f: self._guarded(self._on_response, node, batches, f))

    # ------------------------------------------------------------------ responses

    def _on_response(
        self, node: int, batches: list[ProducerBatch], future: asyncio.Future[Any]
    ) -> None:
        if self._closed:
            return
        self.answered.set()
        error = None if future.cancelled() else future.exception()
        if error is not None or future.cancelled():
            reason = (
                error
                if isinstance(error, TransportError)
                else BrokerUnavailableError(f"produce request to broker {node} failed: {error!r}")
            )
            loop = asyncio.get_running_loop()
            self._node_backoff[node] = loop.time() + self._backoff
            self._refresh_metadata_soon()
            for batch in batches:
                self._retry_or_fail(batch, ErrorCode.NETWORK_EXCEPTION, reason)
            self.wake()
            return
        response = future.result()
        if response is None:  # acks=0
            for batch in batches:
                self._finish(batch, -1, -1)
            self.wake()
            return
        answers: dict[TopicPartition, Any] = {}
        for topic in response.responses:
            for p in topic.partition_responses:
                answers[TopicPartition(topic.name, int(p.index))] = p
        for batch in batches:
            p = answers.get(batch.tp)
            if p is None:
                self._retry_or_fail(
                    batch,
                    ErrorCode.UNKNOWN_SERVER_ERROR,
                    ProduceError(f"{batch.tp.topic}[{batch.tp.partition}]: no answer in response"),
                )
                continue
            code = int(p.error_code)
            if code in (ErrorCode.NONE, ErrorCode.DUPLICATE_SEQUENCE_NUMBER):
                self._finish(batch, int(p.base_offset), millis(p.log_append_time))
            else:
                message = getattr(p, "error_message", None)
                context = f"{batch.tp.topic}[{batch.tp.partition}]"
                self._retry_or_fail(batch, code, error_for(code, context, message, ProduceError))
        self.wake()

    def _finish(self, batch: ProducerBatch, base_offset: int, append_time: int) -> None:
        queue = self._queues[batch.tp]
        if batch in queue.in_flight:
            queue.in_flight.remove(batch)
        queue.max_in_flight = self._max_in_flight
        batch.done(base_offset, append_time)
        self._release(batch)
        self._maybe_requeue(queue)

    def _retry_or_fail(self, batch: ProducerBatch, code: int, error: TransportError) -> None:
        queue = self._queues[batch.tp]
        if batch in queue.in_flight:
            queue.in_flight.remove(batch)
        loop = asyncio.get_running_loop()
        retriable = code == ErrorCode.NETWORK_EXCEPTION or is_retriable(code)
        transaction = self._transaction
        if transaction is not None and code in FENCED_ERRORS:
            error = ProducerFencedError(
                f"{error}: another producer with transactional id "
                f"{transaction.transactional_id!r} has started since this one"
            )
            transaction.fenced(error)
            self._fail_batch(batch, error)
            self._maybe_requeue(queue)
            return
        if self._idempotent:
            if code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER:
                retriable = True
                # Expected while an earlier batch failed or is unanswered (it may be
                # lost), or after a new producer id; otherwise the broker lost our
                # sequence state: start again under a new producer id.
                earlier = queue.hold or any(b.serial < batch.serial for b in queue.in_flight)
                if not earlier and batch.pid == self._pid:
                    self._reset_producer_id()
            elif code in _PRODUCER_STATE_ERRORS:
                retriable = True
                if batch.pid == self._pid:
                    self._reset_producer_id()
        if code in _METADATA_ERRORS:
            self._refresh_metadata_soon()
        if retriable and loop.time() < batch.deadline and not self._closed:
            batch.attempts += 1
            queue.retry.append(batch)
            queue.hold = True
            log.debug("retrying %s after %s", batch.tp, error)
        else:
            if retriable:
                error = type(error)(f"{error} (gave up after {batch.attempts + 1} attempts)")
            elif type(error) is ProduceError:  # refused for good (module docstring)
                error = RecordRejectedError(str(error))
            self._fail_batch(batch, error)
            if self._idempotent and batch.pid == self._pid and batch.pid >= 0:
                # Its sequence numbers will never be written: the next batch would leave
                # a gap. A new producer id starts the partition's sequences afresh.
                self._reset_producer_id()
        self._maybe_requeue(queue)

    def _maybe_requeue(self, queue: PartitionQueue) -> None:
        if not queue.hold or queue.in_flight:
            return
        retry = sorted(queue.retry, key=_send_order)
        queue.retry.clear()
        queue.ready.extendleft(reversed(retry))
        queue.hold = False
        queue.max_in_flight = 1
        queue.backoff_until = asyncio.get_running_loop().time() + self._backoff

    def _fail_batch(self, batch: ProducerBatch, error: BaseException) -> None:
        batch.fail(error)
        self._release(batch)
        if self._transaction is not None:
            self._transaction.abortable(error)


def _send_order(batch: ProducerBatch) -> int:
    return batch.serial
