"""Observation positives: the second view is an augmented photo of the same observation (another frame of the same
organism, as camera-trap sequences give Pantazis et al. 2021 and revisits of one tile give Ayush et al. 2021).

The photo is drawn uniformly among the other photos of the anchor's observation (never the anchor itself; a row
without observation_id is its own observation). An anchor whose observation has one photo, or whose other photos
are not allowed under ``pairs_from``, gets an augmented view of itself, as in SimCLR (counted by cause in
``pairs.json``). In the factorial (:mod:`geocontrast.strategies.contrastive`): ``positive: observation``; its
control is ``augmented``, which differs by the positive source alone.
"""

from __future__ import annotations

from geocontrast.strategies.contrastive import ContrastiveStrategy


class ObservationPositive(ContrastiveStrategy):
    name = "observation_pos"
