"""Recovery: rebuild a store partition by replaying its changelog partition.

``recover_partition`` decides where to start from what the store records, then reads:

* the store's changelog offset is the last record it reflects: replay from it + 1;
* no offset (a new partition, a memory store, a directory wiped as corrupt): replay the
  whole changelog, first wiping the store if it holds keys anyway;
* an offset at or beyond the changelog's end (the topic was deleted, or deleted and
  recreated shorter): the store describes another log, so it is wiped and the whole
  changelog replayed; a missing changelog topic counts as empty. Unless the changelog
  holds the record at that offset (one fetch checks): then the broker's end offset was
  behind its records (Tansu's is), which is logged, and the store is kept;
* an offset below the changelog's start (records deleted by retention or
  DeleteRecords): replay from the start, with a warning, as nothing older exists;
* the target is the changelog's end offset taken when recovery begins; records past it
  that arrive in the same fetch are applied too (harmless: the store's offset says what
  it reflects), and recovery stops once the consumer's position reaches the target.

Records are applied in batches, one atomic store write per batch with the offset of its
last record, so an interrupted recovery resumes where it stopped. A tombstone (value
None) deletes its key. Waits are bounded: each fetch waits at most ``fetch_timeout_ms``,
and ``idle_timeout_ms`` without progress raises ``RecoveryStalledError``.

Progress is logged about every ``progress_interval_ms`` (percentage of the offsets to
replay, records/s), then one final line with the count and the rate; times come from the
``Clock`` passed in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from streamlog.log.clock import Clock, SystemClock
from streamlog.state.errors import RecoveryError, RecoveryStalledError
from streamlog.state.stores import StorePartition
from streamlog.transport.base import Consumer
from streamlog.transport.errors import TransportError, UnknownTopicError
from streamlog.transport.types import TopicPartition

__all__ = ["recover_partition", "RecoveryResult"]

log = logging.getLogger(__name__)

_FIRST_WAIT_MS = 20  # the first fetch's wait in a replay (see _replay)


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What one recovery did."""

    changelog: TopicPartition
    start_offset: int  # the first offset asked for
    end_offset: int  # the changelog's end when recovery began: the target
    records: int  # changelog records applied (tombstones included)
    skipped: int  # records without a key (not a changelog record: ignored)
    batches: int  # atomic store writes
    full: bool  # replayed from the changelog's start into an empty store
    wiped: str | None  # why the store was emptied first, if it was
    elapsed_ms: int

    @property
    def rate(self) -> float:
        """Records per second (0 when nothing was replayed)."""
        return self.records * 1000 / self.elapsed_ms if self.elapsed_ms > 0 else 0.0


