"""Reports: several distinct users reporting one user's pins within a window."""

from __future__ import annotations

from typing import Any

from .window import new_episode, score

NAME = "reports"


def observe(
    state: dict[str, Any], reporter: str, ts: float, count_at: int, window_s: float
) -> float | None:
    """Add a report by ``reporter`` at ``ts`` against the user whose ``state`` this is; the
    score if this starts a new episode. One reporter counts once however often it reports."""
    reporters: dict[str, float] = state.setdefault("reporters", {})
    reporters[reporter] = max(ts, reporters.get(reporter, ts))
    for old in [r for r, t in reporters.items() if t <= ts - window_s]:
        del reporters[old]
    recent = sum(1 for t in reporters.values() if ts - window_s < t <= ts)
    if recent < count_at:
        return None
    fire = new_episode(state.get("fired"), ts, window_s)
    state["fired"] = ts
    return score(recent, count_at) if fire else None
