"""Contrastive losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy (NT-Xent), SimCLR (Chen et al. 2020).

    For the 2B views of a batch, the anchor view i of item n has its positive (the other view of n) in the
    numerator; the denominator holds every other view of the batch (2B - 1 terms) plus every extra negative.
    Cosine similarity; computed in float32 even under autocast. Mean over the 2B views.

    Args:
        temperature: softmax temperature; must be > 1e-8 (division by a near-zero temperature overflows).

    forward(z_a, z_b, extra_negatives=None, false_negatives=None, extra_false_negatives=None):
        z_a, z_b: (B, D) projections of the two views; row n of each forms a positive pair.
        extra_negatives: (E, D) additional negatives shared by all anchors (e.g. geo-chosen negatives).
        false_negatives: bool (B, B); True at (n, m), n != m, removes both views of m from both views of n's
            denominators (geo-near items). The diagonal is ignored: the positive is never masked.
        extra_false_negatives: bool (B, E); True removes extra negative e from item n's denominators.

    Example:
        >>> loss = NTXentLoss(temperature=0.1)
        >>> value = loss(projection(encoder(view_a)), projection(encoder(view_b)))
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 1e-8:
            raise ValueError(f"temperature must be > 1e-8 (the logits divide by it and would overflow), "
                             f"got {temperature}; use e.g. 0.1")
        self.temperature = float(temperature)

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, extra_negatives: torch.Tensor | None = None,
                false_negatives: torch.Tensor | None = None,
                extra_false_negatives: torch.Tensor | None = None) -> torch.Tensor:
        if z_a.ndim != 2 or z_a.shape != z_b.shape:
            raise ValueError(f"z_a and z_b must both be (B, D), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
        batch_size = z_a.shape[0]
        device = z_a.device
        with torch.autocast(device_type=device.type, enabled=False):
            z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)  # (2B, D)
            logits = z @ z.T / self.temperature  # (2B, 2B)
            index = torch.arange(2 * batch_size, device=device)
            positive = (index + batch_size) % (2 * batch_size)  # (2B,) column of each view's positive
            mask = torch.eye(2 * batch_size, dtype=torch.bool, device=device)  # (2B, 2B) True = drop
            if false_negatives is not None:
                if false_negatives.shape != (batch_size, batch_size):
                    raise ValueError(f"false_negatives must be (B, B) = {(batch_size, batch_size)}, "
                                     f"got {tuple(false_negatives.shape)}")
                items = false_negatives.to(device=device, dtype=torch.bool).clone()
                items.fill_diagonal_(False)
                mask = mask | items.repeat(2, 2)  # (2B, 2B); the positive sits on the item diagonal
            logits = logits.masked_fill(mask, float("-inf"))
            if extra_negatives is not None:
                if extra_negatives.ndim != 2 or extra_negatives.shape[1] != z.shape[1]:
                    raise ValueError(f"extra_negatives must be (E, D) with D = {z.shape[1]}, "
                                     f"got {tuple(extra_negatives.shape)}")
                e = F.normalize(extra_negatives.float(), dim=1)  # (E, D)
                extra_logits = z @ e.T / self.temperature  # (2B, E)
                if extra_false_negatives is not None:
                    if extra_false_negatives.shape != (batch_size, e.shape[0]):
                        raise ValueError(f"extra_false_negatives must be (B, E) = {(batch_size, e.shape[0])}, "
                                         f"got {tuple(extra_false_negatives.shape)}")
                    extra_mask = extra_false_negatives.to(device=device, dtype=torch.bool).repeat(2, 1)
                    extra_logits = extra_logits.masked_fill(extra_mask, float("-inf"))  # (2B, E)
                logits = torch.cat([logits, extra_logits], dim=1)  # (2B, 2B + E)
            elif extra_false_negatives is not None:
                raise ValueError("extra_false_negatives given without extra_negatives")
            return F.cross_entropy(logits, positive)
