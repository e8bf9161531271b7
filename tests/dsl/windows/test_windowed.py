"""Windowed tables: event-time windows checked against brute-force references.

Every test drives a real app (memory:// unless said otherwise): events are produced with
chosen record timestamps, an agent adds them to a windowed table, and what the table
holds, what ``on_window_close`` and ``on_late`` saw, and what the changelog holds are
compared with a reference computed here from the same input by the definitions (Kafka
Streams' rules: stream time is the largest event time seen; a window [s, e) takes an
event while stream time < e + grace and may be deleted once stream time >= e + expires).
"""

from __future__ import annotations

import itertools
import operator
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamlog
from streamlog.dsl import ManualAsyncClock
from streamlog.dsl.errors import WindowedTableError
from streamlog.log.partitioner import partition_for_key
from streamlog.state.window_store import CLOSE_PREFIX, STREAM_TIME_KEY
from streamlog.state.windows import split_window_key, window_key
from tests.dsl.helpers import read_topic, run, wait_for

# ms, a multiple of every window size used here; recent, because the log's default
# retention (7 days, as Kafka) deletes older records while a test runs
BASE = (int(time.time()) // 3600 - 24) * 3_600_000
FLUSH = "~flush"
_ids = itertools.count()

Event = tuple[str, int, int]  # key, timestamp (ms), value


async def send_at(topic: Any, key: Any, value: Any, ts_ms: int) -> None:
    """Produce with a record timestamp of ``ts_ms`` (Faust's ``send`` takes seconds).

    ``ms / 1000`` converts back to the same integer ms for epoch-sized times (checked
    here, as ``Topic.send`` truncates rather than rounds).
    """
    seconds = ts_ms / 1000
    assert int(seconds * 1000) == ts_ms, ts_ms
    await topic.send(key=key, value=value, timestamp=seconds)


def new_app(name: str, **options: Any) -> streamlog.App:
    options.setdefault("broker", "memory://")
    options.setdefault("store", "memory://")
    options.setdefault("topic_partitions", 1)
    return streamlog.App(f"w{next(_ids)}-{name}", **options)


class Observed:
    """What a run saw: the table before and after a flush event closed every window."""

    def __init__(self) -> None:
        self.closes: list[tuple[str, tuple[int, int], Any]] = []
        self.lates: list[tuple[str, Any, int]] = []
        self.before: dict[tuple[str, tuple[int, int]], Any] = {}
        self.closes_before: list[tuple[str, tuple[int, int], Any]] = []
        self.after: dict[tuple[str, tuple[int, int]], Any] = {}
        self.late_events = 0

    def on_close(self, key: str, window: Any, value: Any) -> None:
        self.closes.append((key, tuple(window), value))

    def on_late(self, key: str, value: Any, ts: int) -> None:
        self.lates.append((key, value, ts))


def drive(declare: Any, events: list[Event], flush_at: int) -> Observed:
    """Run ``events`` through ``table[key] += value``, then one event at ``flush_at``."""
    seen = Observed()
    app = new_app("drive")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    base = app.Table("w", default=int, key_type=str, value_type=int)
    table = declare(base, seen)
    done: list[str] = []

    @app.agent(source)
    async def aggregate(stream):
        async for key, value in stream.items():
            table[key] += value
            done.append(key)

    def snapshot() -> dict[tuple[str, tuple[int, int]], Any]:
        return {(k, tuple(w)): v for (k, w), v in table.items() if k != FLUSH}

    async def main() -> None:
        async with app:
            for key, ts, value in events:
                await send_at(source, key, value, ts)
            await wait_for(lambda: len(done) == len(events))
            await table.process_due()
            seen.before = snapshot()
            seen.closes_before = list(seen.closes)
            await send_at(source, FLUSH, 0, flush_at)
            await wait_for(lambda: len(done) == len(events) + 1)
            await table.process_due()
            seen.after = snapshot()
            seen.late_events = table.late_events

    run(main())
    return seen


# ---------------------------------------------------------------------- references


def aligned_reference(events: list[Event], size: int, step: int, grace: int, expires: int):
    """Tumbling (step == size) and hopping windows, from the definitions."""
    stream_time = None
    sums: dict[tuple[str, int], int] = {}
    late = []
    for key, ts, value in events:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        starts = [s for s in range((ts - size) // step * step, ts + 1, step) if s <= ts < s + size]
        open_starts = [s for s in starts if stream_time < s + size + grace]
        if not open_starts:
            late.append((key, value, ts))
        for s in open_starts:
            sums[key, s] = sums.get((key, s), 0) + value
    every = {(k, (s, s + size)): v for (k, s), v in sums.items()}
    live = {kw: v for kw, v in every.items() if stream_time < kw[1][1] + expires}
    closed = {kw: v for kw, v in every.items() if stream_time >= kw[1][1] + grace}
    return every, live, closed, late


def session_reference(events: list[Event], gap: int, grace: int):
    """Sessions: an event joins the open sessions within ``gap`` of it; closed ones are
    final (stream time > end + gap + grace); the event is late if the result is closed."""
    stream_time = None
    sessions: list[list[Any]] = []  # [key, start, end, value]
    late = []

    def closed(s: list[Any]) -> bool:
        return stream_time > s[2] + gap + grace

    for key, ts, value in events:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        joined = [
            s
            for s in sessions
            if s[0] == key and not closed(s) and s[2] >= ts - gap and s[1] <= ts + gap
        ]
        start = min([ts] + [s[1] for s in joined])
        end = max([ts] + [s[2] for s in joined])
        if stream_time > end + gap + grace:
            late.append((key, value, ts))
            continue
        for s in joined:
            sessions.remove(s)
        sessions.append([key, start, end, value + sum(s[3] for s in joined)])
    every = {(k, (s, e)): v for k, s, e, v in sessions}
    live = {kw: v for kw, v in every.items() if stream_time <= kw[1][1] + gap + grace}
    closed_now = {kw: v for kw, v in every.items() if stream_time > kw[1][1] + gap + grace}
    return every, live, closed_now, late


def sliding_reference(events: list[Event], size: int, grace: int):
    """Kafka Streams' sliding windows over the accepted events: [r - size, r] for every
    record time r and [r + 1, r + 1 + size] when another record follows r within size;
    an event is late once its own window [ts - size, ts] closed (st > ts + grace)."""
    stream_time = None
    accepted: dict[str, list[tuple[int, int]]] = {}
    late = []
    for key, ts, value in events:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if stream_time > ts + grace:
            late.append((key, value, ts))
            continue
        accepted.setdefault(key, []).append((ts, value))
    every = {}
    for key, records in accepted.items():
        times = sorted({t for t, _ in records})
        starts = {t - size for t in times}
        starts |= {p + 1 for p, n in itertools.pairwise(times) if n - p <= size}
        for s in starts:
            every[key, (s, s + size)] = sum(v for t, v in records if s <= t <= s + size)
    retention = grace + 2 * size
    live = {kw: v for kw, v in every.items() if stream_time <= kw[1][1] + retention}
    closed = {kw: v for kw, v in every.items() if stream_time > kw[1][1] + grace}
    return every, live, closed, late


def check(seen: Observed, every, live, closed, late) -> None:
    assert seen.before == live
    assert sorted(seen.closes_before) == sorted((k, w, v) for (k, w), v in closed.items())
    assert seen.lates == late
    assert seen.late_events == len(late)
    # after the flush every window closed exactly once, with its final value
    closes = [(k, w, v) for k, w, v in seen.closes if k != FLUSH]
    assert Counter((k, w) for k, w, _ in closes) == Counter(every.keys())
    assert {(k, w): v for k, w, v in closes} == every
    assert seen.after == {}  # and expired


# ---------------------------------------------------------------------- generated streams

# a narrow span, so events of a key often share windows and arrive out of order or late
timestamps = st.one_of(
    st.integers(0, 15_000),
    st.integers(0, 15).map(lambda n: n * 1000),  # on window boundaries...
    st.integers(1, 15).map(lambda n: n * 1000 - 1),  # ...and just before them
).map(lambda t: BASE + t)


def event_lists(values: st.SearchStrategy[int]) -> st.SearchStrategy[list[Event]]:
    return st.lists(st.tuples(st.sampled_from("ab"), timestamps, values), min_size=1, max_size=14)


HYPOTHESIS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(
    events=event_lists(st.just(1)),
    size=st.sampled_from([2000, 5000, 10_000]),
    grace=st.sampled_from([0, 1000, 3000]),
)
def test_tumbling_counts_match_the_reference(events, size, grace):
    seen = drive(
        lambda t, s: t.tumbling(
            size / 1000, grace=grace / 1000, on_window_close=s.on_close, on_late=s.on_late
        ),
        events,
        BASE + 10**7,
    )
    check(seen, *aligned_reference(events, size, size, grace, size + grace))


@HYPOTHESIS
@given(
    events=event_lists(st.integers(1, 9)),
    size_step=st.sampled_from([(4000, 1000), (6000, 4000), (10_000, 2500)]),
    grace=st.sampled_from([0, 2000]),
    extra=st.sampled_from([0, 5000]),
)
def test_hopping_sums_match_the_reference(events, size_step, grace, extra):
    size, step = size_step
    expires = size + grace + extra
    seen = drive(
        lambda t, s: t.hopping(
            size / 1000,
            step / 1000,
            expires / 1000,
            grace=grace / 1000,
            on_window_close=s.on_close,
            on_late=s.on_late,
        ),
        events,
        BASE + 10**7,
    )
    check(seen, *aligned_reference(events, size, step, grace, expires))


@HYPOTHESIS
@given(
    events=event_lists(st.integers(1, 9)),
    gap=st.sampled_from([1000, 3000]),
    grace=st.sampled_from([0, 2000]),
)
def test_session_sums_match_the_reference(events, gap, grace):
    seen = drive(
        lambda t, s: t.session(
            gap / 1000, grace=grace / 1000, on_window_close=s.on_close, on_late=s.on_late
        ),
        events,
        BASE + 10**7,
    )
    check(seen, *session_reference(events, gap, grace))


@HYPOTHESIS
@given(
    events=event_lists(st.integers(1, 9)),
    size=st.sampled_from([1000, 5000]),
    grace=st.sampled_from([0, 2000]),
)
def test_sliding_sums_match_the_reference(events, size, grace):
    seen = drive(
        lambda t, s: t.sliding(
            size / 1000, grace=grace / 1000, on_window_close=s.on_close, on_late=s.on_late
        ),
        events,
        BASE + 10**7,
    )
    check(seen, *sliding_reference(events, size, grace))


def test_hopping_event_goes_to_the_windows_still_open_only():
    # size 10 s, step 5 s, grace 0: at stream time 12 s the window [0, 10) is closed,
    # [5, 15) open; an event at 7 s lands in [5, 15) alone and is not late
    events = [("a", BASE + 12_000, 1), ("a", BASE + 7_000, 10), ("a", BASE + 1_000, 100)]
    seen = drive(
        lambda t, s: t.hopping(10, 5, grace=0, on_window_close=s.on_close, on_late=s.on_late),
        events,
        BASE + 10**7,
    )
    assert seen.before == {
        ("a", (BASE + 5000, BASE + 15000)): 11,
        ("a", (BASE + 10000, BASE + 20000)): 1,
    }
    assert seen.lates == [("a", 100, BASE + 1000)]
    check(seen, *aligned_reference(events, 10_000, 5000, 0, 10_000))


def test_a_window_closes_exactly_at_end_plus_grace():
    # size 10 s, grace 1 s: at stream time 10.999 s the window [0, 10) still takes an
    # event; at 11 s it is closed
    events = [
        ("a", BASE + 10_999, 1),
        ("a", BASE + 9_999, 2),
        ("b", BASE + 11_000, 4),
        ("a", BASE + 9_999, 8),
    ]
    seen = drive(
        lambda t, s: t.tumbling(10, grace=1, on_window_close=s.on_close, on_late=s.on_late),
        events,
        BASE + 10**7,
    )
    assert seen.lates == [("a", 8, BASE + 9_999)]
    assert seen.closes_before == [("a", (BASE, BASE + 10_000), 2)]
    check(seen, *aligned_reference(events, 10_000, 10_000, 1000, 11_000))


def test_a_closed_session_is_final_and_later_events_join_only_open_ones():
    # gap 5 s, grace 0: the session at 0 s closes at stream time 5.001 s. An event at 4 s,
    # within the gap of it, starts a new session instead of reopening it; an event at 0 s
    # then joins the open one (the closed session stays as it was emitted); an event at
    # -6 s is late: the only session near it would be its own, closed already
    events = [
        ("a", BASE, 1),
        ("b", BASE + 6_000, 2),
        ("a", BASE + 4_000, 4),
        ("a", BASE, 8),
        ("a", BASE - 6_000, 16),
    ]
    seen = drive(
        lambda t, s: t.session(5, on_window_close=s.on_close, on_late=s.on_late),
        events,
        BASE + 10**7,
    )
    assert seen.before == {
        ("a", (BASE, BASE + 4_000)): 12,
        ("b", (BASE + 6_000, BASE + 6_000)): 2,
    }
    assert seen.closes_before == [("a", (BASE, BASE), 1)]
    assert seen.lates == [("a", 16, BASE - 6_000)]
    check(seen, *session_reference(events, 5000, 0))


def test_stream_time_is_kept_per_table_partition():
    app = new_app("partitions", topic_partitions=2)
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    lates: list[tuple[str, int, int]] = []
    counts = app.Table("c", default=int, key_type=str, value_type=int).tumbling(
        10, grace=0, on_late=lambda k, v, ts: lates.append((k, v, ts))
    )
    k0, k1 = (next(f"k{i}" for i in range(100) if partition_for_key(f"k{i}".encode(), 2) == n)
              for n in (0, 1))  # fmt: skip
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            done.append(value)

    async def main():
        async with app:
            await send_at(source, k0, 1, BASE + 100_000)
            await wait_for(lambda: len(done) == 1)
            await send_at(source, k1, 2, BASE + 1_000)  # partition 1 has seen nothing later
            await send_at(source, k0, 4, BASE + 1_000)  # partition 0 has: late
            await wait_for(lambda: len(done) == 3)
            return counts.as_dict(), counts.stream_time(0), counts.stream_time(1)

    contents, time0, time1 = run(main())
    assert contents == {
        (k0, (BASE + 100_000, BASE + 110_000)): 1,
        (k1, (BASE, BASE + 10_000)): 2,
    }
    assert (time0, time1) == (BASE + 100_000, BASE + 1_000)
    assert lates == [(k0, 4, BASE + 1_000)]


# ---------------------------------------------------------------------- final results


def test_emit_final_sends_each_closed_window_once_to_a_topic():
    app = new_app("emit")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    results = app.topic(f"{app.conf.id}-results", key_type=str, value_type=dict)
    counts = (
        app.Table("counts", default=int, key_type=str, value_type=int)
        .tumbling(10, grace=1)
        .emit_final(results)
    )
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            done.append(value)

    events = [("a", 1_000, 1), ("b", 2_000, 2), ("a", 9_999, 3), ("a", 10_500, 4),
              ("b", 10_900, 5), ("a", 5_000, 6), ("a", 21_000, 7)]  # fmt: skip

    async def main():
        async with app:
            for key, ts, value in events:
                await send_at(source, key, value, BASE + ts)
            await wait_for(lambda: len(done) == len(events))
            await counts.process_due()
            await app.conductor.commit()
            records = await read_topic(app, results.name, 4)
            return records, counts.closed_windows, counts.late_events

    records, closed, late = run(main())
    # at stream time 21 s: [0, 10) closed at 11 s (a's event at 5 s came in time),
    # [10, 20) closed at 21 s; [20, 30) is open
    got = [(r.key, results.schema.loads_value(r.value), r.timestamp) for r in records]
    assert sorted(got, key=repr) == sorted(
        [
            (b"a", {"start": BASE, "end": BASE + 10_000, "value": 10}, BASE + 9_999),
            (b"b", {"start": BASE, "end": BASE + 10_000, "value": 2}, BASE + 9_999),
            (b"a", {"start": BASE + 10_000, "end": BASE + 20_000, "value": 4}, BASE + 19_999),
            (b"b", {"start": BASE + 10_000, "end": BASE + 20_000, "value": 5}, BASE + 19_999),
        ],
        key=repr,
    )
    assert (closed, late) == (4, 0)


def test_async_on_window_close_and_async_on_late_are_awaited():
    app = new_app("async-hooks")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    closes: list[tuple[str, tuple[int, int], int]] = []
    lates: list[tuple[str, int, int]] = []

    async def on_close(key, window, value):
        closes.append((key, tuple(window), value))

    async def on_late(key, value, ts):
        lates.append((key, value, ts))

    table = app.Table("t", default=int, key_type=str, value_type=int, on_window_close=on_close)
    counts = table.tumbling(1, grace=0, on_late=on_late)  # Faust's place for on_window_close
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            done.append(value)

    async def main():
        async with app:
            for key, ts, value in [("k", 500, 1), ("k", 1500, 2), ("k", 200, 3)]:
                await send_at(source, key, value, BASE + ts)
            await wait_for(lambda: len(done) == 3 and len(lates) == 1)
            await counts.process_due()

    run(main())
    assert closes == [("k", (BASE, BASE + 1000), 1)]
    assert lates == [("k", 3, BASE + 200)]


def test_idle_keys_close_on_the_wall_clock_timer():
    clock = ManualAsyncClock(start=BASE / 1000)
    app = new_app("idle", clock=clock, table_cleanup_interval=5.0)
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    closes: list[tuple[str, tuple[int, int], int]] = []
    counts = app.Table("c", default=int, key_type=str, value_type=int).tumbling(
        10, grace=0, on_window_close=lambda k, w, v: closes.append((k, tuple(w), v))
    )
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            done.append(value)

    async def main():
        async with app:
            await send_at(source, "sparse", 7, BASE + 1_000)
            await wait_for(lambda: len(done) == 1)
            await counts.process_due()
            assert closes == [] and counts.stream_time(0) == BASE + 1_000
            await wait_for(lambda: clock.sleepers >= 2)
            await clock.advance(5)  # idle for one interval: stream time += 5 s
            await wait_for(lambda: counts.stream_time(0) == BASE + 6_000)
            assert closes == []
            await clock.advance(5)  # += 5 s more: 11 s passes the window's end
            await wait_for(lambda: len(closes) == 1)
            return counts.stream_time(0)

    assert run(main()) == BASE + 11_000
    assert closes == [("sparse", (BASE, BASE + 10_000), 7)]


# ---------------------------------------------------------------------- expiry


def test_expiry_deletes_old_windows_and_tombstones_them_in_the_changelog():
    app = new_app("expiry")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    counts = app.Table(
        "c", default=int, key_type=str, value_type=int, key_serializer="raw"
    ).tumbling(1, expires=2)
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            done.append(value)

    events = [(k, BASE + 1000 * n + 10 * i, 1) for n in range(12) for i, k in enumerate("xyz")]

    async def main():
        async with app:
            for key, ts, value in events:
                await send_at(source, key, value, ts)
            await wait_for(lambda: len(done) == len(events))
            await counts.process_due()
            await app.conductor.commit()
            stored = dict(counts.table.store_partition(0).items())
            changelog = await read_topic(app, counts.table.changelog_topic.name, 37)
            return stored, changelog, counts.expired_windows, counts.stream_time(0)

    stored, changelog, expired, stream_time = run(main())
    assert stream_time == BASE + 11_020
    # windows [n, n+1) s expire once stream time >= end + 2 s: n <= 8 are gone
    windows = {split_window_key(k) for k in stored if k < CLOSE_PREFIX}
    assert windows == {(k.encode(), BASE + 1000 * n) for k in "xyz" for n in (9, 10, 11)}
    assert stored[STREAM_TIME_KEY] == (BASE + 11_020).to_bytes(8, "big")
    assert expired == 3 * 9
    last: dict[bytes, bytes | None] = {}
    for record in sorted(changelog, key=lambda r: r.offset):
        last[record.key] = record.value
    tombstoned = {split_window_key(k) for k, v in last.items() if v is None}
    assert tombstoned == {(k.encode(), BASE + 1000 * n) for k in "xyz" for n in range(9)}
    assert counts.table.changelog_topic.config["cleanup.policy"] == "compact,delete"


# ---------------------------------------------------------------------- restart recovery


def recovery_app(url: str, store: str, datadir: Any, closes: list[Any], done: list[int]):
    app = streamlog.App(
        "windowed-recovery", broker=url, store=store, datadir=str(datadir), topic_partitions=1
    )
    source = app.topic("recovery-in", key_type=str, value_type=int)
    counts = app.Table("c", default=int, key_type=str, value_type=int).tumbling(
        10, grace=2, on_window_close=lambda k, w, v: closes.append((k, tuple(w), v))
    )

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            done.append(value)

    return app, source, counts


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_windowed_table_recovers_after_a_restart(tmp_path, store):
    url = f"file://{tmp_path / 'log'}"
    closes: list[Any] = []
    done: list[int] = []
    first = [("a", 1_000, 1), ("b", 3_000, 2), ("a", 12_000, 3), ("b", 13_000, 4)]

    async def before():
        app, source, counts = recovery_app(url, store, tmp_path / "d", closes, done)
        async with app:
            for key, ts, value in first:
                await send_at(source, key, value, BASE + ts)
            await wait_for(lambda: len(done) == len(first))
            await counts.process_due()
            return counts.as_dict()

    assert run(before()) == {
        ("a", (BASE, BASE + 10_000)): 1,
        ("b", (BASE, BASE + 10_000)): 2,
        ("a", (BASE + 10_000, BASE + 20_000)): 3,
        ("b", (BASE + 10_000, BASE + 20_000)): 4,
    }
    assert closes == [("a", (BASE, BASE + 10_000), 1), ("b", (BASE, BASE + 10_000), 2)]

    async def after():
        app, source, counts = recovery_app(url, store, tmp_path / "d", closes, done)
        async with app:
            state = counts.as_dict(), counts.stream_time(0), app.tables["c"].recovered_records
            await send_at(source, "a", 100, BASE + 9_000)  # late: [0, 10) closed at 12 s
            await send_at(source, "a", 5, BASE + 19_000)
            await send_at(source, "b", 6, BASE + 22_500)  # closes [10, 20) at 22 s
            await wait_for(lambda: len(done) == len(first) + 3)
            await counts.process_due()
            return state, counts.late_events, counts.as_dict()

    (recovered, stream_time, replayed), late, final = run(after())
    assert recovered == {
        ("a", (BASE, BASE + 10_000)): 1,
        ("b", (BASE, BASE + 10_000)): 2,
        ("a", (BASE + 10_000, BASE + 20_000)): 3,
        ("b", (BASE + 10_000, BASE + 20_000)): 4,
    }
    assert stream_time == BASE + 13_000
    assert (replayed > 0) if store == "memory://" else (replayed == 0)
    assert late == 1
    # windows closed before the restart are not closed again; the pending ones are
    assert closes == [
        ("a", (BASE, BASE + 10_000), 1),
        ("b", (BASE, BASE + 10_000), 2),
        ("a", (BASE + 10_000, BASE + 20_000), 8),
        ("b", (BASE + 10_000, BASE + 20_000), 4),
    ]
    assert final == {
        ("a", (BASE + 10_000, BASE + 20_000)): 8,
        ("b", (BASE + 10_000, BASE + 20_000)): 4,
        ("b", (BASE + 20_000, BASE + 30_000)): 6,
    }


# ---------------------------------------------------------------------- views


class Reading(streamlog.Record):
    sensor: str
    at: float  # seconds since the epoch
    amount: int


def test_views_now_current_value_delta_and_the_key_listing():
    start = BASE + 100_000  # app clock: a window boundary
    clock = ManualAsyncClock(start=start / 1000)
    app = new_app("views", clock=clock)
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    views = app.Table("v", default=int, key_type=str, value_type=int).tumbling(
        10, expires=60, grace=20
    )
    seen: list[tuple[int, int, int, int, int]] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            views[key] += value
            w = views[key]
            seen.append((w.current(), w.value(), w.now(), w.delta(10), w.delta(20)))

    async def main():
        async with app:
            for ts, value in [(start + 1_000, 1), (start + 5_000, 2), (start + 12_000, 4),
                              (start + 25_000, 8), (start + 3_000, 16)]:  # fmt: skip
                await send_at(source, "k", value, ts)
            await wait_for(lambda: len(seen) == 5)
            return views["k"].as_dict(), views["k"].items()

    listing, items = run(main())
    assert seen == [
        # current, value (stream time), now (app clock: window [start, +10)), delta 10, 20
        (1, 1, 1, 0, 0),
        (3, 3, 3, 0, 0),
        (4, 4, 3, 3, 0),
        (8, 8, 3, 4, 3),
        (19, 19, 19, 0, 0),  # an out-of-order event for the first window, open by grace
    ]
    assert listing == {
        (start, start + 10_000): 19,
        (start + 10_000, start + 20_000): 4,
        (start + 20_000, start + 30_000): 8,
    }
    assert [tuple(w) for w, _ in items] == [
        (start, start + 10_000),
        (start + 10_000, start + 20_000),
        (start + 20_000, start + 30_000),
    ]


def test_relative_to_field_and_relative_to_now_choose_the_event_time():
    clock = ManualAsyncClock(start=(BASE + 500_000) / 1000)
    app = new_app("relative", clock=clock)
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=Reading)
    by_field = app.Table("f", default=int, key_type=str, value_type=int).tumbling(10)
    by_field_view = by_field.relative_to_field(Reading.at)
    by_now = app.Table("n", default=int, key_type=str, value_type=int).hopping(10, 5)
    by_now_view = by_now.relative_to_now()
    seen: list[tuple[int, int, int]] = []

    @app.agent(source)
    async def count(stream):
        async for reading in stream:
            by_field_view[reading.sensor] += reading.amount
            by_now_view[reading.sensor] += reading.amount
            seen.append(
                (
                    by_field_view[reading.sensor].value(),
                    by_field_view[reading.sensor].current(),  # record time: nothing there
                    by_now_view[reading.sensor].value(),
                )
            )

    async def main():
        async with app:
            for at, amount in [(1.5, 1), (7.25, 2), (13.0, 4)]:
                reading = Reading(sensor="s", at=(BASE / 1000) + at, amount=amount)
                await send_at(source, "s", reading, BASE + 900_000)  # record time: ignored
            await wait_for(lambda: len(seen) == 3)
            return by_field.as_dict(), by_now.as_dict()

    field_windows, now_windows = run(main())
    assert seen == [(1, 0, 1), (3, 0, 3), (4, 0, 7)]
    assert field_windows == {
        ("s", (BASE, BASE + 10_000)): 3,
        ("s", (BASE + 10_000, BASE + 20_000)): 4,
    }
    wall = BASE + 500_000  # every event at the app clock's time: two hopping windows
    assert now_windows == {
        ("s", (wall - 5_000, wall + 5_000)): 7,
        ("s", (wall, wall + 10_000)): 7,
    }


def test_relative_to_field_reads_dict_fields_and_datetimes():
    app = new_app("field-dt")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=dict)
    by_secs = app.Table("s", default=int, key_type=str, value_type=int).tumbling(60)
    by_iso = app.Table("i", default=int, key_type=str, value_type=int).tumbling(60)
    secs_view = by_secs.relative_to_field("when.secs")
    iso_view = by_iso.relative_to_field(lambda v: datetime.fromisoformat(v["iso"]))
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for _ in stream:
            secs_view["k"] += 1
            iso_view["k"] += 1
            done.append(1)

    base = BASE + 20_000  # hh:00:20 of an hour a day ago; record times are ignored
    naive = datetime.fromtimestamp(base / 1000 + 1, UTC).replace(tzinfo=None).isoformat()
    aware = datetime.fromtimestamp(base / 1000 + 70, UTC).isoformat()  # with +00:00

    async def main():
        async with app:
            for secs, iso in [(30.5, naive), (90, aware)]:
                value = {"when": {"secs": base / 1000 + secs}, "iso": iso}
                await send_at(source, "k", value, base)
            await wait_for(lambda: len(done) == 2)
            return by_secs.as_dict(), by_iso.as_dict()

    secs_windows, iso_windows = run(main())
    minute = base - 20_000  # hh:00:00, where base's one-minute window starts
    assert secs_windows == {
        ("k", (minute, minute + 60_000)): 1,  # 22:13:50.5
        ("k", (minute + 60_000, minute + 120_000)): 1,  # 22:14:50
    }
    # the naive hh:00:21 (read as UTC) is in [hh:00, hh:01); hh:01:30 in [hh:01, hh:02)
    assert iso_windows == {
        ("k", (minute, minute + 60_000)): 1,
        ("k", (minute + 60_000, minute + 120_000)): 1,
    }


def test_relative_to_field_refuses_what_is_not_a_time():
    app = new_app("field-bad")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=dict)
    view = app.Table("b", default=int, key_type=str, value_type=int).tumbling(60)
    view = view.relative_to_field("when")
    errors: list[str] = []

    @app.agent(source)
    async def count(stream):
        async for _ in stream:
            try:
                view["k"] += 1
            except WindowedTableError as exc:
                errors.append(str(exc))

    async def main():
        async with app:
            await send_at(source, "k", {"when": "yesterday"}, BASE)
            await wait_for(lambda: len(errors) == 1)

    run(main())
    assert "'yesterday' is not a time" in errors[0]


