"""SwAV (Caron et al. 2020): online clustering. Each view's projection is scored against trainable prototypes;
Sinkhorn-Knopp turns the two main views' scores into codes that share the batch equally among the prototypes,
and each view predicts the other views' codes (:class:`~geocontrast.losses.SwAVLoss`). No negatives, no
momentum network; the equal shares keep it from collapsing.

Options: ``positive`` "augmentation" (two views of the anchor, default) or "neighbour" (the second view is a
geo-neighbour, as context_pos); ``projection_dim`` (128), ``projection_hidden_dim`` (512); ``n_prototypes``
(128: more than the embedded world's 80 species, as SwAV's 3000 for ImageNet's 1000 classes);
``sinkhorn_epsilon`` (0.05) and ``sinkhorn_iterations`` (3), SwAV's; ``freeze_prototypes_steps`` (20: about the
first epoch of the embedded world at batch 128, as SwAV freezes them for its first epoch); ``extra_crops`` (0):
further augmented views of the anchor that only predict the codes (SwAV's multi-crop, but at
``pretrain.resolution``: the loop augments every view at one size). The softmax temperature is
``pretrain.temperature``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geocontrast.losses import SwAVLoss
from geocontrast.models import Prototypes
from geocontrast.strategies.base import PairBatch, Strategy, positives_from
from geocontrast.strategies.contrastive import projection_head


class SwAV(Strategy):
    name = "swav"

    def __init__(self, data, settings):
        super().__init__(data, settings)
        section = f"pretrain.strategy_options.{self.name}"
        for key in ("n_prototypes", "sinkhorn_iterations"):
            if int(self.options[key]) < 1:
                raise ValueError(f"{section}.{key} must be >= 1, got {self.options[key]}")
        for key in ("freeze_prototypes_steps", "extra_crops"):
            if int(self.options[key]) < 0:
                raise ValueError(f"{section}.{key} must be >= 0, got {self.options[key]}")
        self.criterion = SwAVLoss(
            temperature=float(settings.temperature),
            epsilon=float(self.options["sinkhorn_epsilon"]),
            iterations=int(self.options["sinkhorn_iterations"]),
        )

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive = positives_from(self.options["positive"], self.data, anchors, rng, self.allowed)
        crops = {f"crop{i + 1}": anchors.copy() for i in range(int(self.options["extra_crops"]))}
        return PairBatch(views={"anchor": anchors, "positive": positive, **crops})

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "projection": projection_head(encoder.feature_dim, self.options),
                "prototypes": Prototypes(int(self.options["projection_dim"]), int(self.options["n_prototypes"])),
            }
        )

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        project, prototypes = heads["projection"], heads["prototypes"]
        projections = [project(features[view]) for view in batch.views]  # (B, out_dim) each; anchor, positive first
        frozen = prototypes.steps < int(self.options["freeze_prototypes_steps"])  # a tensor: no host sync
        return self.criterion(projections, prototypes.vectors(frozen), n_assigned=2)

    @torch.no_grad()
    def after_step(self, heads: nn.ModuleDict, encoder: nn.Module, progress: float) -> None:
        heads["prototypes"].normalise_()
