"""Window assignment against hand-worked examples and brute force."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamlog.state.windows import (
    HoppingWindow,
    Session,
    SessionWindow,
    SlidingAssignment,
    SlidingCreation,
    SlidingWindow,
    TumblingWindow,
    WindowConfigError,
    WindowKeyError,
    WindowRange,
    split_window_key,
    window_key,
    window_key_prefix,
)

SETTINGS = settings(max_examples=300, deadline=None)

NOT_A_DURATION: Any = 1.5
big_timestamps = st.integers(min_value=-(2**62), max_value=2**62)


# -- tumbling and hopping ---------------------------------------------------------------


def test_tumbling_ranges_are_epoch_aligned_half_open() -> None:
    w = TumblingWindow(10_000)
    assert w.ranges(1_700_000_004_321) == [(1_700_000_000_000, 1_700_000_010_000)]
    assert w.ranges(1_700_000_010_000) == [(1_700_000_010_000, 1_700_000_020_000)]
    assert w.ranges(1_700_000_009_999) == [(1_700_000_000_000, 1_700_000_010_000)]
    assert w.ranges(-1) == [(-10_000, 0)]
    assert w.current(25_000) == WindowRange(20_000, 30_000)
    assert w.delta(25_000, timedelta(seconds=10)) == (10_000, 20_000)
    assert w.delta(25_000, 5_001) == (10_000, 20_000)
    assert w.earliest(25_000) == (20_000, 30_000)


def test_hopping_ranges_oldest_first() -> None:
    w = HoppingWindow(size=10, step=5)
    assert w.ranges(12) == [(5, 15), (10, 20)]
    assert w.ranges(10) == [(5, 15), (10, 20)]
    assert w.ranges(9) == [(0, 10), (5, 15)]
    assert w.current(12) == (10, 20)
    assert w.earliest(12) == (5, 15)
    assert w.delta(12, 5) == (5, 15)
    # a step that does not divide the size: 3 or 4 windows per record
    w = HoppingWindow(size=10, step=3)
    assert w.ranges(25) == [(18, 28), (21, 31), (24, 34)]
    assert w.ranges(21) == [(12, 22), (15, 25), (18, 28), (21, 31)]


def test_closing_with_grace_follows_kafka() -> None:
    w = TumblingWindow(10, grace=5)
    # window [0, 10) takes records until stream time reaches 10 + 5
    assert not w.is_closed(10, 14)
    assert w.is_closed(10, 15)
    assert w.open_ranges(3, 14) == [(0, 10)]
    assert w.open_ranges(3, 15) == []
    assert w.earliest_open(14) == 0
    assert w.earliest_open(15) == 10
    h = HoppingWindow(10, 5, grace=2)
    # at stream time 17: [5, 15) closes at 17, [10, 20) is open
    assert h.open_ranges(12, 16) == [(5, 15), (10, 20)]
    assert h.open_ranges(12, 17) == [(10, 20)]
    assert h.earliest_open(16) == 5
    assert h.earliest_open(17) == 10


def test_expiry_defaults_to_size_plus_grace_after_the_end() -> None:
    w = TumblingWindow(10, grace=3)
    assert w.expires == 13
    assert not w.expired(10, 22)
    assert w.expired(10, 23)
    assert w.expiry_cutoff(23) == 1  # window starting at 0 is gone, the one at 10 is not
    assert HoppingWindow(10, 5).expires == 10
    assert TumblingWindow(10, expires=timedelta(seconds=1)).expires == 1000
    assert TumblingWindow(10, expires=3, grace=3).expires == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TumblingWindow(0), "size must be > 0"),
        (lambda: TumblingWindow(-5), "size must be > 0"),
        (lambda: TumblingWindow(10, grace=-1), "grace must be >= 0"),
        (lambda: TumblingWindow(10, expires=2, grace=3), "shorter than grace"),
        (lambda: TumblingWindow(NOT_A_DURATION), "int milliseconds"),
        (lambda: TumblingWindow(True), "int milliseconds"),
        (lambda: TumblingWindow(timedelta(microseconds=1500)), "whole number"),
        (lambda: HoppingWindow(10, 11), "step=11 is larger than size=10"),
        (lambda: HoppingWindow(10, 0), "step must be > 0"),
        (lambda: SlidingWindow(0), "size must be > 0"),
        (lambda: SessionWindow(0), "gap must be > 0"),
        (lambda: SessionWindow(10, grace=5, expires=14), "shorter than grace"),
    ],
)
def test_bad_declarations_are_rejected(make: Callable[[], object], message: str) -> None:
    with pytest.raises(WindowConfigError, match=message):
        make()


def test_timedelta_durations() -> None:
    w = HoppingWindow(timedelta(minutes=1), timedelta(seconds=30), grace=timedelta(seconds=5))
    assert (w.size, w.step, w.grace, w.expires) == (60_000, 30_000, 5_000, 65_000)


@SETTINGS
@given(
    ts=big_timestamps,
    size=st.integers(1, 50),
    step_seed=st.integers(1, 50),
    grace=st.integers(0, 20),
    stream_time=big_timestamps,
)
def test_hopping_ranges_equal_brute_force(
    ts: int, size: int, step_seed: int, grace: int, stream_time: int
) -> None:
    step = min(step_seed, size)
    w = HoppingWindow(size, step, grace=grace)
    # brute force: aligned starts near ts, keep those whose window holds ts
    base = ts - ts % step
    candidates = range(base - (size // step + 2) * step, base + 3 * step, step)
    expected = [(s, s + size) for s in candidates if s <= ts < s + size]
    assert w.ranges(ts) == expected
    assert all(s % step == 0 and e - s == size for s, e in w.ranges(ts))
    assert w.current(ts) == expected[-1]
    assert w.earliest(ts) == expected[0]
    assert w.open_ranges(ts, stream_time) == [r for r in expected if stream_time < r[1] + grace]
    # earliest_open: the smallest aligned start whose window is still open
    first_open = w.earliest_open(stream_time)
    assert first_open % step == 0
    assert not w.is_closed(first_open + size, stream_time)
    assert w.is_closed(first_open - step + size, stream_time)
    cutoff = w.expiry_cutoff(stream_time)
    assert w.expired(cutoff - 1 + size, stream_time)
    assert not w.expired(cutoff + size, stream_time)


@SETTINGS
@given(ts=big_timestamps, size=st.integers(1, 10**9))
def test_tumbling_is_hopping_with_step_equal_to_size(ts: int, size: int) -> None:
    tumbling = TumblingWindow(size)
    assert tumbling.ranges(ts) == HoppingWindow(size, size).ranges(ts)
    (window,) = tumbling.ranges(ts)
    assert window.start % size == 0 and window.start <= ts < window.end == window.start + size


# -- sliding ----------------------------------------------------------------------------


def test_sliding_windows_of_two_records() -> None:
    w = SlidingWindow(10)
    # left windows end at each record; one window opens right after 0 (5 follows within 10)
    assert w.windows([0, 5]) == [(-10, 0), (-5, 5), (1, 11)]
    # records more than size apart share nothing
    assert w.windows([0, 11]) == [(-10, 0), (1, 11)]
    assert w.windows([0, 10, 10]) == [(-10, 0), (0, 10), (1, 11)]


def test_sliding_assign_in_order_and_out_of_order() -> None:
    w = SlidingWindow(10)
    assert w.assign(0, []) == SlidingAssignment((SlidingCreation(-10, 0, None, True),), ())
    # 5 after 0: its own window copies [-10, 0] ({0}); the window after 0 starts empty
    assert w.assign(5, [0]) == SlidingAssignment(
        (SlidingCreation(-5, 5, -10, True), SlidingCreation(1, 11, None, True)), ()
    )
    # 3 between 0 and 5: its own window copies {0}; the window after it copies {5}
    assert w.assign(3, [0, 5]) == SlidingAssignment(
        (SlidingCreation(-7, 3, -10, True), SlidingCreation(4, 14, 1, False)),
        (WindowRange(-5, 5), WindowRange(1, 11)),
    )
    # a repeated timestamp only joins the windows containing it
    assert w.assign(5, [0, 5]) == SlidingAssignment((), (WindowRange(-5, 5), WindowRange(1, 11)))
    # far-away records are ignored
    assert w.assign(5, [0, -1000, 1000]) == w.assign(5, [0])


def test_sliding_lateness_and_retention() -> None:
    w = SlidingWindow(10, grace=5)
    assert w.accepts(100, 105)
    assert not w.accepts(100, 106)
    assert not w.is_closed(100, 105)
    assert w.is_closed(100, 106)
    assert w.retention == 25
    assert not w.expired(100, 125)
    assert w.expired(100, 126)


def brute_force_sliding(size: int, records: list[tuple[int, int]]) -> dict[int, list[int]]:
    """Every distinct span [s, s+size] holding records, keyed by the canonical start."""
    times = sorted({t for t, _ in records})
    starts = {t - size for t in times} | {
        a + 1 for a, b in zip(times, times[1:], strict=False) if b - a <= size
    }
    return {
        s: sorted(v for t, v in records if s <= t <= s + size)
        for s in starts
        if any(s <= t <= s + size for t, _ in records)
    }


def run_sliding(
    window: SlidingWindow,
    records: list[tuple[int, int]],
    expire: bool,
) -> tuple[dict[int, list[tuple[int, int]]], list[tuple[int, int]], int]:
    """A minimal aggregator over one key: the aggregate is the list of records it holds.

    Returns the surviving windows, the accepted records and the final stream time. With
    ``expire`` it deletes expired windows and learns record timestamps only from the
    windows it kept, as a store-backed aggregator must.
    """
    store: dict[int, list[tuple[int, int]]] = {}
    accepted: list[tuple[int, int]] = []
    stream_time: int | None = None
    for ts, value in records:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if not window.accepts(ts, stream_time):
            continue
        accepted.append((ts, value))
        if expire:
            record_times = {max(t for t, _ in agg) for agg in store.values()}
        else:
            record_times = {t for t, _ in accepted[:-1]}
        plan = window.assign(ts, record_times)
        bases = {c.start: list(store[c.base]) if c.base is not None else [] for c in plan.created}
        for start, end in plan.updated:
            assert window.accepts(end, stream_time)  # never writes into a closed window
            store[start].append((ts, value))
        for c in plan.created:
            assert c.start not in store
            store[c.start] = bases[c.start] + ([(ts, value)] if c.contains_record else [])
        if expire:
            for start in [s for s in store if window.expired(s + window.size, stream_time)]:
                del store[start]
    assert stream_time is not None
    return store, accepted, stream_time


sliding_inputs = st.lists(st.tuples(st.integers(0, 120), st.integers(0, 1000)), max_size=40)


@SETTINGS
@given(records=sliding_inputs, size=st.integers(1, 30))
def test_sliding_aggregates_equal_brute_force(records: list[tuple[int, int]], size: int) -> None:
    w = SlidingWindow(size, grace=10**6)  # nothing is late
    if not records:
        return
    store, accepted, _ = run_sliding(w, records, expire=False)
    assert accepted == records
    assert {s: sorted(v for _, v in agg) for s, agg in store.items()} == brute_force_sliding(
        size, records
    )
    assert sorted(store) == [s for s, _ in w.windows(t for t, _ in records)]


@SETTINGS
@given(
    records=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 1000)), min_size=1, max_size=30),
    size=st.integers(1, 12),
    grace=st.integers(0, 15),
)
# Retention one shorter forgets record 56 before 64 arrives; [60, 64] then copies [56, 60]
# ({56, 60}) instead of [57, 61] ({60}).
@example(records=[(56, 0), (60, 1), (74, 2), (64, 3)], size=4, grace=10)
def test_sliding_with_late_records_and_expiry_equals_brute_force(
    records: list[tuple[int, int]], size: int, grace: int
) -> None:
    w = SlidingWindow(size, grace=grace)
    store, accepted, stream_time = run_sliding(w, records, expire=True)
    expected = brute_force_sliding(size, accepted)
    live = {s: v for s, v in expected.items() if not w.expired(s + size, stream_time)}
    assert {s: sorted(v for _, v in agg) for s, agg in store.items()} == live


# -- sessions ---------------------------------------------------------------------------


def test_session_merge_examples() -> None:
    w = SessionWindow(gap=10)
    assert w.merge([], 5) == (Session(5, 5), [])
    assert w.merge([Session(0, 5)], 15) == (Session(0, 15), [Session(0, 5)])
    assert w.merge([Session(0, 5)], 16) == (Session(16, 16), [])
    assert w.merge([Session(0, 5)], 3) == (Session(0, 5), [Session(0, 5)])
    assert w.merge([Session(20, 30)], 10) == (Session(10, 30), [Session(20, 30)])
    # an out-of-order record bridging two sessions merges all three
    assert w.merge([Session(20, 25), Session(0, 5)], 12) == (
        Session(0, 25),
        [Session(0, 5), Session(20, 25)],
    )
    assert w.search_range(12) == (2, 22)


def test_session_closing_and_expiry() -> None:
    w = SessionWindow(gap=10, grace=5)
    assert not w.is_closed(100, 115)
    assert w.is_closed(100, 116)
    assert w.expires == 15
    assert not w.expired(100, 115) and w.expired(100, 116)
    assert SessionWindow(10, expires=timedelta(seconds=1)).expires == 1000


def brute_force_sessions(gap: int, records: list[tuple[int, int]]) -> dict[Session, list[int]]:
    ordered = sorted(records)
    groups: list[list[tuple[int, int]]] = [[ordered[0]]]
    for ts, value in ordered[1:]:
        if ts - groups[-1][-1][0] > gap:
            groups.append([])
        groups[-1].append((ts, value))
    return {Session(g[0][0], g[-1][0]): sorted(v for _, v in g) for g in groups}


@SETTINGS
@given(
    records=st.lists(
        st.tuples(st.integers(-500, 500), st.integers(0, 1000)), min_size=1, max_size=60
    ),
    gap=st.integers(1, 50),
)
def test_sessions_built_out_of_order_equal_sort_and_split(
    records: list[tuple[int, int]], gap: int
) -> None:
    w = SessionWindow(gap)
    store: dict[Session, list[int]] = {}
    for ts, value in records:
        new, replaced = w.merge(list(store), ts)
        merged = [v for s in replaced for v in store.pop(s)]
        assert new not in store
        store[new] = sorted([*merged, value])
    assert store == brute_force_sessions(gap, records)


# -- store keys -------------------------------------------------------------------------


def test_window_key_layout() -> None:
    assert window_key(b"ab", 0) == b"\x00\x00\x00\x02ab\x80\x00\x00\x00\x00\x00\x00\x00"
    assert window_key(b"", -1) == b"\x00\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff"
    assert window_key_prefix(b"ab") == b"\x00\x00\x00\x02ab"
    assert split_window_key(window_key(b"ab", -(2**63))) == (b"ab", -(2**63))
    assert split_window_key(window_key(b"ab", 2**63 - 1)) == (b"ab", 2**63 - 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x00\x00\x00\x05ab" + bytes(8), "does not hold a 5-byte key"),
        (b"\x00\x00\x00\x00" + bytes(9), "does not hold a 0-byte key"),
    ],
)
def test_split_rejects_malformed_keys(data: bytes, message: str) -> None:
    with pytest.raises(WindowKeyError, match=message):
        split_window_key(data)


def test_window_key_rejects_starts_outside_int64() -> None:
    with pytest.raises(WindowKeyError, match="signed 64-bit"):
        window_key(b"k", 2**63)
    with pytest.raises(WindowKeyError, match="signed 64-bit"):
        window_key(b"k", -(2**63) - 1)


starts = st.integers(min_value=-(2**63), max_value=2**63 - 1)
pairs = st.tuples(st.binary(max_size=6), starts | st.integers(-3, 3))


@SETTINGS
@given(items=st.lists(pairs, min_size=1, max_size=30))
def test_window_key_byte_order_equals_tuple_order(items: list[tuple[bytes, int]]) -> None:
    encoded = [window_key(k, s) for k, s in items]
    assert [split_window_key(e) for e in encoded] == items
    by_bytes = [split_window_key(e) for e in sorted(encoded)]
    assert by_bytes == sorted(items, key=lambda ks: (len(ks[0]), ks[0], ks[1]))
    # one key's windows are exactly the keys with its prefix, in start order
    key = items[0][0]
    scanned = [split_window_key(e) for e in sorted(encoded) if e.startswith(window_key_prefix(key))]
    assert scanned == sorted((k, s) for k, s in items if k == key)


def test_window_key_scan_with_a_real_rocksdb(tmp_path: object) -> None:
    rocksdict = pytest.importorskip("rocksdict")
    db = rocksdict.Rdict(str(tmp_path), options=rocksdict.Options(raw_mode=True))
    try:
        rng = random.Random(7)
        keys = [b"a", b"a\x00", b"ab", b"b", b""]
        written = defaultdict(list)
        for _ in range(200):
            k, s = rng.choice(keys), rng.randint(-(10**12), 10**12)
            db[window_key(k, s)] = b"v"
            written[k].append(s)
        for k in keys:
            prefix = window_key_prefix(k)
            found = []
            for raw in db.keys(from_key=prefix):
                if not raw.startswith(prefix):
                    break
                found.append(split_window_key(raw))
            assert found == [(k, s) for s in sorted(set(written[k]))]
    finally:
        db.close()
