"""Domain ring: many young accounts linking one domain within a window (a ring of fresh
sock-puppet accounts promoting a site). Every account of the ring is flagged."""

from __future__ import annotations

from typing import Any

from .window import new_episode, score

NAME = "domain_ring"


def is_young(created_ts: float | None, ts: float, max_age_s: float) -> bool:
    """An account created less than ``max_age_s`` before the event (unknown: not young)."""
    return created_ts is not None and 0 <= ts - created_ts < max_age_s


def observe(
    state: dict[str, Any], user_id: str, ts: float, count_at: int, window_s: float
) -> list[tuple[str, float]]:
    """Add a link to the domain whose ``state`` this is by young account ``user_id`` at
    ``ts``; the ``(user, score)`` of each ring member whose episode starts now."""
    # links come from every partition of ``pin_events``, so not in event-time order: the
    # window ends at the latest link seen, and an older link still counts if inside it
    now = max(ts, float(state.get("latest", ts)))
    state["latest"] = now
    linkers: dict[str, float] = state.setdefault("linkers", {})
    linkers[user_id] = max(ts, linkers.get(user_id, ts))
    for old in [u for u, t in linkers.items() if t <= now - window_s]:
        del linkers[old]
    if len(linkers) < count_at:
        return []
    value = score(len(linkers), count_at)
    fired: dict[str, float] = state.setdefault("fired", {})
    flags = [(u, value) for u in sorted(linkers) if new_episode(fired.get(u), now, window_s)]
    for u in linkers:
        fired[u] = now
    for old in [u for u, t in fired.items() if t <= now - window_s]:
        del fired[old]
    return flags
