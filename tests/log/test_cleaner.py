"""Compaction: the latest value per key survives with its offset; tombstones expire;
a crash at any step of the swap leaves a readable log with the same latest values."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import pytest

from streamlog.log.cleaner import LogCleaner
from streamlog.log.clock import ManualClock
from streamlog.log.config import TopicConfig
from streamlog.log.partition_log import PartitionLog
from streamlog.log.records import encode_batch

from .logutil import read_all_records

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COMPACT = {
    "cleanup.policy": "compact",
    "segment.bytes": "3000",
    "delete.retention.ms": "10000",
    "min.cleanable.dirty.ratio": "0.01",
}


def open_log(path, clock) -> PartitionLog:
    return PartitionLog.open(str(path), TopicConfig.from_map(COMPACT), clock)


def write_history(plog: PartitionLog, rng: random.Random, n: int, keys: int, clock) -> list:
    """Append ``n`` random upserts/deletes; return the (offset, key, value) history."""
    history = []
    i = 0
    while i < n:
        size = rng.randint(1, 5)
        entries = []
        for _ in range(size):
            key = f"key-{rng.randrange(keys)}".encode()
            value = None if rng.random() < 0.15 else f"val-{i}".encode()
            entries.append((key, value, clock.time_ms(), ()))
            i += 1
        result = plog.append(encode_batch(entries))
        for j, (key, value, _, _) in enumerate(entries):
            history.append((result.base_offset + j, key, value))
    return history


def latest_per_key(history) -> dict[bytes, tuple[int, bytes | None]]:
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    for offset, key, value in history:
        latest[key] = (offset, value)
    return latest


def check_compacted(plog: PartitionLog, history, active_base: int, tombstones_kept: bool):
    """Below the active segment: one record per key, the latest, at its original offset."""
    records = read_all_records(plog)
    by_offset = {offset: (key, value) for offset, key, value in history}
    for r in records:
        assert by_offset[r.offset] == (r.key, r.value), "a record moved or changed"
    latest = latest_per_key(history)
    cleaned = [r for r in records if r.offset < active_base]
    keys_seen = [r.key for r in cleaned]
    assert len(keys_seen) == len(set(keys_seen)), "a key survived twice in the cleaned part"
    for key, (offset, value) in latest.items():
        if offset >= active_base:
            continue
        survivors = [r for r in cleaned if r.key == key]
        if value is None and not tombstones_kept:
            assert survivors == []
        else:
            assert [(s.offset, s.value) for s in survivors] == [(offset, value)]
    # The view a consumer rebuilds from the whole log equals the true latest state.
    state: dict[bytes, bytes | None] = {}
    for r in records:
        state[r.key] = r.value
    assert {k: v for k, v in state.items() if v is not None} == {
        k: v for k, (_, v) in latest.items() if v is not None
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_latest_value_per_key_survives_with_offsets_unchanged(tmp_path, seed) -> None:
    clock = ManualClock()
    plog = open_log(tmp_path, clock)
    rng = random.Random(seed)
    history = write_history(plog, rng, 600, keys=40, clock=clock)
    before = plog.size_bytes
    cleaner = LogCleaner(clock)
    assert cleaner.needs_cleaning(plog)
    result = cleaner.clean(plog)
    assert result is not None and result.records_removed > 0
    assert plog.size_bytes < before
    assert plog.log_end_offset == len(history)
    check_compacted(plog, history, plog.active_segment.base_offset, tombstones_kept=True)
    # A second pass after more writes only ever narrows things further.
    history += write_history(plog, rng, 300, keys=40, clock=clock)
    cleaner.clean(plog)
    check_compacted(plog, history, plog.active_segment.base_offset, tombstones_kept=True)
    plog.close()
    reopened = open_log(tmp_path, clock)
    check_compacted(reopened, history, reopened.active_segment.base_offset, True)
    reopened.close()


def test_tombstones_are_removed_after_delete_retention(tmp_path) -> None:
    clock = ManualClock()
    plog = open_log(tmp_path, clock)
    rng = random.Random(11)
    history = write_history(plog, rng, 500, keys=30, clock=clock)
    plog.roll()  # make everything cleanable
    cleaner = LogCleaner(clock)
    cleaner.clean(plog)
    tombstones = [r for r in read_all_records(plog) if r.value is None]
    assert tombstones, "the first pass keeps tombstones (consumers may not have seen them)"
    clock.advance(5_000)
    assert not cleaner.needs_cleaning(plog)
    clock.advance(6_000)  # past delete.retention.ms from the first pass
    assert cleaner.needs_cleaning(plog)
    result = cleaner.clean(plog)
    assert result is not None and result.tombstones_removed == len(tombstones)
    assert [r for r in read_all_records(plog) if r.value is None] == []
    check_compacted(plog, history, plog.log_end_offset, tombstones_kept=False)


def test_min_compaction_lag_leaves_young_segments_dirty(tmp_path) -> None:
    clock = ManualClock()
    cfg = TopicConfig.from_map({**COMPACT, "min.compaction.lag.ms": "60000"})
    plog = PartitionLog.open(str(tmp_path), cfg, clock)
    for i in range(100):
        plog.append(encode_batch([(b"same", b"v%d" % i, clock.time_ms(), ())]))
    cleaner = LogCleaner(clock)
    assert cleaner.clean(plog) is None
    clock.advance(61_000)
    assert cleaner.clean(plog) is not None
    records = read_all_records(plog)
    below_active = [r for r in records if r.offset < plog.active_segment.base_offset]
    assert len(below_active) <= 1
    plog.close()


def test_appends_continue_while_the_cleaner_works(tmp_path) -> None:
    """The cleaner takes the log lock only for the swap: a concurrent appender proceeds."""
    import threading

    clock = ManualClock()
    plog = open_log(tmp_path, clock)
    history = write_history(plog, random.Random(5), 2000, keys=50, clock=clock)
    appended: list[int] = []
    stop = threading.Event()

    def appender() -> None:
        i = 0
        while not stop.is_set() and i < 5000:
            r = plog.append(encode_batch([(b"new-%d" % i, b"x", clock.time_ms(), ())]))
            appended.append(r.base_offset)
            i += 1

    thread = threading.Thread(target=appender)
    thread.start()
    LogCleaner(clock).clean(plog)
    stop.set()
    thread.join()
    assert appended == list(range(len(history), len(history) + len(appended)))
    assert plog.log_end_offset == len(history) + len(appended)
    plog.close()


CRASHER = textwrap.dedent(
    """
    import os, sys
    from streamlog.log.cleaner import LogCleaner
    from streamlog.log.clock import ManualClock
    from streamlog.log.config import TopicConfig
    from streamlog.log.partition_log import PartitionLog
    path, step, cfg = sys.argv[1], sys.argv[2], eval(sys.argv[3])

    def on_step(name):
        if name == step:
            os._exit(9)  # die at this exact point, as a crash would

    log = PartitionLog.open(path, TopicConfig.from_map(cfg), ManualClock())
    LogCleaner(ManualClock(), on_step=on_step).clean(log)
    sys.exit(0)
    """
)


@pytest.mark.parametrize("step", ["cleaned", "swap", "deleted"])
def test_a_crash_at_any_step_of_compaction_leaves_a_readable_log(tmp_path, step) -> None:
    clock = ManualClock()
    plog = open_log(tmp_path, clock)
    history = write_history(plog, random.Random(3), 600, keys=20, clock=clock)
    plog.close()
    out = subprocess.run(
        [sys.executable, "-c", CRASHER, str(tmp_path), step, repr(COMPACT)],
        env={**os.environ, "PYTHONPATH": REPO},
        timeout=60,
        capture_output=True,
    )
    assert out.returncode == 9, out.stderr
    leftovers = [
        n for n in os.listdir(tmp_path) if n.split(".")[-1] in ("cleaned", "swap", "deleted")
    ]
    assert leftovers, "the crash should have left cleaner files behind"
    reopened = open_log(tmp_path, clock)
    assert not [
        n for n in os.listdir(tmp_path) if n.split(".")[-1] in ("cleaned", "swap", "deleted")
    ]
    assert reopened.log_end_offset == len(history)
    records = read_all_records(reopened)
    by_offset = {o: (k, v) for o, k, v in history}
    assert all(by_offset[r.offset] == (r.key, r.value) for r in records)
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets))
    state: dict[bytes, bytes | None] = {}
    for r in records:
        state[r.key] = r.value
    latest = latest_per_key(history)
    assert {k: v for k, v in state.items() if v is not None} == {
        k: v for k, (_, v) in latest.items() if v is not None
    }
    # And compaction can run again to completion.
    assert LogCleaner(clock).clean(reopened) is not None
    check_compacted(reopened, history, reopened.active_segment.base_offset, True)
    reopened.close()