# ---------------------------------------------------------------------- sessions


def test_sessions_merge_with_the_merge_function_and_refuse_lists_without_one():
    app = new_app("merge")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=str)
    pages = app.Table("p", default=list, key_type=str, value_type=list).session(
        5, grace=10, expires=60, merge=operator.add
    )
    done: list[str] = []

    @app.agent(source)
    async def visit(stream):
        async for user, page in stream.items():
            pages[user] += [page]
            done.append(page)

    async def main():
        async with app:
            # two sessions 8 s apart, then an event between them joins all three
            for ts, page in [(0, "a"), (8_000, "b"), (4_000, "c"), (30_000, "d")]:
                await send_at(source, "u", page, BASE + ts)
            await wait_for(lambda: len(done) == 4)
            return pages.as_dict()

    assert run(main()) == {
        ("u", (BASE, BASE + 8_000)): ["a", "b", "c"],
        ("u", (BASE + 30_000, BASE + 30_000)): ["d"],
    }


def test_default_merge_is_an_error_for_values_that_are_not_numbers():
    from streamlog.dsl.errors import SessionMergeError
    from streamlog.dsl.windows.table import _default_merge

    assert _default_merge(2, 3.5) == 5.5
    with pytest.raises(SessionMergeError, match="merge="):
        _default_merge(["a"], ["b"])


