"""Joins checked against reference joins computed here, from the same generated input.

Each reference is a brute-force reading of the documented semantics (docs/joins.md):
it knows nothing of buffers, key layouts or expiry scans. Inputs are small, with
out-of-order timestamps, late records, null keys and null values. Records are sent one
at a time and each is waited for, so the processing order (which stream time, and so
lateness, depends on) is the order sent. Timestamps are whole seconds: exact through
``topic.send(timestamp=seconds)``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamlog
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.joins.api import (
    CoPartitioningError,
    JoinStats,
    JoinWindow,
    StreamStreamJoin,
    StreamTableJoin,
    TableTableJoin,
    join,
    join_stream_table,
    join_window,
)
from streamlog.dsl.joins.window_state import LEFT, RIGHT, WindowedJoinState
from streamlog.state.memory_store import MemoryStore
from streamlog.state.transaction import PartitionTransaction
from tests.dsl.helpers import read_topic, run, wait_for

# seconds since the epoch, inputs give offsets from it in seconds; recent, because the
# log's default retention (7 days, as Kafka) deletes older records while a test runs
BASE = (int(time.time()) // 3600 - 24) * 3600


def make_app(app_id: str, url: str = "memory://", **settings_: Any) -> streamlog.App:
    options: dict[str, Any] = {
        "topic_partitions": 1,
        "store": "memory://",
        "broker_commit_interval": 0.2,
        "broker_session_timeout": 6.0,
    }
    options.update(settings_)
    return streamlog.App(app_id, broker=url, **options)


def decoded(records: list[Any]) -> list[tuple[Any, Any, int]]:
    """(key, JSON value, timestamp in seconds from BASE) of sink records, in log order."""
    out = []
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        key = None if r.key is None else r.key.decode()
        value = None if r.value is None else json.loads(r.value)
        out.append((key, value, r.timestamp // 1000 - BASE))
    return out


# ------------------------------------------------------------------ stream-stream reference


def reference_stream_stream(
    records: list[tuple[str, str | None, str | None, int]],
    kind: str,
    before: int,
    after: int,
    grace: int,
) -> tuple[Counter[tuple[Any, ...]], dict[str, int]]:
    """Results as a multiset of (key, left, right, ts), and the drop counts.

    records: (side "L"/"R", key, value, ts) in processing order, one partition.
    """
    stream_time: int | None = None
    accepted: list[tuple[str, str, str, int]] = []
    results: Counter[tuple[Any, ...]] = Counter()
    counts = {"late": 0, "null_keys": 0, "null_values": 0}
    emits_unmatched = {"L": kind in ("left", "outer"), "R": kind == "outer"}
    for side, key, value, ts in records:
        stream_time = ts if stream_time is None else max(stream_time, ts)
        if value is None:
            counts["null_values"] += 1
            continue
        if key is None:
            counts["null_keys"] += 1
            if emits_unmatched[side]:
                results[(None, value, None, ts) if side == "L" else (None, None, value, ts)] += 1
            continue
        # late: the record's own join window has closed
        if ts + (after if side == "L" else before) + grace < stream_time:
            counts["late"] += 1
            continue
        accepted.append((side, key, value, ts))
    lefts = [r for r in accepted if r[0] == "L"]
    rights = [r for r in accepted if r[0] == "R"]
    matched: set[int] = set()
    for i, (_, lkey, lvalue, lts) in enumerate(lefts):
        for j, (_, rkey, rvalue, rts) in enumerate(rights):
            if lkey == rkey and lts - before <= rts <= lts + after:
                results[(lkey, lvalue, rvalue, max(lts, rts))] += 1
                matched.add(id(lefts[i]))
                matched.add(id(rights[j]))
    # an unmatched record is emitted once no on-time record can match it any more
    assert stream_time is not None
    horizon = stream_time - (before + after + grace)
    for record in accepted:
        side, key, value, ts = record
        if emits_unmatched[side] and id(record) not in matched and ts < horizon:
            results[(key, value, None, ts) if side == "L" else (key, None, value, ts)] += 1
    return results, counts


def generate_stream_records(
    rng: random.Random, n: int, *, null_keys: bool = True, null_values: bool = True
) -> list[tuple[str, str | None, str | None, int]]:
    """Mostly rising timestamps, a third of them behind (some beyond the grace period),
    a few null keys and values; ends with a record far ahead that closes every window."""
    out: list[tuple[str, str | None, str | None, int]] = []
    clock = 0
    for i in range(n):
        clock += rng.randint(0, 3)
        ts = clock - (rng.randint(1, 12) if rng.random() < 0.35 else 0)
        side = rng.choice("LR")
        key = None if null_keys and rng.random() < 0.1 else rng.choice("abc")
        value = None if null_values and rng.random() < 0.05 else f"{side}{i}"
        out.append((side, key, value, ts))
    out.append(("L", "z", "flush", clock + 100))
    return out


# ------------------------------------------------------------------ the state machine alone


async def drive_state(
    records: list[tuple[str, str | None, str | None, int]],
    kind: str,
    window: JoinWindow,
    commit_every: int,
    forget: bool = True,
) -> tuple[Counter[tuple[Any, ...]], Counter[str], MemoryStore]:
    """Run ``WindowedJoinState`` over a memory store, committing every ``commit_every``
    records, then (``forget``) dropping every cached hint, as after a rebalance."""
    store = MemoryStore("join")
    partition = store.partition(0)
    state = WindowedJoinState(window, kind)
    tx = PartitionTransaction(partition)
    offsets = {"L": 0, "R": 0}
    results: Counter[tuple[Any, ...]] = Counter()
    drops: Counter[str] = Counter()
    for n, (side, key, value, ts) in enumerate(records, 1):
        outcome = state.process(
            tx,
            0,
            LEFT if side == "L" else RIGHT,
            None if key is None else key.encode(),
            None if value is None else value.encode(),
            ts,
            offsets[side],
        )
        offsets[side] += 1
        if outcome.dropped:
            drops[outcome.dropped] += 1
        for r in outcome.results:
            results[
                (
                    None if r.key is None else r.key.decode(),
                    None if r.left is None else r.left.decode(),
                    None if r.right is None else r.right.decode(),
                    r.timestamp,
                )
            ] += 1
        if commit_every and n % commit_every == 0:
            await tx.prepare(cast(Any, None))  # no changelog: the producer is not used
            await tx.acknowledged()
            tx.flush()
            tx = PartitionTransaction(partition)
            if forget:
                state.forget()
    return results, drops, store


_records = st.lists(
    st.tuples(
        st.sampled_from("LR"),
        st.sampled_from([None, "a", "a", "b", "c"]),
        st.sampled_from([None, "v", "v", "v", "v", "v", "v", "v", "v", "v"]),
        st.integers(0, 4),  # clock step
        st.integers(0, 20),  # how far behind the clock
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    records=_records,
    kind=st.sampled_from(["inner", "left", "outer"]),
    before=st.integers(0, 6),
    after=st.integers(0, 6),
    grace=st.integers(0, 4),
    commit_every=st.sampled_from([0, 1, 3]),
    forget=st.booleans(),
)
def test_state_machine_matches_the_reference(
    records, kind, before, after, grace, commit_every, forget
):
    clock = 0
    inputs = []
    for i, (side, key, value, step, behind) in enumerate(records):
        clock += step
        inputs.append((side, key, None if value is None else f"{side}{i}", clock - behind))
    if not inputs:
        return
    expected, counts = reference_stream_stream(inputs, kind, before, after, grace)
    got, drops, _ = asyncio.run(
        drive_state(inputs, kind, JoinWindow(before, after, grace), commit_every, forget)
    )
    assert got == expected
    assert drops["late"] == counts["late"]
    assert drops["null_value"] == counts["null_values"]


def test_no_unmatched_result_before_a_match_can_no_longer_come():
    """Kafka would emit (L0, None) once stream time passes 0 + after + grace; a right
    record at 8 still joins L0 after that, so streamlog waits until 0 + 20."""
    records = [
        ("L", "a", "L0", 0),
        ("L", "b", "L15", 15),  # stream time 15: L0's own window [-10, 10] has closed
        ("R", "a", "R8", 8),  # on time (8 + 10 >= 15), joins L0
        ("L", "c", "L40", 40),  # L0 and L15 expire; only L15 never matched
    ]
    got, drops, store = asyncio.run(drive_state(records, "left", JoinWindow(10, 10, 0), 1))
    assert got == Counter({("a", "L0", "R8", 8): 1, ("b", "L15", None, 15): 1})
    assert not drops
    # L0, L15 and R8 are gone; L40 (buffer and time index entries) and stream time remain
    assert sorted(key[:1] for key, _ in store.partition(0).items()) == [b"B", b"M", b"T"]


def test_expired_records_leave_the_store_and_stream_time_is_stored():
    records = [("L", "a", "L0", 0), ("R", "b", "R1", 1), ("L", "c", "L50", 50)]

    async def main():
        results, _, store = await drive_state(records, "inner", JoinWindow(5, 5, 2), 1)
        return results, list(store.partition(0).items())

    results, items = asyncio.run(main())
    assert results == Counter()
    prefixes = Counter(key[:1] for key, _ in items)
    assert prefixes == Counter({b"B": 1, b"T": 1, b"M": 1})  # L50's entries and stream time
    stream_time = dict(items)[b"Mstream-time"]
    assert int.from_bytes(stream_time, "big", signed=True) == 50


# ------------------------------------------------------------------ stream-stream in an app


def stream_stream_app(app_id, url, kind, *, window=5, grace=2, datadir=None, store="memory://"):
    app = make_app(app_id, url, store=store, datadir=str(datadir) if datadir else None)
    left = app.topic(f"{app_id}-left", key_type=str, value_type=str)
    right = app.topic(f"{app_id}-right", key_type=str, value_type=str)
    out = app.topic(f"{app_id}-out", key_type=str, value_serializer="json")
    joined = join(app, left, right, kind=kind, window=window, grace=grace, to=out, name="j")
    assert isinstance(joined, StreamStreamJoin)
    return app, {"L": left, "R": right}, out, joined


async def feed(topics, joined, records, already: int = 0) -> None:
    """Send each record and wait until the join has handled it."""
    for n, (side, key, value, ts) in enumerate(records, already + 1):
        await topics[side].send(key=key, value=value, timestamp=BASE + ts)
        await wait_for(lambda n=n: joined.stats.completed == n)


def as_results(counter: Counter[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
    """Reference results as sink records read back: (key, [left, right], ts)."""
    return Counter({(k, (lv, rv), ts): n for (k, lv, rv, ts), n in counter.items()})


def sink_results(records) -> Counter[tuple[Any, ...]]:
    return Counter((k, tuple(v), ts) for k, v, ts in decoded(records))


@pytest.mark.parametrize("kind", ["inner", "left", "outer"])
def test_stream_stream_join_matches_the_reference(app_id, kind):
    records = generate_stream_records(random.Random(f"ss-{kind}"), 36)
    expected, counts = reference_stream_stream(records, kind, 5, 5, 2)  # in seconds
    assert counts["late"] >= 2 and counts["null_keys"] >= 2  # the input exercises both
    app, topics, out, joined = stream_stream_app(app_id, "memory://", kind)

    async def main():
        async with app:
            await feed(topics, joined, records)
            total = sum(expected.values())
            return await read_topic(app, out.name, total) if total else []

    got = run(main())
    assert sink_results(got) == as_results(expected)
    stats = joined.stats
    assert (stats.late, stats.null_keys, stats.null_values) == (
        counts["late"],
        counts["null_keys"],
        counts["null_values"],
    )
    assert stats.results == sum(expected.values())
    assert stats.records == len(records)


def test_stream_stream_left_join_on_every_transport(broker_url, app_id):
    records = generate_stream_records(random.Random("ss-transport"), 14, null_values=False)
    expected, counts = reference_stream_stream(records, "left", 5, 5, 2)
    assert sum(expected.values()) >= 3
    app, topics, out, joined = stream_stream_app(app_id, broker_url, "left")

    async def main():
        async with app:
            await feed(topics, joined, records)
            return await read_topic(app, out.name, sum(expected.values()))

    got = run(main(), timeout=120)
    assert sink_results(got) == as_results(expected)
    assert joined.stats.late == counts["late"]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_stream_stream_buffers_and_stream_time_survive_a_restart(app_id, tmp_path, store):
    url = f"file://{tmp_path / 'log'}"
    datadir = tmp_path / "data"
    before_restart = [("L", "a", "L0", 0), ("L", "b", "L1", 1), ("R", "c", "R2", 2)]
    after_restart = [
        ("R", "a", "R3", 3),  # joins L0, buffered before the restart
        ("L", "x", "late", -10),  # late only if stream time (2) was recovered
        ("L", "z", "flush", 100),  # expires L1 and R2 unmatched, L0 and R3 matched
    ]

    async def first():
        app, topics, _, joined = stream_stream_app(
            app_id, url, "outer", datadir=datadir, store=store
        )
        async with app:
            await feed(topics, joined, before_restart)
        return joined.stats.results

    assert run(first()) == 0

    async def second():
        app, topics, out, joined = stream_stream_app(
            app_id, url, "outer", datadir=datadir, store=store
        )
        async with app:
            await feed(topics, joined, after_restart)
            records = await read_topic(app, out.name, 3)
            left_over = list(joined.store.transaction(0).items())
        return records, joined.stats, joined.store.recovered_records, left_over

    records, stats, recovered, left_over = run(second())
    assert decoded(records) == [
        ("a", ["L0", "R3"], 3),
        ("b", ["L1", None], 1),
        ("c", [None, "R2"], 2),
    ]
    assert stats.late == 1
    if store == "memory://":
        assert recovered >= 7  # 3 buffered records x (buffer + time index) + stream time
    else:
        assert recovered == 0  # RocksDB kept them; nothing to replay
    # the flush record's buffer entry and time index entry, and stream time
    assert sorted(key[:1] for key, _ in left_over) == [b"B", b"M", b"T"]


def test_on_late_sees_each_late_record(app_id):
    app = make_app(app_id)
    left = app.topic(f"{app_id}-l", key_type=str, value_type=str)
    right = app.topic(f"{app_id}-r", key_type=str, value_type=str)
    late: list[Any] = []
    joined = StreamStreamJoin(
        app, left, right, window=1, kind="inner", on_late=lambda e: late.append((e.key, e.value))
    )

    async def main():
        async with app:
            await feed({"L": left, "R": right}, joined, [("L", "a", "x", 10), ("R", "a", "y", 5)])

    run(main())
    assert late == [("a", "y")]  # 5 + 1 + 0 < 10
    assert joined.stats.late == 1


# ------------------------------------------------------------------ stream-table


def reference_stream_table(steps, kind):
    """steps: ("table", key, value|None) or ("stream", key, value, ts). Results in order."""
    table: dict[str, str] = {}
    results = []
    drops = Counter()
    for step in steps:
        if step[0] == "table":
            _, key, value = step
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            continue
        _, key, value, ts = step
        if value is None:
            drops["null_values"] += 1
            continue
        if key is None:
            drops["null_keys"] += 1
            if kind == "left":
                results.append((None, [value, None], ts))
            continue
        found = table.get(key)
        if found is None and kind == "inner":
            continue
        results.append((key, [value, found], ts))
    return results, drops


def generate_table_steps(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    steps: list[tuple[Any, ...]] = []
    clock = 0
    for i in range(n):
        if rng.random() < 0.4:
            key = rng.choice("abcd")
            steps.append(("table", key, None if rng.random() < 0.25 else f"t{i}"))
        else:
            clock += rng.randint(0, 3)
            ts = clock - (rng.randint(1, 9) if rng.random() < 0.3 else 0)
            key = None if rng.random() < 0.1 else rng.choice("abcd")
            value = None if rng.random() < 0.05 else f"s{i}"
            steps.append(("stream", key, value, ts))
    return steps


def stream_table_app(app_id):
    app = make_app(app_id)
    updates = app.topic(f"{app_id}-updates", key_type=str, value_type=str)
    events = app.topic(f"{app_id}-events", key_type=str, value_type=str)
    table = app.Table("profiles", key_type=str, value_type=str)
    applied: list[Any] = []

    @app.agent(updates)
    async def maintain(stream):
        async for key, value in stream.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            applied.append(key)

    return app, updates, events, table, applied


async def feed_table_steps(steps, updates, events, applied, done) -> None:
    handled = 0
    for step in steps:
        if step[0] == "table":
            _, key, value = step
            await updates.send(key=key, value=value)
            target = len(applied) + 1
            await wait_for(lambda target=target: len(applied) == target)
        else:
            _, key, value, ts = step
            await events.send(key=key, value=value, timestamp=BASE + ts)
            handled += 1
            await wait_for(lambda handled=handled: done() == handled)


@pytest.mark.parametrize("kind", ["inner", "left"])
def test_stream_table_join_matches_the_reference(app_id, kind):
    steps = generate_table_steps(
        random.Random({"inner": "st-inner-1", "left": "st-left"}[kind]), 40
    )
    expected, drops = reference_stream_table(steps, kind)
    assert drops["null_keys"] and drops["null_values"]  # the input exercises both
    app, updates, events, table, applied = stream_table_app(app_id)
    out = app.topic(f"{app_id}-out", key_type=str, value_serializer="json")
    joined = join(app, events, table, kind=kind, to=out)
    assert isinstance(joined, StreamTableJoin)

    async def main():
        async with app:
            await feed_table_steps(steps, updates, events, applied, lambda: joined.stats.completed)
            return await read_topic(app, out.name, len(expected))

    got = run(main())
    assert decoded(got) == expected
    assert joined.stats.null_keys == drops["null_keys"]
    assert joined.stats.null_values == drops["null_values"]


def test_join_stream_table_inside_an_agent(app_id):
    steps = generate_table_steps(random.Random("st-agent"), 30)
    expected, drops = reference_stream_table(steps, "left")
    app, updates, events, table, applied = stream_table_app(app_id)
    stats = JoinStats()
    seen: list[Any] = []

    @app.agent(events)
    async def enrich(stream):
        async for left, right in join_stream_table(stream, table, kind="left", stats=stats):
            event = stream.current_event
            seen.append((event.key, [left, right], event.message.timestamp_ms // 1000 - BASE))

    async def main():
        async with app:
            await feed_table_steps(steps, updates, events, applied, lambda: stats.completed)

    run(main())
    assert seen == expected
    assert (stats.null_keys, stats.null_values) == (drops["null_keys"], drops["null_values"])


def test_stream_table_join_by_a_key_of_the_value_repartitions(app_id):
    app = make_app(app_id, topic_partitions=3)
    customers = app.Table("customers", key_type=str, value_type=str)
    updates = app.topic(f"{app_id}-customers", key_type=str, value_type=str)
    orders = app.topic(f"{app_id}-orders", key_type=str, value_type=dict)
    out = app.topic(f"{app_id}-out", key_type=str, value_serializer="json")
    applied: list[str] = []

    @app.agent(updates)
    async def maintain(stream):
        async for key, value in stream.items():
            customers[key] = value
            applied.append(key)

    joined = StreamTableJoin(
        app, orders, customers, kind="left", key=lambda order: order["customer"], to=out
    )
    assert joined.repartition_topic is not None
    assert joined.repartition_topic.name == f"{app_id}-{joined.name}-repartition"
    orders_sent = [
        ("o1", {"customer": "ann", "n": 1}),
        ("o2", {"customer": "bob", "n": 2}),
        ("o3", {"customer": "eve", "n": 3}),  # no such customer
        ("o4", {"customer": None, "n": 4}),  # null lookup key: left join keeps it
    ]

    async def main():
        async with app:
            for key, name in [("ann", "Ann"), ("bob", "Bob")]:
                await updates.send(key=key, value=name)
            await wait_for(lambda: len(applied) == 2)
            for n, (key, order) in enumerate(orders_sent, 1):
                await orders.send(key=key, value=order, timestamp=BASE + n)
                await wait_for(lambda n=n: joined.stats.completed == n)
            return await read_topic(app, out.name, 4)

    got = sorted(decoded(run(main())), key=lambda r: r[2])
    assert got == [
        ("ann", [{"customer": "ann", "n": 1}, "Ann"], 1),
        ("bob", [{"customer": "bob", "n": 2}, "Bob"], 2),
        ("eve", [{"customer": "eve", "n": 3}, None], 3),
        (None, [{"customer": None, "n": 4}, None], 4),
    ]
    assert joined.stats.null_keys == 1


# ------------------------------------------------------------------ table-table


def reference_table_table(updates, kind):
    """updates: (side, key, value|None, ts). Emitted (key, value|None, ts) in order, and
    the final result table."""
    sides: dict[str, dict[str, tuple[str, int]]] = {"L": {}, "R": {}}
    result: dict[str, list[Any]] = {}
    emitted = []
    for side, key, value, ts in updates:
        if key is None:
            continue
        other = sides["R" if side == "L" else "L"].get(key)
        if value is None:
            sides[side].pop(key, None)
        else:
            sides[side][key] = (value, ts)
        when = max(ts, other[1]) if other else ts
        left = sides["L"].get(key)
        right = sides["R"].get(key)
        if kind == "inner":
            present = left is not None and right is not None
        elif kind == "left":
            present = left is not None
        else:
            present = left is not None or right is not None
        if present:
            value_out = [left and left[0], right and right[0]]
            result[key] = value_out
            emitted.append((key, value_out, when))
        elif key in result:
            del result[key]
            emitted.append((key, None, when))
    return emitted, result


def generate_table_updates(rng: random.Random, n: int):
    out = []
    clock = 0
    for i in range(n):
        clock += rng.randint(0, 3)
        ts = clock - (rng.randint(1, 9) if rng.random() < 0.3 else 0)
        side = rng.choice("LR")
        key = None if rng.random() < 0.05 else rng.choice("abc")
        value = None if rng.random() < 0.3 else f"{side}{i}"
        out.append((side, key, value, ts))
    return out


@pytest.mark.parametrize("kind", ["inner", "left", "outer"])
def test_table_table_join_matches_the_reference(app_id, kind):
    updates = generate_table_updates(random.Random(f"tt-{kind}"), 40)
    expected, final = reference_table_table(updates, kind)
    assert any(v is None for _, v, _ in expected)  # deletes reach the output
    app = make_app(app_id)
    left = app.topic(f"{app_id}-left", key_type=str, value_type=str)
    right = app.topic(f"{app_id}-right", key_type=str, value_type=str)
    out = app.topic(f"{app_id}-out", key_type=str, value_serializer="json")
    joined = join(app, left, right, kind=kind, to=out)
    assert isinstance(joined, TableTableJoin)

    async def main():
        async with app:
            await feed({"L": left, "R": right}, joined, updates)
            records = await read_topic(app, out.name, len(expected))
            return records, joined.table.as_dict()

    records, table = run(main())
    assert decoded(records) == expected
    assert table == final
    assert joined.stats.tombstones == sum(1 for _, v, _ in expected if v is None)
    assert joined.stats.null_keys == sum(1 for u in updates if u[1] is None)


# ------------------------------------------------------------------ declaring joins


def test_join_picks_the_join_from_its_arguments_and_names_its_parts(app_id):
    app = make_app(app_id)
    a = app.topic("a", key_type=str)
    b = app.topic("b", key_type=str)
    table = app.Table("t", key_type=str)
    windowed = join(app, a, b, window=(1, 2.5), grace=0.57, kind="outer")
    enrich = join(app, a, table, kind="left")
    tables = join(app, a, b, kind="left")
    assert isinstance(windowed, StreamStreamJoin)
    assert windowed.window == JoinWindow(1000, 2500, 570)
    assert windowed.name == "a-b-outer-join"
    assert windowed.store.changelog_topic.name == f"{app_id}-a-b-outer-join-store-changelog"
    assert [(label, t.name) for label, t in windowed.inputs] == [("left", "a"), ("right", "b")]
    assert isinstance(enrich, StreamTableJoin) and enrich.name == "a-t-left-join"
    assert isinstance(tables, TableTableJoin)
    assert [t.name for t in tables.tables] == ["a-b-left-join-sides", "a-b-left-join"]
    assert join_window(2) == JoinWindow(2000, 2000, 0)


def test_join_refuses_what_cannot_work(app_id):
    app = make_app(app_id)
    a = app.topic("a", partitions=2)
    b = app.topic("b", partitions=3)
    c = app.topic("c")
    table = app.Table("t")
    with pytest.raises(CoPartitioningError, match="a has 2, b has 3"):
        join(app, a, b, window=1)
    with pytest.raises(ImproperlyConfigured, match="kind must be one of 'inner', 'left'"):
        join(app, c, table, kind="outer")
    with pytest.raises(ImproperlyConfigured, match="kind must be one of"):
        join(app, a, c, kind="right", window=1, name="x")
    with pytest.raises(ImproperlyConfigured, match="grace= needs window="):
        join(app, a, c, grace=1)
    with pytest.raises(ImproperlyConfigured, match="must not be negative"):
        join(app, a, c, window=-1, name="y")
    with pytest.raises(ImproperlyConfigured, match="not tables"):
        join(app, a, table, window=1)


def test_inputs_found_not_co_partitioned_at_start_stop_the_worker(app_id):
    app = make_app(app_id)
    app.topic(f"{app_id}-l", partitions=2)  # created with 2 partitions
    left = app.topic(f"{app_id}-l")  # the join sees no count: it assumes the default, 1
    right = app.topic(f"{app_id}-r")
    join(app, left, right, window=1, name="j")

    async def main():
        async with app:
            await wait_for(lambda: app.crash_reason is not None)
            return app.crash_reason

    reason = run(main())
    assert isinstance(reason, CoPartitioningError)
    assert f"{app_id}-l has 2, {app_id}-r has 1" in str(reason)


def test_table_table_join_of_two_app_tables_follows_their_changelogs(app_id):
    app = make_app(app_id)
    prices_in = app.topic(f"{app_id}-prices", key_type=str, value_type=int)
    stock_in = app.topic(f"{app_id}-stock", key_type=str, value_type=int)
    prices = app.Table("prices", key_type=str, value_type=int)
    stock = app.Table("stock", key_type=str, value_type=int)

    @app.agent(prices_in)
    async def set_price(stream):
        async for item, price in stream.items():
            prices[item] = price

    @app.agent(stock_in)
    async def set_stock(stream):
        async for item, count in stream.items():
            if count:
                stock[item] = count
            else:
                stock.pop(item, None)

    worth = join(app, prices, stock, kind="left", joiner=lambda price, count: [price, count])
    assert [(label, t.name) for label, t in worth.inputs] == [
        ("left", f"{app_id}-prices-changelog"),
        ("right", f"{app_id}-stock-changelog"),
    ]

    async def main():
        async with app:
            for item, price in [("pen", 2), ("ink", 5), ("pad", 3)]:
                await prices_in.send(key=item, value=price)
            # pen last: once it shows, the ink delete (before it in the changelog) is applied
            for item, count in [("ink", 4), ("ink", 0), ("pen", 10)]:
                await stock_in.send(key=item, value=count)
            expected = {"pen": [2, 10], "ink": [5, None], "pad": [3, None]}
            await wait_for(lambda: worth.table.as_dict() == expected)
            return worth.stats

    stats = run(main())
    assert stats.records_left == 3  # one changelog record per price (one commit each key)
