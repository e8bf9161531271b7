"""Small per-partition files that remember one offset: the recovery point and log start.

Format: 8-byte big-endian offset followed by the CRC-32C of those 8 bytes. A torn or
missing file reads as None, and every caller treats None as "assume nothing" (scan the
whole log, or start at the first segment), so these files never need to be fsynced for
correctness, only for speed of the next start.
"""

from __future__ import annotations

import os
import struct

from crc32c import crc32c

__all__ = ["OffsetCheckpoint", "fsync_directory"]

_ENTRY = struct.Struct(">qI")


class OffsetCheckpoint:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> int | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read(_ENTRY.size + 1)
        except FileNotFoundError:
            return None
        if len(data) != _ENTRY.size:
            return None
        offset, crc = _ENTRY.unpack(data)
        if crc != crc32c(data[:8]) or offset < 0:
            return None
        return offset

    def write(self, offset: int, durable: bool = False) -> None:
        """Replace the stored offset; with ``durable`` the new value survives power loss."""
        payload = struct.pack(">q", offset)
        data = payload + struct.pack(">I", crc32c(payload))
        if durable:
            tmp = self.path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_directory(os.path.dirname(self.path))
        else:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data, 0)
            finally:
                os.close(fd)


def fsync_directory(path: str) -> None:
    """Make renames and unlinks in ``path`` durable."""
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
