"""Heads on top of encoder features: SimCLR's projection head, a classifier and SwAV's prototypes."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """SimCLR projection head (Chen et al. 2020): Linear -> BatchNorm1d -> ReLU -> Linear.

    Args:
        in_dim: encoder feature dimension.
        hidden_dim: width of the hidden layer.
        out_dim: dimension of the projections the contrastive loss sees.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        for label, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if value <= 0:
                raise ValueError(f"{label} must be a positive int, got {value}")
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)  # (B, in_dim) -> (B, out_dim)


class ClassifierHead(nn.Module):
    """Classifier on features: one Linear layer (linear probe), or two dense layers when ``hidden_dim > 0``.

    Args:
        in_dim: feature dimension.
        n_classes: number of classes (logits per row).
        hidden_dim: 0 for a linear classifier; otherwise the width of a hidden layer. Each Linear is then
            preceded by BatchNorm1d and Dropout (BN -> Dropout -> Linear -> ReLU -> BN -> Dropout -> Linear).
        dropout: dropout probability in [0, 1), used only with a hidden layer.
    """

    def __init__(self, in_dim: int, n_classes: int, hidden_dim: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if in_dim <= 0 or n_classes <= 0:
            raise ValueError(f"in_dim and n_classes must be positive, got {in_dim} and {n_classes}")
        if hidden_dim < 0:
            raise ValueError(f"hidden_dim must be >= 0 (0 = linear classifier), got {hidden_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if hidden_dim == 0:
            self.layers = nn.Sequential(nn.Linear(in_dim, n_classes))
        else:
            self.layers = nn.Sequential(
                nn.BatchNorm1d(in_dim),
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden_dim),
                nn.ReLU(inplace=True),
                nn.BatchNorm1d(hidden_dim),
                nn.Dropout(dropout),
                nn.Linear(hidden_dim, n_classes),
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)  # (B, in_dim) -> (B, n_classes)


class Prototypes(nn.Module):
    """SwAV's prototypes (Caron et al. 2020): ``n_prototypes`` trainable vectors of the projections' dimension,
    kept on the unit sphere by :meth:`normalise_` after every step.

    ``steps`` counts those steps; a buffer, so a resumed run knows how far it is (the prototypes stay frozen for
    the first steps). ``vectors(frozen)``: the prototypes as the loss uses them; while ``frozen`` (a bool tensor,
    so no host sync) they pass no gradient, yet stay in the graph, so every process of a distributed run reduces
    the same parameters.
    """

    def __init__(self, dim: int, n_prototypes: int) -> None:
        super().__init__()
        if dim <= 0 or n_prototypes <= 0:
            raise ValueError(f"dim and n_prototypes must be positive, got {dim} and {n_prototypes}")
        self.weight = nn.Parameter(nn.functional.normalize(torch.randn(n_prototypes, dim), dim=1))  # (K, D)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def vectors(self, frozen: torch.Tensor) -> torch.Tensor:
        return torch.where(frozen, self.weight.detach(), self.weight)  # (K, D)

    @torch.no_grad()
    def normalise_(self) -> None:
        self.weight.copy_(nn.functional.normalize(self.weight, dim=1))
        self.steps += 1
