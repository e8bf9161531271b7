"""The PostgreSQL source: polls a table by a monotonic column (psycopg 3).

It reads ``SELECT ... WHERE column > position ORDER BY column LIMIT batch`` and hands
each row as a dict with the position after it. Rows sharing a column value (a
timestamp) are never split across a position: a full batch is cut before its last
value's rows, which the next read takes whole, and a record in the middle of such a run
carries the position before the run (a restart there reads the run again and the
runner's matching drops what the log already has). A lost connection is counted and
retried on the next poll, so the source survives a database restart.

The column must grow in commit order: a row committed later with a smaller value than
one already read (two writers racing for a sequence) is not seen, as with Kafka
Connect's JDBC source in incrementing mode. For a timestamp column, ``delay`` leaves
rows younger than that many seconds for a later read (Kafka Connect's
``timestamp.delay.interval.ms``): a transaction that stamped its rows and commits within
the delay is not passed by.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Sequence
from typing import Any

from streamlog.connect.base import Position, SourceRecord
from streamlog.connect.errors import ConnectorConfigError, SourceError
from streamlog.connect.pg_common import is_transient, psycopg_module
from streamlog.connect.rows import check_identifier, quoted

__all__ = ["PostgresSource"]


class PostgresSource:
    """Reads new rows of ``table`` in the order of ``column`` (a serial id, a timestamp
    set on insert: any column whose value only grows), each as a dict of the selected
    ``columns`` (all when None). ``key`` names a column whose value (as text) is the
    record's key. Values become JSON: timestamps and dates ISO 8601 text, numerics
    exact decimal text, UUIDs text, bytea base64 text. ``poll_interval`` is how often an
    idle table is read again; ``batch`` bounds the rows per read; ``delay`` (a timestamp
    column) holds back rows younger than that many seconds."""

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
        delay: float = 0.0,
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
        if delay < 0:
            raise ConnectorConfigError(f"delay = {delay}: 0 or more")
        self.delay = delay
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
        psycopg = psycopg_module()
        try:
            rows = await self._read()
        except psycopg.Error as error:
            if not is_transient(error):
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
        psycopg = psycopg_module()
        from psycopg.rows import dict_row

        if self._db is None:
            self._db = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, row_factory=dict_row
            )
        column = quoted(self.column)
        # a NULL has no place in the order: such rows are never read (and cannot reset
        # the position to "from the start")
        conditions: list[str] = [f"{column} IS NOT NULL"]
        params: list[Any] = []
        if self._position is not None:
            conditions.append(f"{column} > %s")
            params.append(self._position)
        if self.delay:
            # a timestamp column: rows younger than ``delay`` wait, so that transactions
            # that stamped an earlier time but commit later are not passed by
            conditions.append(f"{column} <= now() - make_interval(secs => %s)")
            params.append(self.delay)
        where = f"WHERE {' AND '.join(conditions)}"
        found = await self._db.execute(self._select(where) + " LIMIT %s", (*params, self.batch))
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
