"""The per-row facts of one dataset that pretraining strategies and evaluation draw from, in manifest order.

:func:`training_data` bundles a manifest, its splits and the optional geo tables (neighbours, negatives) after
checking they share the manifest's row order; rows are manifest rows throughout (the image cache, the splits and
the geo tables share that order). It sits in the geo layer because it holds the rows' unit vectors and geo tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from geocontrast.data.manifest import species_classes
from geocontrast.data.splits import labelled_column
from geocontrast.geo._common import encode_ids
from geocontrast.geo.coords import unit_vectors


@dataclass
class TrainingData:
    """The per-row facts strategies draw from, all in manifest order.

    ``split``: "train"/"val"/"test" per row; ``splits``: the splits frame (``labelled_<pct>`` columns);
    ``species``: species name or None; ``unit``: (N, 3) unit vectors, NaN rows where coordinates are missing;
    ``observation``: (N,) int64 observation codes (equal for the photos of one observation; a row without
    observation_id is its own observation); ``neighbours`` / ``negatives``: the geo tables (None when not given);
    ``day_of_year``: (N,) float day of the observation (1-366), NaN where undated (None when not given).
    """

    split: np.ndarray
    splits: pd.DataFrame
    species: np.ndarray
    unit: np.ndarray
    observation: np.ndarray
    neighbours: object | None = None
    negatives: object | None = None
    day_of_year: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.split.size)

    def rows_of(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def labelled_rows(self, label_fraction_pct: float) -> np.ndarray:
        """Train rows labelled under the ``labelled_<pct>`` budget (e.g. 10 -> labelled_10)."""
        column = labelled_column(float(label_fraction_pct) / 100.0)
        if column not in self.splits.columns:
            available = [c for c in self.splits.columns if c.startswith("labelled_")]
            raise ValueError(
                f"label_fraction {label_fraction_pct}: splits have no column {column!r} (available: {available})"
            )
        labelled = self.splits[column].to_numpy(bool) & (self.split == "train")
        return np.flatnonzero(labelled)

    @cached_property
    def observation_photos(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr (N + 1,), indices): the other photos of each row's observation, as a CSR table in manifest
        order (row i's are ``indices[indptr[i]:indptr[i + 1]]``, never i itself)."""
        order = np.argsort(self.observation, kind="stable")  # rows grouped by observation
        codes = self.observation[order]
        first = np.searchsorted(codes, self.observation, side="left")  # (N,) where each row's group starts
        size = np.searchsorted(codes, self.observation, side="right") - first
        indptr = np.r_[0, np.cumsum(size - 1)]
        owner = np.repeat(np.arange(self.n_rows), size)  # each row once per photo of its observation
        members = order[np.repeat(first - np.r_[0, np.cumsum(size)[:-1]], size) + np.arange(size.sum())]
        return indptr, members[members != owner]

    def species_codes(self) -> tuple[np.ndarray, list[str]]:
        """(N,) int64 class index per row (-1 when unlabelled) and the sorted class names."""
        return species_classes(self.species)


def training_data(manifest: pd.DataFrame, splits: pd.DataFrame, neighbours=None, negatives=None) -> TrainingData:
    """Bundle a manifest, its splits and optional geo tables, checking they share the manifest's row order."""
    if len(splits) != len(manifest) or not (splits["image_id"].to_numpy() == manifest["image_id"].to_numpy()).all():
        raise ValueError("splits must list the manifest's image_ids in manifest order")
    for name, table in (("neighbour", neighbours), ("negative", negatives)):
        rows = (
            None
            if table is None
            else (table.indptr.size - 1 if hasattr(table, "indptr") else table.candidates.shape[0])
        )
        if rows is not None and rows != len(manifest):
            raise ValueError(f"the {name} table has {rows} rows, the manifest {len(manifest)}")
    lat = manifest["lat"].to_numpy(np.float64, na_value=np.nan)
    lon = manifest["lon"].to_numpy(np.float64, na_value=np.nan)
    species = manifest["species"].astype(object).where(manifest["species"].notna(), None).to_numpy()
    return TrainingData(
        split=splits["split"].to_numpy(str),
        splits=splits.reset_index(drop=True),
        species=species,
        unit=unit_vectors(lat, lon),
        observation=encode_ids(manifest["observation_id"], len(manifest), missing_unique=True),
        neighbours=neighbours,
        negatives=negatives,
        day_of_year=pd.to_datetime(manifest["observed_on"]).dt.day_of_year.to_numpy(np.float64, na_value=np.nan),
    )
