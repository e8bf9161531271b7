"""Great-circle distance and the h3 cells the matcher indexes drivers by.

Three h3 resolutions: a *search* cell (res 7, ~2.1 km between neighbouring centres) that
drivers are indexed by, an *area* (res 6) that speeds and surge are reported for, and a
*region* (res 4, ~22 km edge) that one worker owns whole (see docs/apps.md, claim design).
"""

from __future__ import annotations

import functools
import math

import h3

EARTH_RADIUS_KM = 6371.0088
SEARCH_RES = 7
AREA_RES = 6
REGION_RES = 4
# smallest distance between the centres of two neighbouring res-7 cells, km (h3's average
# edge length 1.406 km * sqrt(3) is ~2.4 km; 1.8 km leaves room for the distortion of cells)
_SEARCH_CELL_SPACING_KM = 1.8


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine on a sphere of the Earth's mean radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def search_cell(lat: float, lon: float) -> str:
    return str(h3.latlng_to_cell(lat, lon, SEARCH_RES))


def area_of(lat: float, lon: float) -> str:
    """The area (res-6 parent of the search cell: an area is exactly its child cells)."""
    return str(h3.cell_to_parent(h3.latlng_to_cell(lat, lon, SEARCH_RES), AREA_RES))


def area_cells(area: str) -> list[str]:
    return [str(c) for c in h3.cell_to_children(area, SEARCH_RES)]


def region_of(lat: float, lon: float, res: int = REGION_RES) -> str:
    """The region (by default the res-4 parent of the search cell), the unit one worker
    owns; a finer ``res`` spreads a city over more workers, with more borders."""
    if not 0 <= res <= AREA_RES:
        raise ValueError(f"region resolution {res} not in 0..{AREA_RES}")
    return str(h3.cell_to_parent(h3.latlng_to_cell(lat, lon, SEARCH_RES), res))


def rings_for(radius_km: float) -> int:
    """How many rings around the pickup's cell can hold a driver within ``radius_km``.

    A ring of hexagons advances by at least the spacing times sqrt(3)/2 in every direction;
    one ring more covers a driver at the far edge of its cell, so the ring search never
    misses a driver the radius allows (tests/apps/eta_matching/test_geo.py checks it).
    """
    return math.ceil(radius_km / ring_advance_km()) + 1


def ring_advance_km() -> float:
    """The least distance one ring of search cells adds in every direction."""
    return _SEARCH_CELL_SPACING_KM * math.sqrt(3) / 2


def nearer_than_ring_km(ring: int) -> float:
    """Every driver in ring ``ring`` (or beyond) of the pickup's cell is farther than this.

    The converse of ``rings_for``: a driver within d km is in a ring <= ceil(d / advance) +
    1, so one in ring j is farther than (j - 2) * advance.
    """
    return max(0.0, (ring - 2) * ring_advance_km())


def ring_cells(lat: float, lon: float, ring: int) -> list[str]:
    """The search cells exactly ``ring`` steps from the one holding (lat, lon)."""
    return [str(c) for c in h3.grid_ring(h3.latlng_to_cell(lat, lon, SEARCH_RES), ring)]


@functools.lru_cache(maxsize=65536)
def cell_reach(cell: str) -> tuple[float, float, float]:
    """(centre lat, centre lon, km from the centre to its farthest vertex plus a margin):
    no point of the cell is farther from the centre, so a cell whose centre is farther
    than the best candidate's distance plus this holds no nearer driver. The margin
    (2 % and 20 m) covers h3's edges being straight in its projection, not on the sphere.
    A pure function of the cell, cached (cells do not change)."""
    lat, lon = h3.cell_to_latlng(cell)
    far = max(haversine_km(lat, lon, vlat, vlon) for vlat, vlon in h3.cell_to_boundary(cell))
    return lat, lon, far * 1.02 + 0.02
