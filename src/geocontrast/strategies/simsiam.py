"""SimSiam (Chen & He 2021): two views, a projector and a predictor, negative cosine against the other view's
stop-gradient projection; no negatives and no momentum network.

Options: ``positive`` "augmentation" (two views of the anchor, default) or "neighbour" (the second view is a
geo-neighbour, as context_pos); ``projection_dim`` (128), ``projection_hidden_dim`` (512),
``predictor_hidden_dim`` (64: SimSiam's bottleneck predictor). Collapse shows in ``metrics.jsonl``'s
``embedding_std`` and ``collapsed`` flag.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geocontrast.losses import NegativeCosineLoss
from geocontrast.models import ProjectionHead
from geocontrast.strategies.base import PairBatch, Strategy, positives_from
from geocontrast.strategies.contrastive import projection_head


class SimSiam(Strategy):
    name = "simsiam"

    def __init__(self, data, settings):
        super().__init__(data, settings)
        self.criterion = NegativeCosineLoss()

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive = positives_from(self.options["positive"], self.data, anchors, rng, self.allowed)
        return PairBatch(views={"anchor": anchors, "positive": positive})

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        out_dim = int(self.options["projection_dim"])
        return nn.ModuleDict(
            {
                "projection": projection_head(encoder.feature_dim, self.options),
                "predictor": ProjectionHead(
                    out_dim, hidden_dim=int(self.options["predictor_hidden_dim"]), out_dim=out_dim
                ),
            }
        )

    def targets(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, views: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The projections each view's prediction is pulled towards (the loss detaches them)."""
        return heads["projection"](features["anchor"]), heads["projection"](features["positive"])

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        predict, project = heads["predictor"], heads["projection"]
        p_a = predict(project(features["anchor"]))  # (B, out_dim)
        p_b = predict(project(features["positive"]))  # (B, out_dim)
        t_a, t_b = self.targets(features, heads, views)
        return self.criterion(p_a, t_b, p_b, t_a)
