"""Burst: too many pins created by one user within a short window (bots posting)."""

from __future__ import annotations

from typing import Any

from .window import new_episode, prune, score

NAME = "burst"


def observe(state: dict[str, Any], ts: float, count_at: int, window_s: float) -> float | None:
    """Add one ``create`` at ``ts`` to the user's ``state``; the score if this starts a new
    burst episode, else None. ``state`` is changed in place."""
    times = prune([*state.get("times", []), ts], ts, window_s)
    state["times"] = times
    if len(times) < count_at:
        return None
    fire = new_episode(state.get("fired"), ts, window_s)
    state["fired"] = ts
    return score(len(times), count_at) if fire else None
