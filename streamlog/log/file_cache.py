"""Segment files opened on first use, and at most ``capacity`` of them open at once.

A log of thousands of partitions would otherwise hold a descriptor for every segment of
every partition, read or not, and a broker asked for 10,000 partitions ran out of them
(EMFILE) half-way through creating a topic. Kafka keeps every segment open and asks for
a large ``ulimit -n``; here a ``LogManager`` owns one ``FileCache`` and every segment's
``.log`` file is a ``CachedFile`` in it: opened when first used, closed again, least
recently used first, when more than ``capacity`` are open. Index files are not held open
at all (``index.py`` opens them only to write). Closing and reopening a file loses
nothing: data written through a closed descriptor stays in the page cache and a later
``fdatasync`` through a new descriptor makes it durable (fsync is per file, not per
descriptor).

Use: ``with cached as fd: os.pread(fd, ...)``. Between ``__enter__`` and ``__exit__`` the
descriptor is pinned: no other thread's eviction closes it. A ``CachedFile`` belongs to
one segment, whose owner serialises its use, but eviction comes from whichever thread
opens another file of the cache, so every state change happens under the cache's lock.
A ``CachedFile`` not yet attached to a cache (segments being loaded) simply stays open
from first use until ``close``.
"""

from __future__ import annotations

import errno
import os
import resource
import threading
from collections import OrderedDict
from types import TracebackType

__all__ = ["CachedFile", "FileCache", "default_capacity"]

_MIN_CAPACITY = 16


def default_capacity() -> int:
    """A quarter of this process's descriptor limit (``ulimit -n``), at least 16.

    The rest stays for sockets, index and checkpoint files opened briefly, and whatever
    else shares the process (RocksDB in a worker).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 16
    return max(_MIN_CAPACITY, soft // 4)


class FileCache:
    """At most ``capacity`` descriptors of ``CachedFile``s open; see the module docstring.

    More than ``capacity`` may be open for a moment when that many are pinned at once (one
    per thread using a log at the same instant).
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = default_capacity() if capacity is None else max(1, capacity)
        self._lock = threading.Lock()
        self._open: OrderedDict[CachedFile, None] = OrderedDict()  # LRU first

    @property
    def open_count(self) -> int:
        """How many descriptors of this cache are open now."""
        return len(self._open)

    def _acquire(self, file: CachedFile) -> int:
        with self._lock:
            if file._fd < 0:
                self._make_room(self.capacity - 1)
                file._fd = self._open_retrying(file.path)
                self._open[file] = None
            else:
                self._open.move_to_end(file)
            file._pins += 1
            return file._fd

    def _adopt(self, file: CachedFile) -> None:
        """Take over a file that was opened outside the cache."""
        with self._lock:
            if file._fd >= 0:
                self._open[file] = None
                self._make_room(self.capacity)

    def _forget(self, file: CachedFile) -> None:
        with self._lock:
            self._open.pop(file, None)
            if file._fd >= 0:
                os.close(file._fd)
                file._fd = -1

    def _make_room(self, keep: int) -> None:
        """Close unpinned files, least recently used first, until at most ``keep`` are open."""
        if len(self._open) <= keep:
            return
        for victim in list(self._open):
            if len(self._open) <= keep:
                break
            if victim._pins:
                continue
            del self._open[victim]
            os.close(victim._fd)
            victim._fd = -1

    def _open_retrying(self, path: str) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
        # Something else holds the process's descriptors (sockets, another cache): give
        # back half of ours and try once more before failing the operation.
        self._make_room(len(self._open) // 2)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


class CachedFile:
    """One file opened on demand; ``with cached as fd:`` brackets each use."""

    __slots__ = ("_cache", "_fd", "_pins", "path")

    def __init__(self, path: str, cache: FileCache | None = None) -> None:
        self.path = path
        self._cache = cache
        self._fd = -1
        self._pins = 0

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def __enter__(self) -> int:
        cache = self._cache
        if cache is None:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            return self._fd
        # The common case inline (this is on every append and read): already open.
        with cache._lock:
            if self._fd >= 0:
                self._pins += 1
                cache._open.move_to_end(self)
                return self._fd
        return cache._acquire(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cache = self._cache
        if cache is not None:
            with cache._lock:
                self._pins -= 1
                if len(cache._open) > cache.capacity:  # pins had kept more open a while
                    cache._make_room(cache.capacity)

    def attach(self, cache: FileCache) -> None:
        """Let ``cache`` bound this file's descriptor from now on (once, before use)."""
        if self._cache is cache:
            return
        if self._cache is not None:
            raise ValueError(f"{self.path} already belongs to a file cache")
        self._cache = cache
        cache._adopt(self)

    def rename(self, path: str) -> None:
        """Rename the file on disk; an open descriptor stays valid."""
        os.rename(self.path, path)
        self.path = path

    def close(self) -> None:
        """Close the descriptor, if open (the file stays; a later use reopens it)."""
        if self._cache is not None:
            self._cache._forget(self)
        elif self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
