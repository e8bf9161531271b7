"""How a windowed table lays out a store partition: windows, owed results, stream time.

Beside the window arithmetic (``streamlog.state.windows``), as Kafka Streams keeps its
window stores in ``state/internals``: the streams layer calls these functions and never
builds a stored key or value itself.

* A window: ``window_key(raw_key, at)`` -> its value. ``at`` is the window's start for
  tumbling, hopping and sliding windows, its end for sessions (see the session kind).
  Kinds whose windows are not found from ``at`` alone store an 8-byte signed big-endian
  header before the serialised value: sliding windows their latest record timestamp,
  sessions their start. ``payload`` strips it.
* ``close_marker(window_key)`` -> ``MARK``, while a window's final result is owed (only
  for tables with ``on_window_close`` or ``emit_final``): written in the same transaction
  as the window, so a final result is emitted at least once across crashes.
* ``STREAM_TIME_KEY`` -> the partition's stream time, so lateness survives a restart.

Reserved keys start with ``0xfffffffe``/``0xffffffff``: as a window key's 4-byte length
that is a 4 GiB key, so no window key collides with them, and every window key sorts
before ``CLOSE_PREFIX`` (a range scan ``end=CLOSE_PREFIX`` sees windows only).
"""

from __future__ import annotations

import struct
from typing import Final

from streamlog.state.windows import split_window_key, window_key_at, window_key_prefix

__all__ = [
    "STREAM_TIME_KEY",
    "CLOSE_PREFIX",
    "MARK",
    "HEADER_SIZE",
    "pack_time",
    "unpack_time",
    "close_marker",
    "is_reserved",
    "payload",
    "window_key_at",
    "window_key_prefix",
    "split_window_key",
]

STREAM_TIME_KEY: Final = b"\xff\xff\xff\xffstream-time"
CLOSE_PREFIX: Final = b"\xff\xff\xff\xfe"
MARK: Final = b"\x01"
HEADER_SIZE: Final = 8  # the time some kinds store before the value

_I64 = struct.Struct(">q")
pack_time = _I64.pack
_unpack_from = _I64.unpack_from


def unpack_time(data: bytes) -> int:
    """The signed 8-byte time at the start of ``data`` (stream time, a window's header)."""
    value: int = _unpack_from(data)[0]
    return value


def close_marker(window_key: bytes) -> bytes:
    """The key that says ``window_key``'s final result is still owed."""
    return CLOSE_PREFIX + window_key


def is_reserved(key: bytes) -> bool:
    """True for the keys that are not windows (close markers, stream time)."""
    return key >= CLOSE_PREFIX


def payload(data: bytes, header: bool) -> bytes:
    """The serialised value of a stored window (``header``: the kind stores one)."""
    return data[HEADER_SIZE:] if header else data
