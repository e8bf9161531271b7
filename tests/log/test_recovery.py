"""Crash recovery: torn tails, bit flips, lost indexes, kill -9 during appends, full disks."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from streamlog.log.clock import ManualClock
from streamlog.log.config import TopicConfig
from streamlog.log.partition_log import PartitionLog

from .logutil import make_batch, read_all_records

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD_ENV = {**os.environ, "PYTHONPATH": REPO}
CONFIG = TopicConfig.from_map({"segment.bytes": "10000", "index.interval.bytes": "1000"})


def fill(path, batches: int = 60) -> list:
    plog = PartitionLog.open(str(path), CONFIG, ManualClock())
    for i in range(batches):
        plog.append(make_batch(5, start=i * 5))
    records = read_all_records(plog)
    plog.close()
    return records


def crash_marker_off(path) -> None:
    """Make the next open behave as after a crash with nothing fsynced."""
    os.unlink(os.path.join(path, "clean-shutdown"))
    os.unlink(os.path.join(path, "recovery-point"))


def reopen(path) -> PartitionLog:
    return PartitionLog.open(str(path), CONFIG, ManualClock())


def last_segment_file(path) -> str:
    logs = sorted(n for n in os.listdir(path) if n.endswith(".log"))
    return os.path.join(path, logs[-1])


def test_torn_tail_is_cut_at_the_last_whole_batch(tmp_path) -> None:
    records = fill(tmp_path)
    crash_marker_off(tmp_path)
    log_file = last_segment_file(tmp_path)
    size = os.path.getsize(log_file)
    batch_size = len(make_batch(5, start=295))
    os.truncate(log_file, size - batch_size // 2)
    plog = reopen(tmp_path)
    assert not plog.recovery_report.clean
    assert plog.recovery_report.bytes_truncated == batch_size - batch_size // 2
    assert plog.log_end_offset == 295
    assert read_all_records(plog) == records[:295]
    assert plog.append(make_batch(1, start=295)).base_offset == 295
    plog.close()


def test_bit_flip_in_the_last_batch_is_never_served(tmp_path) -> None:
    records = fill(tmp_path)
    crash_marker_off(tmp_path)
    log_file = last_segment_file(tmp_path)
    size = os.path.getsize(log_file)
    with open(log_file, "r+b") as f:
        f.seek(size - 10)
        byte = f.read(1)
        f.seek(size - 10)
        f.write(bytes([byte[0] ^ 0x04]))
    plog = reopen(tmp_path)
    assert plog.log_end_offset == 295
    assert read_all_records(plog) == records[:295]
    plog.close()


def test_garbage_after_the_last_batch_is_truncated(tmp_path) -> None:
    records = fill(tmp_path)
    crash_marker_off(tmp_path)
    with open(last_segment_file(tmp_path), "ab") as f:
        f.write(os.urandom(1000))
    plog = reopen(tmp_path)
    assert plog.recovery_report.bytes_truncated == 1000
    assert read_all_records(plog) == records
    plog.close()


def test_deleted_index_files_are_rebuilt(tmp_path) -> None:
    records = fill(tmp_path)
    for name in os.listdir(tmp_path):
        if name.endswith(".index") or name.endswith(".timeindex"):
            os.unlink(os.path.join(tmp_path, name))
    plog = reopen(tmp_path)  # clean shutdown marker present: indexes rebuilt on demand
    assert read_all_records(plog) == records
    assert plog.offset_for_timestamp(1_003) == (3, 1_003)
    assert all(s.max_timestamp == 1_004 for s in plog.segments)
    assert all(len(s.offset_index) > 0 for s in plog.segments)
    plog.close()
    assert all(
        os.path.getsize(tmp_path / n) > 0 for n in os.listdir(tmp_path) if n.endswith(".index")
    )


def test_corrupt_index_file_is_rebuilt(tmp_path) -> None:
    records = fill(tmp_path)
    for name in os.listdir(tmp_path):
        if name.endswith(".index"):
            with open(tmp_path / name, "r+b") as f:
                f.write(b"\xff" * 8)
    plog = reopen(tmp_path)
    assert read_all_records(plog) == records
    assert plog.read(151).records[:8] == (150).to_bytes(8, "big")
    plog.close()


def test_corruption_in_an_earlier_unflushed_segment_drops_what_follows(tmp_path) -> None:
    records = fill(tmp_path)
    crash_marker_off(tmp_path)
    logs = sorted(n for n in os.listdir(tmp_path) if n.endswith(".log"))
    assert len(logs) >= 3
    victim = os.path.join(tmp_path, logs[1])
    with open(victim, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x00\x00\x00")
    plog = reopen(tmp_path)
    end = plog.log_end_offset
    assert plog.recovery_report.segments_deleted == len(logs) - 2
    assert 0 < end < 300
    assert read_all_records(plog) == records[:end]
    plog.close()


def test_recovery_point_limits_the_scan_to_unflushed_segments(tmp_path) -> None:
    plog = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    for i in range(60):
        plog.append(make_batch(5, start=i * 5))
    plog.flush()
    plog.append(make_batch(5, start=300))
    plog.close_unclean()
    reopened = reopen(tmp_path)
    assert reopened.recovery_report.segments_scanned == 1
    assert reopened.log_end_offset == 305
    reopened.close()


APPENDER = textwrap.dedent(
    """
    import sys
    from streamlog.log.clock import SystemClock
    from streamlog.log.config import TopicConfig
    from streamlog.log.partition_log import PartitionLog
    from streamlog.log.records import encode_batch

    path = sys.argv[1]
    cfg = TopicConfig.from_map({"segment.bytes": "50000", "flush.messages": "1"})
    log = PartitionLog.open(path, cfg, SystemClock())
    i = log.log_end_offset
    while True:
        entries = [(b"k%d" % (i + j), b"value-%d" % (i + j), 1000 + i + j, ())
                   for j in range(7)]
        result = log.append(encode_batch(entries))
        # flush.messages=1: the append returned after fsync, so this ack is durable
        print(result.last_offset, flush=True)
        i = result.last_offset + 1
    """
)


def test_kill_9_while_appending_loses_no_acknowledged_record(tmp_path) -> None:
    rng = random.Random(7)
    acked_total = -1
    for round_no in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env=CHILD_ENV,
        )
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        acked = -1
        wanted = rng.randint(200, 600)
        while acked < acked_total + wanted and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked = int(line)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        # Lines the child printed before dying are acknowledgements too.
        for line in child.stdout:
            acked = max(acked, int(line))
        assert acked > acked_total, f"round {round_no}: the child acknowledged nothing"
        acked_total = acked
        plog = reopen(tmp_path)
        assert not plog.recovery_report.clean
        records = read_all_records(plog)
        assert plog.log_end_offset >= acked_total + 1
        assert [r.offset for r in records] == list(range(plog.log_end_offset))
        for r in records:
            assert r.key == b"k%d" % r.offset
            assert r.value == b"value-%d" % r.offset
        plog.close()


FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from streamlog.log.clock import SystemClock
    from streamlog.log.config import TopicConfig
    from streamlog.log.partition_log import PartitionLog
    from streamlog.log.records import encode_batch

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path = sys.argv[1]
    cfg = TopicConfig.from_map({"segment.bytes": "10000000"})
    log = PartitionLog.open(path, cfg, SystemClock())
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
    acked = -1
    failures = 0
    for i in range(5000):
        entries = [(b"k", b"x" * 1000, 1, ()) for _ in range(3)]
        try:
            acked = log.append(encode_batch(entries)).last_offset
        except OSError as exc:
            failures += 1
            err = exc.errno
            break
    # The log is still usable for reads after the failed append.
    assert log.read(0).records
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    log.close()
    print(acked, failures, err)
    """
)


def test_a_full_disk_fails_the_append_and_loses_nothing(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=CHILD_ENV,
    )
    assert out.returncode == 0, out.stderr
    acked, failures, errno_value = map(int, out.stdout.split())
    # EFBIG from the file size limit, or ENOSPC for the short write before it
    assert failures == 1 and errno_value in (27, 28)
    plog = reopen(tmp_path)
    assert plog.log_end_offset == acked + 1
    records = read_all_records(plog)
    assert len(records) == acked + 1
    assert plog.recovery_report.clean
    plog.close()
