"""The consumer's fetcher: one Fetch in flight per leader, results buffered undecoded.

A background task keeps a Fetch request outstanding to every leader of an assigned
partition that has room in its buffer, so the broker is already gathering the next
records while the application processes the last ones. A response is kept as the bytes
the broker sent; its batches are decoded only when ``drain`` hands records out (at most
``max_records``), so records never asked for cost nothing. The next fetch of a partition
starts where the buffered bytes end, found by reading batch headers only.

Per partition (``PartitionState``), ``position`` is the next offset to hand out,
``fetch_offset`` the next to ask for. ``epoch`` changes on every seek: a buffered result
or a response fetched under an older epoch is dropped, so records from before a seek are
never returned after it.

Decoding (``FetchedData``): records below the position are skipped (a batch can start
before the offset asked for), control batches are skipped, a partial batch at the end is
left for the next fetch, and with ``read_committed`` the batches of aborted transactions
are dropped using the response's aborted-transaction list, as Kafka's clients do: a
transactional batch is dropped while its producer id is in ``aborting``, which a listed
transaction's producer joins at the listed first offset and leaves at its abort marker.
A read_committed consumer also stops at the response's last stable offset (batches at
or past it are left for a later fetch) and counts it as the partition's end. A batch
that cannot be decoded (corrupt, or inflating past the codec's bound) stops its
partition there: the records before it are handed out, then ``drain`` raises
``CorruptBatchError`` for it (when it has nothing else to hand out), and again on every
poll until the application seeks past it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streamlog.log.batch_header import (
    ATTRIBUTES,
    ATTRIBUTES_AT,
    CONTROL_MASK,
    HEADER_SIZE,
    LAST_OFFSET_DELTA,
    LAST_OFFSET_DELTA_AT,
    LOG_OVERHEAD,
    OFFSET_AND_LENGTH,
    PRODUCER_ID,
    PRODUCER_ID_AT,
    TRANSACTIONAL_MASK,
)
from streamlog.log.errors import LogError
from streamlog.log.records import (
    ControlType,
    decode_batch,
    decode_batch_as,
    decode_control_record,
)
from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import BrokerUnavailableError, CorruptBatchError, TransportError
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.connection import Connection
from streamlog.transport.kafka.errors import error_for
from streamlog.transport.kafka.util import log, spawn
from streamlog.transport.types import ConsumerRecord, TopicPartition

__all__ = ["Fetcher", "PartitionState", "FetchedData", "below_stable_offset"]


# Partition errors after which the leader is looked up again.
_RETRY_ERRORS = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.OFFSET_NOT_AVAILABLE,
        ErrorCode.REPLICA_NOT_AVAILABLE,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.CORRUPT_MESSAGE,
    }
)


class FetchedData:
    """One partition's records from one Fetch response, decoded batch by batch on demand."""

    __slots__ = (
        "tp",
        "epoch",
        "data",
        "pos",
        "pending",
        "pending_index",
        "pending_end",
        "aborted",
        "error",
    )

    def __init__(
        self, tp: TopicPartition, epoch: int, data: bytes, aborted: list[tuple[int, int]] | None
    ) -> None:
        self.tp = tp
        self.epoch = epoch
        self.data = data
        self.pos = 0
        self.pending: list[ConsumerRecord] = []
        self.pending_index = 0
        self.pending_end = -1  # the offset after the batch ``pending`` came from
        # (first offset, producer id) of aborted transactions; None: read_uncommitted.
        # Kept (empty) for read_committed even when none is listed, so that abort
        # markers still take their producers out of ``aborting``.
        self.aborted = sorted(aborted) if aborted is not None else None
        # The batch the last ``take`` stopped at, undecodable; None if it did not stop.
        self.error: CorruptBatchError | None = None

    def take(
        self,
        limit: int,
        position: int,
        out: list[ConsumerRecord],
        aborting: set[int],
    ) -> tuple[int, bool]:
        """Append up to ``limit`` records at or after ``position`` to ``out``.

        Returns the new position and whether this data is used up. A batch that cannot
        be decoded stops the take before it, with ``error`` set (see the module).
        """
        self.error = None
        prefix = tuple(self.tp)
        data = self.data
        end = len(data)
        while limit > 0:
            pending = self.pending
            if self.pending_index < len(pending):
                start = self.pending_index
                stop = min(len(pending), start + limit)
                out.extend(pending[start:stop])
                limit -= stop - start
                self.pending_index = stop
                if stop == len(pending):
                    position = max(position, self.pending_end)
                    self.pending = []
                    self.pending_index = 0
                else:
                    position = pending[stop - 1][2] + 1
                continue
            if end - self.pos < HEADER_SIZE:
                return position, True
            base_offset, batch_length = OFFSET_AND_LENGTH.unpack_from(data, self.pos)
            size = batch_length + LOG_OVERHEAD
            if self.pos + size > end:
                return position, True  # a partial batch: fetched again next time
            batch_pos = self.pos
            self.pos += size
            (delta,) = LAST_OFFSET_DELTA.unpack_from(data, batch_pos + LAST_OFFSET_DELTA_AT)
            next_offset = base_offset + delta + 1
            if next_offset <= position:
                continue
            (attributes,) = ATTRIBUTES.unpack_from(data, batch_pos + ATTRIBUTES_AT)
            try:
                if attributes & CONTROL_MASK:
                    if self.aborted is not None:
                        # As Kafka's consumer: the aborted transactions that began by the
                        # marker are noted first, so that an abort marker ends them even
                        # when no data batch came before it (a transaction that wrote
                        # nothing here lists the marker's own offset as its first);
                        # noted after it, they would drop every later batch of the
                        # producer, committed ones included.
                        _note_aborts(self.aborted, base_offset + delta, aborting)
                        self._control(data, batch_pos, aborting)
                    position = max(position, next_offset)
                    continue
                aborted = self.aborted
                if aborted is not None and attributes & TRANSACTIONAL_MASK:
                    (producer_id,) = PRODUCER_ID.unpack_from(data, batch_pos + PRODUCER_ID_AT)
                    _note_aborts(aborted, base_offset + delta, aborting)
                    if producer_id in aborting:
                        position = max(position, next_offset)
                        continue
                _, converted = decode_batch_as(data, batch_pos, ConsumerRecord, prefix, position)
            except LogError as exc:
                self.pos = batch_pos  # stay at the batch: the next take meets it again
                tp = self.tp
                self.error = CorruptBatchError(
                    tp.topic, tp.partition, base_offset, next_offset, str(exc)
                )
                return position, False
            if not converted:  # compacted away, or all before the position
                position = max(position, next_offset)
                continue
            self.pending = converted
            self.pending_index = 0
            self.pending_end = next_offset
        return position, self._used_up()

    def _used_up(self) -> bool:
        """Whether nothing is left to hand out (a partial batch at the end counts as used)."""
        if self.pending_index < len(self.pending):
            return False
        data = self.data
        if len(data) - self.pos < HEADER_SIZE:
            return True
        _, batch_length = OFFSET_AND_LENGTH.unpack_from(data, self.pos)
        return self.pos + batch_length + LOG_OVERHEAD > len(data)

    def _control(self, data: bytes, batch_pos: int, aborting: set[int]) -> None:
        header, records = decode_batch(data, batch_pos)
        for record in records:
            try:
                marker = decode_control_record(record)
            except LogError:  # not a transaction marker (or a type we do not know)
                continue
            if marker.type == ControlType.ABORT:
                aborting.discard(header.producer_id)


