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

    params: ``temperature`` (0.1), ``projection_dim`` (128), ``projection_hidden_dim`` (512),
    ``pairs_from`` ("train": positives/negatives only from train rows, so val/test pixels never reach
    pretraining; "all": any manifest row).
    """

    def __init__(self, data, params):
        super().__init__(data, params)
        self.criterion = NTXentLoss(temperature=float(params.get("temperature", 0.1)), gather_distributed=True)
        pairs_from = params.get("pairs_from", "train")
        if pairs_from not in ("train", "all"):
            raise ValueError(f"pairs_from must be 'train' or 'all', got {pairs_from!r}")
        self.allowed = (data.split == "train") if pairs_from == "train" else None

    def heads(self, feature_dim: int) -> nn.ModuleDict:
        return nn.ModuleDict({"projection": ProjectionHead(
            feature_dim, hidden_dim=int(self.params.get("projection_hidden_dim", 512)),
            out_dim=int(self.params.get("projection_dim", 128)))})

    def loss(self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch) -> torch.Tensor:
        project = heads["projection"]
        z_a = project(features["anchor"])  # (B, out_dim)
        z_b = project(features["positive"])  # (B, out_dim)
        device = z_a.device
        extra = project(features["negative"]) if "negative" in features else None  # (E, out_dim)
        false_negatives = _as_mask(batch.false_negatives, device)
        extra_false_negatives = _as_mask(batch.extra_false_negatives, device)
        return self.criterion(z_a.float(), z_b.float(), extra_negatives=None if extra is None else extra.float(),
                              false_negatives=false_negatives, extra_false_negatives=extra_false_negatives)


def _as_mask(mask: np.ndarray | None, device) -> torch.Tensor | None:
    return None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool), device=device)
