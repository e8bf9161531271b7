"""Store partitions in RocksDB (rocksdict, raw bytes mode): one database per partition.

On-disk layout of a table ``<name>`` under a state directory::

    <state dir>/<name>/<partition>/      one RocksDB database
        column family "default"          the table's keys and values, as given
        column family "__streamlog_meta__"
            b"format_version" -> b"1"
            b"changelog_offset" -> 8-byte big-endian signed offset

The changelog offset lives in its own column family, so no user key can collide with
it, and it is written in the same ``WriteBatch`` as the updates it reflects: RocksDB
applies a batch atomically, so after any crash the contents and the offset agree.

Durability: the write-ahead log is on, ``sync`` is off. A process crash (SIGKILL)
loses nothing written (the WAL is in the page cache, which survives the process); a
machine crash may lose the last writes, which recovery then replays from the changelog,
because the offset was lost with them.

A directory that does not open as a database (corrupt ``CURRENT`` or ``MANIFEST``, a
file where the directory should be, an unknown format version) is logged, deleted and
recreated empty: ``wipe_reason`` says why, and the partition has no changelog offset, so
recovery replays the whole changelog. A directory locked by another handle or process is
never wiped: ``StoreLockedError``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import cast

from rocksdict import ColumnFamily, DbClosedError, Options, Rdict, WriteBatch, WriteOptions

from streamlog.state.errors import StoreClosedError, StoreError, StoreLockedError
from streamlog.state.stores import StorePartition, key_bounds

__all__ = [
    "RocksDBStore",
    "RocksDBStorePartition",
    "META_COLUMN_FAMILY",
    "OFFSET_KEY",
    "FORMAT_KEY",
    "FORMAT_VERSION",
]

log = logging.getLogger(__name__)

META_COLUMN_FAMILY = "__streamlog_meta__"
OFFSET_KEY = b"changelog_offset"
FORMAT_KEY = b"format_version"
FORMAT_VERSION = b"1"

# Range scans read the database in chunks and drop the native iterator between them: a
# RocksDB iterator pins the database (``close`` could not release the directory lock
# while a caller holds an unfinished scan). Chunks start small (a window lookup reads a
# few keys) and grow for long scans; each costs one seek, ~2.5 us.
_FIRST_CHUNK = 64
_FIRST_BOUNDED_CHUNK = 4
_MAX_CHUNK = 4096


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    options.set_keep_log_file_num(2)  # RocksDB's own info LOG files, not the WAL
    return options


def _write_options() -> WriteOptions:
    # WAL on (RocksDB's default, left alone), sync off: a written key survives a SIGKILL of
    # the process (the WAL is in the page cache, which outlives the process; measured with
    # rocksdict 0.3, where the WAL off lost everything unflushed), while a synced write
    # costs a disk flush. A power loss may lose the unsynced tail.
    options = WriteOptions()
    options.sync = False
    return options


def _is_lock_error(message: str) -> bool:
    return "/LOCK" in message or "lock hold" in message


def _is_permission_error(message: str) -> bool:
    return "Permission denied" in message


class RocksDBStorePartition:
    """One table partition in a RocksDB directory; see the module docstring.

    Opening may wipe the directory (never a locked one). The changelog offset is cached
    in memory: it changes only through ``write`` and ``wipe``.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._db: Rdict | None = None
        self._meta: Rdict | None = None
        self._meta_handle: ColumnFamily | None = None
        self._offset: int | None = None
        self._wipe_reason: str | None = None
        self._write_options = _write_options()
        self._open()

    def __repr__(self) -> str:
        state = "closed" if self._db is None else f"offset={self._offset}"
        return f"RocksDBStorePartition({self._path!r}, {state})"

    @property
    def path(self) -> str:
        return self._path

    @property
    def closed(self) -> bool:
        return self._db is None

    @property
    def wipe_reason(self) -> str | None:
        return self._wipe_reason

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._attach(self._open_db())
        except _Unusable as exc:
            self._wipe_reason = str(exc)
            log.warning(
                "table store %s is not usable (%s): deleting it; the partition will be "
                "rebuilt from its whole changelog",
                self._path,
                exc,
            )
            self._remove_files()
            self._open_fresh()

    def _open_fresh(self) -> None:
        """Open a directory just deleted: an error now is not the old contents' fault."""
        try:
            self._attach(self._open_db())
        except _Unusable as exc:
            raise StoreError(f"table store {self._path} is unusable: {exc}") from exc

    def _open_db(self) -> Rdict:
        try:
            db = Rdict(
                self._path,
                options=_options(),
                column_families={META_COLUMN_FAMILY: Options(raw_mode=True)},
            )
        except Exception as exc:  # rocksdict raises plain Exception for RocksDB statuses
            message = str(exc)
            if _is_lock_error(message):
                raise StoreLockedError(
                    f"table store {self._path} is open elsewhere (another worker, or a "
                    f"partition not closed): {message}"
                ) from exc
            if _is_permission_error(message):
                raise StoreError(f"cannot open table store {self._path}: {message}") from exc
            raise _Unusable(f"it does not open as a RocksDB database: {message}") from exc
        db.set_write_options(self._write_options)
        return db

    def _attach(self, db: Rdict) -> None:
        """Adopt an open database: check its format, read its offset. On any failure the
        database is closed again (its lock released) before the error propagates."""
        self._db = db
        try:
            self._check_format(db)
        except BaseException:
            self._detach()
            raise
        log.debug("opened table store %s (changelog offset %s)", self._path, self._offset)

    def _check_format(self, db: Rdict) -> None:
        self._meta = db.get_column_family(META_COLUMN_FAMILY)
        self._meta_handle = db.get_column_family_handle(META_COLUMN_FAMILY)
        version = self._meta.get(FORMAT_KEY)
        raw_offset = self._meta.get(OFFSET_KEY)
        if version is None:
            if raw_offset is not None or not self._is_empty(db):
                raise _Unusable("it holds data but no streamlog format version")
            batch = WriteBatch(raw_mode=True)
            batch.put(FORMAT_KEY, FORMAT_VERSION, self._meta_handle)
            db.write(batch)
        elif version != FORMAT_VERSION:
            raise _Unusable(f"format version {version!r}, expected {FORMAT_VERSION!r}")
        if raw_offset is not None and len(raw_offset) != 8:
            raise _Unusable(f"its changelog offset is {len(raw_offset)} bytes, not 8")
        if raw_offset is not None:
            self._offset = int.from_bytes(raw_offset, "big", signed=True)
        else:
            self._offset = None

    def _detach(self) -> None:
        """Close the database; every handle to it must go, or its lock stays held."""
        db = self._db
        self._db = self._meta = self._meta_handle = None
        if db is not None:
            try:
                db.close()
            except DbClosedError:
                pass

    def _remove_files(self) -> None:
        if os.path.isdir(self._path) and not os.path.islink(self._path):
            shutil.rmtree(self._path)
        elif os.path.lexists(self._path):
            os.unlink(self._path)

    @staticmethod
    def _is_empty(db: Rdict) -> bool:
        return not _read_chunk(db, None, 1)

    # -- reading -------------------------------------------------------------------------

    def _live(self) -> Rdict:
        db = self._db
        if db is None:
            raise StoreClosedError(f"table store {self._path} is closed")
        return db

    def get(self, key: bytes) -> bytes | None:
        db = self._db
        if db is None:
            raise StoreClosedError(f"table store {self._path} is closed")
        try:
            value: bytes | None = db.get(key)
        except KeyError:  # rocksdict's answer to a key that is not bytes
            raise TypeError(f"store keys are bytes, not {type(key).__name__}") from None
        return value

    def items(
        self,
        start: bytes | None = None,
        end: bytes | None = None,
        prefix: bytes | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        self._live()
        for bound in (start, end, prefix):
            if bound is not None and bound.__class__ is not bytes:
                raise TypeError(f"store keys are bytes, not {type(bound).__name__}")
        low, high = key_bounds(start, end, prefix)
        return self._iterate(low, high)

    def _iterate(self, low: bytes | None, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        position = low
        # A bounded range (one key's windows, a join buffer) usually holds a few pairs:
        # reading 64 costs ~10 us against ~3 us for 4, and most lookups stop early.
        size = _FIRST_BOUNDED_CHUNK if high is not None else _FIRST_CHUNK
        while True:
            chunk = _read_chunk(self._live(), position, size)
            for pair in chunk:
                if high is not None and pair[0] >= high:
                    return
                yield pair
            if len(chunk) < size:
                return
            position = chunk[-1][0] + b"\x00"  # the next key after the last one read
            size = min(size * 4, _MAX_CHUNK)

    def changelog_offset(self) -> int | None:
        self._live()
        return self._offset

    def is_empty(self) -> bool:
        return self._is_empty(self._live())

    # -- writing -------------------------------------------------------------------------

    def write(self, updates: Mapping[bytes, bytes | None], changelog_offset: int | None) -> None:
        db = self._live()
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete  # bound once: this loop is recovery's
        try:
            for key, value in updates.items():
                if value is None:
                    delete(key)
                else:
                    put(key, value)
        except (KeyError, ValueError):
            raise TypeError(
                "store keys are bytes and values bytes or None; got "
                + ", ".join(
                    sorted(
                        {
                            type(x).__name__
                            for k, v in updates.items()
                            for x in (k, v)
                            if x is not None and x.__class__ is not bytes
                        }
                    )
                )
            ) from None
        if changelog_offset is not None:
            encoded = changelog_offset.to_bytes(8, "big", signed=True)
            batch.put(OFFSET_KEY, encoded, self._meta_handle)
        if batch.is_empty():
            return
        try:
            db.write(batch)
        except DbClosedError as exc:
            raise StoreClosedError(f"table store {self._path} is closed") from exc
        except Exception as exc:  # a RocksDB status: disk full, I/O error
            raise StoreError(f"cannot write table store {self._path}: {exc}") from exc
        if changelog_offset is not None:
            self._offset = changelog_offset

    def wipe(self) -> None:
        self._live()
        log.info("wiping table store %s", self._path)
        self._detach()
        self._remove_files()
        self._offset = None
        self._open_fresh()

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        self._detach()

    def destroy(self) -> None:
        self._detach()
        self._remove_files()


class _Unusable(Exception):
    """The directory is not a streamlog table store we can use: wipe it."""


def _read_chunk(db: Rdict, position: bytes | None, size: int) -> list[tuple[bytes, bytes]]:
    """Up to ``size`` pairs from ``position`` on; the native iterator dies on return."""
    source = db.items() if position is None else db.items(from_key=position)
    pairs = cast("Iterator[tuple[bytes, bytes]]", source)  # raw mode: bytes both sides
    return list(islice(pairs, size))


class RocksDBStore:
    """A table's RocksDB partitions, at ``<state_dir>/<name>/<partition>``."""

    def __init__(self, state_dir: str, name: str) -> None:
        if not name or os.sep in name or name in (".", ".."):
            raise ValueError(f"a store name must be a plain file name, not {name!r}")
        self._name = name
        self._directory = os.path.join(state_dir, name)
        self._partitions: dict[int, RocksDBStorePartition] = {}

    def __repr__(self) -> str:
        return f"RocksDBStore({self._directory!r}, partitions={sorted(self._partitions)})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def directory(self) -> str:
        return self._directory

    def partition_path(self, number: int) -> str:
        return os.path.join(self._directory, str(number))

    def partition(self, number: int) -> StorePartition:
        found = self._partitions.get(number)
        if found is None:
            if number < 0:
                raise ValueError(f"partition numbers are >= 0, not {number}")
            os.makedirs(self._directory, exist_ok=True)
            found = RocksDBStorePartition(self.partition_path(number))
            self._partitions[number] = found
        return found

    def open_partitions(self) -> Mapping[int, StorePartition]:
        return dict(self._partitions)

    def close_partition(self, number: int) -> None:
        found = self._partitions.pop(number, None)
        if found is not None:
            found.close()

    def close(self) -> None:
        for number in list(self._partitions):
            self.close_partition(number)
