"""The transaction coordinator over a real log manager: every state transition, fencing,
timeouts on a manual clock, restarts (ongoing and preparing transactions, pending
offsets), id expiry, bounds, and compaction of ``__transaction_state``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from streamlog.log.cleaner import LogCleaner
from streamlog.log.clock import ManualClock
from streamlog.log.errors import (
    CoordinatorNotLoadedError,
    InternalTopicError,
    InvalidGroupIdError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    InvalidTransactionalIdError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    OffsetMetadataTooLargeError,
    OperationNotAttemptedError,
    ProducerFencedError,
    TransactionLimitError,
    UnknownTopicError,
)
from streamlog.log.group_offsets import OffsetAndMetadata
from streamlog.log.manager import LogManager
from streamlog.log.partition_log import AppendOrigin, IsolationLevel, PartitionLog
from streamlog.log.records import ControlType, decode_batch, decode_control_record, encode_batch
from streamlog.log.txn_coordinator import TransactionCoordinator, TxnStatus
from streamlog.log.txn_state import (
    TRANSACTION_STATE_TOPIC,
    TransactionMetadata,
    TransactionStateStore,
    decode_txn_key,
    decode_txn_value,
    encode_txn_key,
    encode_txn_value,
)

NOW = 1_700_000_000_000
COMMITTED = IsolationLevel.READ_COMMITTED
TID = "app-1"


@contextmanager
def opened(
    path, clock: ManualClock, **kwargs
) -> Iterator[tuple[LogManager, TransactionCoordinator]]:
    """A log manager with topics ``t`` (2 partitions) and ``u``, and a loaded coordinator."""
    with LogManager.open(str(path), clock=clock, offsets_topic_partitions=1) as logs:
        for name, partitions in (("t", 2), ("u", 1)):
            if not logs.topic_exists(name):
                logs.create_topic(name, partitions)
        assert logs.group_offsets is not None
        coordinator = TransactionCoordinator(
            logs, logs.group_offsets, clock, state_partitions=2, **kwargs
        )
        coordinator.load()
        yield logs, coordinator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


class Producer:
    """A transactional producer talking to the coordinator in-process, appending as the
    broker's Produce handler does (``run_in_transaction`` + ``transaction_verified``)."""

    def __init__(self, logs: LogManager, coordinator: TransactionCoordinator, tid: str = TID):
        self.logs, self.coordinator, self.tid = logs, coordinator, tid
        self.pid, self.epoch = coordinator.init_producer_id(tid, 60_000)
        self.sequences: dict[tuple[str, int], int] = {}

    def send(self, topic: str, partition: int, *values: bytes, add: bool = True) -> int:
        if add:
            result = self.coordinator.add_partitions(
                self.tid, self.pid, self.epoch, [(topic, partition)]
            )
            assert result == {(topic, partition): None}
        seq = self.sequences.get((topic, partition), 0)
        batch = encode_batch(
            [(None, v, NOW, ()) for v in values],
            producer_id=self.pid,
            producer_epoch=self.epoch,
            base_sequence=seq,
            transactional=True,
        )
        plog = self.logs.partition(topic, partition)
        appended = self.coordinator.run_in_transaction(
            self.pid,
            self.epoch,
            topic,
            partition,
            lambda: plog.append(batch, transaction_verified=True),
        )
        self.sequences[(topic, partition)] = seq + len(values)
        return appended.base_offset

    def offsets(self, group: str, offsets: dict) -> None:
        self.coordinator.add_offsets(self.tid, self.pid, self.epoch, group)
        self.coordinator.txn_offset_commit(self.tid, self.pid, self.epoch, group, offsets)

    def end(self, commit: bool) -> None:
        self.coordinator.end_txn(self.tid, self.pid, self.epoch, commit)


def committed_values(plog: PartitionLog) -> list[bytes | None]:
    """What a read_committed consumer sees: data below the LSO minus aborted records."""
    result = plog.read(plog.log_start_offset, 1 << 20, isolation=COMMITTED)
    aborted = {a.producer_id: a for a in result.aborted_transactions or ()}
    seen = []
    data = bytes(result.records)
    pos = 0
    while pos < len(data):
        batch = decode_batch(data[pos:])
        pos += batch.header.size
        h = batch.header
        if h.is_control:
            continue
        abort = aborted.get(h.producer_id)
        if h.is_transactional and abort is not None and abort.first_offset <= h.base_offset:
            if h.base_offset <= abort.last_offset:
                continue
        seen.extend(r.value for r in batch.records)
    return seen


