"""Sliding-window bookkeeping shared by the signals: timestamps kept only while they can
still count, and the episode rule that stops a flag being repeated."""

from __future__ import annotations


def prune(timestamps: list[float], now: float, window_s: float) -> list[float]:
    """The timestamps in ``(now - window_s, now]``, sorted (an event exactly ``window_s``
    old has left the window: "within 1 minute" means less than 60 s apart)."""
    return sorted(t for t in timestamps if now - window_s < t <= now)


def new_episode(last_fired: float | None, now: float, window_s: float) -> bool:
    """Whether a signal firing at ``now`` starts a new episode: it had never fired, or its
    last firing is a full window back (the behaviour stopped long enough for every event
    that made it fire to leave the window)."""
    return last_fired is None or now - last_fired >= window_s


def score(count: int, threshold: int) -> float:
    """0.5 at the threshold, rising to 1.0 at twice it: each signal alone flags."""
    return round(min(1.0, 0.5 * count / threshold), 3)
