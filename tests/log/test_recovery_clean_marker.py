"""Damage found after a *clean* shutdown: the marker never makes recovery trust a bad tail.

Each test closes a log cleanly (the ``clean-shutdown`` marker is written), damages the
files as a disk, an operator or another program could while the broker is stopped, then
reopens it and checks offsets and record contents: right after the restart, after a
further append and a clean restart, and after a further append and a crash.
"""

from __future__ import annotations

import logging
import os
import struct

import pytest

from streamlog.log.clock import ManualClock
from streamlog.log.config import TopicConfig
from streamlog.log.errors import CorruptRecordError
from streamlog.log.partition_log import PartitionLog

from .logutil import make_batch, read_all_records

CONFIG = TopicConfig.from_map({"segment.bytes": "10000", "index.interval.bytes": "1000"})
BATCHES = 60
PER_BATCH = 5
END = BATCHES * PER_BATCH
BATCH_SIZE = len(make_batch(PER_BATCH, start=END - PER_BATCH))
LOADER_LOG = "streamlog.log.partition_log"


def fill(path) -> list:
    plog = PartitionLog.open(str(path), CONFIG, ManualClock())
    for i in range(BATCHES):
        plog.append(make_batch(PER_BATCH, start=i * PER_BATCH))
    records = read_all_records(plog)
    plog.close()
    assert os.path.exists(os.path.join(path, "clean-shutdown"))
    return records


def reopen(path) -> PartitionLog:
    return PartitionLog.open(str(path), CONFIG, ManualClock())


def segment_files(path) -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".log"))


def batch_positions(log_file: str) -> list[int]:
    """Start positions of the (undamaged) batches of ``log_file``."""
    with open(log_file, "rb") as f:
        data = f.read()
    positions, pos = [], 0
    while pos < len(data):
        positions.append(pos)
        pos += struct.unpack_from(">i", data, pos + 8)[0] + 12
    return positions


def set_length(log_file: str, position: int, length: int) -> None:
    with open(log_file, "r+b") as f:
        f.seek(position + 8)
        f.write(struct.pack(">i", length))


def flip_bit(log_file: str, position: int) -> None:
    with open(log_file, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ 0x10]))


def damage_last_batch(log_file: str, form: str) -> None:
    last = batch_positions(log_file)[-1]
    size = os.path.getsize(log_file)
    if form == "negative length":
        set_length(log_file, last, -12)  # a whole batch of 0 bytes: the old loop spun here
    elif form == "zero length":
        set_length(log_file, last, 0)
    elif form == "oversized length":
        set_length(log_file, last, 0x7FFFFFF0)  # must not be read (2 GiB) or trusted
    elif form == "truncated tail":
        os.truncate(log_file, size - BATCH_SIZE // 2)
    elif form == "bit flip":
        flip_bit(log_file, size - 10)  # inside the last record: only the CRC sees it
    else:
        raise ValueError(form)


FORMS = ["negative length", "zero length", "oversized length", "truncated tail", "bit flip"]


@pytest.mark.parametrize("form", FORMS)
def test_a_damaged_tail_is_cut_to_the_last_whole_batch_despite_the_marker(
    tmp_path, caplog, form
) -> None:
    records = fill(tmp_path)
    log_file = segment_files(tmp_path)[-1]
    damage_last_batch(log_file, form)
    kept = END - PER_BATCH

    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        plog = reopen(tmp_path)
    assert plog.recovery_report.clean
    assert plog.recovery_report.bytes_truncated > 0
    assert plog.log_end_offset == kept
    assert read_all_records(plog) == records[:kept]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert log_file in warnings[0] and f"(offset {kept})" in warnings[0]

    # The next append gets the offset a consumer at the cut expects...
    assert plog.append(make_batch(1, start=kept)).base_offset == kept
    plog.close()
    plog = reopen(tmp_path)
    assert plog.recovery_report.bytes_truncated == 0
    assert plog.log_end_offset == kept + 1
    got = read_all_records(plog)
    assert got[:kept] == records[:kept]
    assert (got[-1].offset, got[-1].key) == (kept, f"k{kept}".encode())

    # ...and what is acknowledged after the cut survives a crash (no marker: opening
    # removed it; no recovery point: the whole active segment is scanned).
    assert plog.append(make_batch(2, start=kept + 1)).base_offset == kept + 1
    plog.close_unclean()
    os.unlink(os.path.join(tmp_path, "recovery-point"))
    plog = reopen(tmp_path)
    assert not plog.recovery_report.clean
    assert plog.recovery_report.bytes_truncated == 0
    assert plog.log_end_offset == kept + 3
    assert [r.offset for r in read_all_records(plog)] == list(range(kept + 3))
    plog.close()


def test_garbage_appended_after_a_clean_shutdown_is_cut(tmp_path, caplog) -> None:
    records = fill(tmp_path)
    log_file = segment_files(tmp_path)[-1]
    size = os.path.getsize(log_file)
    with open(log_file, "ab") as f:
        f.write(b"\x00" * 8 + struct.pack(">i", -12) + os.urandom(200))
    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        plog = reopen(tmp_path)
    assert plog.recovery_report.bytes_truncated == 212
    assert os.path.getsize(log_file) == size
    assert read_all_records(plog) == records
    assert f"at position {size} (offset {END})" in caplog.text
    assert plog.append(make_batch(1, start=END)).base_offset == END
    plog.close()


def test_an_index_pointing_past_a_truncated_file_is_rebuilt_and_the_cut_logged(
    tmp_path, caplog
) -> None:
    records = fill(tmp_path)
    log_file = segment_files(tmp_path)[-1]
    positions = batch_positions(log_file)
    os.truncate(log_file, positions[1] + 30)  # below the last index entries
    with caplog.at_level(logging.WARNING, logger=LOADER_LOG):
        plog = reopen(tmp_path)
    first = int(os.path.basename(log_file)[:20])
    assert plog.log_end_offset == first + PER_BATCH
    assert read_all_records(plog) == records[: first + PER_BATCH]
    assert f"(offset {first + PER_BATCH})" in caplog.text
    plog.close()


def test_a_damaged_tail_of_a_sealed_segment_leaves_later_segments_alone(tmp_path) -> None:
    records = fill(tmp_path)
    files = segment_files(tmp_path)
    assert len(files) >= 3
    second = int(os.path.basename(files[1])[:20])
    damage_last_batch(files[0], "bit flip")
    plog = reopen(tmp_path)
    lost = range(second - PER_BATCH, second)  # the first segment's last batch
    assert plog.log_end_offset == END
    assert read_all_records(plog) == [r for r in records if r.offset not in lost]
    assert plog.read(lost[0]).records[:8] == second.to_bytes(8, "big")  # a gap, skipped
    plog.close()


def test_a_bad_length_inside_a_trusted_segment_is_an_error_not_a_spin(tmp_path) -> None:
    fill(tmp_path)
    log_file = segment_files(tmp_path)[-1]
    first = int(os.path.basename(log_file)[:20])
    set_length(log_file, 0, -12)  # before the last index entry: the tail check passes
    plog = reopen(tmp_path)
    assert plog.recovery_report.bytes_truncated == 0
    with pytest.raises(CorruptRecordError, match="claims 0 bytes"):
        plog.read(first)
    assert plog.read(first - 1).records  # the segments before it still serve
    plog.close()
