"""The report-figure tests' tiny hand-made world: its coordinates, species and a hand-built neighbour table.

The world: 12 photos on the equator (where a degree of longitude is exactly π·a/180 km of WGS84 geodesic, a =
6378.137 km), one without coordinates, a hand-built neighbour table and negative table (the fixtures manifest,
neighbours, negatives and images in conftest.py).
"""

from __future__ import annotations

import numpy as np

from geocontrast.geo.neighbours import NeighbourTable

KM_PER_EQUATOR_DEGREE = np.pi * 6378.137 / 180  # 111.3195 km: WGS84 semi-major axis, along the equator
LON = np.array([0.0, 0.03, 0.5, 0.53, 2.0, 1.0, 3.0, 3.04, 4.0, 4.02, np.nan, 6.0])
SPECIES = {"Alpha una": ("Alpha", "Aceae"), "Alpha duo": ("Alpha", "Aceae"), "Beta una": ("Beta", "Betaceae")}
ROW_SPECIES = [
    "Alpha una",
    "Alpha una",
    "Alpha duo",
    "Beta una",
    "Alpha una",
    "Beta una",
    "Alpha duo",
    None,
    "Beta una",
    "Beta una",
    "Alpha una",
    "Alpha duo",
]
RADIUS_KM = 5.0


def taxonomy_columns(species: list) -> dict:
    return {
        "species": species,
        "genus": [SPECIES[s][0] if s else None for s in species],
        "family": [SPECIES[s][1] if s else None for s in species],
    }


def neighbour_table(rows: dict[int, list[int]], n: int = LON.size) -> NeighbourTable:
    """A CSR table holding ``rows[i]`` as row i's positives; rows with coordinates and none are fallbacks."""
    counts = np.array([len(rows.get(i, [])) for i in range(n)])
    indices = np.array([j for i in range(n) for j in rows.get(i, [])], dtype=np.int32)
    has_coords = np.isfinite(LON)
    dist_km = np.abs(LON[indices] - LON[np.repeat(np.arange(n), counts)]) * KM_PER_EQUATOR_DEGREE
    return NeighbourTable(
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        indices,
        dist_km.astype(np.float32),
        has_coords & (counts == 0),
        has_coords,
        {"radius_km": RADIUS_KM, "k": 4},
    )
