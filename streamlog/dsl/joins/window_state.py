"""The stream-stream join's state machine, on one store partition: pure, no I/O.

``WindowedJoinState.process`` takes one record of either side (raw key and value bytes,
timestamp, offset) and the partition's open transaction, updates the buffers in that
transaction and returns the results to emit, as raw bytes. The app side
(``joins_stream_stream``) decodes them, calls the joiner and writes them out; the tests
drive this class directly over a memory store as well.

Semantics (Kafka Streams' windowed join, its "no spurious results" behaviour of 3.1+):

* Window: left record ``l`` and right record ``r`` with equal keys join when
  ``l.ts - before <= r.ts <= l.ts + after`` (``JoinWindows.of(size)``: before = after).
* Stream time: the largest timestamp seen on the partition, on either side (Kafka's
  shared time tracker), null-key and null-value records included. It is stored in the
  partition, so a restart does not reset it.
* Late: a record whose own join window has closed, ``ts + after + grace < stream time``
  for a left record (``ts + before + grace`` for a right one), is dropped: not joined,
  not buffered, not emitted as unmatched.
* Inner: each on-time record is joined with every buffered record of the other side in
  its window, on arrival, and buffered. So every pair of on-time records within the
  window is emitted exactly once, when the second of the two arrives, with the larger
  of the two timestamps.
* Left/outer: a left (and, for outer, a right) record that never matched is emitted as
  ``(left, None)`` (``(None, right)``) once no on-time record of the other side can
  match it any more, i.e. when it expires: stream time passes
  ``ts + before + after + grace``. Never earlier, so no unmatched result is followed by
  a match. Kafka emits it at ``ts + after + grace`` (``before`` for a right record),
  which is the same for in-order input; for out-of-order input Kafka can emit
  ``(left, None)`` and later ``(left, right)``, which this waits out.
* Null key (KIP-962, Kafka 3.7+): for a left join a left record, for an outer join a
  record of either side, is emitted unmatched at once; otherwise dropped. A null value
  is always dropped (a null value cannot be told from "no partner" in a result).
* Expiry: a buffered record is deleted (a tombstone in the changelog) when stream time
  passes ``ts + before + after + grace``: no on-time record can join it after that.

Store layout (one store partition per input partition, bytes keys, ordered):

* ``B`` side ``window_key(key, ts)`` offset(8): the buffered value, ``b"v" + raw``
  (the ``v`` keeps an empty value apart from a missing one). A key's records of one side
  are contiguous and in time order, so a window lookup is one range scan.
* ``T`` ts(8) side offset(8) key: ``\\x01`` matched or ``\\x00`` not yet, in time order,
  so expiry is a scan from the start that stops at the first live record.
* ``M`` ``stream-time``: stream time, 8 bytes signed.

The source offset makes each record's keys unique (two records may share a key and a
timestamp) and stable: a record re-delivered after a crash lands on the same keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, Protocol

from streamlog.state.stores import prefix_upper_bound
from streamlog.state.windows import window_key

__all__ = [
    "LEFT",
    "RIGHT",
    "JoinWindow",
    "JoinResult",
    "Outcome",
    "StateTransaction",
    "WindowedJoinState",
]

LEFT: Final = b"L"
RIGHT: Final = b"R"

_BUFFER: Final = b"B"
_TIME: Final = b"T"
_TIME_END: Final = prefix_upper_bound(_TIME)
_STREAM_TIME: Final = b"M" + b"stream-time"
_MATCHED: Final = b"\x01"
_UNMATCHED: Final = b"\x00"
_VALUE: Final = b"v"
_SIGN: Final = 1 << 63


class StateTransaction(Protocol):
    """What the state machine needs of a ``PartitionTransaction``."""

    def get(self, key: bytes) -> bytes | None:
        """The value under ``key`` (None: absent)."""
        ...

    def set(self, key: bytes, value: bytes) -> None:
        """Write ``value`` under ``key``."""
        ...

    def delete(self, key: bytes) -> None:
        """Delete ``key``."""
        ...

    def items(
        self, start: bytes | None = None, end: bytes | None = None, prefix: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) in key order within the bounds."""
        ...


