"""Exclusive ownership of a data directory by one process, through ``flock``.

The kernel drops the lock when the owning process dies, so a crash never leaves a stale
lock behind; the pid written into the file is only there to name the owner in the error.
"""

from __future__ import annotations

import fcntl
import os

from streamlog.log.errors import DataDirectoryLockedError

__all__ = ["DirectoryLock"]

LOCK_FILE = ".lock"


class DirectoryLock:
    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, LOCK_FILE)
        self._fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirectoryLockedError(
                f"data directory {os.path.dirname(self.path)!r} is in use by another "
                f"process (pid {owner}); stop it or use another data directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
