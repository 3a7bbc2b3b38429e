"""SimCLR plus λ × the cross entropy of a linear head predicting the photo's geographic cluster, k-means on the
train photos' coordinates seeded per replicate (Ayush et al. ICCV 2021, geography-aware self-supervised learning)
(:class:`~geocontrast.strategies.auxiliary.ClusterPrediction`). Photos without coordinates have no target.

In the factorial (:mod:`geocontrast.strategies.contrastive`): ``augmented`` with ``pretext_weight`` 1; its control
is ``augmented`` (``pretext_weight`` 0): the same batches, the same images through the encoder, the term and its
head alone added.
"""

from __future__ import annotations

from geocontrast.strategies.contrastive import ContrastiveStrategy


class GeoPretext(ContrastiveStrategy):
    name = "geo_pretext"
