"""Image encoders: a small 5-layer CNN and torchvision ResNets, built with random weights (initial weights from
local files only: :mod:`geocontrast.models.weights`).

Every encoder maps float images (B, 3, H, W) to features (B, D) and has an int attribute ``feature_dim`` = D.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class CNN5(nn.Module):
    """Small 5-layer CNN (the seed's supervised baseline): five conv-BN-ReLU blocks, global average pool.

    Args:
        channels: output channels of the five blocks; the last one is ``feature_dim``.

    Blocks 2-5 halve the spatial size (stride 2), so a 32 px image ends at 2x2 before pooling.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256, 256)) -> None:
        super().__init__()
        if len(channels) != 5 or any(c <= 0 for c in channels):
            raise ValueError(f"channels must be five positive ints, got {channels!r}")
        layers: list[nn.Module] = []
        in_channels = 3
        for i, out_channels in enumerate(channels):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = int(channels[-1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(images)  # (B, C, H', W')
        return torch.flatten(self.pool(x), 1)  # (B, C)


def _resnet(name: str, small_input: bool) -> nn.Module:
    import torchvision

    model = getattr(torchvision.models, name)(weights=None)
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    if small_input:
        # CIFAR variant: 3x3 stride-1 stem, no max-pool, so 32-64 px images keep their spatial resolution.
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.feature_dim = int(feature_dim)
    return model


def _cnn5(small_input: bool = True) -> nn.Module:
    return CNN5()


HALF_CHANNELS = (16, 32, 64, 128, 128)
"""cnn5_half: cnn5 with every block's channels halved (128 features), ~4x fewer multiply-adds and 3.3-3.8x faster
steps on one CPU core at 32 px (the default's encoder, so that `make run` fits a 2-core laptop; bench/results)."""


def _cnn5_half(small_input: bool = True) -> nn.Module:
    return CNN5(HALF_CHANNELS)


def _resnet18(small_input: bool = True) -> nn.Module:
    return _resnet("resnet18", small_input)


def _resnet50(small_input: bool = True) -> nn.Module:
    return _resnet("resnet50", small_input)


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "cnn5": _cnn5,
    "cnn5_half": _cnn5_half,
    "resnet18": _resnet18,
    "resnet50": _resnet50,
}


def build_encoder(name: str, small_input: bool = True) -> nn.Module:
    """Build encoder ``name`` (one of ``ENCODERS``) with random weights.

    Args:
        name: "cnn5", "cnn5_half", "resnet18" or "resnet50".
        small_input: for images of at most 64 px; the ResNets then use a 3x3 stride-1 stem and no max-pool.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    return ENCODERS[name](small_input=small_input)
