"""What ``streamlog mirror`` shows while it runs and when it ends.

On a terminal the status block (records, records/s, MB/s, total lag, and the partitions
furthest behind) is redrawn in place after each checkpoint; into a file or a pipe, one
line every ``quiet_interval_s`` instead, so that a log does not fill with redraws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from streamlog.mirror.results import MirrorProgress

__all__ = ["ProgressDisplay", "SHOWN_PARTITIONS"]

SHOWN_PARTITIONS = 8  # partitions listed in the live block, those with the most lag first
_UP_AND_CLEAR = "\x1b[{n}F\x1b[J"  # cursor to the start of the line n lines up; clear below


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


class ProgressDisplay:
    """A ``MirrorProgress`` callback that draws on ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interactive: bool,
        quiet_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interactive = interactive
        self._quiet_interval = quiet_interval_s
        self._clock = clock
        self._drawn = 0  # lines of the block on screen
        self._last: tuple[float, int, int] | None = None  # (elapsed, records, bytes)
        self._next_quiet = 0.0

    def __call__(self, progress: MirrorProgress) -> None:
        if self._last is None:
            records_s = _rate(progress.records, progress.elapsed_s)
            mb_s = _rate(progress.bytes / 1e6, progress.elapsed_s)
        else:
            span = progress.elapsed_s - self._last[0]
            records_s = _rate(progress.records - self._last[1], span)
            mb_s = _rate((progress.bytes - self._last[2]) / 1e6, span)
        self._last = (progress.elapsed_s, progress.records, progress.bytes)
        total_lag = sum(progress.lags.values())
        count = len(progress.lags)
        head = (
            f"{progress.records:,} records copied  {records_s:,.0f} records/s  "
            f"{mb_s:,.2f} MB/s  lag {total_lag:,} in {count} partition{'' if count == 1 else 's'}"
        )
        if not self._interactive:
            now = self._clock()
            if now >= self._next_quiet:
                self._next_quiet = now + self._quiet_interval
                self._stream.write(f"mirror: {head}\n")
                self._stream.flush()
            return
        behind = sorted(progress.lags.items(), key=lambda item: (-item[1], item[0]))
        lines = [head] + [
            f"  {tp.topic}[{tp.partition}]  lag {lag:,}"
            for tp, lag in behind[:SHOWN_PARTITIONS]
            if lag > 0
        ]
        out = _UP_AND_CLEAR.format(n=self._drawn) if self._drawn else ""
        self._stream.write(out + "\n".join(lines) + "\n")
        self._stream.flush()
        self._drawn = len(lines)
