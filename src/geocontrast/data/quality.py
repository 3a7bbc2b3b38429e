"""Degraded copies of the image cache, for pretraining on worse photos while evaluating on clean ones (the
data-quality ablation: lower resolution hurts contrastive pretraining much more than JPEG artefacts or pixel noise).

Qualities (:data:`geocontrast.registry.QUALITIES`), each keeping the cache's size and dtype:

- ``down2``, ``down4``: every image shrunk 2x / 4x (area averaging) and enlarged back (bicubic): the detail of a
  photo taken at half / a quarter of the resolution.
- ``jpeg10``: every image saved as JPEG at quality 10 and decoded again.
- ``saltpepper``: every value (pixel and channel) replaced with probability 0.01 by 0 or 255 (equally likely),
  drawn with ``--seed``; the other qualities need no seed.

CLI (the workflow's degraded_cache rule, once per resolution and quality)::

    python -m geocontrast.data.quality --cache cache/32px.npy --quality down2 --seed 0 --out cache/32px_down2.npy
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from geocontrast.cli import exit_without_teardown
from geocontrast.registry import QUALITIES

JPEG_QUALITY = 10
SALT_PEPPER_P = 0.01
CHUNK_ROWS = 1024  # rows degraded at a time: bounded memory whatever the cache's size


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 3) uint8 shrunk ``factor`` times (area average; at least 1 px) and enlarged back to (H, W, 3)."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize(
        (max(1, round(width / factor)), max(1, round(height / factor))), Image.Resampling.BOX
    )
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC))


def jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """(H, W, 3) uint8 through a JPEG round trip at ``quality`` (1-95)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def salt_and_pepper(images: np.ndarray, rng: np.random.Generator, p: float = SALT_PEPPER_P) -> np.ndarray:
    """A copy of uint8 ``images`` with each value replaced with probability ``p`` by 0 or 255, equally likely."""
    noisy = images.copy()
    flipped = rng.random(images.shape) < p
    noisy[flipped] = np.where(rng.random(int(flipped.sum())) < 0.5, 0, 255).astype(np.uint8)
    return noisy


def degrade(images: np.ndarray, quality: str, seed: int = 0, first_row: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 ``images`` at ``quality`` (same shape and dtype; ``clean`` is a copy). The noise of the
    image of cache row r is drawn from ``(seed, r)`` (``first_row``: the row of ``images[0]``), so it does not
    depend on how the cache is cut into chunks."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; one of {', '.join(QUALITIES)}")
    if quality == "saltpepper":
        rows = range(first_row, first_row + len(images))
        return np.stack(
            [salt_and_pepper(image, np.random.default_rng([seed, row])) for image, row in zip(images, rows)]
        )
    if quality.startswith("down"):
        return np.stack([downsample(image, int(quality.removeprefix("down"))) for image in images])
    if quality == "jpeg10":
        return np.stack([jpeg(image, JPEG_QUALITY) for image in images])
    return images.copy()


def degrade_cache(cache: np.ndarray, quality: str, seed: int, out_path: Path) -> None:
    """Write ``cache`` (N, res, res, 3) uint8 at ``quality`` to ``out_path`` (.npy), chunk by chunk; the same seed
    gives the same file."""
    from geocontrast.atomic import atomic_path

    with atomic_path(out_path) as partial:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=cache.shape)
        for start in range(0, len(cache), CHUNK_ROWS):
            out[start : start + CHUNK_ROWS] = degrade(
                np.asarray(cache[start : start + CHUNK_ROWS]), quality, seed, start
            )
        out.flush()
        del out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.data.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, type=Path, help="the clean image cache (.npy)")
    parser.add_argument("--quality", required=True, choices=QUALITIES[1:])
    parser.add_argument("--seed", type=int, default=0, help="seed of the salt-and-pepper noise")
    parser.add_argument("--out", required=True, type=Path, help="the degraded cache (.npy)")
    args = parser.parse_args(argv)
    from geocontrast.data.cache import load_image_cache

    degrade_cache(load_image_cache(args.cache), args.quality, args.seed, args.out)
    print(f"{args.out}: {args.cache} at quality {args.quality}")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
