"""PostgreSQL connectors (psycopg 3, the ``postgres`` extra): a sink that keeps a topic
as a table, upserted by key and deleted on tombstones, and a source that polls a table
by a monotonic column.

Sink: records are folded per key as they come (``rows.fold``) and written on ``flush``
in one transaction (``INSERT ... ON CONFLICT (key) DO UPDATE``, ``DELETE ... WHERE key
= ANY``); ``flush`` returns once ``COMMIT`` did, so the app commits the topic's offsets
only after PostgreSQL holds the rows, and a re-delivery rewrites the same rows. A lost
connection makes ``flush`` raise ``SinkUnavailableError`` (the runner retries; the next
flush reconnects and writes the whole pending batch again, in a new transaction).

Source: reads ``SELECT ... WHERE column > position ORDER BY column LIMIT batch`` and
hands each row as a dict with the position after it. Rows sharing a column value (a
timestamp) are never split across a position: a full batch is cut before its last
value's rows, which the next read takes whole, and a record in the middle of such a run
carries the position before the run (a restart there reads the run again and the
runner's matching drops what the log already has). A lost connection is counted and
retried on the next poll, so the source survives a database restart.

The column must grow in commit order: a row committed later with a smaller value than
one already read (two writers racing for a sequence) is not seen, as with Kafka
Connect's JDBC source in incrementing mode.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from streamlog.connect.base import Position, SinkRecord, SourceRecord
from streamlog.connect.config_keys import ConfigKeys
from streamlog.connect.errors import (
    ConnectorConfigError,
    SinkError,
    SinkUnavailableError,
    SourceError,
)
from streamlog.connect.rows import (
    Delete,
    RowShape,
    Upsert,
    check_column_type,
    check_identifier,
    fold,
    quoted,
)

__all__ = ["PostgresSink", "PostgresSource", "sink_from_config", "source_from_config"]


def _psycopg() -> Any:
    """psycopg, imported when a connector starts: it is an optional extra."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the install
        raise ConnectorConfigError(
            "the PostgreSQL connectors need psycopg: pip install 'streamlog[postgres]'"
        ) from None
    return psycopg


def _transient(error: BaseException) -> bool:
    """A connection lost or refused, a server shutting down or in recovery: it may pass."""
    psycopg = _psycopg()
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    state = getattr(getattr(error, "diag", None), "sqlstate", None) or ""
    # 08: connection exception; 57P: operator intervention (admin shutdown, cannot
    # connect now); 40001/40P01: serialization failure, deadlock
    return state.startswith(("08", "57P")) or state in ("40001", "40P01")