# ---------------------------------------------------------------------- API edges


def test_the_plain_table_api_refuses_keys_once_windowed():
    app = new_app("plain")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    base = app.Table("c", default=int, key_type=str, value_type=int)
    counts = base.tumbling(5)
    errors: list[str] = []
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            try:
                base[key] += 1
            except WindowedTableError as exc:
                errors.append(str(exc))
            done.append(value)

    async def main():
        async with app:
            await send_at(source, "k", 3, BASE + 1)
            await wait_for(lambda: len(done) == 1)
            return dict(base.items()), len(base), base.as_ansitable()

    items, size, text = run(main())
    assert items == {("k", (BASE, BASE + 5000)): 3} and size == 1
    assert errors and "is windowed" in errors[0]
    assert text.splitlines()[4] == f"| 'k' | [{BASE}, {BASE + 5000}) | 3     |"
    with pytest.raises(streamlog.ImproperlyConfigured, match="windowed already"):
        base.hopping(10, 5)


def test_faust_style_on_window_close_gets_key_and_window_together():
    # Faust's two-argument callback: ((key, window), value), the window in Faust's float
    # seconds ([start, start + size - 0.1]), called when the window expires
    got: list[tuple[Any, Any]] = []
    seen = drive(
        lambda t, s: t.tumbling(
            1, expires=2, on_window_close=lambda key, value: got.append((key, value))
        ),
        [("a", BASE + 100, 1), ("a", BASE + 900, 2), ("b", BASE + 1_000, 4)],
        BASE + 10**7,
    )
    assert got[:1] == [(("a", (BASE / 1000, BASE / 1000 + 0.9)), 3)]
    assert seen.closes == []


