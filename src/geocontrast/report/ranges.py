"""Species ranges to map (figure 8c): the geo prior's and the synthetic world's true suitability, per species.

- :class:`RangeGrid`: values on a regular lat/lon grid: the prior evaluated on it (:func:`prior_grid` from a
  callable, :func:`load_range_grid` from a file) or the world's truth (:func:`load_truth`, with its outline).
- :class:`RangePoints`: values at points, when no grid exists: the prior at the observed locations
  (:func:`prior_points` from ``geoprior/probs.npy``).
- :func:`default_range_species`: the species mapped when none are named.

Range-grid file (``--prior-grid`` of :mod:`~geocontrast.report.maps`, written by :func:`save_range_grid`): an .npz
with ``lat`` (n_lat,) and ``lon`` (n_lon,) ascending cell-centre degrees, ``values`` (S, n_lat, n_lon) float32
P(species | location), ``species`` (S,) str, and optionally ``mask`` (n_lat, n_lon) bool, True where cells are
drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path

PRIOR_UNIT = "P(species | location)"
TRUTH_UNIT = "true suitability (unitless, 0–1)"


@dataclass(frozen=True)
class RangeGrid:
    """Per-species values on a regular lat/lon grid.

    ``lat`` (n_lat,), ``lon`` (n_lon,): ascending cell-centre degrees; ``values`` (S, n_lat, n_lon);
    ``species`` (S,) names; ``mask`` (n_lat, n_lon) bool, True where cells are drawn (None: all);
    ``name``: what the values are (panel title), ``unit``: the colour-bar label.
    """

    lat: np.ndarray
    lon: np.ndarray
    values: np.ndarray
    species: np.ndarray
    name: str = "geo prior"
    unit: str = PRIOR_UNIT
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class RangePoints:
    """Per-species values at points: ``lat``, ``lon`` (n,) degrees, ``values`` (S, n), ``species`` (S,) names."""

    lat: np.ndarray
    lon: np.ndarray
    values: np.ndarray
    species: np.ndarray
    name: str = "geo prior at observed locations"
    unit: str = PRIOR_UNIT


def prior_grid(
    prior: Callable[[np.ndarray, np.ndarray], np.ndarray], classes, lat, lon, mask: np.ndarray | None = None
) -> RangeGrid:
    """Evaluate ``prior(lat (n,), lon (n,)) -> (n, C)`` P(species | location) on the grid of cell centres
    ``lat`` (n_lat,) x ``lon`` (n_lon,); ``classes``: the C species names in the prior's column order.

    With the geo prior of :mod:`geocontrast.prior.model`:
    ``prior_grid(lambda la, lo: location_probabilities(model, la, lo), classes, truth.lat, truth.lon)``.
    """
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    lon_mesh, lat_mesh = np.meshgrid(lon, lat)  # (n_lat, n_lon)
    probs = np.asarray(prior(lat_mesh.ravel(), lon_mesh.ravel()), dtype=np.float32)  # (n_lat * n_lon, C)
    values = probs.T.reshape(len(classes), lat.size, lon.size)
    return RangeGrid(lat, lon, values, np.asarray(classes, dtype=str), mask=mask)


def prior_points(probs: np.ndarray, classes, lat, lon) -> RangePoints:
    """The prior's (N, C) per-row probabilities at the rows' coordinates; rows without coordinates are left out."""
    lat, lon, probs = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64), np.asarray(probs)
    if probs.shape != (lat.size, len(classes)):
        raise ValueError(
            f"prior probabilities have shape {probs.shape}, expected ({lat.size} rows, {len(classes)} classes)"
        )
    usable = np.isfinite(lat) & np.isfinite(lon)
    return RangePoints(lat[usable], lon[usable], probs[usable].T, np.asarray(classes, dtype=str))


def save_range_grid(grid: RangeGrid, path) -> None:
    """Write ``grid`` as the range-grid .npz described in the module docstring (atomically)."""
    arrays = {
        "lat": grid.lat,
        "lon": grid.lon,
        "values": grid.values.astype(np.float32),
        "species": grid.species.astype(str),
    }
    if grid.mask is not None:
        arrays["mask"] = grid.mask
    with atomic_path(path) as partial:
        np.savez_compressed(partial, **arrays)


def load_range_grid(path) -> RangeGrid:
    """Read a range grid written by :func:`save_range_grid`."""
    with np.load(path, allow_pickle=False) as data:
        return RangeGrid(
            data["lat"],
            data["lon"],
            data["values"],
            data["species"],
            mask=data["mask"] if "mask" in data.files else None,
        )


def load_truth(path) -> tuple[RangeGrid, np.ndarray]:
    """The synthetic world's true suitability (land cells only) and its (V, 2) lon/lat outline, from truth.npz."""
    with np.load(path, allow_pickle=False) as truth:
        grid = RangeGrid(
            truth["lat"],
            truth["lon"],
            truth["suitability"],
            truth["species"],
            name="true suitability",
            unit=TRUTH_UNIT,
            mask=truth["land"],
        )
        return grid, truth["outline"]


def default_range_species(manifest: pd.DataFrame, available: list[np.ndarray], n: int) -> list[str]:
    """The ``n`` most observed manifest species present in every array of ``available`` (ties by name)."""
    counts = manifest["species"].dropna().value_counts()
    known = set.intersection(*(set(names.tolist()) for names in available))
    ordered = sorted((name for name in counts.index if name in known), key=lambda name: (-counts[name], name))
    return ordered[:n]