class PostgresSink:
    """Writes a topic's records to ``table`` in the database ``dsn`` names.

    ``columns`` None keeps documents: ``(key text PRIMARY KEY, value jsonb)``. A list of
    names keeps one column per field of the value; a mapping of name to SQL type also
    says the types to create the table with (a list creates ``jsonb`` columns). An
    existing table must have the columns and a primary key or unique index on
    ``key_column``; its json/jsonb columns get values as JSON documents, the others
    scalars as they are (PostgreSQL casts them to the column's type) and objects/lists
    as JSON text."""

    def __init__(
        self,
        dsn: str,
        table: str,
        *,
        name: str | None = None,
        key_column: str = "key",
        columns: Sequence[str] | Mapping[str, str] | None = None,
        create: bool = True,
        schema: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.table = check_identifier("table", table)
        self.schema = check_identifier("schema", schema) if schema is not None else None
        self.name = name if name is not None else f"postgres-{table}"
        self._types: Mapping[str, str] = {}
        if isinstance(columns, Mapping):
            self._types = {c: check_column_type(t) for c, t in columns.items()}
        self._key_column = key_column
        self._columns = list(columns) if columns is not None else None
        self.shape = RowShape(key_column, self._columns)
        self.create = create
        self._db: Any = None
        self._pending: dict[str, Upsert | Delete] = {}
        self._pending_records = 0
        self._lock = asyncio.Lock()
        self._records = 0
        self._flushed = 0
        self._errors = 0
        self._last_error: str | None = None

    @property
    def _qualified(self) -> str:
        table = quoted(self.table)
        return f"{quoted(self.schema)}.{table}" if self.schema else table

    async def start(self) -> None:
        async with self._lock:
            await self._connect()

    async def _connect(self) -> Any:
        psycopg = _psycopg()
        try:
            db = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        except psycopg.Error as error:
            raise SinkUnavailableError(f"postgres sink {self.name}: {error}") from error
        try:
            await self._prepare_table(db)
        except BaseException:
            await db.close()
            raise
        self._db = db
        return db

    async def _prepare_table(self, db: Any) -> None:
        found = await db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = coalesce(%s, current_schema()) AND table_name = %s",
            (self.schema, self.table),
        )
        have = {name: kind for name, kind in await found.fetchall()}
        if not have:
            if not self.create:
                raise ConnectorConfigError(f"postgres sink {self.name}: no table {self.table}")
            key = f"{quoted(self.shape.key_column)} text PRIMARY KEY"
            if self._columns is None:
                body = f"{key}, value jsonb NOT NULL"
            else:
                body = ", ".join(
                    [key] + [f"{quoted(c)} {self._types.get(c) or 'jsonb'}" for c in self._columns]
                )
            await db.execute(f"CREATE TABLE IF NOT EXISTS {self._qualified} ({body})")
            have = {c: (self._types.get(c) or "jsonb") for c in self.shape.value_columns}
            have[self.shape.key_column] = "text"
        missing = [c for c in (self.shape.key_column, *self.shape.value_columns) if c not in have]
        if missing:
            raise ConnectorConfigError(
                f"postgres sink {self.name}: table {self.table} has no column(s) "
                f"{', '.join(missing)}"
            )
        json_columns = [c for c, kind in have.items() if kind.lower() in ("json", "jsonb")]
        self.shape = RowShape(self._key_column, self._columns, json_columns=json_columns)

    def _statements(self) -> tuple[str, str]:
        key = quoted(self.shape.key_column)
        names = [key, *(quoted(c) for c in self.shape.value_columns)]
        updates = ", ".join(f"{quoted(c)} = excluded.{quoted(c)}" for c in self.shape.value_columns)
        upsert = (
            f"INSERT INTO {self._qualified} ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )
        return upsert, f"DELETE FROM {self._qualified} WHERE {key} = ANY(%s)"

    async def write(self, records: Sequence[SinkRecord]) -> None:
        fold(self._pending, records, self.shape)
        self._pending_records += len(records)
        self._records += len(records)

    async def flush(self) -> None:
        psycopg = _psycopg()
        async with self._lock:
            if self._pending:
                try:
                    db = self._db if self._db is not None else await self._connect()
                    await self._commit(db, list(self._pending.values()))
                except SinkUnavailableError as error:
                    self._failed(error)
                    raise
                except psycopg.Error as error:
                    self._failed(error)
                    await self._drop_connection()
                    if _transient(error):
                        raise SinkUnavailableError(f"postgres sink {self.name}: {error}") from error
                    raise SinkError(f"postgres sink {self.name}: {error}") from error
                self._pending.clear()
            self._flushed += self._pending_records
            self._pending_records = 0

    async def _commit(self, db: Any, operations: list[Upsert | Delete]) -> None:
        upsert_sql, delete_sql = self._statements()
        upserts = [op.row for op in operations if isinstance(op, Upsert)]
        deletes = [op.key for op in operations if isinstance(op, Delete)]
        async with db.transaction(), db.cursor() as cursor:
            if upserts:
                await cursor.executemany(upsert_sql, upserts)
            if deletes:
                await cursor.execute(delete_sql, (deletes,))

    def _failed(self, error: BaseException) -> None:
        self._errors += 1
        self._last_error = str(error)

    async def _drop_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                await db.close()
            except Exception:  # already broken: closing is best effort
                pass

    async def discard(self) -> None:
        self._pending.clear()
        self._pending_records = 0

    async def close(self) -> None:
        async with self._lock:
            await self._drop_connection()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "sink",
            "type": "postgres",
            "records": self._records,
            "flushed": self._flushed,
            "pending": self._pending_records,
            "errors": self._errors,
            "last_error": self._last_error,
            "table": self.table,
            "connected": self._db is not None,
        }