# ---------------------------------------------------------------------- per-event path


def test_keys_that_compare_equal_but_serialise_apart_keep_their_own_windows():
    # 1 == 1.0 == True, but their table keys are b"1", b"1.0" and b"true": nothing that
    # keeps a key's serialised form (a WindowSet's place) may hand one the other's windows
    app = new_app("equalkeys")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    counts = app.Table("c", default=int, key_serializer="json").tumbling(10)
    read: list[list[Any]] = []

    @app.agent(source)
    async def count(stream):
        async for _key, _value in stream.items():
            keys: list[Any] = [1, True, 1.0, "1", b"1"[0]]
            for n, key in enumerate(keys):
                window = counts[key]
                window += 10**n
            read.append([counts[key].current() for key in keys])

    async def main():
        async with app:
            await send_at(source, "go", 0, BASE + 5)
            await send_at(source, "go", 0, BASE + 6)
            await wait_for(lambda: len(read) == 2)
            return read, sorted((repr(k), tuple(w), v) for (k, w), v in counts.items())

    reads, items = run(main())
    # 1 and ord("1") == 49 are ints; True, 1.0 and "1" are keys of their own
    assert reads == [[1, 10, 100, 1000, 10000], [2, 20, 200, 2000, 20000]]
    window = (BASE, BASE + 10_000)
    assert items == [
        ("'1'", window, 2000),
        ("1", window, 2),
        ("1.0", window, 200),
        ("49", window, 20000),
        ("True", window, 20),
    ]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_commit_leaves_no_expired_window_in_the_store(tmp_path, store):
    # without final results owed, expiry also runs as the commit begins: a window that
    # expired before the commit is deleted by it (a tombstone in the changelog), whether
    # or not the background closer got to it
    app = new_app("commitexpiry", store=store, datadir=str(tmp_path))
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    counts = app.Table("c", default=int, key_type=str, value_type=int).tumbling(1, expires=1)
    done: list[int] = []

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += value
            done.append(value)

    events = [("a", BASE + 100, 1), ("b", BASE + 1_500, 2), ("a", BASE + 2_100, 3)]

    async def main():
        async with app:
            for key, ts, value in events:
                await send_at(source, key, value, ts)
            await wait_for(lambda: len(done) == len(events))
            await app.conductor.commit()
            stored = dict(counts.table.store_partition(0).items())
            changelog = await read_topic(app, counts.table.changelog_topic.name, 4)
            return stored, changelog, counts.expired_windows

    stored, changelog, expired = run(main())
    # stream time 2.1 s: [0, 1 s) expired at 2 s, [1 s, 2 s) lives until 3 s
    windows = {split_window_key(k): v for k, v in stored.items() if k != STREAM_TIME_KEY}
    # keys in Faust's json (the table is declared the Faust way)
    assert windows == {(b'"b"', BASE + 1_000): b"2", (b'"a"', BASE + 2_000): b"3"}
    assert stored[STREAM_TIME_KEY] == (BASE + 2_100).to_bytes(8, "big")
    assert expired == 1
    last = {r.key: r.value for r in sorted(changelog, key=lambda r: r.offset)}
    assert last[window_key(b'"a"', BASE)] is None
    assert len(changelog) == 4  # three windows and the stream time, each once


