"""The SQLite sink: a topic kept as a table, upserted by key, rows deleted on tombstones.

Each ``write`` writes its batch (folded per key, ``rows.fold``) in one ``BEGIN
IMMEDIATE`` ... ``COMMIT`` transaction, in WAL mode with ``synchronous=FULL``: the rows
are on disk before ``write`` returns, so they are there before the app's commit sequence
commits the topic's offsets (``flush`` has nothing left to do). A crash before that
commit re-delivers the records; writing by key makes that harmless (no duplicate rows,
same end state), and so does a rewind (``discard``: the records come again). Committing
on each write, rather than holding the transaction until the app's commit, keeps
SQLite's single write lock for the time of one batch: two sinks writing to tables of one
file, or another program writing to it, take turns instead of waiting on each other.

A row the table refuses (a NOT NULL or CHECK constraint, a STRICT column's type) is
found in the batch that brought it: the batch, in a savepoint, is rolled back, a
bisection over prefixes of the batch finds the first record at fault
(``batches.first_refused``), the records before it are written, and ``write`` raises
``BadRecordError`` with ``.record`` set (the runner dead-letters it and hands the rest).

The standard library's ``sqlite3`` blocks, so every call runs in a worker thread and
the event loop keeps serving. Another process holding the write lock longer than
``timeout`` seconds, a full disk or a read-only file make ``write`` raise
``SinkUnavailableError`` with nothing of the batch written (the runner retries with
backoff; nothing is lost).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streamlog.connect.base import SinkRecord
from streamlog.connect.batches import (
    first_refused,
    operations_of,
    refused_record_error,
)
from streamlog.connect.config_keys import ConfigKeys
from streamlog.connect.errors import (
    ConnectorConfigError,
    SinkError,
    SinkUnavailableError,
)
from streamlog.connect.rows import (
    Delete,
    RowShape,
    Upsert,
    check_column_type,
    check_identifier,
    fold,
    quoted,
    refusal,
)

__all__ = ["SqliteSink", "sink_from_config"]

# SQLite's result codes for a state that may pass: another writer holds the lock, the
# disk is full, the file is read-only or cannot be opened (a volume away).
# the table refusing a row: a constraint (NOT NULL, CHECK, UNIQUE, a STRICT column's type),
# a value SQLite cannot bind (an integer past 64 bits)
_REFUSALS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError, OverflowError)
_TRANSIENT = {
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
}


class SqliteSink:
    """Writes a topic's records to the table ``table`` of the SQLite file ``path``.

    ``columns`` None keeps documents: ``(key TEXT PRIMARY KEY, value TEXT)`` with the
    value as JSON. A list of names (or a mapping of name to declared type, used when the
    table is created) keeps one column per field of the value. ``create`` makes the table
    when it is missing; an existing table must have the columns (checked on ``start``)
    and a primary key or unique index on ``key_column``."""

    def __init__(
        self,
        path: str | Path,
        table: str,
        *,
        name: str | None = None,
        key_column: str = "key",
        columns: Sequence[str] | Mapping[str, str] | None = None,
        create: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.table = check_identifier("table", table)
        self.name = name if name is not None else f"sqlite-{table}"
        self._types: Mapping[str, str] = {}
        if isinstance(columns, Mapping):
            self._types = {c: check_column_type(t) for c, t in columns.items()}
        self.shape = RowShape(key_column, list(columns) if columns is not None else None)
        self.create = create
        self.timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._unflushed = 0  # records written (committed) since the last flush
        self._lock = asyncio.Lock()
        self._records = 0
        self._flushed = 0
        self._errors = 0
        self._rejected = 0
        self._last_error: str | None = None
        self._upsert_sql, self._delete_sql = self._statements()

    def _statements(self) -> tuple[str, str]:
        key = quoted(self.shape.key_column)
        names = [key, *(quoted(c) for c in self.shape.value_columns)]
        updates = ", ".join(f"{quoted(c)} = excluded.{quoted(c)}" for c in self.shape.value_columns)
        upsert = (
            f"INSERT INTO {quoted(self.table)} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )
        return upsert, f"DELETE FROM {quoted(self.table)} WHERE {key} = ?"

    async def start(self) -> None:
        """Open the file and check (or create) the table. A database that is away (a lock
        held, a volume missing) is not an error yet: the first write tries again, and the
        runner retries that one; a table that cannot work raises here."""
        async with self._lock:
            try:
                self._db = await asyncio.to_thread(self._open)
            except SinkUnavailableError as error:
                self._failed(error)

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise SinkUnavailableError(f"sqlite sink {self.name}: {error}") from error
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._prepare_table(db)
        except sqlite3.Error as error:
            db.close()
            raise self._unwritable(error) from error
        except BaseException:
            db.close()
            raise
        return db

    def _prepare_table(self, db: sqlite3.Connection) -> None:
        key = self.shape.key_column
        have = [row[1] for row in db.execute(f"PRAGMA table_info({quoted(self.table)})")]
        if not have:
            if not self.create:
                raise ConnectorConfigError(f"sqlite sink {self.name}: no table {self.table}")
            if self.shape.columns is None:
                body = f"{quoted(key)} TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL"
            else:
                body = ", ".join(
                    [f"{quoted(key)} TEXT PRIMARY KEY NOT NULL"]
                    + [f"{quoted(c)} {self._types.get(c, '')}".rstrip() for c in self.shape.columns]
                )
            db.execute(f"CREATE TABLE IF NOT EXISTS {quoted(self.table)} ({body})")
            return
        missing = [c for c in (key, *self.shape.value_columns) if c not in have]
        if missing:
            raise ConnectorConfigError(
                f"sqlite sink {self.name}: table {self.table} has no column(s) {', '.join(missing)}"
            )

    async def write(self, records: Sequence[SinkRecord]) -> None:
        batch: dict[str, Upsert | Delete] = {}
        usable = fold(batch, records, self.shape)  # records[usable] cannot be a row
        async with self._lock:
            try:
                taken, refusing = await self._write_records(records[:usable], batch)
            except sqlite3.Error as error:
                self._failed(error)
                raise self._unwritable(error) from error
            except SinkUnavailableError as error:  # opening the file again failed
                self._failed(error)
                raise
            self._unflushed += taken
            self._records += taken
        if refusing is not None:
            self._failed(refusing)
            self._rejected += 1
            raise refused_record_error(records[taken], refusing) from refusing
        if usable < len(records):
            self._rejected += 1
            raise refusal(records[usable], self.shape)

    async def _write_records(
        self, records: Sequence[SinkRecord], batch: dict[str, Upsert | Delete]
    ) -> tuple[int, Exception | None]:
        """Write ``batch`` (``records`` folded) in one transaction, committed: how many
        records were written, and the table's refusal of the next one (``batches``)."""
        db = await asyncio.to_thread(self._begin)
        try:
            error = await asyncio.to_thread(self._try, db, list(batch.values()))
            taken = len(records)
            if error is not None:

                async def goes_through(count: int) -> bool:
                    return await asyncio.to_thread(self._goes_through, db, records[:count])

                taken = await first_refused(len(records), goes_through)
                if taken > 0:
                    again = await asyncio.to_thread(
                        self._try, db, operations_of(records[:taken], self.shape)
                    )
                    if again is not None:  # they went through a moment ago: not a record's
                        raise sqlite3.IntegrityError(str(again))
            await asyncio.to_thread(db.execute, "COMMIT")
        except BaseException:
            if db.in_transaction:
                await asyncio.to_thread(db.execute, "ROLLBACK")
            raise
        return taken, error

    def _unwritable(self, error: sqlite3.Error) -> SinkError:
        """SQLite's error as the sink's: unavailable while it may pass."""
        if getattr(error, "sqlite_errorname", "") in _TRANSIENT:
            return SinkUnavailableError(f"sqlite sink {self.name}: {error}")
        return SinkError(f"sqlite sink {self.name}: {error}")

    def _failed(self, error: BaseException) -> None:
        self._errors += 1
        self._last_error = str(error)

    # -- in a worker thread -------------------------------------------------------------

    def _begin(self) -> sqlite3.Connection:
        """The connection (opened again if need be) in a new write transaction."""
        if self._db is None:
            self._db = self._open()
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def _goes_through(self, db: sqlite3.Connection, records: Sequence[SinkRecord]) -> bool:
        """Whether the table takes ``records`` (applied, then rolled back)."""
        db.execute("SAVEPOINT streamlog_probe")
        try:
            return self._try(db, operations_of(records, self.shape)) is None
        finally:
            if db.in_transaction:  # not when SQLite ended the transaction itself
                db.execute("ROLLBACK TO streamlog_probe")
                db.execute("RELEASE streamlog_probe")

    def _try(self, db: sqlite3.Connection, operations: list[Upsert | Delete]) -> Exception | None:
        """Apply ``operations`` in a savepoint: None when they went through (and stay
        applied), else the table's refusal (and nothing of them applied). Other errors
        (a lock, a full disk) raise."""
        upserts = [op.row for op in operations if isinstance(op, Upsert)]
        deletes = [(op.key,) for op in operations if isinstance(op, Delete)]
        db.execute("SAVEPOINT streamlog_try")
        try:
            if upserts:
                db.executemany(self._upsert_sql, upserts)
            if deletes:
                db.executemany(self._delete_sql, deletes)
        except _REFUSALS as error:
            db.execute("ROLLBACK TO streamlog_try")
            db.execute("RELEASE streamlog_try")
            return error
        except BaseException:
            if db.in_transaction:  # not when SQLite ended the transaction itself
                db.execute("ROLLBACK TO streamlog_try")
                db.execute("RELEASE streamlog_try")
            raise
        db.execute("RELEASE streamlog_try")
        return None

    # -- the rest of the Sink protocol --------------------------------------------------

    async def flush(self) -> None:
        """Every write committed already (fsynced): the records are counted as flushed."""
        async with self._lock:
            self._flushed += self._unflushed
            self._unflushed = 0

    async def discard(self) -> None:
        """What was written is committed already; the records come again and rewrite
        the same rows by key."""
        async with self._lock:
            self._unflushed = 0

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                await asyncio.to_thread(self._db.close)
                self._db = None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "sink",
            "type": "sqlite",
            "records": self._records,
            "flushed": self._flushed,
            "pending": self._unflushed,
            "rejected": self._rejected,
            "errors": self._errors,
            "last_error": self._last_error,
            "path": str(self.path),
            "table": self.table,
        }


def sink_from_config(name: str, config: Mapping[str, Any]) -> SqliteSink:
    """``[[sink]] type = "sqlite"``: path, table, key_column, columns, create, timeout."""
    keys = ConfigKeys(name, config)
    sink = SqliteSink(
        keys.take("path", str),
        keys.take("table", str),
        name=name,
        key_column=keys.take("key_column", str, "key"),
        columns=keys.take("columns", (list, dict), None),
        create=keys.take("create", bool, True),
        timeout=float(keys.take("timeout", (int, float), 5.0)),
    )
    keys.done()
    return sink
