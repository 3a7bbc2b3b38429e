"""Context positives: the second view is an augmented photo of a geo-neighbour of the anchor.

The neighbour is drawn uniformly from the anchor's neighbour-table row (photos within ``radius_km``, own
observation excluded). Anchors flagged ``fallback``, without coordinates, or with no eligible neighbour get an
augmented view of themselves, as in SimCLR.
"""

from __future__ import annotations

import numpy as np

from geocontrast.strategies.base import PairBatch, draw_one_per_row
from geocontrast.strategies.contrastive import ContrastiveStrategy


class ContextPositive(ContrastiveStrategy):
    name = "context_pos"
    requires = ("neighbours",)

    def positives(self, anchors: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(rows, is_neighbour): a uniform neighbour per anchor, or the anchor itself where it has none."""
        table = self.data.neighbours
        counts = np.where(table.fallback[anchors], 0, table.indptr[anchors + 1] - table.indptr[anchors])
        return draw_one_per_row(table.indices, table.indptr[anchors], counts, rng, self.allowed, default=anchors)

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive, is_neighbour = self.positives(anchors, rng)
        return PairBatch(views={"anchor": anchors, "positive": positive}, extra={"is_neighbour": is_neighbour})
