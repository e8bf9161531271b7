"""The inbox (bounded, closable queue of batches) and the processing barrier, on their own."""

from __future__ import annotations

import asyncio

from streamlog.dsl.runtime.acks import Batch, PartitionTracker
from streamlog.dsl.runtime.barrier import ProcessingBarrier
from streamlog.dsl.runtime.inbox import Inbox
from tests.dsl.helpers import run


def batch(tracker: PartitionTracker | None = None) -> Batch:
    return Batch([], tracker, bytes, bytes)


def test_inbox_is_fifo_and_a_full_one_holds_the_writer_back():
    async def body() -> list[str]:
        inbox = Inbox("t", maxsize=2)
        first, second, third = batch(), batch(), batch()
        events: list[str] = []
        assert await inbox.put(first) and await inbox.put(second)

        async def writer() -> None:
            await inbox.put(third)
            events.append("third queued")

        task = asyncio.ensure_future(writer())
        await asyncio.sleep(0)  # the writer runs up to its wait
        assert not task.done() and len(inbox) == 2  # full: the writer waits
        assert await inbox.get() is first
        events.append("first taken")
        await task
        assert await inbox.get() is second
        assert await inbox.get() is third
        return events

    assert run(body()) == ["first taken", "third queued"]


def test_closing_wakes_readers_and_writers_and_drops_what_is_queued():
    async def body() -> tuple[object, bool, int]:
        inbox = Inbox("t", maxsize=1)
        await inbox.put(batch())
        reader_inbox = Inbox("r")
        reading = asyncio.ensure_future(reader_inbox.get())
        writing = asyncio.ensure_future(inbox.put(batch()))
        await asyncio.sleep(0)
        dropped = inbox.close()
        reader_inbox.close()
        return await reading, await writing, dropped

    assert run(body()) == (None, False, 1)


def test_drop_revoked_forgets_revoked_batches_and_makes_room():
    async def body() -> tuple[int, list[Batch], bool]:
        kept_tracker = PartitionTracker("t", 0)
        gone_tracker = PartitionTracker("t", 1)
        inbox = Inbox("t", maxsize=2)
        kept = batch(kept_tracker)
        gone = batch(gone_tracker)
        gone_tracker.pending.append(gone)
        await inbox.put(gone)
        await inbox.put(kept)
        waiting = asyncio.ensure_future(inbox.put(batch(kept_tracker)))
        await asyncio.sleep(0)
        gone_tracker.revoke()
        dropped = inbox.drop_revoked()
        put = await waiting  # the room the dropped batch left
        return dropped, [await inbox.get(), await inbox.get()], put

    dropped, left, put = run(body())
    assert dropped == 1 and put is True
    assert all(not b.revoked for b in left)


def test_the_barrier_holds_a_commit_until_events_in_processing_leave():
    async def body() -> list[str]:
        barrier = ProcessingBarrier()
        order: list[str] = []
        barrier.enter()  # an event in processing
        holding = asyncio.ensure_future(barrier.hold(timeout=10))
        await asyncio.sleep(0)
        assert not barrier.gate.is_set()  # new events wait at the gate
        order.append("event leaves")
        barrier.leave()
        assert await holding is True
        order.append("commit runs")
        barrier.release()
        assert barrier.gate.is_set()
        return order

    assert run(body()) == ["event leaves", "commit runs"]


def test_a_barrier_hold_that_times_out_reopens_the_gate():
    async def body() -> tuple[bool, bool]:
        barrier = ProcessingBarrier()
        barrier.enter()  # never leaves
        held = await barrier.hold(timeout=0.01)
        return held, barrier.gate.is_set()

    assert run(body()) == (False, True)
