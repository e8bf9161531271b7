"""Two small connectors over real outside systems, for end-to-end tests of the runners
in ``streamlog connect`` processes (killed with SIGKILL and restarted):

* ``LinesSource``: a JSON-lines file, followed; its position is the byte offset after the
  last complete line handed over (a line not ending in a newline yet is left for later).
* ``SqliteRowsSink``: a SQLite table ``rows(id PRIMARY KEY, value)``; ``write`` upserts
  by the value's ``id`` in an open transaction, ``flush`` commits, ``discard`` rolls back.

Built from ``[[source]]``/``[[sink]]`` tables by ``class = "tests.connect.fileconnectors:
LinesSource"`` (``from_config``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from streamlog.connect import (
    BadRecordError,
    ConnectorConfigError,
    SinkRecord,
    SourceRecord,
)

__all__ = ["LinesSource", "SqliteRowsSink"]


class LinesSource:
    def __init__(self, name: str, path: str, *, chunk: int = 500, key_field: str = "") -> None:
        self.name = name
        self.path = path
        self.chunk = chunk
        self.key_field = key_field
        self.offset = 0
        self.records = 0
        self.errors = 0
        self.last_error: str | None = None

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> LinesSource:
        options = dict(config)
        path = options.pop("path", None)
        if not isinstance(path, str):
            raise ConnectorConfigError(f"source {name}: 'path' is required")
        chunk = int(options.pop("chunk", 500))
        key_field = str(options.pop("key_field", ""))
        if options:
            raise ConnectorConfigError(f"source {name}: unknown key(s) {sorted(options)}")
        return cls(name, path, chunk=chunk, key_field=key_field)

    async def start(self, position: Any) -> None:
        self.offset = int(position or 0)

    async def poll(self) -> Sequence[SourceRecord]:
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            out = []
            offset = self.offset
            for line in file:
                if not line.endswith(b"\n") or len(out) >= self.chunk:
                    break
                offset += len(line)
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    self.errors += 1
                    self.last_error = f"line at {offset - len(line)}: {exc}"
                    continue
                key = str(value[self.key_field]) if self.key_field else None
                out.append(SourceRecord(value=value, key=key, position=offset))
        self.offset = offset
        self.records += len(out)
        if not out:
            await asyncio.sleep(0.05)
        return out

    async def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "source",
            "type": "lines",
            "records": self.records,
            "errors": self.errors,
            "last_error": self.last_error,
            "position": self.offset,
        }


class SqliteRowsSink:
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.records = 0
        self.flushed = 0
        self.pending = 0

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> SqliteRowsSink:
        options = dict(config)
        path = options.pop("path", None)
        if not isinstance(path, str) or options:
            raise ConnectorConfigError(f"sink {name}: 'path' only, got {sorted(config)}")
        return cls(name, path)

    async def start(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level="DEFERRED")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, value TEXT)")
        self.db.commit()

    async def write(self, records: Sequence[SinkRecord]) -> None:
        db = self.db
        if db is None:
            raise BadRecordError("not started")
        rows = []
        for record in records:
            value = record.value
            if isinstance(value, bytes | str):
                value = json.loads(value)
            if not isinstance(value, dict) or not isinstance(value.get("id"), int):
                if rows:
                    db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?)", rows)
                    self.pending += len(rows)
                raise BadRecordError(f"no integer id in {value!r}", record=record)
            rows.append((value["id"], json.dumps(value, sort_keys=True)))
        db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?)", rows)
        self.records += len(rows)
        self.pending += len(rows)

    async def flush(self) -> None:
        if self.db is not None:
            self.db.commit()
            self.flushed += self.pending
            self.pending = 0

    async def discard(self) -> None:
        if self.db is not None:
            self.db.rollback()
            self.pending = 0

    async def close(self) -> None:
        if self.db is not None:
            self.db.rollback()
            self.db.close()
            self.db = None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "sink",
            "type": "sqlite-rows",
            "records": self.records,
            "errors": 0,
            "last_error": None,
            "flushed": self.flushed,
            "pending": self.pending,
        }