class PostgresSource:
    """Reads new rows of ``table`` in the order of ``column`` (a serial id, a timestamp
    set on insert: any column whose value only grows), each as a dict of the selected
    ``columns`` (all when None). ``key`` names a column whose value (as text) is the
    record's key. Values become JSON: timestamps and dates ISO 8601 text, numerics
    exact decimal text, UUIDs text, bytea base64 text. ``poll_interval`` is how often an
    idle table is read again; ``batch`` bounds the rows per read."""

    def __init__(
        self,
        dsn: str,
        table: str,
        column: str,
        *,
        name: str | None = None,
        key: str | None = None,
        columns: Sequence[str] | None = None,
        schema: str | None = None,
        batch: int = 1000,
        poll_interval: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.table = check_identifier("table", table)
        self.schema = check_identifier("schema", schema) if schema is not None else None
        self.column = check_identifier("column", column)
        self.key = check_identifier("key", key) if key is not None else None
        self.columns = (
            [check_identifier("column", c) for c in columns] if columns is not None else None
        )
        if self.columns is not None:
            for needed in (self.column, self.key):
                if needed is not None and needed not in self.columns:
                    raise ConnectorConfigError(f"columns must include {needed}")
        if batch < 1:
            raise ConnectorConfigError(f"batch = {batch}: at least 1")
        if poll_interval <= 0:
            raise ConnectorConfigError(f"poll_interval = {poll_interval}: more than 0")
        self.name = name if name is not None else f"postgres-{table}"
        self.batch = batch
        self.poll_interval = poll_interval
        self._db: Any = None
        self._position: Position | None = None
        self._next_read = 0.0
        self._records = 0
        self._errors = 0
        self._last_error: str | None = None

    def _select(self, where: str) -> str:
        table = quoted(self.table)
        if self.schema:
            table = f"{quoted(self.schema)}.{table}"
        wanted = ", ".join(quoted(c) for c in self.columns) if self.columns else "*"
        return f"SELECT {wanted} FROM {table} {where} ORDER BY {quoted(self.column)}"

    async def start(self, position: Position | None) -> None:
        self._position = position

    async def poll(self) -> Sequence[SourceRecord]:
        loop = asyncio.get_running_loop()
        wait = self._next_read - loop.time()
        if wait > 0:
            await asyncio.sleep(min(wait, 1.0))
            return []
        try:
            rows = await self._read()
        except SourceError:
            raise
        except Exception as error:  # sorted below: transient or not
            if not _transient(error):
                raise SourceError(f"postgres source {self.name}: {error}") from error
            self._errors += 1
            self._last_error = str(error)
            await self._drop_connection()
            self._next_read = loop.time() + min(self.poll_interval, 1.0)
            return []
        if not rows:
            self._next_read = loop.time() + self.poll_interval
            return []
        return self._records_of(rows)

    async def _read(self) -> list[dict[str, Any]]:
        psycopg = _psycopg()
        from psycopg.rows import dict_row

        if self._db is None:
            self._db = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, row_factory=dict_row
            )
        column = quoted(self.column)
        if self._position is None:
            found = await self._db.execute(self._select("") + " LIMIT %s", (self.batch,))
        else:
            found = await self._db.execute(
                self._select(f"WHERE {column} > %s") + " LIMIT %s",
                (self._position, self.batch),
            )
        rows: list[dict[str, Any]] = await found.fetchall()
        if len(rows) < self.batch:
            return rows
        # a full batch may end inside a run of equal values: leave that run to the next
        # read, or, when the whole batch is one run, read the run whole
        last = rows[-1][self.column]
        cut = len(rows)
        while cut > 0 and rows[cut - 1][self.column] == last:
            cut -= 1
        if cut > 0:
            return rows[:cut]
        found = await self._db.execute(self._select(f"WHERE {column} = %s"), (last,))
        run: list[dict[str, Any]] = await found.fetchall()
        return run

    def _records_of(self, rows: list[dict[str, Any]]) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        before = self._position
        for i, row in enumerate(rows):
            value = {name: _json_value(v) for name, v in row.items()}
            here = value[self.column]
            run_ends = i + 1 == len(rows) or rows[i + 1][self.column] != row[self.column]
            if run_ends:
                position, before = here, here
            else:
                position = before
            key = value.get(self.key) if self.key is not None else None
            out.append(
                SourceRecord(
                    value=value,
                    position=position,
                    key=None if key is None else key if isinstance(key, str) else str(key),
                )
            )
        self._position = before
        self._records += len(out)
        return out

    async def _drop_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                await db.close()
            except Exception:  # already broken: closing is best effort
                pass

    async def close(self) -> None:
        await self._drop_connection()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "source",
            "type": "postgres",
            "records": self._records,
            "errors": self._errors,
            "last_error": self._last_error,
            "position": self._position,
            "table": self.table,
            "connected": self._db is not None,
        }


def _json_value(value: Any) -> Any:
    """A column's value as JSON data, exactly (decimals and times as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)


def sink_from_config(name: str, config: Mapping[str, Any]) -> PostgresSink:
    """``[[sink]] type = "postgres"``: dsn, table, schema, key_column, columns, create."""
    keys = ConfigKeys(name, config)
    sink = PostgresSink(
        keys.take("dsn", str),
        keys.take("table", str),
        name=name,
        key_column=keys.take("key_column", str, "key"),
        columns=keys.take("columns", (list, dict), None),
        create=keys.take("create", bool, True),
        schema=keys.take("schema", str, None),
    )
    keys.done()
    return sink


def source_from_config(name: str, config: Mapping[str, Any]) -> PostgresSource:
    """``[[source]] type = "postgres"``: dsn, table, column, schema, key, columns, batch,
    poll_interval."""
    keys = ConfigKeys(name, config)
    source = PostgresSource(
        keys.take("dsn", str),
        keys.take("table", str),
        keys.take("column", str),
        name=name,
        key=keys.take("key", str, None),
        columns=keys.take("columns", list, None),
        schema=keys.take("schema", str, None),
        batch=keys.take("batch", int, 1000),
        poll_interval=float(keys.take("poll_interval", (int, float), 1.0)),
    )
    keys.done()
    return source
