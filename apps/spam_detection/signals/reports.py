"""Reports: several distinct users reporting one user's pins within a window.

``reporters``: the distinct reporters per reported user (a sorted list) in sliding
windows of ``within(report_window_s)``, read from ``spam-reports`` (keyed by the
reported user). Reports come from every partition of ``pin_events``, so not in event-time
order: a report within ``report_grace_s`` of the partition's stream time still counts,
and every window it joins is checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import Thresholds
from .window import firing_windows, first_of_episode, score, with_member, within

NAME = "reports"


@dataclass(frozen=True)
class Reports:
    reporters: Any  # WindowedTable: reported user id -> distinct reporters in the window
    episodes: Any  # WindowedTable (sessions): reported user id -> firings in the episode
    count_at: int

    @classmethod
    def declare(cls, app: Any, limits: Thresholds) -> Reports:
        window, grace = limits.report_window_s, limits.report_grace_s
        return cls(
            app.Table("report-reporters", default=list, key_type=str).sliding(
                within(window), grace=grace
            ),
            app.Table("report-episodes", default=int, key_type=str).session(
                within(window), grace=grace
            ),
            limits.report_count,
        )

    def observe(self, target: str, reporter: str) -> float | None:
        """A report by ``reporter`` against ``target``; the score if it starts a new
        episode. One reporter counts once however often it reports."""
        if not self.reporters.apply(target, with_member, reporter):
            return None
        full = firing_windows(self.reporters, target, self.count_at)
        if not full or not first_of_episode(self.episodes, target):
            return None
        return score(max(len(members) for _, members in full), self.count_at)
