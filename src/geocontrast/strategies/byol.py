"""BYOL (Grill et al. 2020): SimSiam's online network and loss, but the targets come from a momentum copy of
the encoder and projector, updated after every step as ``target = tau * target + (1 - tau) * online`` with tau
rising from ``momentum`` (0.99) to 1 on a cosine schedule.

Options: those of :mod:`geocontrast.strategies.simsiam` (``positive`` augmentation or neighbour, projection
sizes), ``predictor_hidden_dim`` (512, as wide as the projector) and ``momentum``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from geocontrast.strategies.simsiam import SimSiam


class BYOL(SimSiam):
    name = "byol"

    def __init__(self, data, settings):
        super().__init__(data, settings)
        if not 0.0 <= float(self.options["momentum"]) <= 1.0:
            raise ValueError(
                f"pretrain.strategy_options.byol.momentum must be in [0, 1], got {self.options['momentum']}"
            )

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        heads = super().heads(encoder)
        heads["target_encoder"] = copy.deepcopy(encoder)
        heads["target_projection"] = copy.deepcopy(heads["projection"])
        for target in ("target_encoder", "target_projection"):
            heads[target].requires_grad_(False)
        return heads

    @torch.no_grad()
    def targets(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, views: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.cat([views["anchor"], views["positive"]])  # (2B, 3, R, R)
        targets = heads["target_projection"](heads["target_encoder"](images))  # (2B, out_dim)
        return targets.chunk(2)

    def encoder_images(self, view_sizes: dict[str, int]) -> int:
        """The online encoder's views, and the anchor and positive again through the target encoder."""
        return super().encoder_images(view_sizes) + view_sizes["anchor"] + view_sizes["positive"]

    @torch.no_grad()
    def after_step(self, heads: nn.ModuleDict, encoder: nn.Module, progress: float) -> None:
        base = float(self.options["momentum"])
        tau = 1.0 - (1.0 - base) * (math.cos(math.pi * min(1.0, progress)) + 1.0) / 2.0
        for online, target in ((encoder, heads["target_encoder"]), (heads["projection"], heads["target_projection"])):
            for online_param, target_param in zip(online.parameters(), target.parameters()):
                target_param.mul_(tau).add_(online_param.detach(), alpha=1.0 - tau)
