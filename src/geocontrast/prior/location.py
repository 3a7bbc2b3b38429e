"""The location model of the geographic prior (:mod:`geocontrast.prior.model`): a residual MLP from the
encoding of a place (and day) to one presence logit per species."""

from __future__ import annotations

import numpy as np
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
    """Residual MLP from the :class:`InputEncoding` of its inputs to (N, C) presence logits (σ of a logit:
    P(species here[, now])).

    Input → Linear-ReLU to ``hidden`` → ``n_blocks`` :class:`ResidualBlock` → a bias-free Linear to C logits
    (as in SINR: each species is a vector in the location-embedding space). ``encoding`` and
    ``marginal_locations`` ((L, 2) lat/lon of training records, for records without coordinates) travel with it.
    ``encoding``: :class:`geocontrast.prior.model.InputEncoding` (anything with ``width`` and ``inputs``;
    None: the four-number location encoding).
    """

    def __init__(
        self,
        n_classes: int,
        hidden: int = 256,
        n_blocks: int = 4,
        dropout: float = 0.5,
        encoding=None,
    ):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.encoding = encoding
        width = 4 if encoding is None else encoding.width
        self.marginal_locations = np.zeros((0, 2))
        self.features = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), *(ResidualBlock(hidden, dropout) for _ in range(n_blocks))
        )
        self.classes = nn.Linear(hidden, n_classes, bias=False)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.classes(self.features(encoded))  # (N, C)
