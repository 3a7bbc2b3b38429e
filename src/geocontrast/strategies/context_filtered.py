"""Appearance-filtered context positives: a geo-neighbour that looks like the anchor to the current encoder.

Among the anchor's neighbour-table row (photos within ``radius_km``, own observation excluded), the positive is
drawn with probability ∝ exp(cosine / ``filter_temperature``) between the encoder's features of the anchor and of
the neighbour (Pantazis et al. ICCV 2021 sample their context positives by context and embedding similarity), so
that a nearby photo of something else is rarely chosen. The features come from a bank of the anchors' and their
neighbours' embeddings, re-encoded (eval mode, no augmentation) ``bank_refreshes_per_epoch`` times per epoch, the
first at the epoch's start; those images count in the job's images through the encoder, beside the training
views (the budget fixes the steps and the batch, so the filter's cost shows there). Fallbacks as ``context_pos``.
In the factorial (:mod:`geocontrast.strategies.contrastive`): ``positive: neighbour``, ``filter_temperature``
0.1; its control is ``context_pos`` (``filter_temperature: null``, a uniform draw, the limit τ → ∞).
"""

from __future__ import annotations

from geocontrast.strategies.contrastive import ContrastiveStrategy


class ContextFiltered(ContrastiveStrategy):
    name = "context_filtered"
