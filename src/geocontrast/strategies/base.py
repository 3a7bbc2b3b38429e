"""What every strategy shares: the rows it may draw from, the batch it hands the loop, and a tiny base class.

A strategy supplies *how pairs are drawn* and *which loss*; the training loop owns the rest (gathering pixels,
augmentation, the encoder forward pass, optimiser, checkpoints, metrics). One step goes::

    heads = strategy.heads(encoder)                    # once: the strategy's trainable (and target) modules
    batch = strategy.sample(anchor_rows, rng)          # PairBatch: manifest rows per view (numpy)
    views = {view: augment(cache[rows]) for view, rows in batch.views.items()}   # (B_view, 3, R, R)
    features = {view: encoder(images) for view, images in views.items()}         # (B_view, D)
    loss = strategy.loss(features, heads, batch, views)
    ...optimiser step...
    strategy.after_step(heads, encoder, progress)      # e.g. BYOL's momentum update of its target network

Strategy-specific settings come from ``params["options"]`` (config ``pretrain.strategy_options.<name>``), checked
against the strategy's defaults in :mod:`geocontrast.registry`, which also lists the geo tables each one reads.

Rows are always manifest rows (the cache, splits and geo tables share that order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from geocontrast import registry
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
            raise ValueError(
                f"label_fraction {label_fraction_pct}: splits have no column {column!r} (available: {available})"
            )
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
        neighbours=neighbours,
        negatives=negatives,
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

    Its options (defaults, allowed sources) and the geo tables it needs under them come from its entry in
    :data:`geocontrast.registry.STRATEGIES` (``params["options"]`` overrides the defaults; unknown keys are
    refused). ``params["pairs_from"]``: "train" (positives/negatives only from train rows, so val/test
    pixels never reach pretraining) or "all" (any manifest row); :attr:`allowed` is that row mask (None: all).
    """

    name: str = ""

    def __init__(self, data: TrainingData, params: dict):
        self.options = self.resolve_options(params.get("options") or {})
        for table in self.required_tables(self.options):
            if getattr(data, table) is None:
                raise ValueError(f"strategy {self.name!r} needs the {table} table ({table}_path= / --{table} PATH)")
        self.data = data
        self.params = params
        pairs_from = params.get("pairs_from", "train")
        if pairs_from not in ("train", "all"):
            raise ValueError(f"pairs_from must be 'train' or 'all', got {pairs_from!r}")
        self.allowed = (data.split == "train") if pairs_from == "train" else None

    @classmethod
    def resolve_options(cls, options: dict) -> dict:
        """``options`` over the registered defaults; an unknown key or source is refused, naming the known ones."""
        return registry.strategy(cls.name).resolve_options(options)

    @classmethod
    def required_tables(cls, options: dict) -> tuple[str, ...]:
        """The geo tables this strategy needs under ``options`` (the registry's answer, which the workflow reads)."""
        return registry.strategy(cls.name).tables(options)

    def anchor_rows(self) -> np.ndarray:
        """Manifest rows an epoch iterates over as anchors."""
        return self.data.rows_of("train")

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        raise NotImplementedError

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        """The modules trained with the encoder (and any non-trained target copies); ``encoder.feature_dim``
        is the size of the features the loss receives."""
        raise NotImplementedError

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The batch loss from the encoder's ``features`` per view (B_view, D); ``views`` are the augmented input
        images (B_view, 3, R, R) for strategies that need pixels (reconstruction, a target network)."""
        raise NotImplementedError

    def after_step(self, heads: nn.ModuleDict, encoder: nn.Module, progress: float) -> None:
        """Called after every optimiser step; ``progress`` = steps done / total steps, in (0, 1]."""


def neighbour_positives(
    data: TrainingData, anchors: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, is_neighbour): per anchor a row drawn uniformly from its neighbour-table row, or the anchor itself
    where it is flagged ``fallback``, has no coordinates or no allowed neighbour."""
    table = data.neighbours
    counts = np.where(table.fallback[anchors], 0, table.indptr[anchors + 1] - table.indptr[anchors])
    return draw_one_per_row(table.indices, table.indptr[anchors], counts, rng, allowed, default=anchors)


def geo_negatives(
    data: TrainingData, anchors: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None
) -> np.ndarray:
    """One candidate per anchor from its negative-table row (allowed rows first; any candidate when the row has
    no allowed one; the anchor itself only when no other row exists)."""
    candidates = data.negatives.candidates  # (N, m)
    m = candidates.shape[1]
    values, counts = candidates.reshape(-1), np.full(anchors.size, m)
    rows, found = draw_one_per_row(values, anchors * m, counts, rng, allowed, default=anchors)
    if not found.all():
        missing = anchors[~found]
        rows[~found], _ = draw_one_per_row(values, missing * m, counts[~found], rng, None, default=missing)
    return rows


def random_negatives(anchors: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One row per anchor drawn uniformly from ``pool`` and different from the anchor (pool of >= 2 rows)."""
    rows = pool[rng.integers(pool.size, size=anchors.size)]
    clash = rows == anchors
    while clash.any():
        rows[clash] = pool[rng.integers(pool.size, size=int(clash.sum()))]
        clash = rows == anchors
    return rows


def draw_one_per_row(
    values: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
    allowed: np.ndarray | None,
    default: np.ndarray,
    rounds: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
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
        group = values[starts[i] : starts[i] + counts[i]]
        group = group[group >= 0]
        if allowed is not None:
            group = group[allowed[group]]
        if group.size:
            rows[i], found[i] = group[rng.integers(group.size)], True
    return rows, found


def positives_from(
    source: str, data: TrainingData, anchors: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None
) -> np.ndarray:
    """Second-view rows: the anchors themselves (``augmentation``: two augmentations of one photo) or a
    geo-neighbour of each (``neighbour``, falling back to the anchor as :func:`neighbour_positives`)."""
    if source == "neighbour":
        return neighbour_positives(data, anchors, rng, allowed)[0]
    return anchors.copy()
