"""The two file formats, both ways: a record's bytes to a value (the source) and a value to
a line (the sink).

JSON lines: one JSON value per line, decoded with msgspec (objects become dicts). CSV: the
rows become dicts of strings keyed by the header's columns (``csv`` module, strict
quoting); a row with a different number of fields is malformed rather than padded, so
nothing is silently shifted or dropped. Blank lines are no records in either format.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from streamlog.connect.errors import BadRecordError
from streamlog.connect.files.errors import MalformedRecord

__all__ = [
    "FORMATS",
    "BLANK",
    "JsonLinesDecoder",
    "CsvDecoder",
    "encode_jsonl",
    "CsvEncoder",
    "json_value",
]

FORMATS = ("jsonl", "csv")

BLANK = object()
"""What a decoder returns for a blank line: no record."""


class JsonLinesDecoder:
    """A line of JSON to its value."""

    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder().decode

    def decode(self, data: bytes) -> Any:
        try:
            return self._decode(data)
        except msgspec.DecodeError as exc:
            if not data.strip():
                return BLANK
            raise MalformedRecord(f"not JSON: {exc}") from None


class _OneItem:
    """The csv reader's input: the one record set before each ``next(reader)``; the reader
    asking for a second line means the record's quotes never closed."""

    def __init__(self) -> None:
        self.item: str | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        item = self.item
        if item is None:
            raise StopIteration
        self.item = None
        return item


class CsvDecoder:
    """CSV records to rows. ``columns`` None: the caller reads the header and sets them."""

    def __init__(self, *, delimiter: str, encoding: str, columns: Sequence[str] | None) -> None:
        self._encoding = encoding
        self._feed = _OneItem()
        self._reader = csv.reader(self._feed, delimiter=delimiter, strict=True)
        self.columns: tuple[str, ...] | None = tuple(columns) if columns is not None else None

    def row(self, data: bytes) -> list[str] | None:
        """The fields of one record (None: a blank line)."""
        try:
            self._feed.item = data.decode(self._encoding)
        except UnicodeDecodeError as exc:
            raise MalformedRecord(
                f"not {self._encoding}: {exc.reason} at byte {exc.start}"
            ) from None
        try:
            fields = next(self._reader)
        except csv.Error as exc:
            raise MalformedRecord(f"bad CSV: {exc}") from None
        except StopIteration:  # the reader saw nothing at all: an empty record
            return None
        return fields or None

    def decode(self, data: bytes) -> Any:
        fields = self.row(data)
        if fields is None:
            return BLANK
        columns = self.columns
        if columns is None:
            raise MalformedRecord("no header")
        if len(fields) != len(columns):
            raise MalformedRecord(f"{len(fields)} fields where the header has {len(columns)}")
        return dict(zip(columns, fields, strict=True))


def json_value(value: Any) -> Any:
    """A sink's value as a JSON-able object: dicts and the like as they are; bytes or str
    must hold JSON (what a topic without a codec carries)."""
    if isinstance(value, bytes | bytearray | memoryview | str):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise BadRecordError(f"the value is not JSON: {exc}") from None
    return value


_json_encode = msgspec.json.Encoder().encode


def encode_jsonl(value: Any) -> bytes:
    """One JSON line (with its newline) for a value."""
    try:
        return _json_encode(json_value(value)) + b"\n"
    except (TypeError, msgspec.EncodeError) as exc:
        raise BadRecordError(f"the value cannot be written as JSON: {exc}") from None


class CsvEncoder:
    """Rows (dicts) to CSV lines under fixed ``columns``; a field missing from a row is
    written empty, a field the columns do not have makes the record bad (never dropped).
    Nested values are written as JSON, None as an empty field."""

    def __init__(self, *, columns: Sequence[str], delimiter: str) -> None:
        self.columns = tuple(columns)
        self._known = frozenset(self.columns)
        self._out = io.StringIO()
        self._writer = csv.writer(self._out, delimiter=delimiter, lineterminator="\n")

    def header(self) -> bytes:
        return self._line(self.columns)

    def encode(self, value: Any) -> bytes:
        row = json_value(value)
        if not isinstance(row, Mapping):
            raise BadRecordError(f"a CSV row must be an object, not {type(row).__name__}")
        extra = [k for k in row if k not in self._known]
        if extra:
            raise BadRecordError(
                f"fields {extra!r} are not among the columns {list(self.columns)!r}"
            )
        return self._line([_field(row.get(c)) for c in self.columns])

    def _line(self, fields: Sequence[str]) -> bytes:
        self._writer.writerow(fields)
        text = self._out.getvalue()
        self._out.seek(0)
        self._out.truncate()
        return text.encode("utf-8")


def _field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return _json_encode(value).decode()
    return _json_encode(value).decode()
