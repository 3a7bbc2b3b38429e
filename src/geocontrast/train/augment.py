"""SimCLR-style augmentation of whole batches as tensor ops on the images' device (no per-image PIL).

The views follow SimCLR (Chen et al. 2020): random resized crop + horizontal flip, colour jitter (p 0.8),
random grayscale (p 0.2), Gaussian blur. Every step is one batched operation with per-sample parameters; its
settings are an :class:`AugmentRecipe` (config ``pretrain.augment`` and ``evaluate.finetune.augment``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from geocontrast.runtime import standardise, to_float_chw

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grayscale weights (as torchvision)


def _gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)  # (B, 1, H, W)


@dataclass(frozen=True)
class AugmentRecipe:
    """The settings of :class:`BatchAugment` at strength 1 (the defaults: SimCLR's, with lightly's crop scale for
    small images). ``strength`` scales ``jitter``, ``hue_degrees``, ``greyscale`` and ``blur`` (probabilities capped
    at 1); the crop, the flip and ``jitter_probability`` stay as given.

    min_scale: smallest crop area, as a fraction of the image, of the random resized crop (SimCLR: 0.08).
    flip: probability of a horizontal flip.
    jitter_probability: probability that a view gets colour jitter at all.
    jitter: brightness, contrast and saturation factors are drawn from [1 - jitter, 1 + jitter].
    hue_degrees: the hue is rotated by an angle drawn from [-hue_degrees, hue_degrees] (YIQ chroma plane);
        SimCLR's hue 0.1 of a turn is 36°.
    greyscale: probability of a greyscale view (capped at 1 after scaling).
    blur: probability of a Gaussian blur (capped at 1 after scaling).
    """

    min_scale: float = 0.2
    flip: float = 0.5
    jitter_probability: float = 0.8
    jitter: float = 0.4
    hue_degrees: float = 36.0
    greyscale: float = 0.2
    blur: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1] (smallest crop area fraction), got {self.min_scale}")
        for name in ("flip", "jitter_probability", "greyscale", "blur"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1] (factors in [1 - jitter, 1 + jitter]), got {self.jitter}")
        if not 0.0 <= self.hue_degrees <= 180.0:
            raise ValueError(f"hue_degrees must be in [0, 180], got {self.hue_degrees}")

    @classmethod
    def from_config(cls, settings: dict | None) -> AugmentRecipe:
        """The recipe with ``settings`` over the defaults; an unknown key is refused, naming the known ones."""
        settings = settings or {}
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ValueError(f"unknown augment settings {unknown}; known: {known}")
        return cls(**{name: float(value) for name, value in settings.items()})

    def as_dict(self) -> dict:
        return asdict(self)


class BatchAugment(nn.Module):
    """Per-sample random SimCLR augmentation of a uint8 batch, done as batched tensor ops (Chen et al. 2020).

    Args:
        resolution: side of the square output views, in pixels.
        strength: scales the recipe's colour jitter, hue range, greyscale and blur probabilities (1: as the recipe
            says).
            0 turns every augmentation off: the output is then the bilinearly resized, normalised image.
        recipe: crop scale, flip, jitter, hue range, greyscale and blur settings (:class:`AugmentRecipe`).

    forward(images, generator=None): images uint8 (B, H, W, 3) on any device -> float32 (B, 3, R, R),
    normalised as :func:`geocontrast.runtime.normalise`. All randomness comes from ``generator`` (a
    torch.Generator on the images' device) when given, so runs are reproducible.

    Example:
        >>> augment = BatchAugment(resolution=32)
        >>> view_a, view_b = augment(batch), augment(batch)
    """

    def __init__(self, resolution: int, strength: float = 1.0, recipe: AugmentRecipe = AugmentRecipe()) -> None:
        super().__init__()
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int (output side in pixels), got {resolution!r}")
        if not 0.0 <= strength <= 2.5:
            raise ValueError(f"strength must be in [0, 2.5] (1 = SimCLR's jitter, 0 = no augmentation), got {strength}")
        self.resolution = resolution
        self.strength = float(strength)
        self.recipe = recipe

    def _uniform(
        self, n: int, low: float, high: float, device: torch.device, generator: torch.Generator | None
    ) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, device=device, generator=generator)  # (n,)

    def _crop_flip(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, device = x.shape[0], x.device
        area = self._uniform(batch, self.recipe.min_scale, 1.0, device, generator)  # (B,)
        log_ratio = self._uniform(batch, math.log(3 / 4), math.log(4 / 3), device, generator)  # (B,)
        ratio = torch.exp(log_ratio)
        width = torch.sqrt(area * ratio).clamp(max=1.0)  # (B,) crop width as a fraction of the image
        height = torch.sqrt(area / ratio).clamp(max=1.0)  # (B,)
        centre_x = (1 - width) * (2 * torch.rand(batch, device=device, generator=generator) - 1)  # in [-1, 1]
        centre_y = (1 - height) * (2 * torch.rand(batch, device=device, generator=generator) - 1)
        flip = torch.rand(batch, device=device, generator=generator) < self.recipe.flip
        flip = torch.where(flip, -1.0, 1.0)  # (B,)
        theta = torch.zeros(batch, 2, 3, device=device)  # (B, 2, 3) output -> input coordinates
        theta[:, 0, 0] = width * flip
        theta[:, 0, 2] = centre_x
        theta[:, 1, 1] = height
        theta[:, 1, 2] = centre_y
        grid = F.affine_grid(theta, [batch, 3, self.resolution, self.resolution], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _colour_jitter(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, device, s, recipe = x.shape[0], x.device, self.strength, self.recipe
        apply = (torch.rand(batch, device=device, generator=generator) < recipe.jitter_probability).float()  # (B,)

        def factor(spread: float) -> torch.Tensor:  # (B, 1, 1, 1); 1 where jitter is not applied
            value = self._uniform(batch, max(0.0, 1 - spread), 1 + spread, device, generator)
            return (1 + apply * (value - 1)).view(batch, 1, 1, 1)

        brightness, contrast, saturation = (
            factor(recipe.jitter * s),
            factor(recipe.jitter * s),
            factor(recipe.jitter * s),
        )
        hue_turns = recipe.hue_degrees * s / 360.0
        hue = (apply * self._uniform(batch, -hue_turns, hue_turns, device, generator)).view(batch, 1, 1)  # turns
        x = (x * brightness).clamp(0, 1)
        mean = _gray(x).mean(dim=(2, 3), keepdim=True)  # (B, 1, 1, 1)
        x = ((x - mean) * contrast + mean).clamp(0, 1)
        gray = _gray(x)
        x = ((x - gray) * saturation + gray).clamp(0, 1)
        # Hue: rotate the chroma plane (I, Q) of YIQ by 2π·hue.
        rgb_to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=device
        )
        yiq_to_rgb = torch.linalg.inv(rgb_to_yiq)
        angle = 2 * math.pi * hue  # (B, 1, 1)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.zeros(batch, 3, 3, device=device)  # (B, 3, 3)
        rotation[:, 0, 0] = 1
        rotation[:, 1:2, 1:2], rotation[:, 1:2, 2:3] = cos, -sin
        rotation[:, 2:3, 1:2], rotation[:, 2:3, 2:3] = sin, cos
        transform = yiq_to_rgb @ rotation @ rgb_to_yiq  # (B, 3, 3)
        x = torch.einsum("bij,bjhw->bihw", transform, x)
        return x.clamp(0, 1)

    def _grayscale(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        probability = min(1.0, self.recipe.greyscale * self.strength)
        gray = (torch.rand(x.shape[0], device=x.device, generator=generator) < probability).view(-1, 1, 1, 1)
        return torch.where(gray, _gray(x).expand_as(x), x)

    def _blur(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, channels, height, width = x.shape
        device = x.device
        apply = torch.rand(batch, device=device, generator=generator) < min(1.0, self.recipe.blur * self.strength)
        # SimCLR: kernel ~10 % of the image side, sigma in [0.1, 2.0] (for 224 px; scaled to the resolution).
        radius = max(1, self.resolution // 20)
        sigma = self._uniform(batch, 0.1, 2.0, device, generator) * self.resolution / 224  # (B,) in pixels
        sigma = sigma.clamp(min=0.1)
        offsets = torch.arange(-radius, radius + 1, device=device, dtype=x.dtype)  # (K,)
        kernel = torch.exp(-0.5 * (offsets.view(1, -1) / sigma.view(-1, 1)) ** 2)  # (B, K)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        identity = (offsets == 0).to(x.dtype).expand_as(kernel)
        kernel = torch.where(apply.view(-1, 1), kernel, identity)  # (B, K)
        kernel = kernel.repeat_interleave(channels, dim=0)  # (B*C, K)
        flat = x.reshape(1, batch * channels, height, width)
        flat = F.conv2d(
            F.pad(flat, (radius, radius, 0, 0), mode="reflect"),
            kernel.view(-1, 1, 1, 2 * radius + 1),
            groups=batch * channels,
        )
        flat = F.conv2d(
            F.pad(flat, (0, 0, radius, radius), mode="reflect"),
            kernel.view(-1, 1, 2 * radius + 1, 1),
            groups=batch * channels,
        )
        return flat.view(batch, channels, height, width)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = to_float_chw(images)  # (B, 3, H, W) in [0, 1]
        if self.strength == 0.0:
            if x.shape[-2:] != (self.resolution, self.resolution):
                x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
            return standardise(x)
        x = self._crop_flip(x, generator)  # (B, 3, R, R)
        x = self._colour_jitter(x, generator)
        x = self._grayscale(x, generator)
        if self.resolution >= 3:
            x = self._blur(x, generator)
        return standardise(x)
