"""Idempotent producers: retries are answered with the original offsets, gaps refused."""

from __future__ import annotations

import pytest

from streamlog.log.clock import ManualClock
from streamlog.log.config import TopicConfig
from streamlog.log.errors import InvalidRecordError
from streamlog.log.partition_log import PartitionLog
from streamlog.log.producer_state import InvalidProducerEpochError, OutOfOrderSequenceError
from streamlog.log.records import encode_batch

from .logutil import make_batch, read_all_records


def batch(pid: int, epoch: int, seq: int, n: int = 3) -> bytes:
    entries = [(b"k%d" % (seq + i), b"v%d" % (seq + i), 1000, ()) for i in range(n)]
    return encode_batch(entries, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def open_log(path) -> PartitionLog:
    return PartitionLog.open(str(path), TopicConfig(), ManualClock())


def test_a_retried_batch_gets_its_original_offsets_and_is_stored_once(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(make_batch(2))  # a non-idempotent producer's records first
    first = plog.append(batch(7, 0, 0))
    second = plog.append(batch(7, 0, 3))
    retry = plog.append(batch(7, 0, 0))
    assert (first.base_offset, first.last_offset, first.duplicate) == (2, 4, False)
    assert (second.base_offset, second.last_offset) == (5, 7)
    assert (retry.base_offset, retry.last_offset, retry.duplicate) == (2, 4, True)
    assert plog.log_end_offset == 8
    assert [r.key for r in read_all_records(plog)][2:] == [b"k0", b"k1", b"k2", b"k3", b"k4", b"k5"]
    plog.close()


def test_gaps_and_fenced_epochs_are_refused(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(batch(7, 0, 0))
    with pytest.raises(OutOfOrderSequenceError, match="expected sequence 3, got 6"):
        plog.append(batch(7, 0, 6))
    with pytest.raises(OutOfOrderSequenceError, match="must be 0"):
        plog.append(batch(8, 0, 5))  # a producer never seen must start at 0
    plog.append(batch(7, 1, 0))  # a new epoch restarts the numbering
    with pytest.raises(InvalidProducerEpochError):
        plog.append(batch(7, 0, 3))
    with pytest.raises(InvalidRecordError, match="one batch"):
        plog.append(batch(9, 0, 0) + batch(9, 0, 3))
    assert plog.log_end_offset == 6
    plog.close()


def test_only_the_last_five_batches_are_recognised_as_duplicates(tmp_path) -> None:
    plog = open_log(tmp_path)
    for i in range(7):
        plog.append(batch(1, 0, i * 3))
    assert plog.append(batch(1, 0, 6)).duplicate  # third of seven: still cached
    with pytest.raises(OutOfOrderSequenceError):
        plog.append(batch(1, 0, 0))  # first of seven: evicted, and out of order
    plog.close()


@pytest.mark.parametrize("clean", [True, False])
def test_producer_state_survives_a_restart(tmp_path, clean) -> None:
    plog = open_log(tmp_path)
    plog.append(batch(5, 2, 0))
    plog.append(batch(5, 2, 3))
    if clean:
        plog.close()
    else:
        plog.close_unclean()
    reopened = open_log(tmp_path)
    retry = reopened.append(batch(5, 2, 3))
    assert (retry.base_offset, retry.duplicate) == (3, True)
    assert reopened.append(batch(5, 2, 6)).base_offset == 6
    with pytest.raises(OutOfOrderSequenceError):
        reopened.append(batch(5, 2, 12))
    reopened.close()


def test_truncation_forgets_truncated_batches(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(batch(5, 0, 0))
    plog.append(batch(5, 0, 3))
    plog.truncate_to(3)
    again = plog.append(batch(5, 0, 3))
    assert (again.base_offset, again.duplicate) == (3, False)
    plog.close()
