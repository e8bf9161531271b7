"""``FileSource``: a JSON lines or CSV file read once, or followed like ``tail -F``.

Position: ``{"inode": I, "head": H, "offset": N}``: the file (its inode, and a CRC-32 of
its first ``min(256, N)`` bytes, which tells a new file that reused the inode, or a file
truncated and written again, from the one that was read) and the byte offset just past the
record. It does not name the path: a record read again from a rotated-away file has the
same position as when it was first read, which the runner's restart matching relies on.

Following (``follow=True``) is by name, as ``tail -F``: when the path names another file
(renamed away and created again, or deleted and created again), the old file is read to
its end, a last line without its newline included, then the new one from its start; when
the file shrinks below the position or its first bytes change (``copytruncate``), it is
read again from its start (lines written between the copy and the truncation are in the
copy only: a limit of copytruncate itself). A restart finds the file of the saved position
in the path's directory by inode and head when it was rotated away meanwhile, and reads
its rest. After a rotated file come the files rotated after it (named like the path, last
written no earlier, not compressed), oldest first, then the current one.

Bad lines (not JSON, a CSV row of the wrong width, longer than ``max_record_bytes``, not
in the encoding) are counted and logged with the file and byte offset, and skipped
(``on_error="skip"``), or stop the source (``on_error="fail"``: the position stays before
the line, so fixing the file and restarting resumes there).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import zlib
from collections.abc import Sequence
from typing import Any

import msgspec

from streamlog.connect.base import Position, SourceRecord
from streamlog.connect.errors import ConnectorConfigError, SourceError
from streamlog.connect.files.errors import MalformedRecord
from streamlog.connect.files.formats import (
    BLANK,
    FORMATS,
    CsvDecoder,
    JsonLinesDecoder,
)
from streamlog.connect.files.framing import Framed, RecordFramer

__all__ = ["FileSource"]

log = logging.getLogger(__name__)

HEAD_BYTES = 256
"""How much of a file's start its fingerprint covers."""

_CHUNK = 256 * 1024
_DRAINED_KEPT = 64  # inodes of the files read to their end, not to be read again
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".z")
_LOGGED_ERRORS = 20  # bad lines logged one by one; then one in every 1,000


