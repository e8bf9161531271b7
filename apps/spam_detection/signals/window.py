"""What the signals share: "within W" as a sliding window, the episode rule as a session
window, and the score.

"N events within W" means N events less than W apart. streamlog's sliding windows are
Kafka Streams' ``[start, start + size]``, inclusive at both ends, in whole milliseconds
(record timestamps are milliseconds), so a window of ``W - 1 ms`` holds exactly the
events less than W apart.

An episode is a run of firings each less than a window after the one before (the
behaviour went on); after a quiet window, the next firing starts a new one. That is a
session window with a gap of ``W - 1 ms``: the first firing of a session is the new
episode, the only one that flags.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["within", "score", "with_member", "first_of_episode", "firing_windows"]

MS = 0.001


def within(window_s: float) -> float:
    """The sliding-window size (seconds) holding the events less than ``window_s`` apart."""
    return window_s - MS


def score(count: int, threshold: int) -> float:
    """0.5 at the threshold, rising to 1.0 at twice it: each signal alone flags."""
    return round(min(1.0, 0.5 * count / threshold), 3)


def with_member(members: list[str], member: str) -> list[str]:
    """A window's distinct members (a JSON list, sorted) with one more."""
    if member in members:
        return members
    return sorted([*members, member])


def firing_windows(windowed: Any, key: Any, count_at: int) -> list[tuple[Any, Any]]:
    """The windows of ``key`` holding the current event whose size (a count, or the
    length of a member list) has reached ``count_at``. Every window the event joined is
    checked, not only the one ending at it: an event read out of order may complete a
    window that ends after it."""
    return [
        (window, value)
        for window, value in windowed[key].current_windows()
        if (value if isinstance(value, int) else len(value)) >= count_at
    ]


def first_of_episode(episodes: Any, key: Any) -> bool:
    """Counts one firing in ``key``'s episode (a session window); True when it is the
    episode's first, the one that flags. A firing too late for its session (closed) is
    not a new episode."""
    if not episodes.apply(key, operator.add, 1):
        return False
    return bool(episodes[key].current() == 1)
