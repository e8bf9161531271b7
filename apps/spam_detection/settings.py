"""The signals' thresholds, read once from the environment so that a deployment (or a
test) can tune them without editing the app."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw is None else float(raw)


@dataclass(frozen=True)
class Thresholds:
    """How much of a behaviour, within how long, makes a signal fire."""

    burst_count: int = 30
    burst_window_s: float = 60.0
    duplicate_count: int = 10
    duplicate_window_s: float = 600.0
    ring_accounts: int = 5
    ring_window_s: float = 3600.0
    ring_account_age_s: float = 86400.0
    report_count: int = 3
    report_window_s: float = 3600.0
    # How far behind its table partition's stream time (the newest event time seen) an
    # event may arrive and still count (the windows' grace). The per-user signals read
    # one partition in order; links and reports are re-keyed from every partition, so
    # they arrive as far apart as the partitions are read: a window's length by default.
    burst_grace_s: float = 60.0
    duplicate_grace_s: float = 600.0
    ring_grace_s: float = 3600.0
    report_grace_s: float = 3600.0

    @classmethod
    def from_environ(cls) -> Thresholds:
        """Defaults overridden by ``SPAM_BURST_COUNT``, ``SPAM_BURST_WINDOW_S`` and so on."""
        defaults = cls()
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = _number(f"SPAM_{name.upper()}", getattr(defaults, name))
            values[name] = int(value) if name.endswith(("_count", "_accounts")) else value
        return cls(**values)
