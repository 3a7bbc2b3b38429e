"""SimCLR: both views are augmentations of the anchor image; the other images of the batch are negatives.

The factorial's origin (:mod:`geocontrast.strategies.contrastive`): augmentation positive, no extra negatives,
no mask.
"""

from __future__ import annotations

from geocontrast.strategies.contrastive import ContrastiveStrategy


class Augmented(ContrastiveStrategy):
    name = "augmented"
