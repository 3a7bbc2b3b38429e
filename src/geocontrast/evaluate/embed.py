"""Frozen-encoder features of every image, for the probes, the kNN protocol and the report's embedding figures.

CLI (one job per strategy x seed)::

    python -m geocontrast.evaluate.embed --cache cache/32px.npy --out embeddings/augmented/seed0.npy \\
        (--encoder pretrain/augmented/seed0/encoder.pt | --random-init cnn5 --seed 0) [--resolution 32] \\
        [--device auto] [--threads T] [--deterministic]

Writes (N, D) float16 features in manifest order (half the disk of float32; probes standardise them anyway).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geocontrast.atomic import atomic_path
from geocontrast.data.cache import load_image_cache
from geocontrast.determinism import make_deterministic
from geocontrast.models import build_encoder
from geocontrast.runtime import encode_rows, resolve_amp, resolve_device
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.evaluate.embed", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--encoder", type=Path, help="encoder.pt of a pretraining job")
    source.add_argument("--random-init", help="encoder name for the untrained baseline")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed of --random-init")
    parser.add_argument("--resolution", type=int, help="default: the encoder's training resolution")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="one CPU thread and deterministic kernels (geocontrast.determinism)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.random_init and args.resolution is None:
        parser.error("--random-init needs --resolution")

    cache = load_image_cache(args.cache)
    resolution = args.resolution
    if resolution is None:
        resolution = int(torch.load(args.encoder, map_location="cpu", weights_only=False)["params"]["resolution"])
    encoder, _ = load_or_init_encoder(args.encoder, args.random_init, args.seed, small_input=resolution < 96)
    device = resolve_device(args.device)
    if args.deterministic:
        make_deterministic(device)
    features = embed(encoder, cache, resolution, device, resolve_amp("auto", device))
    with atomic_path(args.out) as partial:
        np.save(partial, features)
    print(f"{args.out}: {features.shape[0]} x {features.shape[1]} features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
