"""``streamlog dump-log`` run as a real command over a real data directory."""

from __future__ import annotations

import os
import subprocess
import sys

from streamlog.log.clock import ManualClock
from streamlog.log.manager import LogManager
from streamlog.log.records import encode_batch

STREAMLOG = os.path.join(os.path.dirname(sys.executable), "streamlog")


def test_dump_log_prints_batches_and_records_and_flags_corruption(tmp_path) -> None:
    with LogManager.open(str(tmp_path), clock=ManualClock()) as m:
        m.create_topic("t", 1)
        m.append("t", 0, encode_batch([(b"k1", b"v1", 10, ()), (b"k2", None, 11, ())]))
        m.append("t", 0, encode_batch([(None, b"v3", 12, (("h", b"x"),))]))
    part = tmp_path / "t-0"
    out = subprocess.run(
        [STREAMLOG, "dump-log", "--records", str(part)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "baseOffset: 0 lastOffset: 1 count: 2" in lines[1]
    assert lines[1].endswith("valid")
    assert "offset: 1 timestamp: 11 key: b'k2' value: None" in out.stdout
    assert "offset: 2 timestamp: 12 key: None value: b'v3' headers: [('h', b'x')]" in out.stdout
    log_file = part / "00000000000000000000.log"
    with open(log_file, "r+b") as f:
        f.seek(-2, os.SEEK_END)
        f.write(b"\xff\xff")
    bad = subprocess.run(
        [STREAMLOG, "dump-log", str(log_file)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert "INVALID" in bad.stdout and "CRC" in bad.stdout
