"""Context positives: the second view is an augmented photo of a geo-neighbour of the anchor.

The neighbour is drawn uniformly from the anchor's neighbour-table row (photos within ``radius_km``, own
observation excluded). Anchors flagged ``fallback``, without coordinates, or with no eligible neighbour get an
augmented view of themselves, as in SimCLR.
"""

from __future__ import annotations

import numpy as np

from geocontrast.strategies.base import PairBatch, neighbour_positives
from geocontrast.strategies.contrastive import ContrastiveStrategy


class ContextPositive(ContrastiveStrategy):
    name = "context_pos"

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive, is_neighbour = neighbour_positives(self.data, anchors, rng, self.allowed)
        return PairBatch(views={"anchor": anchors, "positive": positive}, extra={"is_neighbour": is_neighbour})