def markers(plog: PartitionLog) -> list[tuple[int, int, ControlType]]:
    """(producer id, epoch, type) of every marker in the partition, in order."""
    found = []
    for raw in plog.iter_batches():
        batch = decode_batch(raw)
        if batch.header.is_control:
            marker = decode_control_record(batch.records[0])
            found.append((batch.header.producer_id, batch.header.producer_epoch, marker.type))
    return found


# ---------------------------------------------------------------- producer ids


def test_new_id_gets_epoch_0_and_each_init_bumps_the_epoch(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (_, c):
        pid, epoch = c.init_producer_id(TID, 60_000)
        assert epoch == 0
        assert c.init_producer_id(TID, 30_000) == (pid, 1)
        other, _ = c.init_producer_id("app-2", 60_000)
        assert other != pid
        desc = c.describe([TID, "nope"])
        assert desc["nope"] is None
        d = desc[TID]
        assert d is not None
        assert (d.producer_id, d.producer_epoch, d.state, d.timeout_ms) == (
            pid,
            1,
            TxnStatus.EMPTY,
            30_000,
        )
        # KIP-360: a producer re-initialising with its current id and epoch gets the next
        assert c.init_producer_id(TID, 60_000, pid, 1) == (pid, 2)
        with pytest.raises(ProducerFencedError):
            c.init_producer_id(TID, 60_000, pid, 1)


def test_input_validation(tmp_path, clock) -> None:
    with opened(tmp_path, clock, max_timeout_ms=10_000) as (_, c):
        for bad in (0, -5, 10_001):
            with pytest.raises(InvalidTransactionTimeoutError):
                c.init_producer_id(TID, bad)
        with pytest.raises(InvalidTransactionalIdError):
            c.init_producer_id("", 1000)
        with pytest.raises(InvalidTransactionalIdError):
            c.init_producer_id("x" * 2049, 1000)
        assert c.list_transactions() == []  # nothing was created by the refused calls
        with pytest.raises(InvalidProducerIdMappingError):
            c.add_partitions("unknown", 1, 0, [("t", 0)])
        with pytest.raises(InvalidProducerIdMappingError):
            c.end_txn("unknown", 1, 0, True)
        pid, epoch = c.init_producer_id(TID, 1000)
        with pytest.raises(InvalidProducerIdMappingError):
            c.add_partitions(TID, pid + 1, epoch, [("t", 0)])
        with pytest.raises(InvalidGroupIdError):
            c.add_offsets(TID, pid, epoch, "")


def test_calls_before_load_are_refused(tmp_path, clock) -> None:
    with LogManager.open(str(tmp_path), clock=clock, offsets_topic_partitions=1) as logs:
        assert logs.group_offsets is not None
        c = TransactionCoordinator(logs, logs.group_offsets, clock)
        with pytest.raises(CoordinatorNotLoadedError):
            c.init_producer_id(TID, 1000)
        assert not logs.topic_exists(TRANSACTION_STATE_TOPIC)
        assert c.load() == 0
        assert logs.partition_count(TRANSACTION_STATE_TOPIC) == 4
        assert logs.topic_config(TRANSACTION_STATE_TOPIC).compact


# ---------------------------------------------------------------- commit and abort


def test_commit_makes_records_and_offsets_visible(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        t0, t1 = logs.partition("t", 0), logs.partition("t", 1)
        assert p.send("t", 0, b"a", b"b") == 0
        assert p.send("t", 1, b"c") == 0
        assert p.send("t", 0, b"d") == 2
        p.offsets("g", {("in", 0): 41, ("in", 1): OffsetAndMetadata(7, "meta")})
        d = c.describe([TID])[TID]
        assert d is not None
        assert d.state is TxnStatus.ONGOING
        assert d.partitions == (("t", 0), ("t", 1))
        assert d.groups == ("g",)
        assert d.start_ms == NOW
        assert t0.last_stable_offset == 0
        assert committed_values(t0) == []
        assert logs.group_offsets.fetch("g") == {}
        assert c.pending_offsets("g") == {("in", 0), ("in", 1)}

        p.end(commit=True)

        assert committed_values(t0) == [b"a", b"b", b"d"]
        assert committed_values(t1) == [b"c"]
        assert (t0.last_stable_offset, t0.log_end_offset) == (4, 4)
        assert markers(t0) == [(p.pid, p.epoch, ControlType.COMMIT)]
        assert logs.group_offsets.fetch("g") == {
            ("in", 0): OffsetAndMetadata(41, "", -1, NOW),
            ("in", 1): OffsetAndMetadata(7, "meta", -1, NOW),
        }
        assert c.pending_offsets("g") == set()
        d = c.describe([TID])[TID]
        assert d is not None
        assert (d.state, d.partitions, d.groups) == (TxnStatus.COMPLETE_COMMIT, (), ())
        # a retried EndTxn succeeds and writes nothing more; the opposite one is refused
        p.end(commit=True)
        assert markers(t0) == [(p.pid, p.epoch, ControlType.COMMIT)]
        with pytest.raises(InvalidTxnStateError):
            p.end(commit=False)


def test_abort_hides_records_and_drops_offsets_then_a_new_transaction_begins(
    tmp_path, clock
) -> None:
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        t0 = logs.partition("t", 0)
        logs.group_offsets.commit("g", {("in", 0): 5})
        p.send("t", 0, b"x", b"y")
        p.offsets("g", {("in", 0): 9})
        p.end(commit=False)
        assert committed_values(t0) == []
        assert t0.read(0, 1 << 20, isolation=COMMITTED).aborted_transactions[0].producer_id == p.pid
        assert logs.group_offsets.fetch("g")[("in", 0)].offset == 5
        assert c.describe([TID])[TID].state is TxnStatus.COMPLETE_ABORT
        p.end(commit=False)  # retry
        with pytest.raises(InvalidTxnStateError):
            p.end(commit=True)
        # the next transaction of the same producer
        assert p.send("t", 0, b"z") == 3
        assert c.describe([TID])[TID].state is TxnStatus.ONGOING
        p.end(commit=True)
        assert committed_values(t0) == [b"z"]
        assert markers(t0) == [
            (p.pid, p.epoch, ControlType.ABORT),
            (p.pid, p.epoch, ControlType.COMMIT),
        ]


def test_wrong_state_transitions(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        with pytest.raises(InvalidTxnStateError):
            p.end(commit=True)  # nothing open (Empty)
        with pytest.raises(InvalidTxnStateError):
            c.txn_offset_commit(TID, p.pid, p.epoch, "g", {("in", 0): 1})  # group not added
        c.add_offsets(TID, p.pid, p.epoch, "g")
        with pytest.raises(InvalidTxnStateError):
            c.txn_offset_commit(TID, p.pid, p.epoch, "other", {("in", 0): 1})
        # a transaction of offsets only: no partition, no marker, offsets committed
        c.txn_offset_commit(TID, p.pid, p.epoch, "g", {("in", 0): 3})
        p.end(commit=True)
        assert logs.group_offsets.fetch("g")[("in", 0)].offset == 3
        assert markers(logs.partition("t", 0)) == []


def test_produce_check(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        p.send("t", 0, b"a")
        assert c.is_in_transaction(p.pid, p.epoch, "t", 0)
        assert not c.is_in_transaction(p.pid, p.epoch, "t", 1)
        assert not c.is_in_transaction(p.pid, p.epoch + 1, "t", 0)
        assert not c.is_in_transaction(p.pid + 100, p.epoch, "t", 0)
        with pytest.raises(InvalidTxnStateError):
            p.send("t", 1, b"not added", add=False)
        with pytest.raises(InvalidTxnStateError):
            c.run_in_transaction(p.pid + 100, 0, "t", 0, lambda: None)
        p.end(commit=True)
        assert not c.is_in_transaction(p.pid, p.epoch, "t", 0)
        with pytest.raises(InvalidTxnStateError):
            p.send("t", 0, b"after the end", add=False)
        assert logs.partition("t", 1).log_end_offset == 0
        assert logs.partition("t", 0).log_end_offset == 2  # a, its marker


def test_add_partitions_is_all_or_nothing(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        result = c.add_partitions(
            TID, p.pid, p.epoch, [("t", 0), ("missing", 0), ("t", 9), ("__consumer_offsets", 0)]
        )
        assert result[("t", 0)].__class__ is OperationNotAttemptedError
        assert isinstance(result[("missing", 0)], UnknownTopicError)
        assert isinstance(result[("t", 9)], UnknownTopicError)
        assert isinstance(result[("__consumer_offsets", 0)], InternalTopicError)
        assert c.describe([TID])[TID].state is TxnStatus.EMPTY
        assert c.add_partitions(TID, p.pid, p.epoch, [("t", 0), ("t", 0)]) == {("t", 0): None}
        assert c.describe([TID])[TID].partitions == (("t", 0),)


def test_bounds(tmp_path, clock) -> None:
    with opened(
        tmp_path,
        clock,
        max_partitions_per_txn=2,
        max_groups_per_txn=1,
        max_offsets_per_txn=2,
        max_transactional_ids=2,
    ) as (logs, c):
        p = Producer(logs, c)
        c.add_partitions(TID, p.pid, p.epoch, [("t", 0), ("t", 1)])
        with pytest.raises(TransactionLimitError):
            c.add_partitions(TID, p.pid, p.epoch, [("u", 0)])
        c.add_offsets(TID, p.pid, p.epoch, "g")
        with pytest.raises(TransactionLimitError):
            c.add_offsets(TID, p.pid, p.epoch, "g2")
        c.txn_offset_commit(TID, p.pid, p.epoch, "g", {("in", 0): 1, ("in", 1): 1})
        c.txn_offset_commit(TID, p.pid, p.epoch, "g", {("in", 0): 2})  # replaces one
        with pytest.raises(TransactionLimitError):
            c.txn_offset_commit(TID, p.pid, p.epoch, "g", {("in", 2): 1})
        with pytest.raises(OffsetMetadataTooLargeError):
            c.txn_offset_commit(
                TID, p.pid, p.epoch, "g", {("in", 0): OffsetAndMetadata(3, "m" * 4097)}
            )
        c.init_producer_id("second", 1000)
        with pytest.raises(TransactionLimitError):
            c.init_producer_id("third", 1000)
        assert c.describe([TID])[TID].partitions == (("t", 0), ("t", 1))


# ---------------------------------------------------------------- fencing


def test_a_new_instance_fences_the_old_one_and_aborts_its_transaction(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        t0 = logs.partition("t", 0)
        old = Producer(logs, c)
        old.send("t", 0, b"zombie")
        old.offsets("g", {("in", 0): 100})
        new = Producer(logs, c)
        # the abort markers carry epoch old+1; the new instance gets the epoch after
        assert (new.pid, new.epoch) == (old.pid, old.epoch + 2)
        assert markers(t0) == [(old.pid, old.epoch + 1, ControlType.ABORT)]
        assert committed_values(t0) == []
        assert t0.last_stable_offset == t0.log_end_offset
        assert logs.group_offsets.fetch("g") == {}
        assert c.pending_offsets("g") == set()
        for call in (
            lambda: old.end(commit=True),
            lambda: c.add_partitions(TID, old.pid, old.epoch, [("t", 1)]),
            lambda: c.add_offsets(TID, old.pid, old.epoch, "g"),
            lambda: old.send("t", 0, b"late", add=False),
        ):
            with pytest.raises(ProducerFencedError):
                call()
        # the partition itself fences a zombie batch that bypasses the coordinator
        zombie = encode_batch(
            [(None, b"z", NOW, ())],
            producer_id=old.pid,
            producer_epoch=old.epoch,
            base_sequence=1,
            transactional=True,
        )
        with pytest.raises(InvalidProducerEpochError):
            t0.append(zombie, transaction_verified=True)
        new.send("t", 0, b"fresh")
        new.end(commit=True)
        assert committed_values(t0) == [b"fresh"]


def test_epoch_exhaustion_moves_to_a_new_producer_id(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        pid, _ = c.init_producer_id(TID, 1000)
    # Store the id near the end of its epochs, as a long life of restarts would leave it.
    with LogManager.open(str(tmp_path), clock=clock, offsets_topic_partitions=1) as logs:
        store = TransactionStateStore(
            logs.internal_topic_logs(TRANSACTION_STATE_TOPIC, 2, {}), clock
        )
        store.write(TransactionMetadata(TID, pid, 32766, 1000, TxnStatus.EMPTY, last_update_ms=NOW))
    with opened(tmp_path, clock) as (logs, c):
        new_pid, epoch = c.init_producer_id(TID, 1000)
        assert new_pid != pid and epoch == 0
        with pytest.raises(InvalidProducerIdMappingError):
            c.add_partitions(TID, pid, 32766, [("t", 0)])


# ---------------------------------------------------------------- timeouts and expiry


def test_a_timed_out_transaction_is_aborted_and_its_producer_fenced(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)  # 60 s timeout
        p.send("t", 0, b"slow")
        clock.advance(60_000)
        assert c.expire().timed_out == ()
        clock.advance(1)
        report = c.expire()
        assert report.timed_out == (TID,)
        t0 = logs.partition("t", 0)
        assert markers(t0) == [(p.pid, p.epoch + 1, ControlType.ABORT)]
        assert committed_values(t0) == []
        d = c.describe([TID])[TID]
        assert (d.state, d.producer_epoch) == (TxnStatus.COMPLETE_ABORT, p.epoch + 1)
        with pytest.raises(ProducerFencedError):
            p.end(commit=True)
        assert c.expire().timed_out == ()
        # the producer re-initialises and carries on
        again = Producer(logs, c)
        assert again.epoch == p.epoch + 2


def test_idle_ids_are_forgotten_for_good(tmp_path, clock) -> None:
    with opened(tmp_path, clock, transactional_id_expiration_ms=1000) as (logs, c):
        Producer(logs, c)
        busy = Producer(logs, c, "busy")
        busy.send("t", 0, b"open")  # an open transaction is never forgotten
        clock.advance(1001)
        assert c.expire().forgotten == (TID,)
        assert c.describe([TID, "busy"])[TID] is None
        assert c.describe(["busy"])["busy"] is not None
    with opened(tmp_path, clock, transactional_id_expiration_ms=1000) as (logs, c):
        assert c.describe([TID])[TID] is None
        assert [t.transactional_id for t in c.list_transactions()] == ["busy"]


# ---------------------------------------------------------------- restarts


def test_restart_with_an_ongoing_transaction_keeps_it_and_its_pending_offsets(
    tmp_path, clock
) -> None:
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        p.send("t", 0, b"before")
        p.offsets("g", {("in", 0): 12})
        pid, epoch = p.pid, p.epoch
    clock.advance(5_000)
    with opened(tmp_path, clock) as (logs, c):
        d = c.describe([TID])[TID]
        assert (d.state, d.producer_id, d.producer_epoch) == (TxnStatus.ONGOING, pid, epoch)
        assert (d.partitions, d.groups, d.start_ms) == ((("t", 0),), ("g",), NOW)
        assert c.pending_offsets("g") == {("in", 0)}
        t0 = logs.partition("t", 0)
        assert t0.last_stable_offset == 0  # the partition still holds it open
        assert c.is_in_transaction(pid, epoch, "t", 0)
        c.end_txn(TID, pid, epoch, True)
        assert committed_values(t0) == [b"before"]
        assert logs.group_offsets.fetch("g")[("in", 0)].offset == 12
    with opened(tmp_path, clock) as (logs, c):
        assert logs.group_offsets.fetch("g")[("in", 0)].offset == 12
        assert c.describe([TID])[TID].state is TxnStatus.COMPLETE_COMMIT


def test_restart_times_out_an_ongoing_transaction_from_its_first_start(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        Producer(logs, c).send("t", 0, b"x")
    clock.advance(61_000)
    with opened(tmp_path, clock) as (logs, c):
        assert c.expire().timed_out == (TID,)
        assert committed_values(logs.partition("t", 0)) == []


@pytest.mark.parametrize("commit", [True, False])
def test_restart_completes_a_prepared_transaction(tmp_path, clock, commit) -> None:
    """The coordinator stopped after storing PrepareX and before writing markers."""
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        p.send("t", 0, b"a")
        p.send("u", 0, b"b")
        p.offsets("g", {("in", 0): 3})
        meta = c.describe([TID])
        store = TransactionStateStore(
            logs.internal_topic_logs(TRANSACTION_STATE_TOPIC, 2, {}), clock
        )
        stored = store.load()[TID]
        status = TxnStatus.PREPARE_COMMIT if commit else TxnStatus.PREPARE_ABORT
        store.write(replace(stored, status=status))
        assert meta[TID].state is TxnStatus.ONGOING
    with opened(tmp_path, clock) as (logs, c):
        kind = ControlType.COMMIT if commit else ControlType.ABORT
        for topic in ("t", "u"):
            assert markers(logs.partition(topic, 0)) == [(p.pid, p.epoch, kind)]
        assert committed_values(logs.partition("t", 0)) == ([b"a"] if commit else [])
        assert committed_values(logs.partition("u", 0)) == ([b"b"] if commit else [])
        expected = {("in", 0): 3} if commit else {}
        assert {tp: o.offset for tp, o in logs.group_offsets.fetch("g").items()} == expected
        done = TxnStatus.COMPLETE_COMMIT if commit else TxnStatus.COMPLETE_ABORT
        assert c.describe([TID])[TID].state is done
        c.end_txn(TID, p.pid, p.epoch, commit)  # the client's retry succeeds


def test_a_marker_for_a_deleted_topic_is_skipped(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        logs.create_topic("gone", 1)
        p = Producer(logs, c)
        p.send("gone", 0, b"x")
        p.send("t", 0, b"y")
        logs.delete_topic("gone")
        p.end(commit=True)
        assert committed_values(logs.partition("t", 0)) == [b"y"]
        assert c.describe([TID])[TID].state is TxnStatus.COMPLETE_COMMIT


# ---------------------------------------------------------------- describe and list


def test_list_transactions_filters(tmp_path, clock) -> None:
    with opened(tmp_path, clock) as (logs, c):
        a = Producer(logs, c, "a")
        b = Producer(logs, c, "b")
        b.send("t", 0, b"x")
        listed = c.list_transactions()
        assert [(t.transactional_id, t.producer_id, t.state) for t in listed] == [
            ("a", a.pid, TxnStatus.EMPTY),
            ("b", b.pid, TxnStatus.ONGOING),
        ]
        assert [t.transactional_id for t in c.list_transactions([TxnStatus.ONGOING])] == ["b"]
        assert [t.transactional_id for t in c.list_transactions(producer_ids=[a.pid])] == ["a"]
        assert c.list_transactions([TxnStatus.ONGOING], [a.pid]) == []
        assert TxnStatus.from_kafka_name("PrepareCommit") is TxnStatus.PREPARE_COMMIT
        assert TxnStatus.COMPLETE_ABORT.kafka_name == "CompleteAbort"


# ---------------------------------------------------------------- the stored records


def test_record_codec_round_trip() -> None:
    meta = TransactionMetadata(
        "tx",
        7,
        3,
        60_000,
        TxnStatus.ONGOING,
        frozenset({("t", 0), ("t", 1), ("u", 5)}),
        NOW + 5,
        NOW,
        {"g": {("in", 0): OffsetAndMetadata(4, "m", 2)}, "h": {}},
    )
    key = encode_txn_key("tx")
    assert key == b"\x00\x00\x00\x02tx"
    assert decode_txn_key(key) == "tx"
    value = encode_txn_value(meta)
    # Kafka's TransactionLogValue v0 head: version, producer id, epoch, timeout, status
    assert (
        value[:17]
        == b"\x00\x00"
        + (7).to_bytes(8, "big")
        + b"\x00\x03"
        + (60_000).to_bytes(4, "big")
        + b"\x01"
    )
    assert decode_txn_value("tx", value) == meta


def test_a_corrupt_state_record_is_skipped_and_the_rest_loads(tmp_path, clock, caplog) -> None:
    with opened(tmp_path, clock) as (logs, c):
        Producer(logs, c, "good")
        store = TransactionStateStore(
            logs.internal_topic_logs(TRANSACTION_STATE_TOPIC, 2, {}), clock
        )
        bad_partition = store.partition_for("bad")
        value = encode_txn_value(TransactionMetadata("bad", 1, 0, 1000, TxnStatus.EMPTY))
        logs.partition(TRANSACTION_STATE_TOPIC, bad_partition).append(
            encode_batch([(encode_txn_key("bad"), value[:-3], NOW, ())]),
            AppendOrigin.COORDINATOR,
        )
    with caplog.at_level(logging.WARNING), opened(tmp_path, clock) as (logs, c):
        assert c.describe(["good", "bad"]) == {
            "good": c.describe(["good"])["good"],
            "bad": None,
        }
        assert c.describe(["good"])["good"] is not None
    assert "skipped while loading transaction state" in caplog.text


def test_compaction_keeps_the_latest_state_of_each_id(tmp_path, clock) -> None:
    configs = {"segment.bytes": "600", "min.cleanable.dirty.ratio": "0.01"}
    with opened(tmp_path, clock, state_topic_configs=configs) as (logs, c):
        p = Producer(logs, c)
        for i in range(10):
            p.send("t", 0, b"v%d" % i)
            p.offsets("g", {("in", 0): i})
            p.end(commit=i % 2 == 0)
        p.send("t", 1, b"open")
        state = logs.partition(
            TRANSACTION_STATE_TOPIC,
            TransactionStateStore(
                logs.internal_topic_logs(TRANSACTION_STATE_TOPIC, 2, {}), clock
            ).partition_for(TID),
        )
        records_before = sum(len(decode_batch(b).records) for b in state.iter_batches())
        assert len(state.segments) > 2
        state.roll()
        assert LogCleaner(clock).clean(state) is not None
        records_after = sum(len(decode_batch(b).records) for b in state.iter_batches())
        assert records_before >= 40 and records_after == 1
        expected = c.describe([TID])
    with opened(tmp_path, clock, state_topic_configs=configs) as (logs, c):
        assert c.describe([TID]) == expected
        d = expected[TID]
        assert (d.state, d.partitions) == (TxnStatus.ONGOING, (("t", 1),))
        assert logs.group_offsets.fetch("g")[("in", 0)].offset == 8


# ---------------------------------------------------------------- concurrency


def test_no_batch_lands_after_end_txn_began(tmp_path, clock) -> None:
    """A thread appending through ``run_in_transaction`` while EndTxn runs: every batch is
    either before the commit marker (and committed) or refused; none opens a stray
    transaction after it (which would hold the LSO for ever)."""
    with opened(tmp_path, clock) as (logs, c):
        p = Producer(logs, c)
        p.send("t", 0, b"first")
        t0 = logs.partition("t", 0)
        appended: list[int] = []
        refused: list[Exception] = []
        started = threading.Event()

        def keep_sending() -> None:
            for i in range(10_000):
                try:
                    appended.append(p.send("t", 0, b"v%d" % i, add=False))
                except InvalidTxnStateError as exc:
                    refused.append(exc)
                    return
                started.set()

        sender = threading.Thread(target=keep_sending)
        sender.start()
        assert started.wait(10)
        p.end(commit=True)
        sender.join(10)
        assert refused, "the sender kept appending after the transaction ended"
        (marker,) = [o for o, pid in batch_offsets(t0) if pid == -2]
        assert all(offset < marker for offset in appended)
        assert t0.last_stable_offset == t0.log_end_offset == marker + 1
        assert committed_values(t0) == [b"first"] + [b"v%d" % i for i in range(len(appended))]


def batch_offsets(plog: PartitionLog) -> list[tuple[int, int]]:
    """(base offset, producer id, or -2 for a marker) of every batch."""
    out = []
    for raw in plog.iter_batches():
        header = decode_batch(raw).header
        out.append((header.base_offset, -2 if header.is_control else header.producer_id))
    return out
