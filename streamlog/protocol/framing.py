"""Kafka's framing: every request and response is a 4-byte big-endian size, then that many bytes.

``FrameDecoder`` turns an arbitrary chunking of a byte stream back into frames; it does no
I/O, the caller feeds it whatever the socket produced.
"""

from __future__ import annotations

import struct
from typing import Final

from .errors import FrameTooLargeError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "FrameDecoder", "encode_frame"]

# Kafka's default socket.request.max.bytes.
DEFAULT_MAX_FRAME_SIZE: Final = 104_857_600

_SIZE = struct.Struct(">i")


def encode_frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Prefix ``payload`` with its size."""
    return _SIZE.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental splitter of a byte stream into size-prefixed frames.

    Invariants: the internal buffer never holds a complete frame after ``feed`` returns,
    and a size prefix is checked against ``max_frame_size`` as soon as its four bytes have
    arrived, before any of the body is buffered, so a peer cannot make the decoder hold
    more than ``max_frame_size + 4`` bytes. ``max_frame_size`` may be changed between
    calls (a server allows larger frames once a client has authenticated).

    After ``FrameTooLargeError`` the stream cannot be resynchronised: every later ``feed``
    raises the same error, and the connection should be closed. Not thread-safe.
    """

    __slots__ = ("_buffer", "_error", "_max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._error: FrameTooLargeError | None = None
        self.max_frame_size = max_frame_size

    @property
    def max_frame_size(self) -> int:
        """The largest frame body accepted, in bytes (the size prefix excluded)."""
        return self._max_frame_size

    @max_frame_size.setter
    def max_frame_size(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"max_frame_size must be >= 0, got {value}")
        self._max_frame_size = value

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume ``data`` and return the frames it completes, in order (sizes stripped).

        :raises FrameTooLargeError: a size prefix is negative or above ``max_frame_size``.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        if buffer:
            buffer += data
            source: bytes | bytearray | memoryview = buffer
        else:
            # Nothing pending: split ``data`` where it lies and keep only the remainder.
            source = data
        frames: list[bytes] = []
        limit = self._max_frame_size
        unpack_from = _SIZE.unpack_from
        # A memoryview makes each frame cost exactly one copy, whatever ``source`` is; it
        # is released before the bytearray is resized.
        with memoryview(source) as view:
            end = len(view)
            pos = 0
            while end - pos >= 4:
                (size,) = unpack_from(view, pos)
                if size < 0 or size > limit:
                    self._error = FrameTooLargeError(size, limit)
                    break
                start = pos + 4
                stop = start + size
                if stop > end:
                    break
                frames.append(bytes(view[start:stop]))
                pos = stop
            if source is not buffer and pos < end and self._error is None:
                buffer += view[pos:]
        if self._error is not None:
            buffer.clear()
            raise self._error
        if source is buffer:
            del buffer[:pos]
        return frames
