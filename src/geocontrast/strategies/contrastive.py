"""Shared by the NT-Xent strategies: a projection head and the loss on the anchor view vs the positive view."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geocontrast.losses import NTXentLoss
from geocontrast.models import ProjectionHead
from geocontrast.strategies.base import PairBatch, Strategy


class ContrastiveStrategy(Strategy):
    """NT-Xent (SimCLR) between views ``anchor`` and ``positive``; a ``negative`` view, when sampled, is passed
    as shared extra negatives. Subclasses only decide which rows the views hold (``sample``).

    params: ``temperature`` (0.1). Options: ``projection_dim`` (128), ``projection_hidden_dim`` (512).
    """

    def __init__(self, data, params):
        super().__init__(data, params)
        self.criterion = NTXentLoss(temperature=float(params.get("temperature", 0.1)), gather_distributed=True)

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        return nn.ModuleDict({"projection": projection_head(encoder.feature_dim, self.options)})

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        project = heads["projection"]
        z_a = project(features["anchor"])  # (B, out_dim)
        z_b = project(features["positive"])  # (B, out_dim)
        device = z_a.device
        extra = project(features["negative"]) if "negative" in features else None  # (E, out_dim)
        false_negatives = _as_mask(batch.false_negatives, device)
        extra_false_negatives = _as_mask(batch.extra_false_negatives, device)
        return self.criterion(
            z_a.float(),
            z_b.float(),
            extra_negatives=None if extra is None else extra.float(),
            false_negatives=false_negatives,
            extra_false_negatives=extra_false_negatives,
        )


def projection_head(feature_dim: int, options: dict) -> ProjectionHead:
    """SimCLR's projection head sized by a strategy's ``projection_hidden_dim`` and ``projection_dim`` options."""
    return ProjectionHead(
        feature_dim, hidden_dim=int(options["projection_hidden_dim"]), out_dim=int(options["projection_dim"])
    )


def _as_mask(mask: np.ndarray | None, device) -> torch.Tensor | None:
    return None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool), device=device)
