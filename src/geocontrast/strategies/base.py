"""What every strategy shares: the batch it hands the loop, a tiny base class, and the pair-drawing helpers.

A strategy supplies *how pairs are drawn* and *which loss*; the training loop owns the rest (gathering pixels,
augmentation, the encoder forward pass, optimiser, checkpoints, metrics). One step goes::

    heads = strategy.heads(encoder)                    # once: the strategy's trainable (and target) modules
    batch = strategy.sample(anchor_rows, rng)          # PairBatch: manifest rows per view (numpy)
    views = {view: augment(cache[rows]) for view, rows in batch.views.items()}   # (B_view, 3, R, R)
    features = {view: encoder(images) for view, images in views.items()}         # (B_view, D)
    loss = strategy.loss(features, heads, batch, views)
    ...optimiser step...
    strategy.after_step(heads, encoder, progress)      # e.g. BYOL's momentum update of its target network

A strategy whose pairs depend on the encoder's current embeddings (an appearance-filtered positive) names the
steps of an epoch before which the loop calls ``strategy.refresh(encode)`` (:meth:`Strategy.refresh_steps`).

Strategy-specific settings come from the job's ``settings.options`` (config ``pretrain.strategy_options.<name>``),
checked against the strategy's defaults in :mod:`geocontrast.registry`, which also lists the geo tables each one
reads.

Rows are always manifest rows (the cache, splits and geo tables share that order); the per-row facts strategies
draw from are a :class:`~geocontrast.geo.training_data.TrainingData`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from geocontrast import registry
from geocontrast.geo.training_data import TrainingData


@dataclass
class PairBatch:
    """One step's rows: ``views`` maps a view name to the manifest rows to gather and augment (in order).

    ``targets``: class indices of the ``anchor`` view (supervised). ``false_negatives`` (B, B) bool: True where
    anchor i and in-batch item j are geo-near (masked from i's denominator), or float degrees in [0, 1] under a
    soft mask (the share of j's denominator weight taken away). ``extra_false_negatives`` (B, E): the same for
    the ``negative`` view's items. Every array, and every array of a dict field, has the batch
    items on its first axis: :meth:`geocontrast.distributed.Ranks.share` cuts each process's share that way.
    """

    views: dict[str, np.ndarray]
    targets: np.ndarray | None = None
    false_negatives: np.ndarray | None = None
    extra_false_negatives: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


class Strategy:
    """Base of every strategy: anchors are the train rows; subclasses supply ``sample``, ``heads`` and ``loss``.

    ``settings``: the job's :class:`geocontrast.train.settings.PretrainSettings` (a strategy reads ``options``,
    ``pairs_from``, ``temperature``, ``resolution`` and ``label_fraction``). Its options (defaults, allowed
    sources) and the geo tables it needs under them come from its entry in :data:`geocontrast.registry.STRATEGIES`
    (``settings.options`` overrides the defaults; unknown keys are refused). ``pairs_from``: "train"
    (positives/negatives only from train rows, so val/test pixels never reach pretraining) or "all" (any manifest
    row); :attr:`allowed` is that row mask (None: all).
    """

    name: str = ""
    label_fraction: float = 0.0
    """Percent of the train labels the strategy trains on (its ``labelled_<pct>`` rows; 100: every train label),
    recorded in ``encoder.pt`` and results.csv (``pretrain_label_fraction``); 0 for the label-free strategies."""

    def __init__(self, data: TrainingData, settings):
        self.options = self.resolve_options(settings.options)
        for table in self.required_tables(self.options):
            if getattr(data, table) is None:
                raise ValueError(f"strategy {self.name!r} needs the {table} table ({table}_path= / --{table} PATH)")
        self.data = data
        self.settings = settings
        self.allowed = (data.split == "train") if settings.pairs_from == "train" else None

    @classmethod
    def resolve_options(cls, options: Mapping) -> dict:
        """``options`` over the registered defaults; an unknown key or source is refused, naming the known ones."""
        return registry.strategy(cls.name).resolve_options(options)

    @classmethod
    def required_tables(cls, options: dict) -> tuple[str, ...]:
        """The geo tables this strategy needs under ``options`` (the registry's answer, which the workflow reads)."""
        return registry.strategy(cls.name).tables(options)

    def anchor_rows(self) -> np.ndarray:
        """Manifest rows the anchors are drawn from; every epoch has the steps of one over the train split
        (:mod:`geocontrast.train.budget`), cycling over fewer rows."""
        return self.data.rows_of("train")

    def negative_pool(self) -> np.ndarray:
        """Rows random negatives are drawn from: the allowed rows (all rows under ``pairs_from: all``)."""
        return np.arange(self.data.n_rows) if self.allowed is None else np.flatnonzero(self.allowed)

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

    def auxiliary_diagnostics(self, batches: list[PairBatch]) -> dict | None:
        """What the targets of the strategy's auxiliary terms cover over sampled ``batches``, by term (pairs.json
        ``auxiliary``); None without such terms."""
        return None

    def refresh_steps(self, steps_per_epoch: int) -> tuple[int, ...]:
        """Steps of an epoch (0-based) before which the loop calls :meth:`refresh`; none by default. Step 0 is
        among them whenever any is, so a run resumed at an epoch's start refreshes from the same weights."""
        return ()

    @property
    def follows_encoder(self) -> bool:
        """True when the pairs depend on the encoder's current embeddings (the loop refreshes them)."""
        return bool(self.refresh_steps(1))

    def refresh(self, encode: Callable[[np.ndarray], torch.Tensor]) -> int:
        """Re-embed what the pairs are drawn from; ``encode(rows)`` gives the (n, D) features of manifest rows under
        the current encoder (eval mode, no augmentation). Returns the images encoded: the loop adds them to the
        images through the encoder. Nothing by default."""
        return 0

    def encoder_images(self, view_sizes: dict[str, int]) -> int:
        """Images that went through an encoder in one step whose views hold ``view_sizes`` images: each view once
        through the trained encoder; a strategy that also passes views through a copy of it (a target network)
        counts those passes too, so that the budget's images compare like with like."""
        return sum(view_sizes.values())


def neighbour_positives(
    data: TrainingData, anchors: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, is_neighbour): per anchor a row drawn uniformly from its neighbour-table row, or the anchor itself
    where that row is empty (no coordinates; no neighbour within the radius under fallback ``self``) or holds no
    allowed row. Under fallback ``nearest`` a flagged anchor's row holds its nearest photo beyond the radius."""
    table = data.neighbours
    counts = table.indptr[anchors + 1] - table.indptr[anchors]
    return draw_one_per_row(table.indices, table.indptr[anchors], counts, rng, allowed, default=anchors)


def observation_positives(
    data: TrainingData, anchors: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, is_other_photo): per anchor a row drawn uniformly among the other photos of its observation (allowed
    ones only), or the anchor itself where it has none (an observation of one photo, or its others not allowed)."""
    indptr, indices = data.observation_photos
    counts = indptr[anchors + 1] - indptr[anchors]
    return draw_one_per_row(indices, indptr[anchors], counts, rng, allowed, default=anchors)


@dataclass(frozen=True)
class EmbeddingBank:
    """Unit-length embeddings of some manifest rows: row r's is ``features[position[r]]`` (position -1: none)."""

    position: np.ndarray  # (N,) int64
    features: np.ndarray  # (n_bank, D) float32

    @classmethod
    def of(cls, rows: np.ndarray, features: np.ndarray, n_rows: int) -> EmbeddingBank:
        """The bank of ``features`` (n, D) of ``rows`` (n,) among ``n_rows`` manifest rows, normalised here."""
        position = np.full(n_rows, -1, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return cls(position, (features / np.maximum(norms, 1e-12)).astype(np.float32))

    def cosine(self, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
        """(n,) float64 cosine similarity of rows[i] and others[i]; every row must be in the bank."""
        a, b = self.position[rows], self.position[others]
        if (a < 0).any() or (b < 0).any():
            raise ValueError("the embedding bank holds no features for some drawn rows")
        return np.einsum("nd,nd->n", self.features[a], self.features[b]).astype(np.float64)


def filtered_neighbour_positives(
    data: TrainingData,
    anchors: np.ndarray,
    rng: np.random.Generator,
    allowed: np.ndarray | None,
    bank: EmbeddingBank,
    temperature: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, is_neighbour): per anchor a row of its neighbour-table row (allowed rows only) drawn with probability
    ∝ exp(cosine(anchor, row) / ``temperature``) under ``bank`` (Pantazis et al. 2021's appearance-filtered context);
    the anchor itself where the row holds no allowed one, as :func:`neighbour_positives`. As temperature → 0 the
    most similar neighbour; → ∞ a uniform draw. Drawn by the Gumbel-max trick: the argmax of logits plus Gumbel noise
    is distributed as their softmax."""
    table = data.neighbours
    starts, counts = table.indptr[anchors], table.indptr[anchors + 1] - table.indptr[anchors]
    owner = np.repeat(np.arange(anchors.size), counts)  # (S,) the anchor of each table slot
    offsets = np.cumsum(counts) - counts
    candidates = table.indices[np.repeat(starts - offsets, counts) + np.arange(counts.sum())].astype(np.int64)
    keep = candidates >= 0
    if allowed is not None:
        keep &= allowed[np.maximum(candidates, 0)]
    owner, candidates = owner[keep], candidates[keep]
    score = bank.cosine(anchors[owner], candidates) / temperature + rng.gumbel(size=candidates.size)
    order = np.lexsort((-score, owner))  # per anchor, best score first
    best = order[np.r_[True, owner[order[1:]] != owner[order[:-1]]]] if order.size else order
    rows, found = np.array(anchors, dtype=np.int64, copy=True), np.zeros(anchors.size, dtype=bool)
    rows[owner[best]], found[owner[best]] = candidates[best], True
    return rows, found


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


def ingredient_streams(rng: np.random.Generator) -> tuple[np.random.Generator, np.random.Generator]:
    """(positive stream, negative stream), seeded by one draw from ``rng``: each ingredient draws from its own
    stream, so switching one ingredient's source leaves the other's rows unchanged (one-factor controls)."""
    seeds = rng.integers(2**63, size=2)
    return np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])


def positives_from(
    source: str, data: TrainingData, anchors: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None
) -> np.ndarray:
    """Second-view rows: the anchors themselves (``augmentation``: two augmentations of one photo), a geo-neighbour
    of each (``neighbour``, falling back to the anchor as :func:`neighbour_positives`) or another photo of its
    observation (``observation``, falling back to the anchor as :func:`observation_positives`)."""
    if source == "neighbour":
        return neighbour_positives(data, anchors, rng, allowed)[0]
    if source == "observation":
        return observation_positives(data, anchors, rng, allowed)[0]
    return anchors.copy()


def negatives_from(
    source: str,
    data: TrainingData,
    anchors: np.ndarray,
    rng: np.random.Generator,
    allowed: np.ndarray | None,
    pool: np.ndarray,
) -> np.ndarray:
    """One negative row per anchor: from its negative-table row (``geo``, as :func:`geo_negatives`) or uniform
    over ``pool`` (``random``, as :func:`random_negatives`)."""
    if source == "geo":
        return geo_negatives(data, anchors, rng, allowed)
    return random_negatives(anchors, pool, rng)
