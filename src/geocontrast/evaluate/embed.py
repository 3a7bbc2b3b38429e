"""Frozen-encoder features of every image, for the probes, the kNN protocol and the report's embedding figures.

:func:`embed` gives (N, D) float16 features in manifest order (half the disk of float32; probes standardise them
anyway); the workflow's frozen-evaluation job (:mod:`geocontrast.evaluate.frozen`) computes and saves them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from geocontrast.models import build_encoder
from geocontrast.runtime import encode_rows
from geocontrast.train.checkpoint import load_encoder

CHUNK_ROWS = 8192  # rows encoded per chunk before moving features to the host


def embed(
    encoder: nn.Module, cache: np.ndarray, resolution: int, device: torch.device, amp_dtype: torch.dtype | None = None
) -> np.ndarray:
    """(N, D) float16 features of every cache row (encoder in eval mode, no augmentation)."""
    encoder = encoder.to(device).to(memory_format=torch.channels_last).eval()
    chunks = [
        encode_rows(
            encoder, cache, np.arange(start, min(start + CHUNK_ROWS, len(cache))), resolution, device, amp_dtype
        )
        .cpu()
        .numpy()
        .astype(np.float16)
        for start in range(0, len(cache), CHUNK_ROWS)
    ]
    return np.concatenate(chunks)


def load_or_init_encoder(encoder_path: Path | None, random_init: str | None, seed: int, small_input: bool):
    """The pretrained encoder at ``encoder_path`` with its training params, or a seeded random one."""
    if encoder_path is not None:
        saved = torch.load(encoder_path, map_location="cpu", weights_only=False)
        return load_encoder(encoder_path, small_input=small_input), saved["params"]
    torch.manual_seed(seed)
    return build_encoder(random_init, small_input=small_input).eval(), {"encoder": random_init}
