"""SimCLR plus λ × a symmetric InfoNCE between the image embedding and a location (and date) embedding (CSP, Mai et
al. ICML 2023; SatCLIP; GeoCLIP), the image encoder training on both
(:class:`~geocontrast.strategies.auxiliary.LocationAlignment`). Photos without coordinates skip that term.

In the factorial (:mod:`geocontrast.strategies.contrastive`): ``augmented`` with ``location_weight`` 1; its control
is ``augmented`` (``location_weight`` 0): the same batches, the same images through the encoder (the location
encoder sees coordinates, not images), the term and its heads alone added.
"""

from __future__ import annotations

from geocontrast.strategies.contrastive import ContrastiveStrategy


class LocationAlign(ContrastiveStrategy):
    name = "location_align"
