"""The NT-Xent strategies as one factorial over three geographic ingredients, each an option:

- ``positive``: ``augmentation`` (a second augmented view of the anchor, SimCLR), ``neighbour`` (an augmented
  photo of a geo-neighbour, falling back to the anchor as :func:`~geocontrast.strategies.base.neighbour_positives`)
  or ``observation`` (another photo of the anchor's observation, as
  :func:`~geocontrast.strategies.base.observation_positives`); ``filter_temperature`` τ (None) draws the neighbour
  with probability ∝ exp(cosine / τ) under the encoder's current embeddings instead of uniformly
  (:func:`~geocontrast.strategies.base.filtered_neighbour_positives`), from a bank of the anchors' and their
  neighbours' embeddings re-encoded ``bank_refreshes_per_epoch`` times per epoch (:meth:`ContrastiveStrategy.refresh`);
- ``extra_negatives``: ``none``, ``random`` (one uniform allowed row per anchor) or ``geo`` (one row of its
  negative-table row); all B of them are shared extra negatives of every anchor, a third view through the encoder;
- ``mask``: True masks geo-near items (within the negative table's ``false_negative_radius_km``) from each
  anchor's denominator: in-batch anchor pairs and anchor/extra-negative pairs. ``near_weight`` (0) softens it:
  a geo-near item keeps that weight in the denominator (0: the hard mask; 1: plain NT-Xent; between: Cole et
  al.'s weak negatives), fading towards 1 with distance when ``near_scale_km`` is set
  (:func:`~geocontrast.geo.negatives.false_negative_degrees`); ``near_smoothing`` (epsilon, 0) moves that share
  of each anchor's target from its positive to its in-batch geo-near items (AN-LS-like; needs ``near_weight`` > 0).

Beside them, auxiliary geographic terms on the anchor view's features (:mod:`geocontrast.strategies.auxiliary`),
each weighted by its option (0: none): ``location_weight`` (image-location alignment) and ``pretext_weight`` (geographic
cluster prediction). They add heads, not views: the batches and the images through the encoder stay the same.

``augmented``, ``context_pos``, ``context_pos_neg``, ``observation_pos``, ``context_filtered``, ``location_align``
and ``geo_pretext`` are named points of it (their option defaults). A control differs from its counterpart by one
option alone: positives and negatives come from separate random streams
(:func:`~geocontrast.strategies.base.ingredient_streams`), so the other views' rows stay the same, and the number of
views depends only on ``extra_negatives`` being none or not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from geocontrast.geo.negatives import false_negative_degrees, geo_near_mask
from geocontrast.losses import NTXentLoss
from geocontrast.models import ProjectionHead
from geocontrast.strategies.auxiliary import auxiliary_terms
from geocontrast.strategies.base import (
    EmbeddingBank,
    PairBatch,
    Strategy,
    filtered_neighbour_positives,
    ingredient_streams,
    negatives_from,
    positives_from,
)


class ContrastiveStrategy(Strategy):
    """NT-Xent (SimCLR) between views ``anchor`` and ``positive``; a ``negative`` view, when sampled, is passed
    as shared extra negatives.

    Settings: ``temperature``. Options: ``positive`` (augmentation), ``extra_negatives`` (none), ``mask``
    (False), ``near_weight`` (0), ``near_scale_km`` (None), ``near_smoothing`` (0), ``filter_temperature`` (None),
    ``bank_refreshes_per_epoch`` (1), ``projection_dim`` (128), ``projection_hidden_dim`` (512); the auxiliary terms'
    ``location_*`` and ``pretext_*``.
    """

    def __init__(self, data, settings):
        super().__init__(data, settings)
        weight, scale, smoothing = (self.options[key] for key in ("near_weight", "near_scale_km", "near_smoothing"))
        section = f"pretrain.strategy_options.{self.name}"
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"{section}.near_weight must be in [0, 1] (0: the hard mask, 1: none), got {weight}")
        if scale is not None and not scale > 0:
            raise ValueError(f"{section}.near_scale_km must be > 0 km, or null for no fading, got {scale}")
        if smoothing and not weight > 0:
            raise ValueError(
                f"{section}.near_smoothing {smoothing} needs near_weight > 0: a dropped item cannot take target mass"
            )
        self.filter_temperature = tau = self.options["filter_temperature"]
        refreshes = self.options["bank_refreshes_per_epoch"]
        if tau is not None and self.options["positive"] != "neighbour":
            raise ValueError(f"{section}.filter_temperature filters neighbour positives: it needs positive neighbour")
        if tau is not None and not tau > 0:
            raise ValueError(f"{section}.filter_temperature must be > 0 (null: a uniform draw), got {tau}")
        if not (isinstance(refreshes, int) and refreshes >= 1):
            raise ValueError(f"{section}.bank_refreshes_per_epoch must be an integer >= 1, got {refreshes!r}")
        self.bank: EmbeddingBank | None = None
        self.criterion = NTXentLoss(
            temperature=float(settings.temperature),
            false_negative_smoothing=float(smoothing),
            gather_distributed=True,
        )
        self.auxiliary = auxiliary_terms(section, data, self.anchor_rows(), int(settings.seed), self.options)

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive_rng, negative_rng = ingredient_streams(rng)
        views = {"anchor": anchors, "positive": self.positives(anchors, positive_rng)}
        if self.options["extra_negatives"] != "none":
            views["negative"] = negatives_from(
                self.options["extra_negatives"], self.data, anchors, negative_rng, self.allowed, self.negative_pool()
            )
        return PairBatch(views=views, **self.masks(anchors, views.get("negative")))

    def positives(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The positive view's rows: from the ``positive`` source, appearance-filtered under ``filter_temperature``."""
        if self.filter_temperature is None:
            return positives_from(self.options["positive"], self.data, anchors, rng, self.allowed)
        if self.bank is None:
            raise RuntimeError(f"{self.name}: no embedding bank yet; call refresh(encode) first (the loop does)")
        rows, _ = filtered_neighbour_positives(
            self.data, anchors, rng, self.allowed, self.bank, self.filter_temperature
        )
        return rows

    def refresh_steps(self, steps_per_epoch: int) -> tuple[int, ...]:
        """``bank_refreshes_per_epoch`` evenly spaced steps from the epoch's start, with ``filter_temperature``."""
        if self.filter_temperature is None:
            return ()
        refreshes = min(int(self.options["bank_refreshes_per_epoch"]), steps_per_epoch)
        return tuple(sorted({i * steps_per_epoch // refreshes for i in range(refreshes)}))

    def bank_rows(self) -> np.ndarray:
        """Rows the filter compares: the anchors and the allowed rows of their neighbour-table rows."""
        anchors, table = self.anchor_rows(), self.data.neighbours
        is_anchor = np.zeros(self.data.n_rows, dtype=bool)
        is_anchor[anchors] = True
        row_of_slot = np.repeat(np.arange(self.data.n_rows), np.diff(table.indptr))
        neighbours = table.indices[is_anchor[row_of_slot]].astype(np.int64)
        neighbours = neighbours[neighbours >= 0]
        if self.allowed is not None:
            neighbours = neighbours[self.allowed[neighbours]]
        return np.union1d(anchors, neighbours)

    def refresh(self, encode: Callable[[np.ndarray], torch.Tensor]) -> int:
        """Re-embed :meth:`bank_rows` with the current encoder (its features, before the projection head). Every
        process encodes the whole bank, so their banks agree without communication; the images count once per
        process in the job's images through the encoder (``encoder_images``)."""
        if self.filter_temperature is None:
            return 0
        rows = self.bank_rows()
        self.bank = EmbeddingBank.of(rows, encode(rows).float().cpu().numpy(), self.data.n_rows)
        return int(rows.size)

    def masks(self, anchors: np.ndarray, negative: np.ndarray | None) -> dict:
        """``false_negatives`` (B, B) and ``extra_false_negatives`` (B, E) of a batch. An anchor is never its own
        extra negative (whatever ``mask``); with ``mask`` the geo-near pairs are masked too (the diagonal never):
        bool under the hard mask, float degrees in [0, 1] under a soft one (``near_weight`` > 0 or
        ``near_scale_km``). Rows without coordinates are never geo-near (their NaN unit vectors compare False)."""
        masks = {}
        if self.options["mask"]:
            masks["false_negatives"] = self.geo_near(anchors, anchors)  # (B, B)
            np.fill_diagonal(masks["false_negatives"], False)
        if negative is not None:
            itself = negative[None, :] == anchors[:, None]  # (B, E)
            if self.options["mask"]:
                itself = np.maximum(itself, self.geo_near(anchors, negative))
            masks["extra_false_negatives"] = itself
        return masks

    def geo_near(self, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
        """(len(rows), len(others)): the geo-near mask, or the false-negative degrees of a soft mask."""
        radius, unit = self.data.negatives.false_negative_radius_km, self.data.unit
        weight, scale = float(self.options["near_weight"]), self.options["near_scale_km"]
        if weight == 0.0 and scale is None:
            return geo_near_mask(unit[rows], unit[others], radius)
        return false_negative_degrees(unit[rows], unit[others], radius, weight, scale)

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        heads = nn.ModuleDict({"projection": projection_head(encoder.feature_dim, self.options)})
        for term in self.auxiliary:  # after the projection, which so starts as the strategy's without them
            heads.update(term.heads(encoder.feature_dim))
        return heads

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        project = heads["projection"]
        z_a = project(features["anchor"])  # (B, out_dim)
        z_b = project(features["positive"])  # (B, out_dim)
        device = z_a.device
        extra = project(features["negative"]) if "negative" in features else None  # (E, out_dim)
        false_negatives = _as_mask(batch.false_negatives, device)
        extra_false_negatives = _as_mask(batch.extra_false_negatives, device)
        loss = self.criterion(
            z_a.float(),
            z_b.float(),
            extra_negatives=None if extra is None else extra.float(),
            false_negatives=false_negatives,
            extra_false_negatives=extra_false_negatives,
        )
        for term in self.auxiliary:
            loss = loss + term.weight * term.loss(features, heads, batch.views["anchor"])
        return loss

    def auxiliary_diagnostics(self, batches: list[PairBatch]) -> dict | None:
        anchors = [batch.views["anchor"] for batch in batches]
        return {term.name: term.diagnostics(anchors) for term in self.auxiliary} or None


def projection_head(feature_dim: int, options: dict) -> ProjectionHead:
    """SimCLR's projection head sized by a strategy's ``projection_hidden_dim`` and ``projection_dim`` options."""
    return ProjectionHead(
        feature_dim, hidden_dim=int(options["projection_hidden_dim"]), out_dim=int(options["projection_dim"])
    )


def _as_mask(mask: np.ndarray | None, device) -> torch.Tensor | None:
    """A mask (bool) or false-negative degrees (float32) as a tensor on ``device``."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    return torch.as_tensor(mask if mask.dtype == bool else mask.astype(np.float32), device=device)
