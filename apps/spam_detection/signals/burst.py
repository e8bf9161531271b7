"""Burst: too many pins created by one user within a short window (bots posting).

``creates``: a count per user in sliding windows of ``within(burst_window_s)``."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from ..settings import Thresholds
from .window import firing_windows, first_of_episode, score, within

NAME = "burst"


@dataclass(frozen=True)
class Burst:
    creates: Any  # WindowedTable: user id -> creates in the window
    episodes: Any  # WindowedTable (sessions): user id -> firings in the episode
    count_at: int

    @classmethod
    def declare(cls, app: Any, limits: Thresholds) -> Burst:
        window, grace = limits.burst_window_s, limits.burst_grace_s
        return cls(
            app.Table("burst-creates", default=int, key_type=str).sliding(
                within(window), grace=grace
            ),
            app.Table("burst-episodes", default=int, key_type=str).session(
                within(window), grace=grace
            ),
            limits.burst_count,
        )

    def observe(self, user_id: str) -> float | None:
        """One ``create`` by ``user_id`` (the current event); the score if it starts a new
        burst episode, else None."""
        if not self.creates.apply(user_id, operator.add, 1):
            return None  # late: every window it belongs to has closed
        full = firing_windows(self.creates, user_id, self.count_at)
        if not full or not first_of_episode(self.episodes, user_id):
            return None
        return score(max(count for _, count in full), self.count_at)
