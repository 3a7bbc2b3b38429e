"""Triplet network: anchor, positive and negative embeddings under a triplet margin loss.

Options: ``positive`` "neighbour" (a geo-neighbour, as context_pos; default) or "augmentation" (another view of
the anchor); ``negative`` "geo" (from the negative table, as context_pos_neg; default) or "random" (a uniform other
train row); ``margin`` (0.2, on squared distances of unit vectors); ``embedding_dim`` (128) and
``embedding_hidden_dim`` (512): the MLP head the loss sees, as SimCLR's projection head.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geocontrast.losses import TripletMarginLoss
from geocontrast.models import ProjectionHead
from geocontrast.strategies.base import PairBatch, Strategy, ingredient_streams, negatives_from, positives_from


class Triplet(Strategy):
    name = "triplet"

    def __init__(self, data, settings):
        super().__init__(data, settings)
        self.criterion = TripletMarginLoss(margin=float(self.options["margin"]))

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive_rng, negative_rng = ingredient_streams(rng)
        positive = positives_from(self.options["positive"], self.data, anchors, positive_rng, self.allowed)
        negative = negatives_from(
            self.options["negative"], self.data, anchors, negative_rng, self.allowed, self.negative_pool()
        )
        return PairBatch(views={"anchor": anchors, "positive": positive, "negative": negative})

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "embedding": ProjectionHead(
                    encoder.feature_dim,
                    hidden_dim=int(self.options["embedding_hidden_dim"]),
                    out_dim=int(self.options["embedding_dim"]),
                )
            }
        )

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        embed = heads["embedding"]
        return self.criterion(embed(features["anchor"]), embed(features["positive"]), embed(features["negative"]))
