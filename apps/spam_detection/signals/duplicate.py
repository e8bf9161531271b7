"""Duplicate text: one user posting the same text again and again (copy-paste spam)."""

from __future__ import annotations

import re
from typing import Any

from .window import new_episode, prune, score

NAME = "duplicate_text"
_NOT_WORD = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    """Lower case, punctuation and runs of spaces folded: the trivial variations a spammer
    adds to dodge an exact match compare equal."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def observe(
    state: dict[str, Any], text: str, ts: float, count_at: int, window_s: float
) -> float | None:
    """Add one pin with ``text`` at ``ts``; the score if this starts a new episode."""
    key = normalise(text)
    if not key:
        return None
    texts: dict[str, list[float]] = state.setdefault("texts", {})
    times = prune([*texts.get(key, []), ts], ts, window_s)
    texts[key] = times
    for other in [k for k, v in texts.items() if not prune(v, ts, window_s)]:
        del texts[other]  # keeps the state bounded by what is still in the window
    if len(times) < count_at:
        return None
    fired: dict[str, float] = state.setdefault("fired", {})
    fire = new_episode(fired.get(key), ts, window_s)
    fired[key] = ts
    return score(len(times), count_at) if fire else None
