"""Autoencoder decoder built from resize-convolutions (upsample, then convolve).

Transposed convolutions leave checkerboard artefacts when their kernel size is not a multiple of the stride
(Odena et al. 2016, "Deconvolution and checkerboard artifacts"); nearest-neighbour upsampling followed by a
3x3 convolution does not.
"""

from __future__ import annotations

import torch
from torch import nn


class ResizeConvDecoder(nn.Module):
    """Latent vector -> image: a Linear to a small s x s grid, then (upsample x2 -> conv3x3 -> BN -> ReLU) blocks
    up to the output size, then a 3x3 convolution to 3 channels. The grid side s is the resolution halved as often
    as it divides evenly while staying >= 4 (32 px: 4x4 and 3 blocks; 224 px: 7x7 and 5 blocks).

    Args:
        latent_dim: size of the latent vector (the autoencoder's bottleneck).
        resolution: output side in pixels; halving it evenly must reach a side of at most 16 (e.g. 32, 48, 224).
        channels: channels of the grid; each upsampling block halves them (down to at least 16).

    forward(latent): (B, latent_dim) -> (B, 3, resolution, resolution), unbounded (compared with the
    standardised input images).
    """

    def __init__(self, latent_dim: int = 256, resolution: int = 32, channels: int = 256) -> None:
        super().__init__()
        if latent_dim <= 0 or channels <= 0:
            raise ValueError(f"latent_dim and channels must be positive, got {latent_dim} and {channels}")
        side, doublings = int(resolution), 0
        while side % 2 == 0 and side // 2 >= 4:
            side, doublings = side // 2, doublings + 1
        if doublings == 0 or side > 16:
            raise ValueError(
                f"resolution {resolution} cannot be reached by x2 upsampling from a grid of at most "
                f"16 px; use a resolution such as 32, 48, 64, 128 or 224"
            )
        self.channels, self.side = channels, side
        self.project = nn.Linear(latent_dim, channels * side * side)
        blocks: list[nn.Module] = []
        width = channels
        for _ in range(doublings):
            narrower = max(16, width // 2)
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(width, narrower, 3, padding=1, bias=False),
                nn.BatchNorm2d(narrower),
                nn.ReLU(inplace=True),
            ]
            width = narrower
        blocks.append(nn.Conv2d(width, 3, 3, padding=1))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        grid = self.project(latent).view(latent.shape[0], self.channels, self.side, self.side)  # (B, C, s, s)
        return self.blocks(grid)  # (B, 3, R, R)