# ---------------------------------------------------------------------- Faust's rules


def test_faust_way_a_late_event_counts_until_its_window_expires():
    # tumbling(1, expires=5), no grace=: Faust has no grace, so the event at 0.5 s that
    # arrives after stream time reached 3 s still counts in [0, 1 s); the window closes
    # (on_window_close) only when it expires at stream time 1 + 5 = 6 s; an event for it
    # after that is late
    events = [("a", BASE + 100, 1), ("b", BASE + 3_000, 1), ("a", BASE + 500, 1)]
    seen = drive(
        lambda t, s: t.tumbling(1, expires=5, on_window_close=s.on_close, on_late=s.on_late),
        events,
        BASE + 6_000,
    )
    assert seen.before == {("a", (BASE, BASE + 1_000)): 2, ("b", (BASE + 3_000, BASE + 4_000)): 1}
    assert seen.closes_before == [] and seen.lates == []
    assert seen.closes == [("a", (BASE, BASE + 1_000), 2)]
    assert ("a", (BASE, BASE + 1_000)) not in seen.after  # expired with its close

    # the same input under Kafka Streams' rules (grace=0): the late event is dropped
    strict = drive(
        lambda t, s: t.tumbling(1, expires=5, grace=0, on_late=s.on_late), events, BASE + 6_000
    )
    assert strict.before[("a", (BASE, BASE + 1_000))] == 1
    assert strict.lates == [("a", 1, BASE + 500)]


