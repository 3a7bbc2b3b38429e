"""Context positives and geo-chosen negatives, with geo-near items masked as false negatives.

Positives as :mod:`context_pos`. Each anchor adds one negative drawn uniformly from its negative-table row
(default rule: beyond ``r_neg_km``); all B negatives are shared extra negatives of every anchor. Pairs within the
table's ``false_negative_radius_km`` of each other are not treated as negatives: in-batch anchor pairs
(``false_negatives``, the diagonal never) and anchor/extra-negative pairs (``extra_false_negatives``). Rows
without coordinates are never masked (their NaN unit vectors compare False).
"""

from __future__ import annotations

import numpy as np

from geocontrast.geo.negatives import geo_near_mask
from geocontrast.strategies.base import PairBatch, geo_negatives, neighbour_positives
from geocontrast.strategies.context_pos import ContextPositive


class ContextPositiveNegative(ContextPositive):
    name = "context_pos_neg"

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive, is_neighbour = neighbour_positives(self.data, anchors, rng, self.allowed)
        negative = geo_negatives(self.data, anchors, rng, self.allowed)
        radius = self.data.negatives.false_negative_radius_km
        unit = self.data.unit
        false_negatives = geo_near_mask(unit[anchors], unit[anchors], radius)  # (B, B)
        np.fill_diagonal(false_negatives, False)
        extra_false_negatives = geo_near_mask(unit[anchors], unit[negative], radius)  # (B, E)
        extra_false_negatives |= negative[None, :] == anchors[:, None]  # an anchor is never its own negative
        return PairBatch(
            views={"anchor": anchors, "positive": positive, "negative": negative},
            false_negatives=false_negatives,
            extra_false_negatives=extra_false_negatives,
            extra={"is_neighbour": is_neighbour},
        )
