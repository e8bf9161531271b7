"""``SinkRunner`` on its own (no app, no log: a sink over a list and its own clock): how
refused records are found and dead-lettered, what is written again after an outage, and
when it gives up."""

from __future__ import annotations

import asyncio

import pytest

from streamlog.connect import BadRecordError, SinkError, SinkRecord, SinkUnavailableError
from streamlog.connect.sink_runner import SinkRunner
from tests.connect.listconnectors import ListSink


def records(n: int, bad: tuple[int, ...] = ()) -> list[SinkRecord]:
    return [
        SinkRecord("t", 0, i, 0, None, {"id": i, "bad": True} if i in bad else {"id": i})
        for i in range(n)
    ]


class WholeCallSink(ListSink):
    """Refuses a whole ``write`` call when any record in it is bad, naming none (it took
    nothing of the call)."""

    async def write(self, batch):
        if any(r.value.get("bad") for r in batch):
            raise BadRecordError("something in this call is bad")
        await super().write(batch)


def make(sink, **options):
    dead: list[tuple[int, str]] = []
    slept: list[float] = []

    async def dead_letter(record, exc):
        dead.append((record.offset, str(exc)))

    async def sleep(seconds):
        slept.append(seconds)
        await asyncio.sleep(0)

    runner = SinkRunner(sink, dead_letter=dead_letter, sleep=sleep, **options)
    return runner, dead, slept


def test_a_record_named_by_the_sink_is_dead_lettered_and_the_rest_written():
    sink = ListSink("db")
    runner, dead, _ = make(sink)

    async def main():
        await runner.start()
        await runner.write(records(10, bad=(3, 7)))
        await runner.flush()

    asyncio.run(main())
    assert [offset for offset, _ in dead] == [3, 7]
    assert sorted(sink.durable) == [0, 1, 2, 4, 5, 6, 8, 9]
    assert sink.writes == 8  # each good record taken once
    assert runner.dead_lettered == 2 and runner.flushed == 8


def test_a_call_refused_whole_is_written_one_record_at_a_time_to_find_the_bad_one():
    sink = WholeCallSink("db")
    runner, dead, _ = make(sink)

    async def main():
        await runner.start()
        await runner.write(records(6, bad=(4,)))
        await runner.flush()

    asyncio.run(main())
    assert dead == [(4, "something in this call is bad")]
    assert sorted(sink.durable) == [0, 1, 2, 3, 5]
    assert sink.writes == 5


def test_records_taken_before_an_outage_are_written_again_before_the_retry():
    sink = ListSink("db")
    runner, _, slept = make(sink, retry_for=60)
    failures = iter([True, True, False])

    original_flush = sink.flush

    async def flaky_flush():
        if next(failures):
            raise SinkUnavailableError("away")
        await original_flush()

    sink.flush = flaky_flush  # type: ignore[method-assign]

    async def main():
        await runner.start()
        await runner.write(records(5))
        await runner.write(records(5)[::-1])  # the same ids again (a re-delivery)
        await runner.flush()

    asyncio.run(main())
    assert sorted(sink.durable) == [0, 1, 2, 3, 4]
    assert sink.discards == 2  # what the sink held was dropped before each retry
    assert sink.writes == 10 * 3  # the 10 records taken, written again after each failure
    assert slept == [0.2, 0.4] and runner.retries == 2


def test_an_outage_longer_than_retry_for_raises_and_poisons_the_runner():
    sink = ListSink("db")
    runner, _, _ = make(sink, retry_for=0)

    async def main():
        await runner.start()
        await runner.write(records(3))
        sink.down = True
        with pytest.raises(SinkError, match="unavailable for 0 s"):
            await runner.flush()
        sink.down = False
        with pytest.raises(SinkError):  # the worker stops: no later flush may pass
            await runner.flush()
        with pytest.raises(SinkError):
            await runner.write(records(1))

    asyncio.run(main())
    assert sink.durable == {}


def test_discard_forgets_what_was_taken():
    sink = ListSink("db")
    runner, _, _ = make(sink)

    async def main():
        await runner.start()
        await runner.write(records(4))
        await runner.discard()
        await runner.flush()

    asyncio.run(main())
    assert sink.durable == {} and runner.pending == 0 and sink.discards == 1


def test_max_pending_flushes_early():
    sink = ListSink("db")
    runner, _, _ = make(sink, max_pending=3)

    async def main():
        await runner.start()
        await runner.write(records(2))
        assert sink.flushes == 0
        await runner.write(records(4)[2:])
        assert sink.flushes == 1 and runner.pending == 0

    asyncio.run(main())
    assert sorted(sink.durable) == [0, 1, 2, 3]


def test_a_system_away_at_start_is_waited_for():
    sink = ListSink("db")
    runner, _, slept = make(sink, retry_for=60)
    attempts = iter([True, True, False])
    original_start = sink.start

    async def start():
        if next(attempts):
            raise SinkUnavailableError("not up yet")
        await original_start()

    sink.start = start  # type: ignore[method-assign]
    asyncio.run(runner.start())
    assert sink.started and runner.started and slept == [0.2, 0.4]


def test_a_system_away_at_start_longer_than_retry_for_fails_the_start():
    sink = ListSink("db")
    runner, _, _ = make(sink, retry_for=0)

    async def start():
        raise SinkUnavailableError("not up")

    sink.start = start  # type: ignore[method-assign]
    with pytest.raises(SinkError, match="unavailable at start"):
        asyncio.run(runner.start())
    assert not runner.started
