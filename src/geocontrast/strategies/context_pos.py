"""Context positives: the second view is an augmented photo of a geo-neighbour of the anchor.

The neighbour is drawn uniformly from the anchor's neighbour-table row (photos within ``radius_km``, own
observation excluded; under ``neighbours.fallback: nearest`` an anchor with none holds its nearest photo beyond
the radius). Anchors without coordinates or with no allowed neighbour get an augmented view of themselves, as in
SimCLR. In the factorial (:mod:`geocontrast.strategies.contrastive`): ``positive: neighbour``.
"""

from __future__ import annotations

from geocontrast.strategies.contrastive import ContrastiveStrategy


class ContextPositive(ContrastiveStrategy):
    name = "context_pos"
