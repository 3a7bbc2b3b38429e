"""SimCLR: both views are augmentations of the anchor image; the other images of the batch are negatives."""

from __future__ import annotations

import numpy as np

from geocontrast.strategies.base import PairBatch
from geocontrast.strategies.contrastive import ContrastiveStrategy


class Augmented(ContrastiveStrategy):
    name = "augmented"

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        return PairBatch(views={"anchor": anchors, "positive": anchors.copy()})
