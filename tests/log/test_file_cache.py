"""Segment files are opened on first use and at most a cache's capacity are open at once.

Descriptors are counted in /proc/self/fd (this process's real open files), so these
tests see what the kernel sees, not what the cache believes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from streamlog.log.clock import ManualClock
from streamlog.log.config import TopicConfig
from streamlog.log.file_cache import CachedFile, FileCache
from streamlog.log.manager import LogManager
from streamlog.log.partition_log import PartitionLog

from .logutil import make_batch, read_all_records

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def open_files_under(path: str) -> int:
    """How many descriptors of this process point at files below ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue  # the descriptor listdir itself used
        if target.startswith(path):
            count += 1
    return count


def test_files_beyond_capacity_are_closed_least_recently_used_first(tmp_path) -> None:
    cache = FileCache(3)
    files = [CachedFile(str(tmp_path / f"f{i}"), cache) for i in range(10)]
    for i, f in enumerate(files):
        with f as fd:
            os.pwrite(fd, b"data %d" % i, 0)
        assert cache.open_count == min(i + 1, 3)
        assert open_files_under(str(tmp_path)) == min(i + 1, 3)
    assert [f.is_open for f in files] == [False] * 7 + [True] * 3
    # Closed files reopen on use with everything written through the old descriptor.
    for i, f in enumerate(files):
        with f as fd:
            assert os.pread(fd, 16, 0) == b"data %d" % i
    assert open_files_under(str(tmp_path)) == 3
    for f in files:
        f.close()
    assert cache.open_count == 0 and open_files_under(str(tmp_path)) == 0


def test_a_file_in_use_is_never_closed_under_its_user(tmp_path) -> None:
    cache = FileCache(1)
    a = CachedFile(str(tmp_path / "a"), cache)
    b = CachedFile(str(tmp_path / "b"), cache)
    with a as fd_a:
        os.pwrite(fd_a, b"aaaa", 0)
        with b as fd_b:  # over capacity while a is pinned: both stay open
            os.pwrite(fd_b, b"bbbb", 0)
            assert cache.open_count == 2
        assert os.pread(fd_a, 4, 0) == b"aaaa"  # a's descriptor is still a's
    with b as fd_b:
        assert os.pread(fd_b, 4, 0) == b"bbbb"
    assert cache.open_count == 1 and not a.is_open


def test_rename_keeps_the_open_descriptor(tmp_path) -> None:
    cache = FileCache(2)
    f = CachedFile(str(tmp_path / "x.log"), cache)
    with f as fd:
        os.pwrite(fd, b"12345", 0)
    f.rename(str(tmp_path / "x.log.deleted"))
    with f as fd:
        assert os.pread(fd, 5, 0) == b"12345"
    assert os.listdir(tmp_path) == ["x.log.deleted"]
    f.close()


def test_an_idle_partition_holds_no_descriptor(tmp_path) -> None:
    directory = str(tmp_path / "t-0")
    config = TopicConfig.from_map({"segment.bytes": "2000"})
    cache = FileCache(4)
    plog = PartitionLog.open(directory, config, ManualClock(), cache)
    for i in range(30):
        plog.append(make_batch(5, start=5 * i))
    assert len(plog.segments) == 10
    assert open_files_under(directory) <= 4
    plog.flush()
    # Another user of the cache takes its room: the partition keeps no descriptor at all.
    others = [CachedFile(str(tmp_path / f"other{i}"), cache) for i in range(4)]
    for other in others:
        with other:
            pass
    assert open_files_under(directory) == 0
    assert not any(segment.holds_descriptor for segment in plog.segments)
    # ... and reads every segment back on demand.
    assert [r.offset for r in read_all_records(plog)] == list(range(150))
    assert open_files_under(directory) <= 4
    plog.close()
    for other in others:
        other.close()
    assert open_files_under(str(tmp_path)) == 0


def test_many_partitions_stay_within_the_cache(tmp_path) -> None:
    data = str(tmp_path / "data")
    with LogManager.open(data, clock=ManualClock(), max_open_segment_files=8) as m:
        m.create_topic("wide", 300)
        assert open_files_under(data) <= 8 + 1  # + the directory lock
        for p in range(300):
            m.append("wide", p, make_batch(2, start=2 * p))
        assert open_files_under(data) <= 8 + 1
        for p in range(300):
            records = read_all_records(m.partition("wide", p))
            assert [r.key for r in records] == [b"k%d" % (2 * p), b"k%d" % (2 * p + 1)]
        assert m.file_cache.open_count <= 8
    with LogManager.open(data, clock=ManualClock(), max_open_segment_files=8) as m:
        assert m.describe_topic("wide").partitions[299].log_end_offset == 2
        assert open_files_under(data) <= 8 + 1


def test_thousands_of_partitions_under_a_low_descriptor_limit(tmp_path) -> None:
    """With ``ulimit -n 256`` a log of 3,000 partitions is created, written and read back
    (the default cache capacity is a quarter of the limit); before, creating a topic
    needed three descriptors per partition and failed with EMFILE."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        sys.path.insert(0, {REPO!r})
        from streamlog.log.manager import LogManager
        from tests.log.logutil import make_batch, read_all_records
        data = {str(tmp_path / "data")!r}
        with LogManager.open(data) as m:
            assert m.file_cache.capacity == 64, m.file_cache.capacity
            for t in range(3):
                m.create_topic(f"t{{t}}", 1000)
            for t in range(3):
                for p in range(1000):
                    m.append(f"t{{t}}", p, make_batch(1, start=p))
        with LogManager.open(data) as m:
            for t in range(3):
                for p in range(1000):
                    [record] = read_all_records(m.partition(f"t{{t}}", p))
                    assert record.key == b"k%d" % p
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_failed_create_leaves_no_partition_directory(tmp_path) -> None:
    data = str(tmp_path / "data")
    with LogManager.open(data, clock=ManualClock()) as m:
        blocker = os.path.join(data, "orders-7")
        with open(blocker, "w") as f:  # a file where partition 7's directory must go
            f.write("in the way")
        with pytest.raises(OSError):
            m.create_topic("orders", 12)
        assert not m.topic_exists("orders")
        assert sorted(e for e in os.listdir(data) if e.startswith("orders")) == ["orders-7"]
        os.unlink(blocker)
        assert len(m.create_topic("orders", 12).partitions) == 12


def test_a_failed_add_partitions_keeps_the_topic_as_it_was(tmp_path) -> None:
    data = str(tmp_path / "data")
    with LogManager.open(data, clock=ManualClock()) as m:
        m.create_topic("orders", 2)
        m.append("orders", 1, make_batch(3))
        with open(os.path.join(data, "orders-4"), "w") as f:
            f.write("in the way")
        with pytest.raises(OSError):
            m.add_partitions("orders", 6)
        assert m.partition_count("orders") == 2
        assert sorted(e for e in os.listdir(data) if e.startswith("orders")) == [
            "orders-0",
            "orders-1",
            "orders-4",
        ]
        assert [r.offset for r in read_all_records(m.partition("orders", 1))] == [0, 1, 2]
    with LogManager.open(data, clock=ManualClock()) as m:
        assert m.partition_count("orders") == 2
