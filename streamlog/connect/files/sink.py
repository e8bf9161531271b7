"""``FileSink``: a topic written to JSON lines or CSV files, rotated by size and time.

Files, next to ``path`` (say ``out/orders.jsonl``):

* ``orders.jsonl``: the active file, appended to (``tail -f`` it);
* ``orders.000001.jsonl``, ``orders.000002.jsonl``...: rotated files, complete, never
  written again (a job that picks up finished files reads these);
* ``.orders.jsonl.sink``: the sink's state (JSON, replaced atomically): the active file's
  durable size, the next rotation number, the CSV columns, and per topic partition the
  offset of the last record made durable;
* ``.orders.jsonl.lock``: held (``flock``) while a sink writes here, so a second worker
  pointed at the same path fails at start instead of interleaving lines.

The flush, in order (each step durable before the next):

1. the buffered lines are appended to the active file, which is fdatasync'ed (and its
   directory fsync'ed when the file is new);
2. the state file records the new size and the last offsets;
3. when rotation is due (``max_bytes`` would be passed, or the file is ``max_age``
   seconds old: checked as records come and on flushes, with no timer of its own), the
   active file is renamed to the next rotated name, the directory fsync'ed, and the
   state records the next number.

A crash anywhere is repaired at start: bytes past the recorded size are cut off (their
records were not acknowledged and come again), a rename whose state was not written is
recognised by the rotated file's presence. Records arriving again with an offset at or
below the recorded one (at-least-once redelivery after a crash between the flush and the
offset commit) are skipped, so a file never holds a record twice. Deleting and creating
the topic again restarts its offsets: delete the state file with it.

Tombstones (value None) have no line in a file: they are counted and skipped.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from streamlog.connect.base import SinkRecord
from streamlog.connect.errors import (
    BadRecordError,
    ConnectorConfigError,
    SinkError,
    SinkUnavailableError,
)
from streamlog.connect.files.errors import MalformedRecord
from streamlog.connect.files.formats import (
    FORMATS,
    CsvDecoder,
    CsvEncoder,
    encode_jsonl,
    json_value,
)

__all__ = ["FileSink"]

log = logging.getLogger(__name__)


class FileSink:
    """Writes each record's value as a line of ``path`` (``format``: ``"jsonl"`` or
    ``"csv"``; CSV ``columns`` default to the active file's header, else the first
    record's fields). ``max_bytes``/``max_age`` (seconds): rotate when either is reached
    (None: never). Lines are buffered in memory up to ``buffer_bytes``, then written
    (not yet durable) to the file; ``flush`` makes them durable.

    Not safe for concurrent calls: the runner awaits one call at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str = "jsonl",  # noqa: A002 - the connector's documented keyword
        name: str | None = None,
        columns: Sequence[str] | None = None,
        delimiter: str = ",",
        max_bytes: int | None = 64 * 1024 * 1024,
        max_age: float | None = None,
        buffer_bytes: int = 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        if format not in FORMATS:
            raise ConnectorConfigError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
        if len(delimiter) != 1:
            raise ConnectorConfigError(f"delimiter: {delimiter!r} is not one character")
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise ConnectorConfigError(f"max_bytes: {max_bytes!r} is not a positive integer")
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0
        ):
            raise ConnectorConfigError(f"max_age: {max_age!r} is not a positive number of seconds")
        if isinstance(buffer_bytes, bool) or not isinstance(buffer_bytes, int) or buffer_bytes < 1:
            raise ConnectorConfigError(f"buffer_bytes: {buffer_bytes!r} is not a positive integer")
        if columns is not None and (
            isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
        ):
            raise ConnectorConfigError("columns: not a list of column names")
        self.name = name or f"file:{self.path}"
        self.format = format
        self._configured_columns = tuple(columns) if columns is not None else None
        self._columns = self._configured_columns  # or the file's, the state's, a record's
        self._delimiter = delimiter
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._buffer_limit = buffer_bytes
        self._clock = clock

        directory, filename = os.path.split(self.path)
        self._dir = directory
        stem, dot, suffix = filename.partition(".")
        self._stem = stem
        self._suffix = dot + suffix
        self._state_path = os.path.join(directory, f".{filename}.sink")
        self._lock_path = os.path.join(directory, f".{filename}.lock")
        self._rotated_name = re.compile(
            re.escape(stem) + r"\.(\d{6,})" + re.escape(self._suffix) + "$"
        )

        self._lock_fd: int | None = None
        self._fd: int | None = None  # the active file, opened at the first line
        self._encoder: CsvEncoder | None = None
        self._seq = 1  # the number the active file gets when rotated
        self._durable = 0  # the active file's durable size
        self._written = 0  # its size, durable or not
        self._opened_at: float | None = None  # when its first line was written
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._unsynced: list[bytes] = []  # written since the last flush: kept to write again
        self._done: dict[str, dict[str, int]] = {}  # topic -> partition -> last durable offset
        self._taken: dict[tuple[str, int], int] = {}  # last offset taken, not yet durable
        self._pending = 0  # records taken, not yet durable
        self._flushed = 0
        self._skipped = 0
        self._tombstones = 0
        self._errors = 0
        self._last_error: str | None = None
        self._rotations = 0

    # -- the Sink protocol ---------------------------------------------------------------

    async def start(self) -> None:
        """Take the path's lock and repair what a crash left (see the module docstring)."""
        if os.path.isdir(self.path):
            raise SinkError(f"file sink {self.name}: {self.path} is a directory")
        try:
            os.makedirs(self._dir, exist_ok=True)
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SinkError(f"file sink {self.name}: {self._dir}: {exc.strerror}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SinkError(
                f"file sink {self.name}: {self.path} is being written by another sink "
                f"(it holds {self._lock_path}); give each worker its own path"
            ) from None
        self._recover()

    async def write(self, records: Sequence[SinkRecord]) -> None:
        """Buffer the records' lines. A batch holding a record that cannot be written is
        refused whole (``BadRecordError``), nothing of it taken, so that the runner can
        hand its records one at a time to find that one."""
        lines: list[bytes | None] = []  # None: a tombstone, or a record durable already
        for record in records:
            if record.value is None or record.offset <= self._last_offset(
                (record.topic, record.partition)
            ):
                lines.append(None)
                continue
            try:
                lines.append(self._encode(record.value))
            except BadRecordError as exc:
                self._errors += 1
                self._last_error = f"{record.topic}[{record.partition}]@{record.offset}: {exc}"
                raise BadRecordError(f"file sink {self.name}: {self._last_error}") from None
        for record, line in zip(records, lines, strict=True):
            partition_key = (record.topic, record.partition)
            if record.offset <= self._last_offset(partition_key):
                self._skipped += 1  # durable already: a redelivery after a crash
                continue
            if line is None:
                self._tombstones += 1  # (a record durable already was skipped above)
            else:
                if self._rotation_due(len(line)) or self._age_due():
                    await asyncio.to_thread(self._flush_and_rotate)
                if self._written + self._buffered == 0 and self._encoder is not None:
                    header = self._encoder.header()  # a new CSV file starts with its header
                    self._buffer.append(header)
                    self._buffered += len(header)
                self._buffer.append(line)
                self._buffered += len(line)
                if self._buffered >= self._buffer_limit:
                    await asyncio.to_thread(self._write_buffer_or_keep)
            # Taken only now that its line is buffered: the flush a rotation makes above
            # records the offsets taken, and must not record one whose line it did not write.
            self._taken[partition_key] = record.offset
            self._pending += 1

    async def flush(self) -> None:
        """Make every line taken durable (steps 1-3); ``SinkUnavailableError`` when the
        disk refuses (full, read-only): nothing is acknowledged then."""
        if not self._pending and not self._age_due():
            return
        await asyncio.to_thread(self._flush_sync, self._age_due())

    async def discard(self) -> None:
        """Forget what is not durable: the buffer, and bytes written past the durable size."""
        self._buffer = []
        self._buffered = 0
        self._unsynced = []
        self._taken = {}
        self._pending = 0
        if self._fd is not None and self._written != self._durable:
            os.ftruncate(self._fd, self._durable)
            os.lseek(self._fd, self._durable, os.SEEK_SET)
            self._written = self._durable

    async def close(self) -> None:
        """Close the files; what is not flushed is not kept (the runner flushed it)."""
        await self.discard()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "sink",
            "type": "file",
            "path": self.path,
            "format": self.format,
            "records": self._flushed,
            "flushed": self._flushed,
            "pending": self._pending,
            "skipped_redelivered": self._skipped,
            "tombstones": self._tombstones,
            "rotations": self._rotations,
            "errors": self._errors,
            "last_error": self._last_error,
        }

    # -- lines ---------------------------------------------------------------------------

    def _encode(self, value: Any) -> bytes:
        if self.format == "jsonl":
            return encode_jsonl(value)
        if self._encoder is None:
            columns = self._columns
            if columns is None:
                value = json_value(value)
                if not isinstance(value, dict):
                    raise BadRecordError(f"a CSV row must be an object, not {type(value).__name__}")
                columns = tuple(str(k) for k in value)
            self._encoder = CsvEncoder(columns=columns, delimiter=self._delimiter)
        return self._encoder.encode(value)

    def _last_offset(self, partition_key: tuple[str, int]) -> int:
        taken = self._taken.get(partition_key)
        if taken is not None:
            return taken
        return self._done.get(partition_key[0], {}).get(str(partition_key[1]), -1)

    def _rotation_due(self, more: int) -> bool:
        size = self._written + self._buffered
        return self._max_bytes is not None and size > 0 and size + more > self._max_bytes

    def _age_due(self) -> bool:
        opened = self._opened_at
        return (
            self._max_age is not None
            and opened is not None
            and self._clock() - opened >= self._max_age
        )

    # -- the flush steps (run in a thread: fsync blocks) ----------------------------------

    def _flush_and_rotate(self) -> None:
        """Inside ``write``: the file is full. A disk that refuses is not ``write``'s
        error (the batch is being taken): the rotation waits, and ``flush`` reports it."""
        try:
            self._flush_sync(True)
        except SinkUnavailableError as exc:
            log.warning("file sink %s: rotation put off: %s", self.name, exc)

    def _flush_sync(self, rotate: bool) -> None:
        """Steps 1-3. What is remembered as durable (size, offsets) changes only once
        the state file says so: a failure anywhere leaves the flush to be done again."""
        try:
            self._write_buffer()
            if self._fd is not None and self._written != self._durable:
                self._sync_active()  # step 1
            done = {topic: dict(partitions) for topic, partitions in self._done.items()}
            for (topic, partition), offset in self._taken.items():
                done.setdefault(topic, {})[str(partition)] = offset
            self._save_state(self._written, done)  # step 2
            self._durable = self._written
            self._unsynced = []
            self._done = done
            self._taken = {}
            self._flushed += self._pending
            self._pending = 0
            if rotate and self._fd is not None and self._durable > 0:
                self._rotate()  # step 3
        except OSError as exc:
            raise SinkUnavailableError(
                f"file sink {self.name}: {self.path}: {exc.strerror}"
            ) from exc

    def _sync_active(self) -> None:
        """fdatasync the active file. When it fails, the kernel may have dropped the
        pages it could not write and a second fdatasync would succeed without them: the
        file is cut back to its durable size and the lines written since go back to the
        buffer, to be written again."""
        fd = self._fd
        if fd is None:
            return
        try:
            os.fdatasync(fd)
        except OSError:
            self._written_back()
            raise

    def _written_back(self) -> None:
        fd = self._fd
        if fd is not None:
            try:
                os.ftruncate(fd, self._durable)
                os.lseek(fd, self._durable, os.SEEK_SET)
            except OSError:
                pass  # the next start cuts the file back to the state's size
        self._buffer = [*self._unsynced, *self._buffer]
        self._buffered = sum(len(chunk) for chunk in self._buffer)
        self._unsynced = []
        self._written = self._durable

    def _write_buffer_or_keep(self) -> None:
        """Inside ``write``: the buffer is full. A disk that refuses: the lines stay
        buffered, and ``flush`` reports it."""
        try:
            self._write_buffer()
        except OSError as exc:
            log.warning("file sink %s: %s: %s (kept in memory)", self.name, self.path, exc.strerror)

    def _write_buffer(self) -> None:
        if not self._buffer:
            return
        if self._fd is None:
            self._open_active()
        fd = self._fd
        if fd is None:
            raise SinkError(f"file sink {self.name}: no active file")
        data = b"".join(self._buffer)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            self._cut_back(fd)  # no half line left behind; the buffer is kept
            raise
        self._unsynced.append(data)
        self._buffer = []
        self._buffered = 0
        self._written += len(data)

    def _cut_back(self, fd: int) -> None:
        """After a failed write: the file back to what was written whole (best effort:
        the start of the next run cuts it back to the durable size anyway)."""
        try:
            os.ftruncate(fd, self._written)
            os.lseek(fd, self._written, os.SEEK_SET)
        except OSError:
            pass

    def _open_active(self) -> None:
        created = not os.path.exists(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        size = os.lseek(self._fd, 0, os.SEEK_END)
        self._written = self._durable = size
        if created:
            _fsync_dir(self._dir)
        if self._opened_at is None:
            self._opened_at = self._clock()

    def _rotate(self) -> None:
        fd = self._fd
        if fd is None:
            return
        target = self._rotated_path(self._seq)
        os.close(fd)
        self._fd = None
        os.rename(self.path, target)
        _fsync_dir(self._dir)
        self._seq += 1
        self._durable = self._written = 0
        self._opened_at = None
        self._rotations += 1
        self._save_state(0, self._done)

    def _rotated_path(self, seq: int) -> str:
        return os.path.join(self._dir, f"{self._stem}.{seq:06d}{self._suffix}")

    def _save_state(self, size: int, offsets: dict[str, dict[str, int]]) -> None:
        state = {
            "size": size,
            "seq": self._seq,
            "opened_at": self._opened_at,
            "columns": list(self._encoder.columns) if self._encoder is not None else None,
            "offsets": offsets,
        }
        tmp = self._state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(state, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._state_path)
        _fsync_dir(self._dir)

    # -- start ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Put the files back as the last complete flush left them."""
        state = self._load_state()
        rotated = [
            int(m.group(1)) for m in map(self._rotated_name.match, os.listdir(self._dir)) if m
        ]
        self._seq = max(rotated, default=0) + 1
        size: int | None = None
        if state is not None:
            self._done = state["offsets"]
            self._seq = max(self._seq, state["seq"])
            size = state["size"]
            self._opened_at = state["opened_at"]
            if state["columns"] is not None and self._columns is None and self.format == "csv":
                self._columns = tuple(state["columns"])
        exists = os.path.exists(self.path)
        if exists:
            actual = os.path.getsize(self.path)
            if size is not None and actual > size:
                log.warning(
                    "file sink %s: cutting %s back to %d bytes (%d written after the last flush "
                    "before a crash; those records come again)",
                    self.name,
                    self.path,
                    size,
                    actual - size,
                )
                os.truncate(self.path, size)
            elif size is not None and actual < size:
                log.warning(
                    "file sink %s: %s is shorter than its last flush: changed by hand?",
                    self.name,
                    self.path,
                )
        if self.format == "csv":
            header = self._header_of_active() if exists else None
            configured = self._configured_columns
            if header is not None and configured is not None and header != configured:
                # One header per file: the file written under the old columns is set aside.
                log.warning(
                    "file sink %s: the columns changed from %s; rotating %s",
                    self.name,
                    list(header),
                    self.path,
                )
                os.rename(self.path, self._rotated_path(self._seq))
                _fsync_dir(self._dir)
                self._seq += 1
                self._save_state(0, self._done)
                exists, header = False, None
            self._columns = configured or header or self._columns
            if self._columns is not None:
                self._encoder = CsvEncoder(columns=self._columns, delimiter=self._delimiter)
        self._written = self._durable = os.path.getsize(self.path) if exists else 0
        if not exists or os.path.getsize(self.path) == 0:
            self._opened_at = None
        elif self._opened_at is None:
            self._opened_at = self._clock()

    def _load_state(self) -> dict[str, Any] | None:
        try:
            with open(self._state_path, encoding="utf-8") as src:
                state = json.load(src)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SinkError(
                f"file sink {self.name}: {self._state_path} is unreadable: {exc}"
            ) from exc
        if (
            not isinstance(state, dict)
            or not isinstance(state.get("size"), int)
            or not isinstance(state.get("seq"), int)
            or not isinstance(state.get("offsets"), dict)
        ):
            raise SinkError(f"file sink {self.name}: {self._state_path} is not a file sink's state")
        state.setdefault("opened_at", None)
        state.setdefault("columns", None)
        return state

    def _header_of_active(self) -> tuple[str, ...] | None:
        try:
            with open(self.path, "rb") as src:
                first = src.readline(1024 * 1024)
        except FileNotFoundError:
            return None
        if not first.endswith(b"\n"):
            return None
        decoder = CsvDecoder(delimiter=self._delimiter, encoding="utf-8", columns=None)
        try:
            fields = decoder.row(first.rstrip(b"\r\n"))
        except MalformedRecord:
            return None
        return tuple(fields) if fields else None


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
