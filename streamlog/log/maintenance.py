"""Periodic maintenance of every partition log: ``flush.ms``, retention and compaction.

One pass visits every partition and runs three tasks on each: flush if ``flush.ms`` is
due, enforce retention, compact if the topic is compacted and dirty enough. A task that
raises fails for that partition alone: the error is logged with the partition and the
task, and the pass goes on with the next task and the next partition. (Before, the first
partition that raised ended the pass, so no partition after it was ever maintained: one
damaged segment kept every later topic past its ``retention.ms``.)

A failed task is retried after a backoff that doubles from one second up to five minutes,
measured on the log's clock, so a partition that fails for good (say, a compacted topic
holding a batch that does not decode) costs one attempt and one warning per five minutes
rather than a full scan and a traceback every pass. The first failure, and any failure
whose message changed, is logged at ERROR with its traceback; repeats at WARNING; the
first success after failures at INFO.

Not thread-safe: one maintenance thread owns a ``LogMaintenance`` (the log manager's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from streamlog.log.cleaner import LogCleaner
from streamlog.log.clock import Clock
from streamlog.log.errors import LogClosedError
from streamlog.log.partition_log import PartitionLog

__all__ = ["LogMaintenance", "MaintenanceReport", "FIRST_RETRY_MS", "MAX_RETRY_MS"]

log = logging.getLogger(__name__)

FIRST_RETRY_MS = 1_000
MAX_RETRY_MS = 300_000

FLUSH = "flush"
RETENTION = "retention"
COMPACTION = "compaction"


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one pass did. ``failed`` names each ``topic-partition task`` that raised."""

    flushed: int
    segments_deleted: int
    logs_cleaned: int
    failed: tuple[str, ...] = ()


@dataclass(slots=True)
class _Failure:
    plog: PartitionLog  # a topic deleted and created again is a new log: a fresh start
    message: str
    attempts: int
    retry_at_ms: int


class LogMaintenance:
    """Runs maintenance passes; remembers failing (partition, task) pairs between them."""

    def __init__(self, clock: Clock, cleaner: LogCleaner) -> None:
        self._clock = clock
        self._cleaner = cleaner
        self._failures: dict[tuple[str, str], _Failure] = {}

    def run(self, logs: Iterable[tuple[str, int, PartitionLog]]) -> MaintenanceReport:
        """One pass over ``logs`` (topic, partition, log); never raises for one log."""
        flushed = deleted = cleaned = 0
        failed: list[str] = []
        seen: set[str] = set()
        for topic, partition, plog in logs:
            if plog.closed:
                continue
            name = f"{topic}-{partition}"
            seen.add(name)
            flushed += self._attempt(name, FLUSH, plog, plog.flush_if_due, failed)
            deleted += self._attempt(name, RETENTION, plog, plog.enforce_retention, failed)
            if plog.config.compact:
                compact = partial(self._compact, plog)
                cleaned += self._attempt(name, COMPACTION, plog, compact, failed)
        for key in [k for k in self._failures if k[0] not in seen]:
            del self._failures[key]  # the topic was deleted
        return MaintenanceReport(flushed, deleted, cleaned, tuple(failed))

    def _compact(self, plog: PartitionLog) -> int:
        if not self._cleaner.needs_cleaning(plog):
            return 0
        return 1 if self._cleaner.clean(plog) is not None else 0

    def _attempt(
        self,
        name: str,
        task: str,
        plog: PartitionLog,
        run: Callable[[], int | bool],
        failed: list[str],
    ) -> int:
        key = (name, task)
        failure = self._failures.get(key)
        if failure is not None and failure.plog is not plog:
            del self._failures[key]
            failure = None
        if failure is not None and self._clock.monotonic_ms() < failure.retry_at_ms:
            return 0
        try:
            result = int(run())
        except LogClosedError:
            return 0  # deleted while we were working on it
        except Exception as exc:  # whatever it is, it stays with this partition and task
            failed.append(f"{name} {task}")
            self._record_failure(key, plog, failure, exc)
            return 0
        if failure is not None:
            del self._failures[key]
            log.info("%s: %s works again after %d failed attempts", name, task, failure.attempts)
        return result

    def _record_failure(
        self,
        key: tuple[str, str],
        plog: PartitionLog,
        previous: _Failure | None,
        exc: Exception,
    ) -> None:
        name, task = key
        message = f"{type(exc).__name__}: {exc}"
        attempts = 1 if previous is None else previous.attempts + 1
        delay = min(MAX_RETRY_MS, FIRST_RETRY_MS << min(attempts - 1, 20))
        retry_at = self._clock.monotonic_ms() + delay
        self._failures[key] = _Failure(plog, message, attempts, retry_at)
        if previous is None or previous.message != message:
            log.error(
                "%s: %s failed (%s); the other partitions are maintained as usual; "
                "retrying in %d ms",
                name,
                task,
                message,
                delay,
                exc_info=exc,
            )
        else:
            log.warning(
                "%s: %s failed again (%d attempts: %s); retrying in %d ms",
                name,
                task,
                attempts,
                message,
                delay,
            )
