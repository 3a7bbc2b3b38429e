"""Coordinates on the sphere: lat/lon to unit vectors, chord <-> great-circle distance, haversine.

Neighbour searches work on unit vectors (ECEF on the unit sphere) with chord lengths: a great-circle distance d
corresponds to the chord ``2 sin(d / 2R)``, so a Euclidean ball query on unit vectors is an exact great-circle
ball query, with no special case at the antimeridian or the poles. Distances use the mean Earth radius; use
pyproj's Geod where WGS84 geodesic distances are needed.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius


def unit_vectors(lat, lon) -> np.ndarray:
    """(N, 3) float64 unit vectors (x towards lon 0 on the equator, z towards the north pole) for degrees lat/lon.

    NaN coordinates give NaN rows.
    """
    lat = np.radians(np.asarray(lat, dtype=np.float64))
    lon = np.radians(np.asarray(lon, dtype=np.float64))
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def km_to_chord(d_km):
    """Chord length on the unit sphere for a great-circle distance in km (clipped at the antipode, chord 2)."""
    half_angle = np.minimum(np.asarray(d_km, dtype=np.float64) / (2.0 * EARTH_RADIUS_KM), np.pi / 2)
    return 2.0 * np.sin(half_angle)


def chord_to_km(chord):
    """Great-circle distance in km for a chord length on the unit sphere (inverse of :func:`km_to_chord`)."""
    half = np.clip(np.asarray(chord, dtype=np.float64) / 2.0, 0.0, 1.0)
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(half)


def great_circle_km(lat1, lon1, lat2, lon2):
    """Haversine great-circle distance in km between degree coordinates (broadcasting, vectorised)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lat1, lon1, lat2, lon2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    # Rounding can push h a hair above 1 for antipodal points.
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