def _note_aborts(aborted: list[tuple[int, int]], last_offset: int, aborting: set[int]) -> None:
    """Move the producers of the aborted transactions ``aborted`` lists (first offset,
    producer id; in offset order) that began by ``last_offset`` into ``aborting``."""
    while aborted and aborted[0][0] <= last_offset:
        aborting.add(aborted.pop(0)[1])


def _whole_batches(data: bytes) -> Iterator[tuple[int, int]]:
    """(end position, last offset) of each whole batch at the start of ``data``, in
    order; stops at the first one cut short (a fetch's last batch may be)."""
    pos = 0
    end = len(data)
    while end - pos >= HEADER_SIZE:
        base_offset, batch_length = OFFSET_AND_LENGTH.unpack_from(data, pos)
        size = batch_length + LOG_OVERHEAD
        if size < HEADER_SIZE or pos + size > end:
            return
        (delta,) = LAST_OFFSET_DELTA.unpack_from(data, pos + LAST_OFFSET_DELTA_AT)
        pos += size
        yield pos, base_offset + delta


def end_of_complete_batches(data: bytes) -> int | None:
    """The offset after the last whole batch of ``data``, or None if there is none."""
    next_offset: int | None = None
    for _, last in _whole_batches(data):
        next_offset = last + 1
    return next_offset


