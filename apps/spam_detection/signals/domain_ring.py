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
    linkers: dict[str, float] = state.setdefault("linkers", {})
    linkers[user_id] = max(ts, linkers.get(user_id, ts))
    for old in [u for u, t in linkers.items() if t <= ts - window_s]:
        del linkers[old]
    members = [u for u, t in linkers.items() if t <= ts]
    if len(members) < count_at:
        return []
    value = score(len(members), count_at)
    fired: dict[str, float] = state.setdefault("fired", {})
    flags = [(u, value) for u in sorted(members) if new_episode(fired.get(u), ts, window_s)]
    for u in members:
        fired[u] = ts
    for old in [u for u, t in fired.items() if t <= ts - window_s]:
        del fired[old]
    return flags
