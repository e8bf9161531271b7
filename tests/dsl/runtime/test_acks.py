"""The at-least-once bookkeeping (``streamlog.dsl.runtime.acks``) on its own: what may be committed,
what a revocation abandons, and what a partition's next owner will process again."""

from __future__ import annotations

from streamlog.dsl.runtime.acks import Batch, PartitionTracker
from streamlog.transport.types import ConsumerRecord


def records(first: int, count: int) -> list[ConsumerRecord]:
    return [ConsumerRecord("t", 0, first + i, 0, None, b"%d" % i, ()) for i in range(count)]


def dispatch(tracker: PartitionTracker, fetched: list[ConsumerRecord], agents: int) -> list[Batch]:
    """What the conductor does with one fetch read by ``agents`` agents."""
    if tracker.first_offset < 0:
        tracker.first_offset = fetched[0].offset
    batches = [Batch(fetched, tracker, bytes, bytes) for _ in range(agents)]
    tracker.pending.extend(batches)
    tracker.next_offset = fetched[-1].offset + 1
    return batches


def test_committable_is_the_slowest_agents_first_unacknowledged_offset():
    tracker = PartitionTracker("t", 0)
    fast, slow = dispatch(tracker, records(100, 10), agents=2)
    assert tracker.committable() == 100
    fast.ack_upto(10)
    slow.ack_upto(4)
    assert tracker.committable() == 104
    slow.ack_one(6)  # out of order: 4 and 5 still pending
    assert tracker.committable() == 104
    slow.ack_upto(10)
    assert tracker.committable() == 110
    assert not tracker.pending  # both complete: dropped


def test_processed_uncommitted_counts_what_the_fastest_agent_did_past_the_commit():
    tracker = PartitionTracker("t", 0)
    first = dispatch(tracker, records(100, 10), agents=2)
    second = dispatch(tracker, records(110, 10), agents=2)
    for batch in first:
        batch.ack_upto(10)
    tracker.committed = tracker.committable()  # a commit at 110
    assert tracker.processed_uncommitted() == 0
    fast, slow = second
    fast.ack_upto(8)  # 110..117 done by the fast agent
    slow.ack_upto(3)  # 110..112 by the slow one
    assert tracker.processed_uncommitted() == 8  # the next owner starts at 110


def test_processed_uncommitted_without_a_commit_counts_from_where_this_owner_started():
    tracker = PartitionTracker("t", 0)
    (only,) = dispatch(tracker, records(50, 5), agents=1)
    only.ack_upto(5)
    (later,) = dispatch(tracker, records(55, 5), agents=1)
    later.ack_upto(2)
    later.ack_one(4)
    # never committed: 50..56 and 59 were processed and go to the next owner again
    assert tracker.processed_uncommitted() == 8


def test_revoke_abandons_every_pending_batch():
    tracker = PartitionTracker("t", 0)
    done, half = dispatch(tracker, records(0, 4), agents=2)
    done.ack_upto(4)
    half.ack_upto(1)
    tracker.revoke()
    assert tracker.revoked and half.revoked
