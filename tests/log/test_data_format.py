"""The data directory's format version: a new directory records the current one, an
older one (a directory from before versions were recorded) is upgraded in place, a newer
or unreadable one is refused with a clear message and left as it is — by the log engine
and by the tools and servers that open it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streamlog.log import data_format
from streamlog.log.data_format import CURRENT_FORMAT, FORMAT_FILE, read_format
from streamlog.log.errors import DataFormatError, DataFormatTooNewError
from streamlog.log.manager import LogManager


def _contents(path) -> dict[str, bytes]:
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found


def test_a_new_directory_records_the_current_format(tmp_path) -> None:
    with LogManager.open(str(tmp_path / "d")) as manager:
        manager.create_topic("t", 1)
    assert read_format(str(tmp_path / "d")) == CURRENT_FORMAT == 1
    assert (tmp_path / "d" / FORMAT_FILE).read_text() == "format=1\n"


def test_a_directory_from_before_formats_is_upgraded_in_place(tmp_path, caplog) -> None:
    data_dir = str(tmp_path / "d")
    with LogManager.open(data_dir) as manager:
        manager.create_topic("t", 2)
        manager.append("t", 0, _batch())
    os.unlink(os.path.join(data_dir, FORMAT_FILE))  # as an older streamlog left it
    with caplog.at_level("WARNING"), LogManager.open(data_dir) as manager:
        assert manager.partition_count("t") == 2
        assert manager.partition("t", 0).log_end_offset == 1
    assert read_format(data_dir) == 1
    assert "upgraded in place from format 0 to 1" in caplog.text


def test_an_upgrade_interrupted_by_a_crash_runs_again(tmp_path, monkeypatch) -> None:
    """A step that fails (a crash) leaves the old format recorded; the next start runs
    it again and records the new one."""
    data_dir = str(tmp_path / "d")
    LogManager.open(data_dir).close()
    os.unlink(os.path.join(data_dir, FORMAT_FILE))
    calls: list[str] = []

    def failing(path: str) -> None:
        calls.append(path)
        raise OSError("crash in the middle of the upgrade")

    monkeypatch.setitem(data_format.UPGRADES, 0, failing)
    with pytest.raises(OSError, match="crash in the middle"):
        LogManager.open(data_dir)
    assert read_format(data_dir) is None  # still the old format
    monkeypatch.setitem(data_format.UPGRADES, 0, calls.append)
    LogManager.open(data_dir).close()
    assert calls == [data_dir, data_dir]
    assert read_format(data_dir) == 1


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("format=9\n", DataFormatTooNewError, "has format 9, written by a newer streamlog"),
        ("garbage\n", DataFormatError, "no 'format=N' line"),
        ("format=\xff", DataFormatError, "not text"),
    ],
)
def test_a_newer_or_unreadable_format_is_refused_and_nothing_changes(
    tmp_path, text, error, message
) -> None:
    data_dir = str(tmp_path / "d")
    with LogManager.open(data_dir) as manager:
        manager.create_topic("t", 1)
    (tmp_path / "d" / FORMAT_FILE).write_bytes(text.encode("latin-1"))
    before = _contents(data_dir)
    with pytest.raises(error, match=message):
        LogManager.open(data_dir)
    assert _contents(data_dir) == before
    # the lock was released: the directory opens once the format is fixed
    (tmp_path / "d" / FORMAT_FILE).write_text("format=1\n")
    LogManager.open(data_dir).close()


def test_the_tools_and_the_broker_refuse_a_newer_format_with_the_message(tmp_path) -> None:
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (data_dir / FORMAT_FILE).write_text("format=7\n")
    streamlog = os.path.join(os.path.dirname(sys.executable), "streamlog")
    for args in (
        ["topics", "list", "--broker", f"file://{data_dir}"],
        ["broker", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"],
    ):
        done = subprocess.run(
            [streamlog, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "has format 7, written by a newer streamlog" in done.stderr, done.stderr
        assert "reads formats up to 1" in done.stderr
    assert (data_dir / FORMAT_FILE).read_text() == "format=7\n"


def _batch() -> bytes:
    from streamlog.log.records import encode_batch

    return encode_batch([(b"k", b"v", 1_700_000_000_000, ())])
