"""A grid-like city the generator's drivers drive in: streets every ``block_km``, both ways.

Positions are kept in km east/north of the city's south-west corner and turned into
lat/lon only for the records, so moving along a street is plain arithmetic.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

KM_PER_DEG_LAT = 111.2


@dataclass(frozen=True)
class City:
    name: str = "berlin-grid"
    south: float = 52.46
    west: float = 13.30
    width_km: float = 12.0
    height_km: float = 10.0
    block_km: float = 0.25

    def latlon(self, x_km: float, y_km: float) -> tuple[float, float]:
        lat = self.south + y_km / KM_PER_DEG_LAT
        lon = self.west + x_km / (KM_PER_DEG_LAT * math.cos(math.radians(self.south)))
        return round(lat, 6), round(lon, 6)

    def random_corner(self, rng: random.Random) -> tuple[float, float]:
        """A street crossing."""
        cols, rows = int(self.width_km / self.block_km), int(self.height_km / self.block_km)
        return rng.randint(0, cols) * self.block_km, rng.randint(0, rows) * self.block_km

    def corner_near(
        self, rng: random.Random, around: tuple[float, float], within_km: float
    ) -> tuple[float, float]:
        """A street crossing up to ``within_km`` east/west and north/south of ``around``."""
        x = min(max(0.0, around[0] + rng.uniform(-within_km, within_km)), self.width_km)
        y = min(max(0.0, around[1] + rng.uniform(-within_km, within_km)), self.height_km)
        return round(x / self.block_km) * self.block_km, round(y / self.block_km) * self.block_km

    def route(
        self, start: tuple[float, float], end: tuple[float, float]
    ) -> list[tuple[float, float]]:
        """Along the streets: first east/west to the end's column, then north/south."""
        return [(end[0], start[1]), end]


def step_along(
    position: tuple[float, float], route: list[tuple[float, float]], km: float
) -> tuple[tuple[float, float], list[tuple[float, float]]]:
    """``position`` moved ``km`` along ``route``; the waypoints still ahead."""
    x, y = position
    left = list(route)
    while left and km > 0:
        tx, ty = left[0]
        gap = abs(tx - x) + abs(ty - y)  # legs are axis-parallel
        if gap <= km:
            x, y, km = tx, ty, km - gap
            left.pop(0)
        else:
            x += math.copysign(km, tx - x) if tx != x else 0.0
            y += math.copysign(km, ty - y) if tx == x and ty != y else 0.0
            km = 0
    return (x, y), left
