"""Transactions in the log engine: transactional appends, markers, the last stable offset,
the aborted-transactions index, isolation levels, fencing, recovery and compaction."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.log.cleaner import LogCleaner
from streamlog.log.clock import ManualClock
from streamlog.log.config import TopicConfig
from streamlog.log.errors import (
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidTxnStateError,
    OutOfOrderSequenceError,
    TransactionCoordinatorFencedError,
)
from streamlog.log.partition_log import AbortedTxn, AppendOrigin, IsolationLevel, PartitionLog
from streamlog.log.records import ControlType, encode_batch, encode_control_batch

from .test_cleaner import CRASHER, REPO
from .txnutil import NOW, Model, TxnProducer, consume, plain_batch

COMMITTED = IsolationLevel.READ_COMMITTED
UNCOMMITTED = IsolationLevel.READ_UNCOMMITTED


def open_log(path, clock=None, **configs) -> PartitionLog:
    cfg = TopicConfig.from_map({k.replace("_", "."): str(v) for k, v in configs.items()})
    return PartitionLog.open(str(path), cfg, clock or ManualClock(NOW))


def txn_files(path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.endswith(".txnindex"))


def values(records) -> list[bytes | None]:
    return [v for _, v in records]


# ---------------------------------------------------------------- the basic cycle


def test_committed_and_aborted_transactions_interleaved_with_plain_records(tmp_path) -> None:
    plog = open_log(tmp_path)
    a, b = TxnProducer(10), TxnProducer(20)
    assert plog.last_stable_offset == 0
    assert a.send(plog, [b"a1", b"a2"]) == 0
    assert plog.last_stable_offset == 0  # a's transaction holds it
    assert plog.append(plain_batch([b"p1"])).base_offset == 2
    assert b.send(plog, [b"b1"]) == 3
    assert a.send(plog, [b"a3"]) == 4
    assert plog.producers.ongoing_transactions == {10: 0, 20: 3}
    # Nothing is stable yet: read_committed sees nothing, read_uncommitted everything.
    assert plog.read(0, isolation=COMMITTED).records == b""
    assert values(consume(plog, UNCOMMITTED)[0]) == [b"a1", b"a2", b"p1", b"b1", b"a3"]
    assert a.end(plog, commit=True) == 5
    assert plog.last_stable_offset == 3  # b's transaction still open
    seen, listed = consume(plog, COMMITTED)
    assert seen == [(0, b"a1"), (1, b"a2"), (2, b"p1")]
    assert listed == set()
    assert b.end(plog, commit=False) == 6
    assert plog.last_stable_offset == plog.log_end_offset == 7
    assert plog.producers.ongoing_transactions == {}
    seen, listed = consume(plog, COMMITTED)
    assert seen == [(0, b"a1"), (1, b"a2"), (2, b"p1"), (4, b"a3")]
    assert listed == {(20, 3)}
    assert plog.aborted_transactions(0, 7) == [AbortedTxn(20, 3, 6, 7)]
    assert txn_files(tmp_path) == ["00000000000000000000.txnindex"]
    # read_uncommitted never lists aborted transactions and shows the aborted record.
    result = plog.read(0, isolation=UNCOMMITTED)
    assert result.aborted_transactions is None and result.last_stable_offset == 7
    assert b"b1" in values(consume(plog, UNCOMMITTED)[0])
    plog.close()


def test_read_committed_stops_at_the_last_stable_offset(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(plain_batch([b"x", b"y"]))
    a = TxnProducer(1)
    a.send(plog, [b"t"])
    plog.append(plain_batch([b"z"]))
    result = plog.read(0, isolation=COMMITTED)
    assert (result.last_stable_offset, result.high_watermark) == (2, 4)
    assert values(consume(plog, COMMITTED)[0]) == [b"x", b"y"]
    # At or past the LSO (but within the log) a read_committed read is empty, not an error.
    for offset in (2, 3, 4):
        assert plog.read(offset, isolation=COMMITTED).records == b""
    a.end(plog, commit=False)
    assert values(consume(plog, COMMITTED)[0]) == [b"x", b"y", b"z"]
    plog.close()


def test_an_abort_with_nothing_open_indexes_its_own_offset(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(plain_batch([b"x"]))
    TxnProducer(5).end(plog, commit=False)
    assert plog.log_end_offset == 2 and plog.last_stable_offset == 2
    assert plog.aborted_transactions(0, 2) == [AbortedTxn(5, 1, 1, 2)]
    assert consume(plog, COMMITTED)[0] == [(0, b"x")]
    plog.close()
    plog = open_log(tmp_path)  # and a replay of the log agrees
    os.unlink(os.path.join(tmp_path, "00000000000000000000.txnindex"))
    plog.close()
    plog = open_log(tmp_path)
    assert plog.aborted_transactions(0, 2) == [AbortedTxn(5, 1, 1, 2)]
    plog.close()


def test_control_batches_appended_by_the_coordinator_are_markers(tmp_path) -> None:
    plog = open_log(tmp_path)
    TxnProducer(3).send(plog, [b"t"])
    marker = encode_control_batch(
        ControlType.ABORT, producer_id=3, producer_epoch=0, coordinator_epoch=0, timestamp=NOW
    )
    assert plog.append(marker, AppendOrigin.COORDINATOR).base_offset == 1
    assert plog.last_stable_offset == 2
    assert plog.aborted_transactions(0, 2) == [AbortedTxn(3, 0, 1, 2)]
    with pytest.raises(InvalidRecordError, match="only batch"):
        plog.append(marker + marker, AppendOrigin.COORDINATOR)
    plog.close()


# ---------------------------------------------------------------- fencing and rules


def test_transactional_batches_need_the_callers_verification(tmp_path) -> None:
    plog = open_log(tmp_path)
    batch = encode_batch(
        [(None, b"v", NOW, ())],
        producer_id=4,
        producer_epoch=0,
        base_sequence=0,
        transactional=True,
    )
    with pytest.raises(InvalidTxnStateError, match="not part of an ongoing transaction"):
        plog.append(batch)
    assert plog.log_end_offset == 0 and plog.last_stable_offset == 0
    assert plog.append(batch, transaction_verified=True).base_offset == 0
    plog.close()


def test_fencing_of_markers_and_appends(tmp_path) -> None:
    plog = open_log(tmp_path)
    old = TxnProducer(7, epoch=3)
    old.send(plog, [b"one"])
    with pytest.raises(InvalidTxnStateError, match="expected a transactional batch"):
        old.send(plog, [b"plain"], transactional=False)
    newer = TxnProducer(7, epoch=4)
    with pytest.raises(InvalidTxnStateError, match="must wait for its marker"):
        newer.send(plog, [b"too soon"])
    with pytest.raises(InvalidProducerEpochError):
        TxnProducer(7, epoch=2).end(plog, commit=True)
    end = plog.log_end_offset
    # The coordinator fences the old epoch: it aborts with the bumped epoch.
    newer.end(plog, commit=False, coordinator_epoch=5)
    assert plog.last_stable_offset == plog.log_end_offset == end + 1
    with pytest.raises(InvalidProducerEpochError):
        old.send(plog, [b"zombie"])
    with pytest.raises(InvalidProducerEpochError):
        old.end(plog, commit=True, coordinator_epoch=5)
    with pytest.raises(TransactionCoordinatorFencedError):
        newer.end(plog, commit=True, coordinator_epoch=4)
    assert plog.log_end_offset == end + 1  # no refused write left a trace
    # The new epoch starts its sequence at 0.
    with pytest.raises(OutOfOrderSequenceError):
        TxnProducer(7, epoch=4, sequence=1).send(plog, [b"gap"])
    assert newer.send(plog, [b"fresh"]) == end + 1
    newer.end(plog, commit=True, coordinator_epoch=5)
    assert values(consume(plog, COMMITTED)[0]) == [b"fresh"]
    plog.close()


def test_a_retried_transactional_batch_is_a_duplicate(tmp_path) -> None:
    plog = open_log(tmp_path)
    p = TxnProducer(8)
    p.send(plog, [b"a", b"b"])
    p.sequence = 0
    p.send(plog, [b"a", b"b"])  # the retry gets the first append's offsets
    assert plog.log_end_offset == 2
    assert plog.producers.ongoing_transactions == {8: 0}
    plog.close()


# ---------------------------------------------------------------- recovery


@pytest.mark.parametrize("shutdown", ["clean", "crash", "clean-without-snapshot"])
def test_restart_in_the_middle_of_a_transaction(tmp_path, shutdown) -> None:
    plog = open_log(tmp_path, segment_bytes=400)
    a, b = TxnProducer(1), TxnProducer(2)
    b.send(plog, [b"b-aborted"])
    plog.append(plain_batch([b"p"]))
    b.end(plog, commit=False)
    for i in range(4):  # spread a's transaction over several segments
        a.send(plog, [b"a%d" % i + b"." * 100])
    plog.append(plain_batch([b"q"]))
    first = 3
    assert plog.last_stable_offset == first and len(plog.segments) > 2
    if shutdown == "crash":
        plog.flush()
        plog.close_unclean()
    else:
        plog.close()
        if shutdown == "clean-without-snapshot":
            os.unlink(os.path.join(tmp_path, "producer-state.json"))
    plog = open_log(tmp_path, segment_bytes=400)
    assert plog.recovery_report.clean == (shutdown != "crash")
    assert plog.producers.ongoing_transactions == {1: first}
    assert plog.last_stable_offset == first
    assert values(consume(plog, COMMITTED)[0]) == [b"p"]
    assert consume(plog, COMMITTED)[1] == {(2, 0)}
    a.end(plog, commit=True)
    assert values(consume(plog, COMMITTED)[0])[:2] == [b"p", b"a0" + b"." * 100]
    assert values(consume(plog, COMMITTED)[0])[-1] == b"q"
    plog.close()


def test_a_crash_that_cuts_the_abort_marker_reopens_the_transaction(tmp_path) -> None:
    plog = open_log(tmp_path)
    a = TxnProducer(1)
    a.send(plog, [b"t"])
    marker_at = plog.active_segment.size
    a.end(plog, commit=False)
    assert txn_files(tmp_path)
    plog.flush()
    plog.close_unclean()
    log_file = os.path.join(tmp_path, "00000000000000000000.log")
    os.truncate(log_file, marker_at + 20)  # a torn marker
    os.unlink(os.path.join(tmp_path, "recovery-point"))
    plog = open_log(tmp_path)
    assert plog.recovery_report.bytes_truncated == 20
    assert plog.log_end_offset == 1
    assert plog.producers.ongoing_transactions == {1: 0}
    assert plog.last_stable_offset == 0
    assert plog.aborted_transactions(0, 10) == [] and txn_files(tmp_path) == []
    a.end(plog, commit=False)  # the coordinator retries its marker
    assert plog.aborted_transactions(0, 10) == [AbortedTxn(1, 0, 1, 2)]
    plog.close()


@pytest.mark.parametrize(
    "damage",
    [b"garbage", b"\x00" * 34, b"\x00\x00" + b"\xff" * 32, None],
    ids=["short", "zeros", "negative", "missing"],
)
def test_a_corrupt_txnindex_is_rebuilt_not_trusted(tmp_path, damage) -> None:
    plog = open_log(tmp_path)
    a, b = TxnProducer(1), TxnProducer(2)
    a.send(plog, [b"a"])
    b.send(plog, [b"b"])
    a.end(plog, commit=False)
    b.end(plog, commit=False)
    expected = plog.aborted_transactions(0, 10)
    assert expected == [AbortedTxn(1, 0, 2, 1), AbortedTxn(2, 1, 3, 4)]
    plog.close()
    path = os.path.join(tmp_path, "00000000000000000000.txnindex")
    if damage is None:
        os.unlink(path)
    else:
        with open(path, "wb") as f:
            f.write(damage)
    plog = open_log(tmp_path)
    assert plog.aborted_transactions(0, 10) == expected
    assert consume(plog, COMMITTED)[0] == []
    plog.close()
    with open(path, "rb") as f:
        assert len(f.read()) == 68  # rewritten from the log


def test_the_txnindex_goes_with_its_segment(tmp_path) -> None:
    plog = open_log(tmp_path, segment_bytes=300)
    a = TxnProducer(1)
    a.send(plog, [b"x" * 100])
    a.end(plog, commit=False)
    for i in range(4):
        plog.append(plain_batch([b"%d" % i + b"." * 100]))
    assert txn_files(tmp_path) == ["00000000000000000000.txnindex"]
    plog.delete_records_before(plog.segments[1].base_offset)
    assert txn_files(tmp_path) == []
    assert plog.aborted_transactions(0, 100) == []
    plog.close()


def test_truncation_below_a_marker_reopens_its_transaction(tmp_path) -> None:
    plog = open_log(tmp_path)
    a = TxnProducer(1)
    a.send(plog, [b"t"])
    a.end(plog, commit=False)
    plog.truncate_to(1)
    assert plog.producers.ongoing_transactions == {1: 0}
    assert plog.aborted_transactions(0, 10) == [] and txn_files(tmp_path) == []
    plog.close()


# ---------------------------------------------------------------- property: a model


OPS = st.lists(
    st.tuples(st.sampled_from(["send", "commit", "abort", "plain", "roll"]), st.integers(0, 2)),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, reopen=st.sampled_from(["none", "clean", "crash"]))
def test_isolation_views_match_a_model(tmp_path_factory, ops, reopen) -> None:
    """Random interleavings of three transactional producers and plain appends: both
    views, the aborted transactions and the LSO are those of a simple model, also after a
    clean or unclean restart."""
    path = tmp_path_factory.mktemp("txn")
    plog = open_log(path, segment_bytes=500)
    producers = [TxnProducer(100 + i) for i in range(3)]
    model = Model()
    for n, (op, who) in enumerate(ops):
        p = producers[who]
        if op == "send":
            vals = [b"%d-%d" % (who, n), b"%d-%d'" % (who, n)][: 1 + n % 2]
            model.data(p.send(plog, vals), p.producer_id, vals, True)
        elif op in ("commit", "abort"):
            marker = p.end(plog, commit=op == "commit")
            model.end(p.producer_id, marker, op == "commit")
        elif op == "plain":
            vals = [b"plain-%d" % n]
            model.data(plog.append(plain_batch(vals)).base_offset, -1, vals, False)
        else:
            plog.roll()
    if reopen != "none":
        if reopen == "crash":
            plog.flush()
            plog.close_unclean()
        else:
            plog.close()
        plog = open_log(path, segment_bytes=500)
    end = plog.log_end_offset
    assert plog.last_stable_offset == model.stable(end)
    seen, listed = consume(plog, COMMITTED)
    assert seen == model.committed_view(end)
    assert listed <= {(pid, first) for pid, first, _ in model.aborted}
    assert consume(plog, UNCOMMITTED)[0] == model.uncommitted_view()
    assert [
        (t.producer_id, t.first_offset, t.last_offset) for t in plog.aborted_transactions(0, end)
    ] == model.aborted
    plog.close()


# ---------------------------------------------------------------- compaction


COMPACT = {
    "cleanup_policy": "compact",
    "segment_bytes": 400,
    "delete_retention_ms": 10_000,
    "min_cleanable_dirty_ratio": 0.01,
}


def key_of(value: bytes) -> bytes:
    return value.split(b"=")[0]


def write_compactable_transactions(plog: PartitionLog) -> None:
    a, b = TxnProducer(1), TxnProducer(2)
    plog.append(plain_batch([b"k1=plain"], key=key_of))
    a.send(plog, [b"k1=committed", b"k2=committed"], key=key_of)
    b.send(plog, [b"k1=aborted", b"k3=aborted"], key=key_of)
    a.end(plog, commit=True)
    b.end(plog, commit=False)
    for i in range(8):  # roll past them so they can be cleaned
        plog.append(plain_batch([b"f%d=%s" % (i, b"." * 60)], key=key_of))


def test_compaction_removes_aborted_records_then_their_markers(tmp_path) -> None:
    clock = ManualClock(NOW)
    plog = open_log(tmp_path, clock, **COMPACT)
    write_compactable_transactions(plog)
    before = consume(plog, COMMITTED)[0]
    cleaner = LogCleaner(clock)
    result = cleaner.clean(plog)
    assert result is not None
    assert result.aborted_records_removed == 2 and result.markers_removed == 0
    after = consume(plog, COMMITTED)[0]
    # The aborted k1 did not hide the committed one; the plain k1 was superseded.
    assert values(after)[:2] == [b"k1=committed", b"k2=committed"]
    assert after == [r for r in before if r[1] != b"k1=plain"]
    assert values(consume(plog, UNCOMMITTED)[0])[:2] == [b"k1=committed", b"k2=committed"]
    # The abort marker stays (its data was removed in this pass) with its index entry.
    assert [t.producer_id for t in plog.aborted_transactions(0, plog.log_end_offset)] == [2]
    # Next pass: the data is gone, so both markers get a delete horizon, but stay.
    clock.advance(1)
    result = cleaner.clean(plog)
    assert result is not None and result.markers_removed == 0
    assert [t.producer_id for t in plog.aborted_transactions(0, plog.log_end_offset)] == [2]
    clock.advance(10_001)
    assert cleaner.needs_cleaning(plog)
    result = cleaner.clean(plog)
    # The commit marker's transaction still has records (k1, k2): it stays; the abort goes.
    assert result is not None and result.markers_removed == 1
    assert plog.aborted_transactions(0, plog.log_end_offset) == []
    assert txn_files(tmp_path) == []
    assert consume(plog, COMMITTED)[0] == after
    plog.close()
    plog = open_log(tmp_path, clock, **COMPACT)
    assert consume(plog, COMMITTED)[0] == after
    plog.close()


def test_compaction_leaves_an_open_transaction_alone(tmp_path) -> None:
    clock = ManualClock(NOW)
    plog = open_log(tmp_path, clock, **COMPACT)
    a = TxnProducer(1)
    plog.append(plain_batch([b"k=0"], key=key_of))
    a.send(plog, [b"k=open"], key=key_of)
    for i in range(8):
        plog.append(plain_batch([b"k=%d%s" % (i + 1, b"." * 60)], key=key_of))
    result = LogCleaner(clock).clean(plog)
    # Only what lies below the LSO (offset 1) may be cleaned: the segment holding the
    # open transaction and everything after it are untouched.
    assert result is None or result.first_uncleanable_offset <= 1
    assert values(consume(plog, UNCOMMITTED)[0])[:2] == [b"k=0", b"k=open"]
    a.end(plog, commit=False)
    plog.close()


def test_a_txnindex_rewrite_left_by_a_crash_is_removed(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(plain_batch([b"x"]))
    plog.close()
    stray = os.path.join(tmp_path, "00000000000000000000.txnindex.tmp")
    with open(stray, "wb") as f:
        f.write(b"half")
    plog = open_log(tmp_path)
    assert not os.path.exists(stray) and plog.log_end_offset == 1
    plog.close()


@pytest.mark.parametrize("step", ["cleaned", "swap", "deleted"])
def test_a_crash_during_compaction_keeps_the_committed_view(tmp_path, step) -> None:
    clock = ManualClock(NOW)
    plog = open_log(tmp_path, clock, **COMPACT)
    write_compactable_transactions(plog)
    before = consume(plog, COMMITTED)[0]
    aborted = plog.aborted_transactions(0, plog.log_end_offset)
    plog.close()
    config = {k.replace("_", "."): str(v) for k, v in COMPACT.items()}
    out = subprocess.run(
        [sys.executable, "-c", CRASHER, str(tmp_path), step, repr(config)],
        env={**os.environ, "PYTHONPATH": REPO},
        timeout=60,
        capture_output=True,
    )
    assert out.returncode == 9, out.stderr
    plog = open_log(tmp_path, clock, **COMPACT)
    assert not plog.recovery_report.clean  # the crashed process had opened it
    view = consume(plog, COMMITTED)[0]
    # Before the swap the old segments stand; after it the cleaned ones (the plain k1,
    # superseded by the committed one, is gone). Either way no aborted record shows.
    expected = before if step == "cleaned" else [r for r in before if r[1] != b"k1=plain"]
    assert view == expected
    # Once compaction removed B's records, a replay knows its abort from the marker only.
    found = plog.aborted_transactions(0, plog.log_end_offset)
    assert [(t.producer_id, t.last_offset) for t in found] == [
        (t.producer_id, t.last_offset) for t in aborted
    ]
    assert found[0].first_offset == (3 if step == "cleaned" else found[0].last_offset)
    assert values(consume(plog, UNCOMMITTED)[0]).count(b"k1=aborted") == (step == "cleaned")
    plog.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, passes=st.integers(1, 3))
def test_compaction_keeps_the_committed_latest_value_of_every_key(
    tmp_path_factory, ops, passes
) -> None:
    """Random transactions and plain upserts on a few keys, then compaction passes (the
    clock past delete.retention.ms between them): the read_committed view keeps each
    key's latest committed value at its offset, shows nothing new, and no aborted record
    below the cleaned point is left even to read_uncommitted readers."""
    path = tmp_path_factory.mktemp("txn-compact")
    clock = ManualClock(NOW)
    plog = open_log(path, clock, **COMPACT)
    producers = [TxnProducer(100 + i) for i in range(3)]
    model = Model()
    for n, (op, who) in enumerate(ops):
        p = producers[who]
        value = b"k%d=%d" % (n % 4, n)
        if op == "send":
            model.data(p.send(plog, [value], key=key_of), p.producer_id, [value], True)
        elif op in ("commit", "abort"):
            model.end(p.producer_id, p.end(plog, commit=op == "commit"), op == "commit")
        elif op == "plain":
            model.data(
                plog.append(plain_batch([value], key=key_of)).base_offset, -1, [value], False
            )
        else:
            plog.roll()
    for p in producers:  # end what is open so that everything may be cleaned
        if p.producer_id in model.first:
            model.end(p.producer_id, p.end(plog, commit=True), True)
    last = [b"end=" + b"." * 400]
    model.data(plog.append(plain_batch(last, key=key_of)).base_offset, -1, last, False)
    plog.roll()
    end = plog.log_end_offset
    before = consume(plog, COMMITTED)[0]
    assert before == model.committed_view(end)
    cleaner = LogCleaner(clock)
    for _ in range(passes):
        cleaner.clean(plog)
        clock.advance(10_001)
    after = consume(plog, COMMITTED)[0]
    assert set(after) <= set(before)
    latest = {key_of(v): (o, v) for o, v in before}
    assert {key_of(v): (o, v) for o, v in after} == latest
    assert set(latest.values()) <= set(after)
    assert plog.last_stable_offset == plog.log_end_offset == end
    aborted_values = {v for o, _, v in model.records if o in model.aborted_offsets}
    assert not aborted_values & set(values(consume(plog, UNCOMMITTED)[0]))
    plog.close()


def test_the_log_manager_reads_with_either_isolation(tmp_path) -> None:
    from streamlog.log.manager import LogManager

    with LogManager.open(str(tmp_path)) as manager:
        manager.create_topic("t", 1)
        plog = manager.partition("t", 0)
        TxnProducer(1).send(plog, [b"open"])
        manager.append("t", 0, plain_batch([b"after"]))
        committed = manager.read("t", 0, 0, isolation=COMMITTED)
        assert (committed.records, committed.last_stable_offset) == (b"", 0)
        assert committed.aborted_transactions == ()
        assert values(consume(plog, UNCOMMITTED)[0]) == [b"open", b"after"]
        assert manager.read("t", 0, 0).high_watermark == 2


def test_compaction_after_an_abort_keeps_the_same_producers_later_commits_in_its_map(
    tmp_path,
) -> None:
    """One producer: commit k=v1, abort k=bad, commit k=v2 (a transactional producer's
    usual life). The abort marker ends the aborted transaction for the offset map too, so
    v2 supersedes v1 and the pass removes v1 as well as the aborted record."""
    clock = ManualClock(NOW)
    plog = open_log(tmp_path, clock, **COMPACT)
    producer = TxnProducer(7)
    for value, commit in ((b"k=v1", True), (b"k=bad", False), (b"k=v2", True)):
        producer.send(plog, [value], key=key_of)
        producer.end(plog, commit)
    plog.append(plain_batch([b"other=1"], key=key_of))
    plog.roll()
    result = LogCleaner(clock).clean(plog)
    assert result is not None
    assert (result.aborted_records_removed, result.records_removed) == (1, 1)
    assert values(consume(plog, UNCOMMITTED)[0]) == [b"k=v2", b"other=1"]
    assert values(consume(plog, COMMITTED)[0]) == [b"k=v2", b"other=1"]
    plog.close()
