"""Degraded pretraining caches (geocontrast.data.quality): sizes, seeds, rates."""

from __future__ import annotations

import numpy as np
import pytest

from geocontrast.data import quality
from geocontrast.data.cache import load_image_cache


def photos(n: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth gradients with sharp squares: detail that resolution and JPEG lose."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)
    images = np.empty((n, size, size, 3), np.uint8)
    for image in images:
        image[:] = (ramp[:, None, None] * rng.uniform(0.3, 1, 3) + ramp[None, :, None] * 0).astype(np.uint8)
        top, left = rng.integers(0, size - 6, 2)
        image[top : top + 5, left : left + 5] = rng.integers(0, 256, 3)
    return images


@pytest.mark.parametrize("name", quality.QUALITIES)
def test_every_quality_keeps_the_size_and_dtype(name):
    images = photos()
    degraded = quality.degrade(images, name, seed=0)
    assert degraded.shape == images.shape and degraded.dtype == np.uint8
    assert (degraded == images).all() == (name == "clean")


def test_downsampling_loses_detail_the_more_the_stronger():
    images = photos()
    error = {f: np.abs(quality.downsample(images[0], f).astype(int) - images[0]).mean() for f in (2, 4)}
    assert 0 < error[2] < error[4]
    flat = np.full((32, 32, 3), 90, np.uint8)
    assert (quality.downsample(flat, 4) == flat).all()  # nothing to lose in a flat image


def test_the_jpeg_round_trip_changes_pixels():
    image = photos()[0]
    once = quality.jpeg(image, 10)
    assert once.shape == image.shape and np.abs(once.astype(int) - image).mean() > 1
    assert np.abs(quality.jpeg(image, 95).astype(int) - image).mean() < np.abs(once.astype(int) - image).mean()


def test_salt_and_pepper_flips_about_one_value_in_a_hundred_to_black_or_white():
    images = np.full((20, 32, 32, 3), 128, np.uint8)
    noisy = quality.salt_and_pepper(images, np.random.default_rng(0))
    flipped = noisy != images
    n = flipped.size
    assert abs(flipped.mean() - 0.01) < 4 * np.sqrt(0.01 * 0.99 / n)  # within four binomial standard errors
    assert set(np.unique(noisy[flipped])) == {0, 255}
    assert abs((noisy[flipped] == 255).mean() - 0.5) < 0.1


def test_the_degraded_cache_is_the_same_for_a_seed_and_another_for_another(tmp_path):
    cache = np.concatenate([photos(seed=s) for s in range(3)])
    np.save(tmp_path / "clean.npy", cache)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        quality.main(["--cache", str(tmp_path / "clean.npy"), "--quality", "saltpepper", "--seed", str(seed),
                      "--out", str(tmp_path / f"{name}.npy")])  # fmt: skip
    a, b, c = (load_image_cache(tmp_path / f"{name}.npy") for name in "abc")
    assert a.shape == cache.shape and (a == b).all() and (a != c).any()


def test_chunks_do_not_change_the_result(tmp_path, monkeypatch):
    cache = np.concatenate([photos(seed=s) for s in range(3)])
    quality.degrade_cache(cache, "saltpepper", 0, tmp_path / "whole.npy")
    monkeypatch.setattr(quality, "CHUNK_ROWS", 5)
    quality.degrade_cache(cache, "saltpepper", 0, tmp_path / "chunked.npy")
    whole, chunked = np.load(tmp_path / "whole.npy"), np.load(tmp_path / "chunked.npy")
    assert (whole == chunked).all() and (whole != cache).any()