def test_faust_way_without_expires_keeps_every_window():
    # Faust without expires: no window ever closes or expires, however far stream time goes
    events = [("a", BASE + 100, 1), ("a", BASE + 50_000_000, 1), ("a", BASE + 200, 1)]
    seen = drive(
        lambda t, s: t.tumbling(10, on_window_close=s.on_close, on_late=s.on_late),
        events,
        BASE + 10**9,
    )
    assert seen.after == {
        ("a", (BASE, BASE + 10_000)): 2,
        ("a", (BASE + 50_000_000, BASE + 50_010_000)): 1,
    }
    assert seen.closes == [] and seen.lates == [] and seen.late_events == 0


def test_faust_way_changelogs_are_kept_as_faust_keeps_its_windows():
    app = new_app("changelogs")
    forever = app.Table("forever", default=int).tumbling(10)
    hour = app.Table("hour", default=int).hopping(10, 5, expires=3600)
    strict = app.Table("strict", default=int).tumbling(10, grace=0)
    configs = {t.name: t.table.changelog_topic.config for t in (forever, hour, strict)}
    assert configs["forever"]["cleanup.policy"] == "compact"
    assert configs["forever"]["retention.ms"] == "-1"
    day = 24 * 3600 * 1000
    assert configs["hour"]["retention.ms"] == str(10_000 + 3_600_000 + day)
    assert configs["strict"]["retention.ms"] == str(10_000 + 10_000 + day)
