"""Convolutional autoencoder: the encoder, a linear bottleneck of ``latent_dim`` (256), and a resize-convolution
decoder (:class:`geocontrast.models.ResizeConvDecoder`) trained to reconstruct the augmented input view with a
mean squared error on the standardised pixels. Only the encoder is kept and evaluated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geocontrast.models import ResizeConvDecoder
from geocontrast.strategies.base import PairBatch, Strategy


class Autoencoder(Strategy):
    name = "autoencoder"

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        return PairBatch(views={"anchor": np.asarray(anchors, dtype=np.int64)})

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        latent_dim = int(self.options["latent_dim"])
        return nn.ModuleDict(
            {
                "bottleneck": nn.Linear(encoder.feature_dim, latent_dim),
                "decoder": ResizeConvDecoder(
                    latent_dim,
                    resolution=int(self.settings.resolution),
                    channels=int(self.options["decoder_channels"]),
                ),
            }
        )

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        reconstruction = heads["decoder"](heads["bottleneck"](features["anchor"]))  # (B, 3, R, R)
        return F.mse_loss(reconstruction.float(), views["anchor"].float())
