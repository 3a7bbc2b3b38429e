"""The location model of the geographic prior (:mod:`geocontrast.evaluate.geoprior`): a residual MLP from a
location's encoding to one presence logit per species."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """x + ReLU(W2 · Dropout(ReLU(W1 · x))), width preserved."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LocationModel(nn.Module):
    """Residual MLP from the (N, 4) location encoding to (N, C) presence logits (σ of a logit: P(species here)).

    Input 4 → Linear-ReLU to ``hidden`` → ``n_blocks`` :class:`ResidualBlock` → a bias-free Linear to C logits
    (as in SINR: each species is a vector in the location-embedding space).
    """

    def __init__(self, n_classes: int, hidden: int = 256, n_blocks: int = 4, dropout: float = 0.5):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.features = nn.Sequential(
            nn.Linear(4, hidden), nn.ReLU(), *(ResidualBlock(hidden, dropout) for _ in range(n_blocks))
        )
        self.classes = nn.Linear(hidden, n_classes, bias=False)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.classes(self.features(encoded))  # (N, C)
