"""Decoding one photo as every stage sees it: 8-bit RGB, upright, shorter side resized, centre-cropped square.

Shared by the image cache (:mod:`geocontrast.data.cache`) and the near-duplicate hashes
(:mod:`geocontrast.data.near_duplicates`), so both see the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Pillow's modes for 16-bit greyscale (PNG, TIFF): its convert("RGB") clips every value above 255 to white.
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def decode_image(path: Path, resolution: int) -> np.ndarray:
    """One image as a (resolution, resolution, 3) uint8 array: shorter side resized to resolution, centre crop.

    Any photo Pillow reads becomes 8-bit RGB: greyscale is repeated over the channels, CMYK converted, 16-bit
    greyscale scaled to its top 8 bits (16-bit RGB is read as 8-bit by Pillow already), and the EXIF orientation
    applied, so the cached photo is upright as a viewer shows it.
    """
    with Image.open(path) as image:
        # Lets libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the requested size): most of the speed-up.
        image.draft("RGB", (resolution, resolution))
        if image.mode in SIXTEEN_BIT_MODES:
            rgb = image.convert("I").point(lambda value: value / 256).convert("L").convert("RGB")
            rgb.info = image.info  # keeps the EXIF orientation, which point() drops
        else:
            rgb = image.convert("RGB")
    # Phone photos store their rotation in EXIF; without this a portrait plant would be cached lying down.
    ImageOps.exif_transpose(rgb, in_place=True)
    return np.asarray(ImageOps.fit(rgb, (resolution, resolution), method=Image.Resampling.BICUBIC))
