"""Offset and time index lookups against a sorted-list model (Hypothesis)."""

from __future__ import annotations

import bisect
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from streamlog.log.index import IndexCorruptError, OffsetIndex, TimeIndex


@st.composite
def batch_layouts(draw: st.DrawFn) -> list[tuple[int, int]]:
    """(last offset, position) of indexed batches: both strictly increasing."""
    n = draw(st.integers(min_value=0, max_value=60))
    gaps = draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    sizes = draw(st.lists(st.integers(61, 5000), min_size=n, max_size=n))
    out, offset, position = [], 99, 0
    for gap, size in zip(gaps, sizes, strict=True):
        offset += gap
        out.append((offset, position))
        position += size
    return out


@settings(max_examples=150, deadline=None)
@given(layout=batch_layouts(), probes=st.lists(st.integers(0, 4000), max_size=30))
def test_offset_index_lookup_matches_sorted_model(tmp_path_factory, layout, probes) -> None:
    path = os.path.join(tmp_path_factory.mktemp("idx"), "0.index")
    index = OffsetIndex(path, base_offset=100)
    for last_offset, position in layout:
        index.append(last_offset, position)
    offsets = [o for o, _ in layout]
    for probe in probes:
        i = bisect.bisect_right(offsets, probe)
        expected = layout[i - 1][1] if i else 0
        assert index.lookup(probe) == expected
    # The same answers after a round trip through the file.
    index.flush(fsync=False)
    reloaded = OffsetIndex(path, base_offset=100)
    reloaded.load(log_size=(layout[-1][1] + 1) if layout else 0)
    for probe in probes:
        assert reloaded.lookup(probe) == index.lookup(probe)
    index.close()
    reloaded.close()


@settings(max_examples=150, deadline=None)
@given(
    timestamps=st.lists(st.integers(0, 10_000), max_size=60),
    probes=st.lists(st.integers(-5, 10_005), max_size=30),
)
def test_time_index_never_skips_a_qualifying_record(tmp_path_factory, timestamps, probes):
    """Scanning from lookup(t) must never start past the first record with ts >= t."""
    path = os.path.join(tmp_path_factory.mktemp("tidx"), "0.timeindex")
    index = TimeIndex(path, base_offset=0)
    running = -1
    for offset, ts in enumerate(timestamps):
        running = max(running, ts)
        index.append(running, offset)
    for probe in probes:
        first = next((o for o, ts in enumerate(timestamps) if ts >= probe), None)
        start = index.lookup(probe)
        if first is not None:
            assert start <= first
        # Every record skipped really is older than the probe.
        assert all(ts < probe for ts in timestamps[:start])
    index.close()


def test_offset_index_load_rejects_entries_past_the_log(tmp_path) -> None:
    path = str(tmp_path / "0.index")
    index = OffsetIndex(path, base_offset=0)
    index.append(5, 0)
    index.append(9, 4096)
    index.flush(fsync=False)
    index.close()
    reloaded = OffsetIndex(path, base_offset=0)
    try:
        reloaded.load(log_size=1000)
    except IndexCorruptError as exc:
        assert "past the log" in str(exc)
    else:
        raise AssertionError("an entry beyond the log size must be refused")
    finally:
        reloaded.close()


def test_offset_index_truncate_drops_entries_at_and_after_position(tmp_path) -> None:
    index = OffsetIndex(str(tmp_path / "0.index"), base_offset=0)
    for i in range(10):
        index.append(i * 10 + 9, i * 1000)
    index.truncate_to_position(5000)
    assert len(index) == 5
    assert index.lookup(10_000) == 4000
    index.close()
