"""Context positives and geo-chosen negatives, with geo-near items masked as false negatives.

Positives as :mod:`context_pos`. Each anchor adds one negative drawn uniformly from its negative-table row
(default rule: beyond ``r_neg_km``); all B negatives are shared extra negatives of every anchor. Pairs within the
table's ``false_negative_radius_km`` of each other are not treated as negatives: in-batch anchor pairs
(``false_negatives``, the diagonal never) and anchor/extra-negative pairs (``extra_false_negatives``). Rows
without coordinates are never masked. In the factorial (:mod:`geocontrast.strategies.contrastive`):
``positive: neighbour``, ``extra_negatives: geo``, ``mask: true``; its one-factor controls change one of them
(``extra_negatives: random``, ``mask: false``, ``positive: augmentation``).
"""

from __future__ import annotations

from geocontrast.strategies.contrastive import ContrastiveStrategy


class ContextPositiveNegative(ContrastiveStrategy):
    name = "context_pos_neg"
