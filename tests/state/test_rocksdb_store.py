"""What only the RocksDB store promises: its layout, and what it does with broken or
locked directories."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rocksdict import Options, Rdict, WriteBatch

from streamlog.state.errors import StoreLockedError
from streamlog.state.rocksdb_store import (
    FORMAT_KEY,
    META_COLUMN_FAMILY,
    OFFSET_KEY,
    RocksDBStore,
    RocksDBStorePartition,
)

LOGGER = "streamlog.state.rocksdb_store"


def filled(path: Path, offset: int = 3) -> None:
    store = RocksDBStorePartition(str(path))
    store.write({b"a": b"1", b"b": b"2"}, offset)
    store.close()


def test_layout_keeps_the_offset_in_its_own_column_family(tmp_path: Path) -> None:
    filled(tmp_path / "p", offset=298)
    assert sorted(Rdict.list_cf(str(tmp_path / "p"), Options(raw_mode=True))) == [
        META_COLUMN_FAMILY,
        "default",
    ]
    db = Rdict(
        str(tmp_path / "p"),
        options=Options(raw_mode=True),
        column_families={META_COLUMN_FAMILY: Options(raw_mode=True)},
    )
    try:
        meta = db.get_column_family(META_COLUMN_FAMILY)
        assert meta.get(OFFSET_KEY) == (298).to_bytes(8, "big")
        assert meta.get(FORMAT_KEY) == b"1"
        assert list(db.items()) == [(b"a", b"1"), (b"b", b"2")]
        del meta
    finally:
        db.close()


def test_store_partitions_live_under_state_dir_table_partition(tmp_path: Path) -> None:
    table = RocksDBStore(str(tmp_path), "counts")
    table.partition(3).write({b"k": b"v"}, 0)
    table.close()
    assert table.partition_path(3) == str(tmp_path / "counts" / "3")
    assert os.path.isfile(tmp_path / "counts" / "3" / "CURRENT")
    with pytest.raises(ValueError):
        RocksDBStore(str(tmp_path), "a/b")


def wiped_open(path: Path, caplog: pytest.LogCaptureFixture) -> RocksDBStorePartition:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store = RocksDBStorePartition(str(path))
    assert store.wipe_reason is not None
    assert list(store.items()) == []
    assert store.changelog_offset() is None
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(lines) == 1
    assert lines[0].startswith(f"table store {path} is not usable (")
    assert lines[0].endswith("the partition will be rebuilt from its whole changelog")
    # and it works as a new store afterwards
    store.write({b"new": b"1"}, 0)
    assert list(store.items()) == [(b"new", b"1")]
    return store


def test_a_corrupt_current_file_is_wiped_and_reported(tmp_path, caplog) -> None:
    filled(tmp_path / "p")
    (tmp_path / "p" / "CURRENT").write_bytes(b"garbage\n")
    store = wiped_open(tmp_path / "p", caplog)
    assert store.wipe_reason is not None
    assert "does not open as a RocksDB database" in store.wipe_reason
    assert "Corruption" in store.wipe_reason
    store.close()


def test_a_truncated_manifest_is_wiped(tmp_path, caplog) -> None:
    filled(tmp_path / "p")
    for name in os.listdir(tmp_path / "p"):
        if name.startswith("MANIFEST-"):
            (tmp_path / "p" / name).write_bytes(b"\x00\x01")
    wiped_open(tmp_path / "p", caplog).close()


def test_a_file_where_the_directory_should_be_is_wiped(tmp_path, caplog) -> None:
    (tmp_path / "p").write_bytes(b"not a database")
    wiped_open(tmp_path / "p", caplog).close()


def test_a_database_of_another_format_is_wiped(tmp_path, caplog) -> None:
    db = Rdict(str(tmp_path / "p"), options=Options(raw_mode=True))
    db[b"foreign"] = b"data"
    db.close()
    store = wiped_open(tmp_path / "p", caplog)
    assert store.wipe_reason == "it holds data but no streamlog format version"
    store.close()
    filled(tmp_path / "q")
    db = Rdict(
        str(tmp_path / "q"),
        options=Options(raw_mode=True),
        column_families={META_COLUMN_FAMILY: Options(raw_mode=True)},
    )
    batch = WriteBatch(raw_mode=True)
    batch.put(FORMAT_KEY, b"99", db.get_column_family_handle(META_COLUMN_FAMILY))
    db.write(batch)
    db.close()
    store = wiped_open(tmp_path / "q", caplog)
    assert store.wipe_reason == "format version b'99', expected b'1'"
    store.close()


def test_stray_files_without_a_database_open_as_a_new_store(tmp_path, caplog) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("left here")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store = RocksDBStorePartition(str(tmp_path / "p"))
    assert store.wipe_reason is None
    assert store.changelog_offset() is None
    assert list(store.items()) == []
    assert caplog.records == []
    store.close()


def test_a_locked_directory_is_never_wiped(tmp_path: Path) -> None:
    first = RocksDBStorePartition(str(tmp_path / "p"))
    first.write({b"a": b"1"}, 0)
    with pytest.raises(StoreLockedError, match="is open elsewhere"):
        RocksDBStorePartition(str(tmp_path / "p"))
    code = (
        "import sys\n"
        "from streamlog.state.rocksdb_store import RocksDBStorePartition\n"
        "from streamlog.state.errors import StoreLockedError\n"
        "try:\n"
        f"    RocksDBStorePartition({str(tmp_path / 'p')!r})\n"
        "except StoreLockedError:\n"
        "    sys.exit(3)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert child.returncode == 3, child.stderr
    assert list(first.items()) == [(b"a", b"1")]
    assert first.changelog_offset() == 0
    first.close()


def test_an_unfinished_scan_does_not_keep_the_database_open(tmp_path: Path) -> None:
    first = RocksDBStorePartition(str(tmp_path / "p"))
    first.write({b"k%05d" % i: b"v" for i in range(10_000)}, 0)
    scan = first.items()
    assert next(scan) == (b"k00000", b"v")
    first.close()
    again = RocksDBStorePartition(str(tmp_path / "p"))  # the lock was released
    assert again.changelog_offset() == 0
    assert sum(1 for _ in again.items()) == 10_000
    again.close()


def test_wipe_of_an_open_partition_removes_its_files(tmp_path: Path) -> None:
    store = RocksDBStorePartition(str(tmp_path / "p"))
    store.write({b"k%05d" % i: b"v" * 100 for i in range(1000)}, 10)
    store.wipe()
    store.close()
    again = RocksDBStorePartition(str(tmp_path / "p"))
    assert again.changelog_offset() is None
    assert again.is_empty()
    assert again.wipe_reason is None
    again.close()