class FileSource:
    """Reads ``path`` and hands the runner its records with their positions.

    ``format``: ``"jsonl"`` (values: what each line holds, dicts for objects) or ``"csv"``
    (values: dicts of strings; ``columns`` names them, else the file's first line does;
    ``header=False``: the file has no header line, ``columns`` required). ``key_field``:
    the value's field that becomes the record's key (a record without it is a bad line).
    ``start_at="end"``: a first run (no saved position) skips what the file already holds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str = "jsonl",  # noqa: A002 - the connector's documented keyword
        follow: bool = False,
        name: str | None = None,
        key_field: str | None = None,
        columns: Sequence[str] | None = None,
        header: bool = True,
        delimiter: str = ",",
        encoding: str = "utf-8",
        start_at: str = "beginning",
        on_error: str = "skip",
        batch_size: int = 1000,
        poll_interval: float = 0.25,
        max_record_bytes: int = 1024 * 1024,
    ) -> None:
        self.path = os.fspath(path)
        if format not in FORMATS:
            raise ConnectorConfigError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
        if start_at not in ("beginning", "end"):
            raise ConnectorConfigError(f"start_at: {start_at!r} is not 'beginning' or 'end'")
        if on_error not in ("skip", "fail"):
            raise ConnectorConfigError(f"on_error: {on_error!r} is not 'skip' or 'fail'")
        if format == "csv" and not header and columns is None:
            raise ConnectorConfigError("columns: a CSV file without a header needs its columns")
        if len(delimiter) != 1:
            raise ConnectorConfigError(f"delimiter: {delimiter!r} is not one character")
        if format == "jsonl" and encoding.replace("-", "").lower() != "utf8":
            raise ConnectorConfigError(f"encoding: JSON lines are UTF-8, not {encoding!r}")
        try:
            "".encode(encoding)
        except LookupError:
            raise ConnectorConfigError(f"encoding: {encoding!r} is not a known encoding") from None
        for key, number in (("batch_size", batch_size), ("max_record_bytes", max_record_bytes)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ConnectorConfigError(f"{key}: {number!r} is not a positive integer")
        if not 0 < poll_interval <= 1:
            raise ConnectorConfigError(f"poll_interval: {poll_interval!r} is not in (0, 1] seconds")
        self.name = name or f"file:{self.path}"
        self.format = format
        self.follow = follow
        self._key_field = key_field
        self._columns = tuple(columns) if columns is not None else None
        self._header = header
        self._delimiter = delimiter
        self._encoding = encoding
        self._start_at = start_at
        self._on_error = on_error
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_record_bytes = max_record_bytes

        self._fd: int | None = None
        self._read_offset = 0  # where the next read of the open file starts
        self._inode = 0
        self._file_path = self.path  # where the open file was found (a rotated one's name)
        self._framer: RecordFramer | None = None
        self._decoder: JsonLinesDecoder | CsvDecoder | None = None
        self._head_full: int | None = None  # fingerprint once the file has HEAD_BYTES
        self._check_len = 0  # how many of the open file's first bytes were read ...
        self._check_crc = 0  # ... and their CRC: a file written again is told by them
        self._at_eof = False
        self._draining = False  # reading a rotated-away file to its end
        self._drained: list[int] = []  # inodes of the rotated files read to their end
        self._needs_header = False
        self._position: Position | None = None
        self._failure: SourceError | None = None
        self._records = 0
        self._errors = 0
        self._last_error: str | None = None

    # -- the Source protocol -------------------------------------------------------------

    async def start(self, position: Position | None) -> None:
        """Open the file at ``position`` (None: the first run). A saved position that
        does not fit any file any more is logged and the path read from its start."""
        self._position = position
        if position is None:
            if not self._open_path(at_end=self._start_at == "end") and not self.follow:
                raise SourceError(f"{self.path}: no such file")
            return
        inode, head, offset = _parse_position(position)
        if self._resume(inode, head, offset):
            return
        log.warning(
            "file source %s: the file of the saved position (inode %d, offset %d) is gone or "
            "was replaced; reading %s from its start",
            self.name,
            inode,
            offset,
            self.path,
        )
        if not self._open_path(at_end=False) and not self.follow:
            raise SourceError(f"{self.path}: no such file")

    async def poll(self) -> Sequence[SourceRecord]:
        """The next records; in follow mode, waits ``poll_interval`` when there are none."""
        if self._failure is not None:
            raise self._failure
        if self._fd is None:  # following a path that does not exist (yet)
            if not self._open_path(at_end=False):
                await asyncio.sleep(self._poll_interval)
                return []
        if self.follow and not self._draining and self._start_changed():
            log.warning("file source %s: %s was written again from its start", self.name, self.path)
            self._reopen_at_start()
        records = await self._read(final=not self.follow or self._draining)
        if not self._at_eof or records:
            if self._at_eof and self._draining:
                self._switch_to_path()
            return records
        if not self.follow:
            raise StopAsyncIteration
        if self._draining:
            self._switch_to_path()
            return []
        change = self._file_change()
        if change == "rotated":
            self._draining = True  # the next polls read the old file's rest, then the new one
            self._at_eof = False
            return []
        if change == "truncated":
            log.warning(
                "file source %s: %s was truncated; reading it from its start", self.name, self.path
            )
            self._reopen_at_start()
            return []
        await asyncio.sleep(self._poll_interval)
        self._at_eof = False
        return []

    async def close(self) -> None:
        self._close_fd()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "source",
            "type": "file",
            "path": self.path,
            "format": self.format,
            "follow": self.follow,
            "records": self._records,
            "errors": self._errors,
            "last_error": self._last_error,
            "position": self._position,
        }

    # -- reading ---------------------------------------------------------------------------

    async def _read(self, *, final: bool) -> list[SourceRecord]:
        """Up to a batch of records from the open file; ``final``: the file is complete,
        so what follows its last newline is a record too. Reads run in a thread (a slow
        disk or network mount must not stall the worker's loop) at an offset of their
        own: a poll cancelled while reading loses nothing."""
        framer = self._framer
        fd = self._fd
        if framer is None or fd is None:
            return []
        out: list[SourceRecord] = []
        self._at_eof = False
        while len(out) < self._batch_size:
            if not framer.pending:
                if out:  # the next poll reads on: a read is awaited with nothing in hand
                    break
                try:
                    chunk = await asyncio.to_thread(os.pread, fd, _CHUNK, self._read_offset)
                except OSError as exc:
                    raise SourceError(f"{self._file_path}: {exc.strerror}") from exc
                if fd != self._fd:  # closed meanwhile
                    return out
                self._read_offset += len(chunk)
                if not chunk:
                    self._at_eof = True
                    if final:
                        last = framer.rest()
                        if last is not None:
                            self._emit([last], out)
                    break
                framer.feed(chunk)
            self._emit(framer.take(self._batch_size - len(out)), out)
            if self._failure is not None:
                break
        self._note_start(fd)
        if out:
            self._position = out[-1].position
            self._records += len(out)
        return out

    def _emit(self, framed: list[Framed], out: list[SourceRecord]) -> None:
        decoder = self._decoder
        if decoder is None:
            return
        key_field = self._key_field
        inode = self._inode
        decode = decoder.decode
        for item in framed:
            data, _, end = item
            if data is None or self._needs_header or self._failure is not None:
                if self._failure is not None:
                    return
                if data is None:
                    self._bad(item, f"longer than max_record_bytes ({self._max_record_bytes})")
                    continue
                if self._take_header(item):
                    continue
            try:
                value = decode(data)
            except MalformedRecord as exc:
                self._bad(item, str(exc))
                continue
            if value is BLANK:
                continue
            key: Any = None
            if key_field is not None:
                if not isinstance(value, dict) or key_field not in value:
                    self._bad(item, f"no key field {key_field!r}")
                    continue
                key = _key_text(value[key_field])
            head = self._head_full if end >= HEAD_BYTES else None
            if head is None:
                head = self._head(end)
            out.append(SourceRecord(value, {"inode": inode, "head": head, "offset": end}, key))

    def _take_header(self, item: Framed) -> bool:
        """The file's first record, when it is its header; True: it was (no record)."""
        decoder = self._decoder
        if not isinstance(decoder, CsvDecoder) or item.data is None:
            return False
        try:
            fields = decoder.row(item.data)
        except MalformedRecord as exc:
            self._bad(item, f"header: {exc}")
            self._failure = self._failure or SourceError(
                f"{self._file_path}: unreadable CSV header"
            )
            return True
        if fields is None:  # blank lines before the header
            return True
        self._needs_header = False
        if self._columns is None:
            decoder.columns = tuple(fields)
        return True

    def _bad(self, item: Framed, reason: str) -> None:
        self._errors += 1
        where = f"{self._file_path} at byte {item.start}"
        self._last_error = f"{where}: {reason}"
        if self._on_error == "fail":
            self._failure = SourceError(
                f"file source {self.name}: {self._last_error} "
                "(on_error='fail': fix the line and restart)"
            )
            return
        if self._errors <= _LOGGED_ERRORS or self._errors % 1000 == 0:
            log.warning(
                "file source %s: skipped a bad record (%d so far): %s",
                self.name,
                self._errors,
                self._last_error,
            )

    def _head(self, end: int) -> int:
        """The fingerprint a record ending at ``end`` carries: the CRC of the file's first
        ``min(HEAD_BYTES, end)`` bytes (constant once the file is that long)."""
        if end >= HEAD_BYTES and self._head_full is not None:
            return self._head_full
        fd = self._fd
        if fd is None:
            return 0
        crc = zlib.crc32(os.pread(fd, min(HEAD_BYTES, end), 0))
        if end >= HEAD_BYTES:
            self._head_full = crc
        return crc

    # -- which file ------------------------------------------------------------------------

    def _open_path(self, *, at_end: bool) -> bool:
        """Open the path from its start (or its last newline); False: it does not exist."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SourceError(f"{self.path}: {exc.strerror}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SourceError(f"{self.path}: not a regular file")
        offset = _after_last_newline(fd) if at_end else 0
        self._use(fd, self.path, offset)
        return True

    def _resume(self, inode: int, head: int, offset: int) -> bool:
        """Open the file of a saved position: the path's, else a file of the same
        directory with that inode and head (rotated away while the source was stopped)."""
        candidates = [self.path]
        if self.follow:
            directory = os.path.dirname(self.path) or "."
            try:
                with os.scandir(directory) as entries:
                    candidates += [
                        e.path for e in entries if e.path != self.path and _inode_of(e) == inode
                    ]
            except OSError:
                pass
        for candidate in candidates:
            try:
                fd = os.open(candidate, os.O_RDONLY)
            except OSError:
                continue
            st = os.fstat(fd)
            if (
                st.st_ino == inode
                and st.st_size >= offset
                and zlib.crc32(os.pread(fd, min(HEAD_BYTES, offset), 0)) == head
            ):
                self._use(fd, candidate, offset)
                self._draining = candidate != self.path
                return True
            os.close(fd)
        return False

    def _use(self, fd: int, path: str, offset: int) -> None:
        self._close_fd()
        self._read_offset = offset
        self._fd = fd
        self._inode = os.fstat(fd).st_ino
        self._file_path = path
        self._head_full = None
        self._check_len = 0
        self._check_crc = 0
        self._at_eof = False
        self._draining = False
        csv_format = self.format == "csv"
        self._framer = RecordFramer(
            offset, quoted=csv_format, max_record_bytes=self._max_record_bytes
        )
        if csv_format:
            self._decoder = CsvDecoder(
                delimiter=self._delimiter, encoding=self._encoding, columns=self._columns
            )
            self._needs_header = self._header and offset == 0
            if self._header and offset > 0:
                self._read_header_at_start(fd)
        else:
            self._decoder = JsonLinesDecoder()
            self._needs_header = False

    def _read_header_at_start(self, fd: int) -> None:
        """Resuming a CSV file mid-way: its columns come from its first record."""
        framer = RecordFramer(0, quoted=True, max_record_bytes=self._max_record_bytes)
        offset = 0
        while True:
            chunk = os.pread(fd, _CHUNK, offset)
            if not chunk:
                raise SourceError(f"{self._file_path}: the CSV header is gone")
            offset += len(chunk)
            framer.feed(chunk)
            for item in framer.take(1 << 30):
                if item.data is None:
                    raise SourceError(f"{self._file_path}: the CSV header is too long")
                decoder = self._decoder
                if isinstance(decoder, CsvDecoder):
                    fields = decoder.row(item.data)
                    if fields is None:
                        continue
                    if self._columns is None:
                        decoder.columns = tuple(fields)
                return

    def _file_change(self) -> str | None:
        """At the end of the open file, following: has the path moved to another file
        (``"rotated"``), or did the file shrink or change its start (``"truncated"``)?"""
        fd = self._fd
        if fd is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None  # deleted: keep the open file until the path comes back
        if st is not None and st.st_ino != self._inode:
            return "rotated"
        if os.fstat(fd).st_size < self._read_offset:
            return "truncated"
        if self._start_changed():
            return "truncated"
        return None

    def _start_changed(self) -> bool:
        """Do the first bytes of the open file differ from those it had when read (it was
        truncated and written again)?"""
        fd = self._fd
        if fd is None or self._check_len == 0:
            return False
        return zlib.crc32(os.pread(fd, self._check_len, 0)) != self._check_crc

    def _note_start(self, fd: int) -> None:
        """Remember the CRC of the first bytes read so far (up to ``HEAD_BYTES``)."""
        length = min(HEAD_BYTES, self._read_offset)
        if length != self._check_len:
            self._check_len = length
            self._check_crc = zlib.crc32(os.pread(fd, length, 0))

    def _switch_to_path(self) -> None:
        """The rotated-away file is read to its end: go on with the file written after it,
        a rotated one when the path was rotated more than once meanwhile (read whole,
        then the next), else the path's."""
        fd = self._fd
        last_write = os.fstat(fd).st_mtime_ns if fd is not None else 0
        self._drained.append(self._inode)
        del self._drained[:-_DRAINED_KEPT]
        self._draining = False
        self._close_fd()
        following = self._rotated_after(last_write)
        if following is None:
            self._open_path(at_end=False)
            return
        try:
            fd = os.open(following, os.O_RDONLY)
        except OSError:
            self._open_path(at_end=False)
            return
        log.info("file source %s: reading %s, rotated after the file before", self.name, following)
        self._use(fd, following, 0)
        self._draining = True

    def _rotated_after(self, last_write: int) -> str | None:
        """The oldest file of the path's directory rotated away after the one just read:
        named like the path (``app.log.1``, ``app.log-20261206``; not compressed), last
        written no earlier than it, not read yet. None: the path's file comes next."""
        directory, base = os.path.split(self.path)
        try:
            current = os.stat(self.path).st_ino
        except OSError:
            current = None
        found: list[tuple[int, str]] = []
        try:
            with os.scandir(directory or ".") as entries:
                for entry in entries:
                    name = entry.name
                    if (
                        name == base
                        or not name.startswith(base)
                        or name[len(base)] not in ".-_"
                        or name.endswith(_COMPRESSED)
                        or not entry.is_file()
                    ):
                        continue
                    st = entry.stat()
                    if st.st_ino in self._drained or st.st_ino == current:
                        continue
                    if st.st_mtime_ns >= last_write:
                        found.append((st.st_mtime_ns, entry.path))
        except OSError:
            return None
        return min(found)[1] if found else None

    def _reopen_at_start(self) -> None:
        fd = self._fd
        if fd is None:
            return
        self._fd = None  # handed to _use, which seeks it to 0
        self._use(fd, self._file_path, 0)

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._framer = None


def _parse_position(position: Position) -> tuple[int, int, int]:
    fields = (
        [position.get(k) for k in ("inode", "head", "offset")] if isinstance(position, dict) else []
    )
    numbers = [v for v in fields if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    if len(numbers) != 3:
        raise SourceError(f"not a file source's position: {position!r}")
    return numbers[0], numbers[1], numbers[2]


def _inode_of(entry: os.DirEntry[str]) -> int | None:
    try:
        return entry.inode() if entry.is_file() else None
    except OSError:
        return None


def _after_last_newline(fd: int) -> int:
    """Where a source started at the file's end begins: after its last complete line."""
    size = os.fstat(fd).st_size
    start = max(0, size - _CHUNK)
    tail = os.pread(fd, size - start, start)
    newline = tail.rfind(b"\n")
    return start + newline + 1 if newline >= 0 else (0 if start == 0 else size)


def _key_text(value: Any) -> str | None:
    """A key field's value as the record's key: text as it is, anything else as its JSON
    (``7``, ``true``, ``[1, 2]``); null stays a null key."""
    if value is None or isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()