@dataclass(frozen=True, slots=True)
class JoinWindow:
    """``before``/``after``/``grace`` in milliseconds (see the module docstring)."""

    before: int
    after: int
    grace: int = 0

    def __post_init__(self) -> None:
        if self.before < 0 or self.after < 0 or self.grace < 0:
            raise ValueError(f"join window bounds must be >= 0: {self}")

    @property
    def retention(self) -> int:
        """How long after its timestamp a record may still be joined."""
        return self.before + self.after + self.grace

    def is_late(self, side: bytes, ts: int, stream_time: int) -> bool:
        """True when a record at ``ts`` on ``side`` can no longer meet anything at ``stream_time``
        (past the window and the grace)."""
        reach = self.after if side == LEFT else self.before
        return ts + reach + self.grace < stream_time

    def partners(self, side: bytes, ts: int) -> tuple[int, int]:
        """The other side's timestamps a record at ``ts`` joins, both ends inclusive."""
        if side == LEFT:
            return ts - self.before, ts + self.after
        return ts - self.after, ts + self.before


class JoinResult(NamedTuple):
    """One result: the key, the left and right raw values (None: missing) and its time."""

    key: bytes | None
    left: bytes | None
    right: bytes | None
    timestamp: int


@dataclass(slots=True)
class Outcome:
    """What one record did: results to emit, and whether it was dropped and why."""

    results: list[JoinResult] = field(default_factory=list)
    dropped: Literal["late", "null_key", "null_value"] | None = None
    null_key: bool = False


def _ts_bytes(ts: int) -> bytes:
    return (ts + _SIGN).to_bytes(8, "big")


def _buffer_key(side: bytes, key: bytes, ts: int, offset: int) -> bytes:
    return _BUFFER + side + window_key(key, ts) + offset.to_bytes(8, "big")


def _time_key(side: bytes, key: bytes, ts: int, offset: int) -> bytes:
    return _TIME + _ts_bytes(ts) + side + offset.to_bytes(8, "big") + key


def _split_time_key(data: bytes) -> tuple[int, bytes, int, bytes]:
    ts = int.from_bytes(data[1:9], "big") - _SIGN
    return ts, data[9:10], int.from_bytes(data[10:18], "big"), data[18:]


