"""What every strategy shares: the rows it may draw from, the batch it hands the loop, and a tiny base class.

A strategy supplies *how pairs are drawn* and *which loss*; the training loop owns the rest (gathering pixels,
augmentation, the encoder forward pass, optimiser, checkpoints, metrics). One step goes::

    batch = strategy.sample(anchor_rows, rng)          # PairBatch: manifest rows per view (numpy)
    features = {view: encoder(augment(cache[rows])) for view, rows in batch.views.items()}   # (B_view, D)
    loss = strategy.loss(features, heads, batch)       # heads = strategy.heads(encoder.feature_dim)

Rows are always manifest rows (the cache, splits and geo tables share that order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from geocontrast.data.splits import labelled_column
from geocontrast.geo.coords import unit_vectors


@dataclass
class TrainingData:
    """The per-row facts strategies draw from, all in manifest order.

    ``split``: "train"/"val"/"test" per row; ``splits``: the splits frame (``labelled_<pct>`` columns);
    ``species``: species name or None; ``unit``: (N, 3) unit vectors, NaN rows where coordinates are missing;
    ``neighbours`` / ``negatives``: the geo tables (None when not given).
    """

    split: np.ndarray
    splits: pd.DataFrame
    species: np.ndarray
    unit: np.ndarray
    neighbours: object | None = None
    negatives: object | None = None

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
            raise ValueError(f"label_fraction {label_fraction_pct}: splits have no column {column!r} "
                             f"(available: {available})")
        labelled = self.splits[column].to_numpy(bool) & (self.split == "train")
        return np.flatnonzero(labelled)

    def species_codes(self) -> tuple[np.ndarray, list[str]]:
        """(N,) int64 class index per row (-1 when unlabelled) and the sorted class names."""
        labelled = pd.notna(self.species)
        names = sorted(set(self.species[labelled].tolist()))
        lookup = {name: i for i, name in enumerate(names)}
        codes = np.array([lookup[s] if ok else -1 for s, ok in zip(self.species, labelled)], dtype=np.int64)
        return codes, names


def training_data(manifest: pd.DataFrame, splits: pd.DataFrame, neighbours=None, negatives=None) -> TrainingData:
    """Bundle a manifest, its splits and optional geo tables, checking they share the manifest's row order."""
    if len(splits) != len(manifest) or not (splits["image_id"].to_numpy() == manifest["image_id"].to_numpy()).all():
        raise ValueError("splits must list the manifest's image_ids in manifest order")
    for name, table in (("neighbour", neighbours), ("negative", negatives)):
        rows = None if table is None else (
            table.indptr.size - 1 if hasattr(table, "indptr") else table.candidates.shape[0])
        if rows is not None and rows != len(manifest):
            raise ValueError(f"the {name} table has {rows} rows, the manifest {len(manifest)}")
    lat = manifest["lat"].to_numpy(np.float64, na_value=np.nan)
    lon = manifest["lon"].to_numpy(np.float64, na_value=np.nan)
    species = manifest["species"].astype(object).where(manifest["species"].notna(), None).to_numpy()
    return TrainingData(
        split=splits["split"].to_numpy(str), splits=splits.reset_index(drop=True), species=species,
        unit=unit_vectors(lat, lon), neighbours=neighbours, negatives=negatives,
    )


@dataclass
class PairBatch:
    """One step's rows: ``views`` maps a view name to the manifest rows to gather and augment (in order).

    ``targets``: class indices of the ``anchor`` view (supervised). ``false_negatives`` (B, B) bool: True where
    anchor i and in-batch item j are geo-near (masked from i's denominator). ``extra_false_negatives`` (B, E)
    bool: the same for the ``negative`` view's items.
    """

    views: dict[str, np.ndarray]
    targets: np.ndarray | None = None
    false_negatives: np.ndarray | None = None
    extra_false_negatives: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


class Strategy:
    """Base of every strategy: anchors are the train rows; subclasses supply ``sample``, ``heads`` and ``loss``.

    ``requires`` names the geo tables a strategy cannot run without ("neighbours", "negatives").
    """

    name: str = ""
    requires: tuple[str, ...] = ()

    def __init__(self, data: TrainingData, params: dict):
        for table in self.requires:
            if getattr(data, table) is None:
                raise ValueError(f"strategy {self.name!r} needs the {table} table ({table}_path= / --{table} PATH)")
        self.data = data
        self.params = params

    def anchor_rows(self) -> np.ndarray:
        """Manifest rows an epoch iterates over as anchors."""
        return self.data.rows_of("train")

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        raise NotImplementedError

    def heads(self, feature_dim: int) -> nn.ModuleDict:
        raise NotImplementedError

    def loss(self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch) -> torch.Tensor:
        raise NotImplementedError


def draw_one_per_row(values: np.ndarray, starts: np.ndarray, counts: np.ndarray, rng: np.random.Generator,
                     allowed: np.ndarray | None, default: np.ndarray, rounds: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """For each group ``values[starts[i]:starts[i] + counts[i]]``, one row drawn uniformly among its allowed rows.

    Allowed: >= 0 and, when ``allowed`` is given, ``allowed[row]``. Vectorised rejection (a uniform draw from the
    group, redrawn while not allowed, is uniform over the allowed rows); groups still pending after ``rounds``
    draws are resolved exactly. Returns (rows, found): ``default[i]`` and found False where no row is allowed.
    """
    rows = np.array(default, dtype=np.int64, copy=True)
    found = np.zeros(rows.size, dtype=bool)
    starts, counts = np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    pending = np.flatnonzero(counts > 0)
    for _ in range(rounds):
        if pending.size == 0:
            break
        pick = values[starts[pending] + rng.integers(counts[pending])].astype(np.int64)
        ok = pick >= 0
        if allowed is not None:
            ok &= allowed[np.maximum(pick, 0)]
        rows[pending[ok]], found[pending[ok]] = pick[ok], True
        pending = pending[~ok]
    for i in pending:
        group = values[starts[i]:starts[i] + counts[i]]
        group = group[group >= 0]
        if allowed is not None:
            group = group[allowed[group]]
        if group.size:
            rows[i], found[i] = group[rng.integers(group.size)], True
    return rows, found
