"""Frozen-encoder features of every image, for the probes, the kNN protocol and the report's embedding figures.

:func:`embed` gives (N, D) float16 features in manifest order (half the disk of float32; probes standardise them
anyway); the workflow's frozen-evaluation job (:mod:`geocontrast.evaluate.frozen`) streams them chunk by chunk
into a memory-mapped .npy (:func:`open_features`) and reads back only the rows each protocol needs.
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
    encoder: nn.Module,
    cache: np.ndarray,
    resolution: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(N, D) float16 features of every cache row (encoder in eval mode, no augmentation).

    ``out``: an (N, D) float16 array to fill chunk by chunk and return, e.g. a memory-mapped .npy from
    :func:`open_features` (then only one chunk of features is ever in memory); without it one is allocated.
    """
    encoder = encoder.to(device).to(memory_format=torch.channels_last).eval()
    if out is None:
        out = np.empty((len(cache), encoder.feature_dim), dtype=np.float16)
    if out.shape != (len(cache), encoder.feature_dim) or out.dtype != np.float16:
        raise ValueError(f"out is {out.shape} {out.dtype}, expected {(len(cache), encoder.feature_dim)} float16")
    for start in range(0, len(cache), CHUNK_ROWS):
        rows = np.arange(start, min(start + CHUNK_ROWS, len(cache)))
        out[rows] = encode_rows(encoder, cache, rows, resolution, device, amp_dtype).cpu().numpy().astype(np.float16)
    return out


def open_features(path: Path, n_rows: int, feature_dim: int) -> np.memmap:
    """A new (n_rows, feature_dim) float16 .npy at ``path``, memory-mapped for :func:`embed` to stream into."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n_rows, feature_dim))


def load_or_init_encoder(encoder_path: Path | None, random_init: str | None, seed: int, small_input: bool):
    """The pretrained encoder at ``encoder_path`` with its training params, or a seeded random one."""
    if encoder_path is not None:
        saved = torch.load(encoder_path, map_location="cpu", weights_only=False)
        return load_encoder(encoder_path, small_input=small_input), saved["params"]
    torch.manual_seed(seed)
    return build_encoder(random_init, small_input=small_input).eval(), {"encoder": random_init}