async def recover_partition(
    consumer: Consumer,
    store: StorePartition,
    changelog: TopicPartition,
    *,
    clock: Clock | None = None,
    batch_records: int = 10_000,
    fetch_timeout_ms: int = 500,
    idle_timeout_ms: int = 30_000,
    progress_interval_ms: int = 1_000,
    following: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RecoveryResult:
    """Bring ``store`` up to the end of its ``changelog`` partition (module docstring).

    ``following``: called again and again to keep a store current (a global table), so
    its routine lines go to DEBUG rather than INFO every few hundred milliseconds.

    ``progress(done, total)`` is told the offsets replayed so far and the offsets to
    replay, when recovery begins and after each fetch (the status page's progress bars).

    ``consumer`` must be group-less: it is assigned ``changelog`` alone, and left with no
    assignment afterwards. Transport failures raise ``RecoveryError`` (cause chained);
    what was applied before them stays applied, with its offset.
    """
    clock = clock or SystemClock()
    tp = TopicPartition(*changelog)
    started = clock.monotonic_ms()
    routine = logging.DEBUG if following else logging.INFO
    try:
        begin, end = await _bounds(consumer, tp)
    except TransportError as exc:
        raise RecoveryError(f"cannot read the offsets of changelog {_name(tp)}: {exc}") from exc

    stored = store.changelog_offset()
    reason = None
    if stored is None and not store.is_empty():
        reason = (
            "the store holds keys but records no changelog offset, so which changelog "
            "records it reflects is unknown"
        )
    elif stored is not None and stored >= end:
        end = await _end_holding(consumer, tp, stored, end, fetch_timeout_ms, following)
        if stored >= end:
            reason = _ahead_reason(tp, stored, end)
            stored = None
    if reason is not None:
        log.warning(
            "table store for %s discarded and rebuilt from its changelog because %s",
            _name(tp),
            reason,
        )
        store.wipe()
    full = stored is None
    # Wiped now, or found unusable and wiped when the store was opened.
    wiped = reason if reason is not None else store.wipe_reason if full else None
    start = begin if stored is None else stored + 1
    if start < begin:
        log.warning(
            "changelog %s starts at %d, after the store's offset %d: records in between "
            "were deleted; replaying from %d",
            _name(tp),
            begin,
            stored,
            begin,
        )
        start = begin

    if progress is not None:
        progress(0, max(0, end - start))
    if start >= end:
        elapsed = clock.monotonic_ms() - started
        log.log(routine, "table store for %s is up to date at offset %d", _name(tp), end)
        return RecoveryResult(tp, start, end, 0, 0, 0, full, wiped, elapsed)

    log.log(
        routine,
        "recovering %s: offsets %d to %d (%d) into %s",
        _name(tp),
        start,
        end,
        end - start,
        "an empty store" if full else f"a store at offset {stored}",
    )
    try:
        counts = await _replay(
            consumer,
            store,
            tp,
            start,
            end,
            clock,
            batch_records,
            fetch_timeout_ms,
            idle_timeout_ms,
            progress_interval_ms,
            started,
            progress,
        )
    except TransportError as exc:
        raise RecoveryError(f"recovering {_name(tp)} failed: {exc}") from exc
    finally:
        try:
            consumer.assign(())
        except TransportError:
            pass  # a closed consumer: nothing left to release
    records, skipped, batches = counts
    elapsed = clock.monotonic_ms() - started
    result = RecoveryResult(tp, start, end, records, skipped, batches, full, wiped, elapsed)
    log.log(
        routine,
        "recovered %s: %d records in %.2f s (%.0f records/s)%s",
        _name(tp),
        records,
        elapsed / 1000,
        result.rate,
        f", {skipped} without a key ignored" if skipped else "",
    )
    return result


def _ahead_reason(tp: TopicPartition, stored: int, end: int) -> str:
    """Why a store whose offset is at or past its changelog's end cannot be kept.

    Offsets are those of the changelog's records: a store at offset N has applied the
    record at N, so its changelog must hold N, i.e. end past N. When it does not, the
    changelog is not the one the store was written from.
    """
    name = _name(tp)
    if end == 0:
        now = f"{name} is empty (no records, or no such topic)"
    else:
        now = f"{name} holds records only up to offset {end - 1}"
    return (
        f"the store is ahead of its changelog: it reflects changelog records up to offset "
        f"{stored}, but {now}. The changelog was deleted or recreated after the store was "
        "written (for example the log's directory was removed and the table stores were "
        "kept), so the store no longer matches it"
    )


async def _bounds(consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
    """The changelog's start and end offsets; (0, 0) for a topic that does not exist."""
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        begin = (await consumer.beginning_offsets([tp]))[tp]
    except UnknownTopicError:
        return 0, 0
    return begin, end


_AHEAD_CHECK_FETCHES = 4


async def _end_holding(
    consumer: Consumer,
    tp: TopicPartition,
    stored: int,
    end: int,
    fetch_timeout_ms: int,
    following: bool,
) -> int:
    """The changelog's end when the broker answered ``end`` at or before the store's
    offset: ``end`` itself unless the changelog holds the record at ``stored``.

    A store ahead of its changelog is normally another log's (the topic was recreated).
    But some brokers (Tansu) answer ListOffsets with an end offset behind records they
    hold (their last batch's base offset + 1), which would wipe every store on every
    restart. One fetch at ``stored`` tells the two apart; the consumer's end offsets then
    include the fetch's high watermark. (Said at DEBUG when ``following``: a global
    table's store meets this on every poll.)
    """
    fetched_end = end
    consumer.assign([tp])
    consumer.seek(tp, stored)
    try:
        # A few fetches, not one: a loaded broker (or machine) may answer the first one
        # empty, and one empty answer would wipe a good store. A store truly ahead costs
        # these waits once (Tansu answers a fetch past its end with nothing, not an error).
        held = False
        for _ in range(_AHEAD_CHECK_FETCHES):
            fetched = await consumer.getmany(timeout_ms=fetch_timeout_ms, max_records=1)
            records = fetched.get(tp, ())
            if records:
                held = any(r.offset == stored for r in records)
                break
        fetched_end = (await consumer.end_offsets([tp]))[tp] if held else end
    except TransportError:
        held = False  # nothing readable there: the store is ahead
    finally:
        consumer.assign([])
    if not held or fetched_end <= stored:
        return end
    log.log(
        logging.DEBUG if following else logging.WARNING,
        "the broker answered %d as the end offset of %s but holds its record at offset %d "
        "(the last one the table store reflects): it under-reports log end offsets in "
        "ListOffsets (Tansu does). The store is kept; recovery reads to offset %d, the "
        "high watermark of its fetches",
        end,
        _name(tp),
        stored,
        fetched_end,
    )
    return fetched_end


async def _replay(
    consumer: Consumer,
    store: StorePartition,
    tp: TopicPartition,
    start: int,
    end: int,
    clock: Clock,
    batch_records: int,
    fetch_timeout_ms: int,
    idle_timeout_ms: int,
    progress_interval_ms: int,
    started: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[int, int, int]:
    consumer.assign([tp])
    consumer.seek(tp, start)
    records = skipped = batches = 0
    position = start
    last_progress = clock.monotonic_ms()
    next_report = started + progress_interval_ms
    # A fetch that finds only control batches (transaction markers: under exactly-once
    # every changelog ends with one, just past the store's offset) moves the position but
    # returns no record, so getmany waits its whole timeout: short waits first, doubled
    # while nothing moves, keep that from costing a full fetch timeout per partition.
    wait_ms = min(_FIRST_WAIT_MS, fetch_timeout_ms)
    while position < end:
        fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=batch_records)
        batch = fetched.get(tp)
        if batch:
            updates: dict[bytes | None, bytes | None] = {r.key: r.value for r in batch}
            if None in updates:
                skipped += sum(1 for r in batch if r.key is None)
                del updates[None]
            records += len(batch)
            store.write(cast("dict[bytes, bytes | None]", updates), batch[-1].offset)
            batches += 1
        now = clock.monotonic_ms()
        moved = await consumer.position(tp)
        if moved > position:
            position = moved
            last_progress = now
            wait_ms = min(_FIRST_WAIT_MS, fetch_timeout_ms)
            if progress is not None:
                progress(min(position, end) - start, end - start)
        elif now - last_progress >= idle_timeout_ms:
            raise RecoveryStalledError(
                f"recovering {_name(tp)}: no progress for {now - last_progress} ms at offset "
                f"{position} of {end} (is the broker reachable, the topic still there?)"
            )
        else:
            wait_ms = min(wait_ms * 2, fetch_timeout_ms)
        if now >= next_report:
            next_report = now + progress_interval_ms
            seconds = max(now - started, 1) / 1000
            log.info(
                "recovering %s: %d%% (offset %d of %d, %d records, %.0f records/s)",
                _name(tp),
                min(100, (position - start) * 100 // (end - start)),
                position,
                end,
                records - skipped,
                (records - skipped) / seconds,
            )
        await asyncio.sleep(0)  # a long replay must not starve the rest of the loop
    return records - skipped, skipped, batches


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}-{tp.partition}"
