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
    # reports come from every partition of ``pin_events``, so not in event-time order: the
    # window ends at the latest report seen, and an older report still counts if inside it
    now = max(ts, float(state.get("latest", ts)))
    state["latest"] = now
    reporters: dict[str, float] = state.setdefault("reporters", {})
    reporters[reporter] = max(ts, reporters.get(reporter, ts))
    for old in [r for r, t in reporters.items() if t <= now - window_s]:
        del reporters[old]
    if len(reporters) < count_at:
        return None
    fire = new_episode(state.get("fired"), now, window_s)
    state["fired"] = now
    return score(len(reporters), count_at) if fire else None
