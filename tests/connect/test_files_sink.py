"""FileSink against real files: lines, rotation by size and time, durability on flush,
discard, redelivery skipped, a crash repaired at start (kill -9 of a writing process, and
each crash point of the flush steps), bad records, the path's lock."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamlog.connect import (
    BadRecordError,
    ConnectorConfigError,
    SinkError,
    SinkRecord,
    SinkUnavailableError,
)
from streamlog.connect.files import FileSink, sink_from_config

ROOT = Path(__file__).resolve().parents[2]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def rec(offset: int, value: Any, partition: int = 0, topic: str = "t") -> SinkRecord:
    return SinkRecord(topic, partition, offset, 0, None, value)


def data_files(directory: Path, stem: str = "out") -> list[Path]:
    """The rotated files in order, then the active one."""
    rotated = sorted(p for p in directory.glob(f"{stem}.0*"))
    active = [p for p in directory.glob(f"{stem}.*") if p not in rotated and p.name.count(".") == 1]
    return rotated + active


def lines_of(directory: Path, stem: str = "out") -> list[Any]:
    out = []
    for path in data_files(directory, stem):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


async def session(sink: FileSink, *batches: list[SinkRecord], flush: bool = True) -> FileSink:
    await sink.start()
    for batch in batches:
        await sink.write(batch)
    if flush:
        await sink.flush()
    await sink.close()
    return sink


def test_lines_are_durable_after_flush_and_state_records_offsets(tmp_path):
    sink = FileSink(tmp_path / "out.jsonl")
    batch = [rec(o, {"o": o, "text": 'é,"x"'}) for o in range(10)] + [rec(3, None, 1)]
    run(session(sink, batch))
    assert lines_of(tmp_path) == [{"o": o, "text": 'é,"x"'} for o in range(10)]
    state = json.loads((tmp_path / ".out.jsonl.sink").read_text())
    assert state["offsets"] == {"t": {"0": 9, "1": 3}}
    assert state["size"] == (tmp_path / "out.jsonl").stat().st_size
    status = sink.status()
    assert (status["flushed"], status["pending"], status["tombstones"]) == (11, 0, 1)


def test_values_as_json_bytes_and_str_are_written_as_json(tmp_path):
    batch = [rec(0, b'{"a": 1}'), rec(1, '{"b": [2]}'), rec(2, 5)]
    run(session(FileSink(tmp_path / "out.jsonl"), batch))
    assert lines_of(tmp_path) == [{"a": 1}, {"b": [2]}, 5]


def test_rotation_by_size_keeps_every_file_under_the_limit(tmp_path):
    sink = FileSink(tmp_path / "out.jsonl", max_bytes=200)
    batches = [[rec(o, {"o": o}) for o in range(b * 30, b * 30 + 30)] for b in range(4)]
    run(session(sink, *batches))
    files = data_files(tmp_path)
    assert [p.name for p in files[:2]] == ["out.000001.jsonl", "out.000002.jsonl"]
    assert files[-1].name == "out.jsonl"
    assert all(p.stat().st_size <= 200 for p in files)
    assert [line["o"] for line in lines_of(tmp_path)] == list(range(120))
    assert sink.status()["rotations"] == len(files) - 1


def test_rotation_by_age_on_flush(tmp_path):
    now = [1000.0]
    sink = FileSink(tmp_path / "out.jsonl", max_age=60, clock=lambda: now[0])

    async def scenario() -> None:
        await sink.start()
        await sink.write([rec(0, {"o": 0})])
        await sink.flush()
        now[0] += 59
        await sink.write([rec(1, {"o": 1})])
        await sink.flush()
        assert not (tmp_path / "out.000001.jsonl").exists()
        now[0] += 1
        await sink.flush()  # nothing new: the file is old enough all the same
        assert (tmp_path / "out.000001.jsonl").exists()
        assert not (tmp_path / "out.jsonl").exists()  # no empty active file
        await sink.write([rec(2, {"o": 2})])
        await sink.flush()
        await sink.close()

    run(scenario())
    assert [p.name for p in data_files(tmp_path)] == ["out.000001.jsonl", "out.jsonl"]
    assert [x["o"] for x in lines_of(tmp_path)] == [0, 1, 2]


def test_discard_forgets_buffered_and_written_bytes(tmp_path):
    sink = FileSink(tmp_path / "out.jsonl", buffer_bytes=64)

    async def scenario() -> None:
        await sink.start()
        await sink.write([rec(o, {"o": o}) for o in range(3)])
        await sink.flush()
        await sink.write([rec(o, {"o": o, "pad": "y" * 30}) for o in range(3, 20)])
        assert (tmp_path / "out.jsonl").stat().st_size > 30  # written, not durable
        await sink.discard()
        await sink.write([rec(o, {"o": o}) for o in range(3, 5)])  # the rewind's records
        await sink.flush()
        await sink.close()

    run(scenario())
    assert lines_of(tmp_path) == [{"o": o} for o in range(5)]


def test_redelivered_records_are_skipped_after_a_restart(tmp_path):
    path = tmp_path / "out.jsonl"
    run(session(FileSink(path), [rec(o, {"o": o}) for o in range(10)], [rec(0, {"p": 0}, 1)]))
    again = FileSink(path)  # the offsets 6..9 and p1@0 were flushed, not committed
    batches = [rec(o, {"o": o}) for o in range(6, 12)], [rec(0, {"p": 0}, 1), rec(1, {"p": 1}, 1)]
    run(session(again, *batches))
    assert lines_of(tmp_path) == [
        *({"o": o} for o in range(10)),
        {"p": 0},
        {"o": 10},
        {"o": 11},
        {"p": 1},
    ]
    assert again.status()["skipped_redelivered"] == 5


def test_bytes_written_after_the_last_flush_are_cut_at_start(tmp_path):
    path = tmp_path / "out.jsonl"
    run(session(FileSink(path), [rec(o, {"o": o}) for o in range(3)]))
    with open(path, "ab") as out:
        out.write(b'{"o": 3}\n{"o": 4, "half')  # a crash after writing, before the state
    run(session(FileSink(path), [rec(o, {"o": o}) for o in range(3, 5)]))
    assert lines_of(tmp_path) == [{"o": o} for o in range(5)]


def test_a_rename_whose_state_was_not_written_is_recognised(tmp_path):
    path = tmp_path / "out.jsonl"
    run(session(FileSink(path), [rec(o, {"o": o}) for o in range(3)]))
    os.rename(path, tmp_path / "out.000001.jsonl")  # step 3's rename, then a crash
    run(session(FileSink(path), [rec(o, {"o": o}) for o in range(2, 6)]))
    assert [p.name for p in data_files(tmp_path)] == ["out.000001.jsonl", "out.jsonl"]
    assert lines_of(tmp_path) == [{"o": o} for o in range(6)]


@pytest.mark.slow
@pytest.mark.parametrize("kills", [3])
def test_kill_9_while_writing_loses_and_repeats_nothing(tmp_path, kills):
    """A real process killed with SIGKILL again and again while it writes, rotates and
    flushes; each run starts over from a batch before its last flush (a commit that did
    not happen): every offset is in the files exactly once, in order."""
    path = tmp_path / "out.jsonl"
    total, batch = 30_000, 250
    committed = -1
    for round_ in range(kills + 1):
        start = max(0, committed + 1 - batch)  # redelivered: the last batch again
        args = [str(path), "jsonl", str(start), str(total), str(batch), "50000"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.connect.filesinkdriver", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        flushes = 0
        try:
            for line in proc.stdout:
                if line.startswith("flushed "):
                    committed = int(line.split()[1])
                    flushes += 1
                    if round_ < kills and flushes == 8 + round_ * 3:
                        proc.send_signal(signal.SIGKILL)  # mid-batch: writing the next one
                        break
        finally:
            proc.wait(timeout=60)
            proc.stdout.close()
        if round_ < kills:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 0
    offsets = [line["offset"] for line in lines_of(tmp_path)]
    assert len(offsets) == total and offsets == list(range(total))
    assert len(data_files(tmp_path)) > 10  # it rotated all along


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_crash_after_a_rotation_inside_a_batch_loses_nothing(tmp_path, fmt):
    """A batch that fills the file rotates it part-way (a flush of what came before), then
    the process dies before the batch's own flush: the next run, given the batch again,
    writes the lines that were only buffered (found lost by the end-to-end test)."""
    path = tmp_path / f"out.{fmt}"
    driver = [sys.executable, "-m", "tests.connect.filesinkdriver", str(path), fmt]
    died = subprocess.run([*driver, "0", "40", "20", "600", "1"], cwd=ROOT, timeout=60)
    assert died.returncode == -signal.SIGKILL
    assert (tmp_path / f"out.000001.{fmt}").exists()  # it rotated inside the batch
    done = subprocess.run([*driver, "0", "40", "20", "600"], cwd=ROOT, timeout=60)
    assert done.returncode == 0
    offsets = []
    for file in data_files(tmp_path):
        if fmt == "jsonl":
            offsets += [json.loads(line)["offset"] for line in file.read_text().splitlines()]
        else:
            with open(file, newline="") as f:
                offsets += [int(row["offset"]) for row in csv.DictReader(f)]
    assert offsets == list(range(40))


def test_csv_header_in_each_file_and_columns_kept_across_restarts(tmp_path):
    path = tmp_path / "out.csv"
    first = [rec(o, {"id": o, "name": f"n,{o}", "tags": ["a"]}) for o in range(6)]
    run(session(FileSink(path, format="csv", max_bytes=80), first))
    run(session(FileSink(path, format="csv", max_bytes=80), [rec(6, {"name": "late", "id": 6})]))
    rows = []
    for p in data_files(tmp_path):
        with open(p, newline="") as f:
            got = list(csv.reader(f))
        assert got[0] == ["id", "name", "tags"]
        rows += got[1:]
    assert rows == [*([str(o), f"n,{o}", '["a"]'] for o in range(6)), ["6", "late", ""]]


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path):
    path = tmp_path / "out.csv"
    big = "y" * 100
    records = [rec(0, {"v": "a"}), rec(1, {"v": big}), rec(2, {"v": "b"})]
    run(session(FileSink(path, format="csv", max_bytes=20), records))
    contents = [p.read_text() for p in data_files(tmp_path)]
    assert contents == ["v\na\n", f"v\n{big}\n", "v\nb\n"]  # no file of a header alone


def test_csv_columns_changed_in_the_config_start_a_new_file(tmp_path):
    path = tmp_path / "out.csv"
    run(session(FileSink(path, format="csv", columns=["a"]), [rec(0, {"a": 1})]))
    run(session(FileSink(path, format="csv", columns=["a", "b"]), [rec(1, {"a": 2, "b": 3})]))
    assert (tmp_path / "out.000001.csv").read_text() == "a\n1\n"
    assert path.read_text() == "a,b\n2,3\n"


def test_bad_records_refuse_the_whole_batch(tmp_path):
    sink = FileSink(tmp_path / "out.csv", format="csv", columns=["id"])

    async def scenario() -> None:
        await sink.start()
        with pytest.raises(BadRecordError, match=r"t\[0\]@1: fields \['other'\]"):
            await sink.write([rec(0, {"id": 1}), rec(1, {"id": 2, "other": 3})])
        with pytest.raises(BadRecordError, match="not JSON"):
            await sink.write([rec(2, b"\xff not json")])
        with pytest.raises(BadRecordError, match="must be an object"):
            await sink.write([rec(3, [1, 2])])
        await sink.write([rec(0, {"id": 1})])  # one at a time: the good ones go through
        await sink.write([rec(4, {"id": 4})])
        await sink.flush()
        # delivered again after a crash: the bad record, below the durable offset, is
        # skipped like its neighbours rather than refused a second time
        await sink.write([rec(1, {"id": 2, "other": 3}), rec(5, {"id": 5})])
        await sink.flush()
        await sink.close()

    run(scenario())
    assert (tmp_path / "out.csv").read_text() == "id\n1\n4\n5\n"
    assert sink.status()["errors"] == 3


def test_a_second_sink_on_the_same_path_is_refused(tmp_path):
    async def scenario() -> None:
        first = FileSink(tmp_path / "out.jsonl")
        await first.start()
        with pytest.raises(SinkError, match="being written by another sink"):
            await FileSink(tmp_path / "out.jsonl").start()
        await first.close()
        second = FileSink(tmp_path / "out.jsonl")
        await second.start()  # free again
        await second.close()
        with pytest.raises(SinkError, match="is a directory"):
            await FileSink(tmp_path).start()

    run(scenario())


def test_a_full_disk_is_unavailable_not_lost(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    (tmp_path / "out.jsonl").symlink_to("/dev/full")
    sink = FileSink(tmp_path / "out.jsonl")

    async def scenario() -> None:
        await sink.start()
        await sink.write([rec(0, {"o": 0})])
        with pytest.raises(SinkUnavailableError, match="No space left"):
            await sink.flush()
        assert sink.status()["pending"] == 1  # still held: nothing acknowledged
        await sink.close()

    run(scenario())
    assert not (tmp_path / ".out.jsonl.sink").exists()


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """A disk that refuses to grow a file past ``limit`` bytes (EFBIG), as a full one does,
    until the block ends: RLIMIT_FSIZE, with SIGXFSZ ignored."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_disk_that_refuses_then_recovers_loses_nothing(tmp_path):
    sink = FileSink(tmp_path / "out.jsonl", max_bytes=3000, buffer_bytes=500)
    line = "z" * 80

    async def scenario() -> None:
        await sink.start()
        await sink.write([rec(o, {"o": o, "pad": line}) for o in range(10)])
        await sink.flush()
        with file_size_limit(2000):
            # rotations and write-throughs put off inside write: no error while taking
            await sink.write([rec(o, {"o": o, "pad": line}) for o in range(10, 60)])
            with pytest.raises(SinkUnavailableError, match="too large"):
                await sink.flush()
            assert sink.status()["pending"] == 50  # nothing acknowledged
        await sink.flush()  # the disk is back
        await sink.close()

    run(scenario())
    assert [x["o"] for x in lines_of(tmp_path)] == list(range(60))
    state = json.loads((tmp_path / ".out.jsonl.sink").read_text())
    assert state["offsets"] == {"t": {"0": 59}}


def test_sink_from_config(tmp_path):
    sink = sink_from_config(
        "orders-out", {"path": str(tmp_path / "o.csv"), "format": "csv", "max_age": 3600}
    )
    assert (sink.name, sink.format) == ("orders-out", "csv")
    with pytest.raises(ConnectorConfigError, match="unknown key 'max_size'"):
        sink_from_config("s", {"path": "x", "max_size": 3})
    with pytest.raises(ConnectorConfigError, match="max_bytes: 0 is not a positive integer"):
        sink_from_config("s", {"path": "x", "max_bytes": 0})
    with pytest.raises(ConnectorConfigError, match="columns"):
        sink_from_config("s", {"path": "x", "columns": [1]})
