"""The matcher's configurable rules (the issue's defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MatchRules:
    max_pickup_km: float = 5.0
    stale_after_s: float = 120.0
    default_speed_kmh: float = 25.0
    min_speed_kmh: float = 3.0  # slower samples are a driver waiting, not traffic
    max_speed_kmh: float = 150.0  # faster samples are position jumps, not driving
    window_size_s: float = 300.0  # hopping window: 5 min ...
    window_step_s: float = 60.0  # ... every 1 min
    surge_min: float = 1.0
    surge_max: float = 3.0
    answers_kept_s: float = 3600.0  # a request seen again within this is answered once
    region_res: int = 4  # h3 resolution of the regions one worker owns whole
