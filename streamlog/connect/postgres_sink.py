"""The PostgreSQL sink: a topic kept as a table, upserted by key, rows deleted on
tombstones (psycopg 3).

Each ``write`` applies its batch at once inside the transaction that the next ``flush``
commits, in a savepoint: rows are COPYed into a temporary staging table shaped like the
target and merged with one ``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE``;
tombstones' keys are COPYed there too for one ``DELETE ... USING`` (the staging key
column has the target's type, whatever it is). So a value the table refuses (text in an
integer column, a constraint) is found in the ``write`` of its batch: the savepoint is
rolled back, a bisection over prefixes of the batch finds the first record at fault
(``batches.first_refused``: about ten tries for 1,000 records), the records before it
are applied, and ``write`` raises ``BadRecordError`` with ``.record`` set (the runner
dead-letters it and hands the rest again). ``flush`` returns once ``COMMIT`` did: the
app commits the topic's offsets only after PostgreSQL holds the rows, and a re-delivery
rewrites the same rows.

While the server is away, ``write`` and ``flush`` raise ``SinkUnavailableError``
(the runner backs off and retries). The operations taken since the last commit are also
kept in memory, folded by key: when the connection is lost between a write and the
commit, the next ``write`` or ``flush`` reconnects and applies them again in a new
transaction, so a caller that simply retries ``flush`` loses nothing either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from streamlog.connect.base import SinkRecord
from streamlog.connect.batches import (
    PendingRows,
    first_refused,
    operations_of,
    refused_record_error,
)
from streamlog.connect.errors import (
    ConnectorConfigError,
    SinkError,
    SinkUnavailableError,
)
from streamlog.connect.pg_common import is_transient, psycopg_module
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

__all__ = ["PostgresSink", "LOCK_TIMEOUT_S"]

LOCK_TIMEOUT_S = 5.0


class PostgresSink:
    """Writes a topic's records to ``table`` in the database ``dsn`` names.

    ``columns`` None keeps documents: ``(key text PRIMARY KEY, value jsonb)``. A list of
    names keeps one column per field of the value; a mapping of name to SQL type also
    says the types to create the table with (a list creates ``jsonb`` columns). An
    existing table must have the columns and a primary key or unique index on
    ``key_column``; its json/jsonb columns get values as JSON documents, the others
    scalars as PostgreSQL reads their text (``"2026-12-01"`` into a date) and
    objects/lists as JSON text."""

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
        self._applied = False  # the open transaction holds every pending operation
        self._pending = PendingRows()
        self._lock = asyncio.Lock()
        self._records = 0
        self._flushed = 0
        self._errors = 0
        self._rejected = 0
        self._last_error: str | None = None

    @property
    def _target(self) -> str:
        table = quoted(self.table)
        return f"{quoted(self.schema)}.{table}" if self.schema else table

    @property
    def _staging(self) -> str:
        return quoted(f"streamlog_staging_{self.table}")

    # -- connection -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and check (or create) the table. A server that is away is not an error
        yet: the first write connects, and the runner retries that one while it is
        away; a table that cannot work raises here."""
        async with self._lock:
            try:
                await self._connect()
            except SinkUnavailableError as error:
                self._failed(error)
                return
            self._applied = True  # nothing pending yet

    async def _connect(self) -> Any:
        """Connect, check or create the table, make the staging table; the connection is
        left idle (its next statement opens the transaction that flush commits)."""
        psycopg = psycopg_module()
        try:
            db = await psycopg.AsyncConnection.connect(self.dsn)
        except psycopg.Error as error:
            raise SinkUnavailableError(f"postgres sink {self.name}: {error}") from error
        try:
            # the sink holds its rows' locks from a write to the app's commit: a write
            # waiting on locks someone else holds (another sink of the app on the same
            # rows, whose commit waits for this one) gives up and is retried, never
            # waits forever
            await db.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_S * 1000)}")
            await self._prepare_table(db)
            names = ", ".join(quoted(c) for c in (self.shape.key_column, *self.shape.value_columns))
            await db.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {self._staging} AS "
                f"SELECT {names} FROM {self._target} WITH NO DATA"
            )
            await db.commit()
        except psycopg.Error as error:
            await db.close()
            if is_transient(error):
                raise SinkUnavailableError(f"postgres sink {self.name}: {error}") from error
            raise SinkError(f"postgres sink {self.name}: {error}") from error
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
            await db.execute(f"CREATE TABLE IF NOT EXISTS {self._target} ({body})")
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

    async def _drop_connection(self) -> None:
        db, self._db = self._db, None
        self._applied = False
        if db is not None:
            try:
                await db.close()
            except Exception:  # already broken: closing is best effort
                pass

    # -- the Sink protocol --------------------------------------------------------------

    async def write(self, records: Sequence[SinkRecord]) -> None:
        psycopg = psycopg_module()
        async with self._lock:
            try:
                db = await self._transaction()
                # folded once connected: the table's json columns shape the cells
                batch: dict[str, Upsert | Delete] = {}
                usable = fold(batch, records, self.shape)  # records[usable]: not a row
                taken, refusing = await self._apply_records(db, records[:usable], batch)
            except psycopg.Error as error:  # transient: the connection is gone
                self._failed(error)
                await self._drop_connection()
                raise SinkUnavailableError(f"postgres sink {self.name}: {error}") from error
            except SinkUnavailableError as error:
                self._failed(error)
                raise
            if refusing is not None:
                batch = {}
                fold(batch, records[:taken], self.shape)
            self._pending.take(batch, taken)
            self._records += taken
        if refusing is not None:
            self._failed(refusing)
            self._rejected += 1
            raise refused_record_error(records[taken], refusing) from refusing
        if usable < len(records):
            self._rejected += 1
            raise refusal(records[usable], self.shape)

    async def _transaction(self) -> Any:
        """The connection, its open transaction holding every pending operation:
        reconnected and replayed when the connection was lost (``SinkUnavailableError``
        while the server is away; ``SinkError`` when a replayed value is refused)."""
        if self._db is not None and self._applied:
            return self._db
        await self._drop_connection()
        db = await self._connect()
        error = await self._try(db, list(self._pending.operations.values()))
        if error is not None:
            self._failed(error)
            await self._drop_connection()
            raise SinkError(f"postgres sink {self.name}: {error}") from error
        self._applied = True
        return db

    async def _apply_records(
        self, db: Any, records: Sequence[SinkRecord], batch: dict[str, Upsert | Delete]
    ) -> tuple[int, Exception | None]:
        """Apply ``batch`` (``records`` folded) in the open transaction: how many records
        were applied, and the table's refusal of the next one (``batches``). A transient
        error raises."""
        error = await self._try(db, list(batch.values()))
        if error is None:
            return len(records), None

        async def goes_through(count: int) -> bool:
            await db.execute("SAVEPOINT streamlog_probe")
            went = await self._try(db, operations_of(records[:count], self.shape)) is None
            await db.execute("ROLLBACK TO SAVEPOINT streamlog_probe")
            await db.execute("RELEASE SAVEPOINT streamlog_probe")
            return went

        culprit = await first_refused(len(records), goes_through)
        if culprit > 0:
            again = await self._try(db, operations_of(records[:culprit], self.shape))
            if again is not None:  # they went through a moment ago: not a record's fault
                raise SinkError(f"postgres sink {self.name}: {again}") from again
        return culprit, error

    async def _try(self, db: Any, operations: list[Upsert | Delete]) -> Exception | None:
        """Apply ``operations`` in a savepoint: None when they went through (and stay
        applied), else the error (and nothing of them applied). A transient error
        raises."""
        psycopg = psycopg_module()
        await db.execute("SAVEPOINT streamlog_try")
        try:
            await self._apply(db, operations)
        except psycopg.Error as error:
            if is_transient(error):
                raise
            await db.execute("ROLLBACK TO SAVEPOINT streamlog_try")
            await db.execute("RELEASE SAVEPOINT streamlog_try")
            return error
        await db.execute("RELEASE SAVEPOINT streamlog_try")
        return None

    async def _apply(self, db: Any, operations: list[Upsert | Delete]) -> None:
        """Upserts through the staging table (one COPY, one merge), then deletes (one
        COPY of their keys, one ``DELETE ... USING``)."""
        upserts = [op.row for op in operations if isinstance(op, Upsert)]
        deletes = [op.key for op in operations if isinstance(op, Delete)]
        key = quoted(self.shape.key_column)
        if upserts:
            names = ", ".join(quoted(c) for c in (self.shape.key_column, *self.shape.value_columns))
            async with db.cursor() as cursor:
                async with cursor.copy(f"COPY {self._staging} ({names}) FROM STDIN") as copy:
                    for row in upserts:
                        await copy.write_row(row)
            updates = ", ".join(
                f"{quoted(c)} = excluded.{quoted(c)}" for c in self.shape.value_columns
            )
            # one round trip: two statements, no parameters (the simple query protocol)
            await db.execute(
                f"INSERT INTO {self._target} ({names}) SELECT {names} FROM {self._staging} "
                f"ON CONFLICT ({key}) DO UPDATE SET {updates}; TRUNCATE {self._staging}"
            )
        if deletes:  # through the staging table too: its key column has the target's type
            async with db.cursor() as cursor:
                async with cursor.copy(f"COPY {self._staging} ({key}) FROM STDIN") as copy:
                    for deleted in deletes:
                        await copy.write_row((deleted,))
            await db.execute(
                f"DELETE FROM {self._target} AS t USING {self._staging} AS s "
                f"WHERE t.{key} = s.{key}; TRUNCATE {self._staging}"
            )

    async def flush(self) -> None:
        psycopg = psycopg_module()
        async with self._lock:
            if not self._pending.operations and (self._db is None or not self._applied):
                self._flushed += self._pending.records  # folded away: nothing to write
                self._pending.clear()
                return
            try:
                db = await self._transaction()
                await db.commit()
            except SinkUnavailableError as error:
                self._failed(error)
                raise
            except psycopg.Error as error:
                self._failed(error)
                await self._drop_connection()
                if is_transient(error):
                    raise SinkUnavailableError(f"postgres sink {self.name}: {error}") from error
                raise SinkError(f"postgres sink {self.name}: {error}") from error
            self._flushed += self._pending.records
            self._pending.clear()

    async def discard(self) -> None:
        async with self._lock:
            self._pending.clear()
            if self._db is not None:
                try:
                    await self._db.rollback()
                    self._applied = True
                except psycopg_module().Error:
                    await self._drop_connection()

    async def close(self) -> None:
        async with self._lock:
            await self._drop_connection()

    def _failed(self, error: BaseException) -> None:
        self._errors += 1
        self._last_error = str(error)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "sink",
            "type": "postgres",
            "records": self._records,
            "flushed": self._flushed,
            "pending": self._pending.records,
            "rejected": self._rejected,
            "errors": self._errors,
            "last_error": self._last_error,
            "table": self.table,
            "connected": self._db is not None,
        }