def below_stable_offset(data: bytes, stable: int) -> bytes:
    """The whole batches of ``data`` that end below ``stable`` (a read_committed fetch's
    last stable offset): a broker should send nothing past it, and a batch that it does
    send there may belong to a transaction still open, so it is fetched again later."""
    start = 0
    for end, last in _whole_batches(data):
        if last >= stable:
            return data[:start]
        start = end
    return data


class PartitionState:
    """What the consumer knows of one assigned partition (see the module docstring)."""

    __slots__ = (
        "tp",
        "position",
        "fetch_offset",
        "epoch",
        "buffered",
        "buffered_bytes",
        "in_flight",
        "reset",
        "error",
        "backoff_until",
        "high_watermark",
        "aborting",
        "paused",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.position: int | None = None
        self.fetch_offset = -1
        self.epoch = 0
        self.buffered: deque[FetchedData] = deque()
        self.buffered_bytes = 0
        self.in_flight = False
        self.reset: str | None = None  # an auto_offset_reset to apply before fetching
        self.error: TransportError | None = None
        self.backoff_until = 0.0
        self.high_watermark = -1
        self.aborting: set[int] = set()
        self.paused = False  # nothing fetched or handed out (the consumer's pause)

    def seek(self, offset: int) -> None:
        self.position = offset
        self.fetch_offset = offset
        self.epoch += 1
        self.buffered.clear()
        self.buffered_bytes = 0
        self.reset = None
        self.error = None
        self.aborting.clear()


class Fetcher:
    """Keeps fetches in flight for the assigned partitions that have a position."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        max_wait_ms: int = 500,
        min_bytes: int = 1,
        max_bytes: int = 50 * 1024 * 1024,
        partition_max_bytes: int = 1024 * 1024,
        isolation_level: int = 0,
        retry_backoff_ms: int = 100,
        on_data: Callable[[], None],
    ) -> None:
        self.cluster = cluster
        self.states: dict[TopicPartition, PartitionState] = {}
        self._max_wait_ms = max_wait_ms
        self._min_bytes = min_bytes
        self._max_bytes = max_bytes
        self._partition_max_bytes = partition_max_bytes
        self._isolation_level = isolation_level
        self._backoff = retry_backoff_ms / 1000
        self._on_data = on_data
        self._nodes_in_flight: set[int] = set()
        self._node_backoff: dict[int, float] = {}
        self._connecting: dict[int, asyncio.Task[None]] = {}
        self._metadata_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # When brokers stopped answering, for getmany to report a lasting outage.
        self.unavailable_since: float | None = None
        self.last_error: TransportError | None = None
        self.failure: TransportError | None = None

    # ---------------------------------------------------------------- assignment

    def set_assignment(self, partitions: Iterable[TopicPartition]) -> None:
        wanted = set(partitions)
        for tp in list(self.states):
            if tp not in wanted:
                state = self.states.pop(tp)
                state.epoch += 1  # responses in flight for it are dropped
        for tp in wanted:
            if tp not in self.states:
                self.states[tp] = PartitionState(tp)
        self.wake()

    def wake(self) -> None:
        self._wake.set()
        if self._task is None and not self._closed:
            self._task = spawn(self._run(), "streamlog-consumer-fetcher")

    async def close(self) -> None:
        self._closed = True
        for task in (self._task, self._metadata_task, *self._connecting.values()):
            if task is not None:
                task.cancel()

    # ---------------------------------------------------------------- fetching

    def _guarded(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception as e:
            self._fatal(e)

    def _fatal(self, error: BaseException) -> None:
        """A failure of the fetcher itself (a bug): ``getmany`` raises it from now on."""
        log.error("the consumer's fetcher failed", exc_info=error)
        self.failure = TransportError(f"the consumer's fetcher failed: {error!r}")
        self._closed = True
        self._on_data()

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as e:
            self._fatal(e)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        while not self._closed:
            wake.clear()
            retry_at = self._send_fetches(loop.time())
            if retry_at is None:
                await wake.wait()
            else:
                try:
                    await asyncio.wait_for(wake.wait(), max(0.0, retry_at - loop.time()))
                except TimeoutError:
                    pass

    def _send_fetches(self, now: float) -> float | None:
        retry_at: float | None = None
        by_node: dict[int, list[PartitionState]] = {}
        connections: dict[int, Connection] = {}
        # Nodes with a partition held back only until its buffer has room: no fetch goes
        # to them meanwhile. A fetch of their other partitions alone (idle ones, often)
        # long-polls for max_wait, and the full partition's next fetch waits behind it:
        # measured 500 ms stalls with the consumer's CPU at 50% (h-beos). Draining the
        # buffer wakes the fetcher, and one fetch then carries them all.
        full: set[int] = set()
        for state in self.states.values():
            if (
                state.position is None
                or state.paused
                or state.in_flight
                or state.reset is not None
                or state.error is not None
            ):
                continue
            if state.buffered_bytes >= self._partition_max_bytes:
                full.add(self.cluster.leader(state.tp.topic, state.tp.partition))
                continue
            if state.backoff_until > now:
                retry_at = _earliest(retry_at, state.backoff_until)
                continue
            tp = state.tp
            node = self.cluster.leader(tp.topic, tp.partition)
            if node < 0:
                self._refresh_metadata_soon()
                continue
            if node in self._nodes_in_flight:
                continue
            until = self._node_backoff.get(node, 0.0)
            if until > now:
                retry_at = _earliest(retry_at, until)
                continue
            conn = self.cluster.ready_connection(node, "fetch")
            if conn is None:
                self._connect_soon(node)
                continue
            connections[node] = conn
            by_node.setdefault(node, []).append(state)
        for node, states in by_node.items():
            if node not in full:
                self._fetch(connections[node], node, states)
        return retry_at

    def _fetch(self, conn: Connection, node: int, states: list[PartitionState]) -> None:
        by_topic: dict[str, list[dict[str, int]]] = {}
        epochs: dict[TopicPartition, tuple[PartitionState, int, int]] = {}
        for state in states:
            state.in_flight = True
            epochs[state.tp] = (state, state.epoch, state.fetch_offset)
            by_topic.setdefault(state.tp.topic, []).append(
                {
                    "partition": state.tp.partition,
                    "fetch_offset": state.fetch_offset,
                    "partition_max_bytes": self._partition_max_bytes,
                }
            )
        request = conn.build(
            ApiKey.FETCH,
            replica_id=-1,
            max_wait=self._max_wait_ms,
            min_bytes=self._min_bytes,
            max_bytes=self._max_bytes,
            isolation_level=self._isolation_level,
            session_id=0,
            session_epoch=-1,
            topics=[{"topic": t, "partitions": parts} for t, parts in by_topic.items()],
            forgotten_topics_data=[],
            rack_id="",
        )
        self._nodes_in_flight.add(node)
        future = conn.send(request, timeout=self.cluster.request_timeout + self._max_wait_ms / 1000)
        future.add_done_callback(lambda f: self._guarded(self._on_response, node, epochs, f))

    def _on_response(
        self,
        node: int,
        epochs: dict[TopicPartition, tuple[PartitionState, int, int]],
        future: asyncio.Future[Any],
    ) -> None:
        self._nodes_in_flight.discard(node)
        for state, _, _ in epochs.values():
            state.in_flight = False
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if future.cancelled() or future.exception() is not None:
            error = None if future.cancelled() else future.exception()
            log.debug("fetch from broker %d failed: %s", node, error)
            self._node_backoff[node] = loop.time() + self._backoff
            if isinstance(error, BrokerUnavailableError):
                if self.unavailable_since is None:
                    self.unavailable_since = loop.time()
                self.last_error = error
            self._refresh_metadata_soon()
            self.wake()
            return
        self.unavailable_since = None
        response = future.result()
        got_data = False
        for topic in response.responses:
            name = topic.topic
            for p in topic.partitions:
                tp = TopicPartition(name, int(p.partition_index))
                entry = epochs.get(tp)
                if entry is None:
                    continue
                state, epoch, fetch_offset = entry
                if state.epoch != epoch or self.states.get(tp) is not state:
                    continue  # sought or unassigned meanwhile
                code = int(p.error_code)
                if code == ErrorCode.NONE:
                    records = p.records
                    if self._isolation_level == 1:
                        # read_committed: the log ends, for this consumer, at the last
                        # stable offset (Kafka's consumer measures its lag from it too)
                        stable = int(p.last_stable_offset)
                        state.high_watermark = stable
                        if records and stable >= 0:
                            records = below_stable_offset(records, stable)
                    else:
                        state.high_watermark = int(p.high_watermark)
                    if not records:
                        continue
                    next_offset = end_of_complete_batches(records)
                    if next_offset is None or next_offset <= fetch_offset:
                        continue
                    aborted = None
                    if self._isolation_level == 1:
                        aborted = [
                            (int(a.first_offset), int(a.producer_id))
                            for a in (p.aborted_transactions or ())
                        ]
                    state.buffered.append(FetchedData(tp, epoch, records, aborted))
                    state.buffered_bytes += len(records)
                    state.fetch_offset = next_offset
                    got_data = True
                elif code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    state.reset = "auto"
                    got_data = True  # wakes getmany, which applies the reset policy
                elif code in _RETRY_ERRORS:
                    state.backoff_until = loop.time() + self._backoff
                    self._refresh_metadata_soon()
                else:
                    state.error = error_for(code, f"fetch of {name}[{tp.partition}]")
                    got_data = True
        if got_data:
            self._on_data()
        self.wake()

    # ---------------------------------------------------------------- draining

    def drain(self, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Hand out up to ``max_records`` buffered records, advancing positions.

        ``CorruptBatchError`` for a partition stopped at an undecodable batch, when no
        partition has records to hand out (those come first; the error stays).
        """
        result: dict[TopicPartition, list[ConsumerRecord]] = {}
        remaining = max_records
        freed = False
        first_error: CorruptBatchError | None = None
        for state in list(self.states.values()):
            if remaining <= 0:
                break
            buffered = state.buffered
            if not buffered or state.paused:
                continue
            out: list[ConsumerRecord] = []
            error: CorruptBatchError | None = None
            while buffered and remaining > 0:
                data = buffered[0]
                if data.epoch != state.epoch or state.position is None:
                    buffered.popleft()
                    state.buffered_bytes -= len(data.data)
                    continue
                before = len(out)
                state.position, used_up = data.take(remaining, state.position, out, state.aborting)
                remaining -= len(out) - before
                if data.error is not None:
                    error = data.error
                    break
                if used_up:
                    buffered.popleft()
                    state.buffered_bytes -= len(data.data)
                    freed = True
            if out:
                result[state.tp] = out
            elif error is not None and first_error is None:
                first_error = error
        if freed:
            self.wake()
        if first_error is not None and not result:
            raise first_error
        # Rotate so that the next drain starts with other partitions (fairness).
        if len(self.states) > 1 and result:
            first = next(iter(self.states))
            self.states[first] = self.states.pop(first)
        return result

    # ---------------------------------------------------------------- plumbing

    def _refresh_metadata_soon(self) -> None:
        if self._metadata_task is None or self._metadata_task.done():
            self._metadata_task = spawn(self._refresh_metadata(), "streamlog-consumer-metadata")

    async def _refresh_metadata(self) -> None:
        await asyncio.sleep(self._backoff)
        topics = sorted({tp.topic for tp in self.states})
        if not topics:
            return
        try:
            await self.cluster.refresh(topics)
        except TransportError as e:
            log.debug("consumer metadata refresh failed: %s", e)
            await asyncio.sleep(self._backoff)
        self.wake()

    def _connect_soon(self, node: int) -> None:
        if node in self._connecting:
            return

        async def connect() -> None:
            loop = asyncio.get_running_loop()
            try:
                await self.cluster.connection(node, "fetch")
                self.unavailable_since = None
            except TransportError as e:
                log.debug("consumer cannot reach broker %d: %s", node, e)
                self._node_backoff[node] = loop.time() + self._backoff * 5
                if isinstance(e, BrokerUnavailableError):
                    if self.unavailable_since is None:
                        self.unavailable_since = loop.time()
                    self.last_error = e
                self._refresh_metadata_soon()
            finally:
                self._connecting.pop(node, None)
                self.wake()

        self._connecting[node] = spawn(connect(), f"streamlog-consumer-connect-{node}")


def _earliest(current: float | None, candidate: float) -> float:
    return candidate if current is None or candidate < current else current
