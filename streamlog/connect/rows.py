"""How a topic's record becomes a table row, for the database sinks (SQLite, PostgreSQL).

A table sink writes *by key*: the record's key is the row's primary key, a record with a
value upserts that row and a tombstone (value None) deletes it. Re-delivery after a crash
(the runner is at-least-once) then rewrites the same rows with the same values, so the
table ends as if every record had been written exactly once.

Two table shapes:

* *document* (no ``columns``): ``(key, value)``, the value stored as JSON text: any
  record whose value is JSON fits, whatever its fields.
* *columns*: one column per named field of the value, which must be a JSON object;
  missing fields are NULL, fields not named are ignored (as Kafka Connect's JDBC sink's
  field list), nested objects and lists are stored as JSON text.

A batch is folded to the last operation per key before it is written: the table sees the
same end state as writing each record in turn, in far fewer statements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from streamlog.connect.base import SinkRecord
from streamlog.connect.errors import BadRecordError, ConnectorConfigError

__all__ = [
    "RowShape",
    "Upsert",
    "Delete",
    "fold",
    "refusal",
    "check_identifier",
    "check_column_type",
    "quoted",
    "record_key_text",
]

_NESTED = (dict, list, tuple)
_encode_json = msgspec.json.Encoder().encode
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# a declared column type reaches SQL text: words with an optional size, "" for none
_COLUMN_TYPE = re.compile(r"^([A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?)?$")


def check_identifier(what: str, name: Any) -> str:
    """A table or column name, refused unless it is a plain SQL identifier: names reach
    SQL text (quoted too, but a name that needs quoting is a configuration mistake)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ConnectorConfigError(
            f"{what} {name!r}: not a plain identifier (letters, digits, _; at most 63)"
        )
    return name


def check_column_type(declared: Any) -> str:
    """A column type given in the config (``"numeric(10,2)"``, ``"text"``, ``""``)."""
    if not isinstance(declared, str) or not _COLUMN_TYPE.match(declared):
        raise ConnectorConfigError(f"columns: type {declared!r} is not a plain SQL type")
    return declared


def quoted(identifier: str) -> str:
    """A checked identifier, quoted (it may be a keyword such as ``key``)."""
    return f'"{identifier}"'


@dataclass(frozen=True, slots=True)
class Upsert:
    """Write this row (``key`` first, then the shape's columns in order)."""

    key: str
    row: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the row with this key (a tombstone)."""

    key: str


def record_key_text(record: SinkRecord) -> str:
    """The row key of a record: str as it is, bytes as UTF-8, a JSON key (number, object)
    as compact JSON with sorted keys so equal keys give equal rows."""
    key = record.key
    if key is None:
        raise BadRecordError(f"{_where(record)}: null key (a table sink writes by key)")
    if isinstance(key, str):
        return key
    if isinstance(key, bytes | bytearray | memoryview):
        try:
            return bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRecordError(f"{_where(record)}: key is not UTF-8") from None
    try:
        return json.dumps(key, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise BadRecordError(f"{_where(record)}: key is not JSON ({error})") from None


class RowShape:
    """The shape of the sink's table: the key column and, in columns mode, the fields.

    ``json_columns`` names the columns whose values go as JSON documents whatever their
    type (PostgreSQL's json/jsonb columns); other columns get scalars as they are and
    objects/lists as JSON text."""

    def __init__(
        self,
        key_column: str,
        columns: Sequence[str] | None,
        json_columns: Iterable[str] = (),
    ) -> None:
        self.key_column = check_identifier("key_column", key_column)
        self.columns: tuple[str, ...] | None = None
        if columns is not None:
            names = tuple(check_identifier("column", c) for c in columns)
            if not names:
                raise ConnectorConfigError("columns: give at least one, or leave it out")
            if len(set(names)) != len(names) or key_column in names:
                raise ConnectorConfigError("columns: each name once, and not the key column's")
            self.columns = names
        self.json_columns = frozenset(json_columns)
        # (column, always as JSON?) per value column, worked out once: this runs per record
        self._cells = tuple((c, c in self.json_columns) for c in self.columns or ())

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns after the key: the fields, or ``("value",)`` for documents."""
        return self.columns if self.columns is not None else ("value",)

    def operation(self, record: SinkRecord) -> Upsert | Delete:
        """The row operation one record asks for; ``BadRecordError`` if it can't be one."""
        key = record_key_text(record)
        if record.value is None:
            return Delete(key)
        value = _decoded(record)
        try:
            return self._upsert(key, value)
        except BadRecordError as error:
            raise BadRecordError(f"{_where(record)}: {error}") from None

    def _upsert(self, key: str, value: Any) -> Upsert:
        if self.columns is None:
            return Upsert(key, (key, _json_text(value)))
        if not isinstance(value, Mapping):
            raise BadRecordError(
                f"value is {type(value).__name__}, not a JSON object (a columns table "
                "takes objects)"
            )
        cells: list[Any] = [key]
        for column, as_json in self._cells:
            cell = value.get(column)
            if as_json or isinstance(cell, _NESTED):
                cell = _json_text(cell)
            cells.append(cell)
        return Upsert(key, tuple(cells))


def fold(
    operations: dict[str, Upsert | Delete], records: Sequence[SinkRecord], shape: RowShape
) -> int:
    """Add records to ``operations`` (key -> last operation, in the order of last write)
    up to the first bad one; how many were added. The caller counts them as taken, then
    raises ``refusal(records[count])`` when it is short: the runner dead-letters that
    record (``BadRecordError.record``) and hands the sink the rest."""
    for count, record in enumerate(records):
        try:
            op = shape.operation(record)
        except BadRecordError:
            return count
        operations.pop(op.key, None)
        operations[op.key] = op
    return len(records)


def refusal(record: SinkRecord, shape: RowShape) -> BadRecordError:
    """The ``BadRecordError`` of a record ``fold`` stopped at, naming it (``.record``)."""
    try:
        shape.operation(record)
    except BadRecordError as error:
        return BadRecordError(str(error), record=record)
    return BadRecordError(f"{_where(record)}: refused", record=record)


def _decoded(record: SinkRecord) -> Any:
    """The record's value as JSON data: topics with a JSON codec hand dicts; raw topics
    hand bytes/str that must hold JSON."""
    value = record.value
    if isinstance(value, bytes | bytearray | memoryview | str):
        try:
            return json.loads(value if isinstance(value, str) else bytes(value))
        except ValueError:
            raise BadRecordError(f"{_where(record)}: value is not JSON") from None
    return value


def _json_text(value: Any) -> str:
    """Compact JSON (msgspec: several times json.dumps' speed, and NaN/inf as null,
    which PostgreSQL's jsonb would refuse as they are)."""
    try:
        return _encode_json(value).decode("utf-8")
    except (TypeError, ValueError, msgspec.EncodeError) as error:
        raise BadRecordError(f"value cannot be stored as JSON: {error}") from None


def _where(record: SinkRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"
