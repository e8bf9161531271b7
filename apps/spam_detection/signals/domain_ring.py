"""Domain ring: many young accounts linking one domain within a window (a ring of fresh
sock-puppet accounts promoting a site). Every account of the ring is flagged.

The account's age comes from the ``accounts`` table (a lookup in the user's partition,
where the pin is read); young accounts' links are re-keyed by domain into
``spam-domain-links``, and ``linkers`` keeps the distinct young accounts per domain (a
sorted list) in sliding windows of ``within(ring_window_s)``. Links come from every
partition of ``pin_events``, so not in event-time order: see ``reports``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import Thresholds
from .window import firing_windows, first_of_episode, score, with_member, within

NAME = "domain_ring"


def is_young(created_ts: float | None, ts: float, max_age_s: float) -> bool:
    """An account created less than ``max_age_s`` before the event (unknown: not young)."""
    return created_ts is not None and 0 <= ts - created_ts < max_age_s


@dataclass(frozen=True)
class DomainRing:
    linkers: Any  # WindowedTable: domain -> distinct young accounts in the window
    episodes: Any  # WindowedTable (sessions): [domain, user id] -> firings in the episode
    count_at: int

    @classmethod
    def declare(cls, app: Any, limits: Thresholds) -> DomainRing:
        window, grace = limits.ring_window_s, limits.ring_grace_s
        return cls(
            app.Table("ring-linkers", default=list, key_type=str).sliding(
                within(window), grace=grace
            ),
            app.Table("ring-episodes", default=int).session(within(window), grace=grace),
            limits.ring_accounts,
        )

    def observe(self, domain: str, user_id: str) -> list[tuple[str, float]]:
        """A link to ``domain`` by young account ``user_id``; ``(user, score)`` of each
        member of a full window whose episode (per domain) starts now."""
        if not self.linkers.apply(domain, with_member, user_id):
            return []
        full = firing_windows(self.linkers, domain, self.count_at)
        if not full:
            return []
        value = score(max(len(members) for _, members in full), self.count_at)
        ring = sorted({member for _, members in full for member in members})
        return [(u, value) for u in ring if first_of_episode(self.episodes, [domain, u])]
