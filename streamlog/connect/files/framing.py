"""Cutting a file's bytes into records, each with the byte offset just past it.

A record is a line ending in ``\\n`` (a ``\\r`` before it belongs to the line; the decoders
strip it). For CSV a record may span lines: a quoted field can hold a newline, and a line
with an odd number of ``"`` leaves a field open, so lines are joined until the count of
quotes is even again (RFC 4180 doubles a quote inside a field, which keeps the parity
right). The offset after a record is the source's position: a restart seeks there and
reads the next record whole.

Memory is bounded: one chunk of complete lines is held at a time, plus one unfinished
record of at most ``max_record_bytes``; a longer record is reported as too long
(``Framed.data`` None) and its bytes are dropped as they arrive, up to its newline.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Framed", "RecordFramer"]


class Framed(NamedTuple):
    """One record's bytes (without its newline) and where it starts and ends in the file;
    ``data`` None: the record was longer than the limit and its bytes were dropped. (A
    tuple: one is made per line, and a tuple is made fastest.)"""

    data: bytes | None
    start: int
    end: int


class RecordFramer:
    """Turns the chunks read from a file, starting at ``offset``, into ``Framed`` records
    in file order. Not thread-safe; one per open file."""

    def __init__(self, offset: int, *, quoted: bool, max_record_bytes: int) -> None:
        self._quoted = quoted
        self._max = max_record_bytes
        self._read_offset = offset  # the offset after the last byte fed
        self._partial = b""  # the bytes after the last newline
        self._dropping_from: int | None = None  # start of a too-long record being dropped
        self._first: Framed | None = None  # a too-long record that ended in the last chunk
        self._lines: list[bytes] = []  # complete lines of the last chunk
        self._next = 0  # index of the next line to take
        self._line_start = offset  # file offset of self._lines[self._next]
        self._group: list[bytes] = []  # the lines of a CSV record still open
        self._group_quotes = 0
        self._group_bytes = 0
        self._group_start = offset

    @property
    def pending(self) -> bool:
        """Records are waiting: take them before feeding more of the file."""
        return self._first is not None or self._next < len(self._lines)

    def feed(self, chunk: bytes) -> None:
        """Add the next bytes of the file. Call only when ``pending`` is False."""
        self._read_offset += len(chunk)
        if self._dropping_from is not None:
            newline = chunk.find(b"\n")
            if newline < 0:
                return
            end = self._read_offset - len(chunk) + newline + 1
            self._first = Framed(None, self._dropping_from, end)
            self._dropping_from = None
            data = chunk[newline + 1 :]
        else:
            data = self._partial + chunk if self._partial else chunk
        data_start = self._read_offset - len(data)
        lines = data.split(b"\n")
        self._partial = lines.pop()
        self._lines = lines
        self._next = 0
        self._line_start = data_start
        if len(self._partial) > self._max:
            self._dropping_from = self._read_offset - len(self._partial)
            self._partial = b""

    def take(self, limit: int) -> list[Framed]:
        """Up to ``limit`` complete records."""
        out: list[Framed] = []
        if self._first is not None:
            first = self._first
            self._first = None
            if self._group:  # the open CSV record ran into the too-long line
                first = Framed(None, self._group_start, first.end)
                self._group = []
            out.append(first)
        lines = self._lines
        i = self._next
        start = self._line_start
        quoted = self._quoted
        limit_bytes = self._max
        while i < len(lines) and len(out) < limit:
            line = lines[i]
            i += 1
            end = start + len(line) + 1
            if quoted and (self._group or line.count(b'"') % 2):
                joined = self._join(line, start, end)
                if joined is not None:
                    out.append(joined)
            elif len(line) > limit_bytes:
                out.append(Framed(None, start, end))
            else:
                out.append(Framed(line, start, end))
            start = end
        self._next = i
        self._line_start = start
        return out

    def _join(self, line: bytes, start: int, end: int) -> Framed | None:
        """Add a line to the open CSV record; the record once its quotes balance."""
        if not self._group:
            self._group_start = start
            self._group_quotes = 0
            self._group_bytes = 0
        self._group.append(line)
        self._group_quotes += line.count(b'"')
        self._group_bytes += len(line) + 1
        if self._group_bytes > self._max:
            # Too long, most likely a stray quote: report it, resume at the next line.
            self._group = []
            return Framed(None, self._group_start, end)
        if self._group_quotes % 2:
            return None
        data = b"\n".join(self._group)
        self._group = []
        return Framed(data, self._group_start, end)

    def rest(self) -> Framed | None:
        """At the end of a file that is complete (read once, or rotated away): what follows
        the last newline, and a CSV record left open, as a last record. Call only when
        ``pending`` is False."""
        end = self._read_offset
        if self._dropping_from is not None:
            start = self._group_start if self._group else self._dropping_from
            self._dropping_from = None
            self._group = []
            return Framed(None, start, end)
        if not self._partial and not self._group:
            return None
        if self._group:
            start = self._group_start
            data = b"\n".join([*self._group, self._partial])
        else:
            start = end - len(self._partial)
            data = self._partial
        self._group = []
        self._partial = b""
        if len(data) > self._max:
            return Framed(None, start, end)
        return Framed(data, start, end)