class WindowedJoinState:
    """The join's buffers and stream time, one store partition at a time.

    Holds per-partition hints in memory, rebuilt from the store when missing: stream
    time; the oldest buffered timestamp, so the expiry scan runs only when a record may
    have expired; and the cutoff of the last scan, so the next one starts there instead
    of stepping again over the records it deleted (they stay in the store, hidden by the
    transaction, until the commit). Nothing is buffered below that cutoff later: an
    on-time record is never older than the cutoff. ``forget`` drops the hints of
    partitions that move.
    """

    def __init__(self, window: JoinWindow, kind: str) -> None:
        self.window = window
        self.kind = kind
        # which sides are emitted unmatched (their match flag is kept up to date)
        self.unmatched_sides = {LEFT: kind in ("left", "outer"), RIGHT: kind == "outer"}
        self._stream_time: dict[int, int] = {}
        self._oldest: dict[int, int] = {}
        self._expired_below: dict[int, int] = {}

    def forget(self, partitions: set[int] | None = None) -> None:
        """Drop cached hints (after a rebalance the store is the truth)."""
        hints = (self._stream_time, self._oldest, self._expired_below)
        for hint in hints:
            if partitions is None:
                hint.clear()
            else:
                for number in partitions:
                    hint.pop(number, None)

    def stream_time(self, tx: StateTransaction, partition: int) -> int | None:
        """Partition ``partition``'s stream time (None before its first record), cached after the
        first read."""
        cached = self._stream_time.get(partition)
        if cached is not None:
            return cached
        data = tx.get(_STREAM_TIME)
        if data is None:
            return None
        value = int.from_bytes(data, "big", signed=True)
        self._stream_time[partition] = value
        return value

    def process(
        self,
        tx: StateTransaction,
        partition: int,
        side: bytes,
        key: bytes | None,
        value: bytes | None,
        ts: int,
        offset: int,
    ) -> Outcome:
        """Apply one record of ``side`` (module docstring); returns what to emit."""
        outcome = Outcome()
        results = outcome.results
        window = self.window
        known = self.stream_time(tx, partition)
        stream_time = ts if known is None or ts > known else known
        if stream_time != known:
            self._stream_time[partition] = stream_time
            tx.set(_STREAM_TIME, stream_time.to_bytes(8, "big", signed=True))
        self._expire(tx, partition, stream_time, results)
        if value is None:
            outcome.dropped = "null_value"
            return outcome
        if key is None:
            outcome.null_key = True
            if self.unmatched_sides[side]:
                results.append(_unmatched(side, None, value, ts))
            else:
                outcome.dropped = "null_key"
            return outcome
        if window.is_late(side, ts, stream_time):
            outcome.dropped = "late"
            return outcome
        other = RIGHT if side == LEFT else LEFT
        low, high = window.partners(side, ts)
        prefix = _BUFFER + other
        partners = list(
            tx.items(start=prefix + window_key(key, low), end=prefix + window_key(key, high + 1))
        )
        track_other = self.unmatched_sides[other]
        key_end = len(prefix) + 4 + len(key)
        for buffer_key, data in partners:
            other_ts = int.from_bytes(buffer_key[key_end : key_end + 8], "big") - _SIGN
            other_value = data[1:]
            if side == LEFT:
                results.append(JoinResult(key, value, other_value, max(ts, other_ts)))
            else:
                results.append(JoinResult(key, other_value, value, max(ts, other_ts)))
            if track_other:
                other_offset = int.from_bytes(buffer_key[key_end + 8 :], "big")
                tx.set(_time_key(other, key, other_ts, other_offset), _MATCHED)
        time_key = _time_key(side, key, ts, offset)
        matched = bool(partners) or tx.get(time_key) == _MATCHED  # a re-delivered record
        tx.set(_buffer_key(side, key, ts, offset), _VALUE + value)
        tx.set(time_key, _MATCHED if matched else _UNMATCHED)
        oldest = self._oldest.get(partition)
        if oldest is not None and ts < oldest:
            self._oldest[partition] = ts
        return outcome

    def _expire(
        self, tx: StateTransaction, partition: int, stream_time: int, results: list[JoinResult]
    ) -> None:
        """Delete records no on-time record can join any more; emit the unmatched ones."""
        cutoff = stream_time - self.window.retention  # records older than this expire
        oldest = self._oldest.get(partition)
        if oldest is not None and oldest >= cutoff:
            return
        expired: list[tuple[bytes, bytes]] = []
        next_oldest = _NONE_LEFT
        below = self._expired_below.get(partition)
        start = _TIME if below is None else _TIME + _ts_bytes(below)
        self._expired_below[partition] = cutoff
        for time_key, flag in tx.items(start=start, end=_TIME_END):
            ts = int.from_bytes(time_key[1:9], "big") - _SIGN
            if ts >= cutoff:
                next_oldest = ts
                break
            expired.append((time_key, flag))
        self._oldest[partition] = next_oldest
        unmatched_sides = self.unmatched_sides
        for time_key, flag in expired:
            ts, side, offset, key = _split_time_key(time_key)
            buffer_key = _buffer_key(side, key, ts, offset)
            if flag == _UNMATCHED and unmatched_sides[side]:
                data = tx.get(buffer_key)
                if data is not None:
                    results.append(_unmatched(side, key, data[1:], ts))
            tx.delete(buffer_key)
            tx.delete(time_key)


_NONE_LEFT: Final = 1 << 62  # "nothing buffered": any cutoff is below it


def _unmatched(side: bytes, key: bytes | None, value: bytes, ts: int) -> JoinResult:
    if side == LEFT:
        return JoinResult(key, value, None, ts)
    return JoinResult(key, None, value, ts)
