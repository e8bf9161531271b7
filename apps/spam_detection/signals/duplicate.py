"""Duplicate text: one user posting the same text again and again (copy-paste spam).

``texts``: a count per (user, normalised text) in sliding windows of
``within(duplicate_window_s)``; the key holds the user, so it lives in the user's
partition (Faust's rule: a table write goes to the current event's partition)."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

from ..settings import Thresholds
from .window import firing_windows, first_of_episode, score, within

NAME = "duplicate_text"
_NOT_WORD = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    """Lower case, punctuation and runs of spaces folded: the trivial variations a spammer
    adds to dodge an exact match compare equal."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


@dataclass(frozen=True)
class Duplicate:
    texts: Any  # WindowedTable: [user id, text] -> pins in the window
    episodes: Any  # WindowedTable (sessions): [user id, text] -> firings in the episode
    count_at: int

    @classmethod
    def declare(cls, app: Any, limits: Thresholds) -> Duplicate:
        window, grace = limits.duplicate_window_s, limits.duplicate_grace_s
        return cls(
            app.Table("duplicate-texts", default=int).sliding(within(window), grace=grace),
            app.Table("duplicate-episodes", default=int).session(within(window), grace=grace),
            limits.duplicate_count,
        )

    def observe(self, user_id: str, text: str) -> float | None:
        """One pin by ``user_id`` with ``text``; the score if it starts a new episode."""
        normal = normalise(text)
        if not normal:
            return None
        key = [user_id, normal]
        if not self.texts.apply(key, operator.add, 1):
            return None
        full = firing_windows(self.texts, key, self.count_at)
        if not full or not first_of_episode(self.episodes, key):
            return None
        return score(max(count for _, count in full), self.count_at)
