"""Runs one ``Sink``: hands it a topic's records, flushes it on the app's commit.

The guarantees (docs/connect.md, "The runner's guarantees"):

* ``flush`` is called by the app's commit sequence before any source offset is committed
  (``App.checkpoint``), so an offset is committed only once the outside system holds its
  record: a crash re-delivers, never skips (at-least-once; sinks writing by key make the
  re-delivery harmless).
* The runner keeps the records taken since the last successful flush. When the outside
  system is away (``SinkUnavailableError`` from ``write`` or ``flush``) it ``discard``s
  what the sink holds, waits (exponential backoff, 0.2 s to 10 s), and writes those
  records again before retrying, for up to ``retry_for`` seconds of failures in a row;
  then it raises ``SinkError`` and the app stops without committing their offsets.
* A record the sink can never write (``BadRecordError``) goes to the dead-letter callback
  (the app's ``<app-id>-<sink>-dlq`` topic, the error in a header), never dropped silently.
  ``BadRecordError.record`` says which one: the sink took every record before it and none
  after it, and the runner hands it the rest. Without ``record`` the sink took nothing of
  the call, and the runner writes those records one at a time to find it.
* ``write`` and ``flush`` never overlap (one lock): a commit's flush waits for a write in
  hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streamlog.connect.base import Sink, SinkRecord
from streamlog.connect.errors import BadRecordError, SinkError, SinkUnavailableError

__all__ = ["SinkRunner", "DeadLetter"]

log = logging.getLogger(__name__)

DeadLetter = Callable[[SinkRecord, BadRecordError], Awaitable[None]]

FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0


class SinkRunner:
    """One sink, in the worker that reads its topic's partitions (module docstring)."""

    def __init__(
        self,
        sink: Sink,
        *,
        dead_letter: DeadLetter,
        retry_for: float = 300.0,
        max_pending: int = 100_000,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if retry_for < 0:
            raise ValueError(f"sink {sink.name}: retry_for must be >= 0, not {retry_for!r}")
        if max_pending < 1:
            raise ValueError(f"sink {sink.name}: max_pending must be >= 1, not {max_pending!r}")
        self.sink = sink
        self.name = sink.name
        self._dead_letter = dead_letter
        self.retry_for = retry_for
        self.max_pending = max_pending
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._taken: list[SinkRecord] = []  # taken since the last flush (written again on retry)
        self._dirty = False  # the sink failed: discard and write ``_taken`` again first
        self.started = False
        self._failed: SinkError | None = None  # once set, every write and flush raises it
        # counters for status() and /metrics
        self.written = 0
        self.flushed = 0
        self.flushes = 0
        self.dead_lettered = 0
        self.retries = 0
        self.errors = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"<SinkRunner {self.name} pending={len(self._taken)}>"

    @property
    def pending(self) -> int:
        """Records taken and not flushed yet."""
        return len(self._taken)

    def status(self) -> dict[str, Any]:
        """The sink's own status with the runner's counters added."""
        try:
            status = dict(self.sink.status())
        except Exception as exc:  # noqa: BLE001 - a status page must not fail
            status = {"status_error": repr(exc)}
        status.setdefault("name", self.name)
        status.setdefault("kind", "sink")
        status["taken"] = self.written
        status["flushed_by_runner"] = self.flushed
        status["unflushed"] = len(self._taken)
        status["dead_lettered"] = self.dead_lettered
        status["retries"] = self.retries
        status["runner_errors"] = self.errors
        status["runner_last_error"] = self.last_error
        return status

    def fail(self, reason: SinkError) -> None:
        """The worker stops because of this sink: later writes and flushes raise
        ``reason`` at once (the final commit must not wait ``retry_for`` again, nor commit
        the offsets of records the sink may not hold)."""
        if self._failed is None:
            self._failed = reason

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the sink; while its system is away (``SinkUnavailableError``), retry with
        backoff for up to ``retry_for`` seconds, then raise ``SinkError``."""
        self._lock = asyncio.Lock()  # this run's loop (an app may be started again)
        self._taken = []
        self._dirty = False
        self._failed = None
        failing_since: float | None = None
        delay = FIRST_BACKOFF_S
        while True:  # a system away when the worker starts is waited for, as in a flush
            try:
                await self.sink.start()
                break
            except SinkUnavailableError as exc:
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if now - failing_since >= self.retry_for:
                    raise SinkError(
                        f"sink {self.name}: unavailable at start for {now - failing_since:.0f} "
                        f"s (retry_for={self.retry_for:g} s): {exc}"
                    ) from exc
                log.warning(
                    "sink %s: unavailable at start (%s); retrying in %.1f s", self.name, exc, delay
                )
                await self._sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        self.started = True

    async def close(self) -> None:
        """Close the sink (what was not flushed is discarded by it: not committed either)."""
        if not self.started:
            return
        self.started = False
        try:
            await self.sink.close()
        except Exception as exc:  # noqa: BLE001 - closing: log and go on
            log.warning("sink %s: closing failed: %r", self.name, exc)

    # ------------------------------------------------------------------ records

    async def write(self, records: Sequence[SinkRecord]) -> None:
        """Hand ``records`` to the sink (retrying while it is away: module docstring);
        flushes early when ``max_pending`` records wait."""
        if not records:
            return
        async with self._lock:
            if self._failed is not None:
                raise self._failed
            await self._retrying(lambda: self._take(records))
            if len(self._taken) >= self.max_pending:
                await self._retrying(self._flush_taken)

    async def flush(self) -> None:
        """Make everything taken durable in the outside system (the commit's step)."""
        async with self._lock:
            if self._failed is not None:
                raise self._failed
            if self._taken or self._dirty:
                try:
                    await self._retrying(self._flush_taken)
                except Exception as exc:
                    self.fail(exc if isinstance(exc, SinkError) else SinkError(repr(exc)))
                    raise

    async def discard(self) -> None:
        """Forget what was taken and not flushed (the app rewinds to its committed
        offsets: those records come again)."""
        async with self._lock:
            self._taken = []
            self._dirty = False
            await self.sink.discard()

    # ------------------------------------------------------------------ inside the lock

    async def _take(self, records: Sequence[SinkRecord]) -> None:
        taken = await self._put(records)
        self._taken.extend(taken)
        self.written += len(taken)

    async def _flush_taken(self) -> None:
        await self.sink.flush()
        self.flushes += 1
        self.flushed += len(self._taken)
        self._taken = []

    async def _put(self, records: Sequence[SinkRecord]) -> list[SinkRecord]:
        """Write ``records``; the ones the sink took (bad ones dead-lettered)."""
        taken: list[SinkRecord] = []
        rest = list(records)
        while rest:
            try:
                await self.sink.write(rest)
            except BadRecordError as exc:
                index = _index_of(rest, exc.record) if exc.record is not None else None
                if index is None:
                    if len(rest) == 1:
                        await self._bad(rest[0], exc)
                        return taken
                    for record in rest:  # nothing of ``rest`` was taken: one at a time
                        taken += await self._put([record])
                    return taken
                taken += rest[:index]
                await self._bad(rest[index], exc)
                rest = rest[index + 1 :]
            else:
                taken += rest
                return taken
        return taken

    async def _bad(self, record: SinkRecord, exc: BadRecordError) -> None:
        log.error(
            "sink %s: %s[%d]@%d cannot be written: %s (sent to the dead-letter topic)",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        self.errors += 1
        self.last_error = f"BadRecordError: {exc}"
        await self._dead_letter(record, exc)
        self.dead_lettered += 1

    async def _retrying(self, operation: Callable[[], Awaitable[None]]) -> None:
        """Run ``operation``; while the sink is away, discard, back off, write what was
        taken again and retry, for up to ``retry_for`` seconds."""
        failing_since: float | None = None
        delay = FIRST_BACKOFF_S
        while True:
            try:
                if self._dirty:
                    await self.sink.discard()
                    self._taken = await self._put(self._taken)
                    self._dirty = False
                await operation()
                if failing_since is not None:
                    log.info(
                        "sink %s: writing again after %.1f s",
                        self.name,
                        time.monotonic() - failing_since,
                    )
                return
            except SinkUnavailableError as exc:
                self._dirty = True
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                waited = now - failing_since
                if waited >= self.retry_for:
                    raise SinkError(
                        f"sink {self.name}: unavailable for {waited:.0f} s (retry_for="
                        f"{self.retry_for:g} s): {exc}; the offsets of its {len(self._taken)} "
                        "unflushed record(s) are not committed"
                    ) from exc
                self.retries += 1
                log.warning(
                    "sink %s: unavailable (%s); retrying in %.1f s (%d record(s) to write again)",
                    self.name,
                    exc,
                    delay,
                    len(self._taken),
                )
                await self._sleep(min(delay, max(0.0, self.retry_for - waited)))
                delay = min(delay * 2, MAX_BACKOFF_S)


def _index_of(records: Sequence[SinkRecord], record: Any) -> int | None:
    """Where ``record`` is in ``records``: the same object, else the same coordinates."""
    for index, candidate in enumerate(records):
        if candidate is record:
            return index
    for index, candidate in enumerate(records):
        if (
            isinstance(record, SinkRecord)
            and candidate.topic == record.topic
            and candidate.partition == record.partition
            and candidate.offset == record.offset
        ):
            return index
    return None
