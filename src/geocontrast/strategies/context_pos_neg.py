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
from geocontrast.strategies.base import PairBatch, draw_one_per_row
from geocontrast.strategies.context_pos import ContextPositive


class ContextPositiveNegative(ContextPositive):
    name = "context_pos_neg"
    requires = ("neighbours", "negatives")

    def negatives(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One candidate per anchor from its negative-table row (train rows first when pairs_from is train)."""
        candidates = self.data.negatives.candidates  # (N, m)
        m = candidates.shape[1]
        values, counts = candidates.reshape(-1), np.full(anchors.size, m)
        rows, found = draw_one_per_row(values, anchors * m, counts, rng, self.allowed, default=anchors)
        if not found.all():  # no allowed candidate: any candidate of the row (-1 only when no other row exists)
            missing = anchors[~found]
            rows[~found], _ = draw_one_per_row(values, missing * m, counts[~found], rng, None, default=missing)
        return rows

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        positive, is_neighbour = self.positives(anchors, rng)
        negative = self.negatives(anchors, rng)
        radius = self.data.negatives.false_negative_radius_km
        unit = self.data.unit
        false_negatives = geo_near_mask(unit[anchors], unit[anchors], radius)  # (B, B)
        np.fill_diagonal(false_negatives, False)
        extra_false_negatives = geo_near_mask(unit[anchors], unit[negative], radius)  # (B, E)
        extra_false_negatives |= negative[None, :] == anchors[:, None]  # an anchor is never its own negative
        return PairBatch(views={"anchor": anchors, "positive": positive, "negative": negative},
                         false_negatives=false_negatives, extra_false_negatives=extra_false_negatives,
                         extra={"is_neighbour": is_neighbour})
