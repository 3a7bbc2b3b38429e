"""Near-duplicate photos: a perceptual hash of every photo and the groups of photos whose hashes nearly agree.

The same photo uploaded twice, a resized or re-encoded copy, a burst shot: such photos in different observations
would let a split put one in train and its copy in test. :func:`photo_hashes` decodes each photo as the image cache
does (:func:`~geocontrast.data.decode.decode_image`, shorter side resized and centre-cropped) at
:data:`HASH_RESOLUTION` px and hashes it with :func:`phash`: the signs of the 8 × 8 lowest frequencies of the
greyscale image's DCT against their median, 64 bits (numpy only). :func:`near_duplicate_groups` joins photos whose
hashes differ in at most ``max_distance`` bits into groups (transitively), which the split keeps together like
the photos of one observation (:func:`geocontrast.data.splits.make_splits`).

A featureless photo (a blank frame, a zero-filled undecodable one: grey levels with a standard deviation under
:data:`FEATURELESS_GREY_STD`) has no meaningful hash and joins no group; nor does a photo that fails to decode.

Example::

    hashes, featureless, failed = photo_hashes(paths)
    group = near_duplicate_groups(hashes, max_distance=6, usable=~featureless & ~failed)  # -1: in no group
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.data.decode import decode_image

HASH_RESOLUTION = 32  # pixels of the decoded square the DCT is taken over
HASH_SIDE = 8  # the lowest HASH_SIDE x HASH_SIDE frequencies give the bits: 64 of them
FEATURELESS_GREY_STD = 2.0  # grey levels (0-255): below it a photo is a flat frame and has no usable hash
CHUNK_SIZE = 256
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``D @ x`` is the DCT of a column ``x`` of length n."""
    k = np.arange(n)[:, None]
    matrix = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT = _dct_matrix(HASH_RESOLUTION)[:HASH_SIDE]  # (8, 32): only the low frequencies are ever needed
_BIT_VALUES = np.left_shift(np.uint64(1), np.arange(HASH_SIDE * HASH_SIDE, dtype=np.uint64))


def grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB to (N, H, W) float64 luma."""
    return images.astype(np.float64) @ LUMA


def phash(images: np.ndarray) -> np.ndarray:
    """(N,) uint64 perceptual hashes of (N, 32, 32, 3) uint8 images (bit i: the i-th of the 8 × 8 lowest DCT
    coefficients, row-major, lies above their median)."""
    low = _DCT @ grey(images) @ _DCT.T  # (N, 8, 8)
    flat = low.reshape(len(images), -1)  # (N, 64)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    return (bits.astype(np.uint64) * _BIT_VALUES).sum(axis=1, dtype=np.uint64)


def featureless(images: np.ndarray) -> np.ndarray:
    """(N,) bool: the photo's grey levels vary by less than :data:`FEATURELESS_GREY_STD`."""
    return grey(images).reshape(len(images), -1).std(axis=1) < FEATURELESS_GREY_STD


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits in which uint64 hashes ``a`` and ``b`` differ (broadcast)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def photo_hashes(paths: Sequence[Path], workers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes uint64, featureless bool, failed bool), each (N,), of the photos at ``paths``, decoded by
    ``workers`` processes. A photo that fails to decode is ``failed`` with hash 0 (the image cache names it)."""
    chunks = [list(paths[start : start + CHUNK_SIZE]) for start in range(0, len(paths), CHUNK_SIZE)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_hash_chunk, chunks))
    else:
        parts = [_hash_chunk(chunk) for chunk in chunks]
    if not parts:
        return np.zeros(0, np.uint64), np.zeros(0, bool), np.zeros(0, bool)
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def _hash_chunk(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.zeros((len(paths), HASH_RESOLUTION, HASH_RESOLUTION, 3), np.uint8)
    failed = np.zeros(len(paths), bool)
    for row, path in enumerate(paths):
        try:
            images[row] = decode_image(path, HASH_RESOLUTION)
        # PIL signals a bad file with many exception types; the image cache reports it.
        except Exception:  # noqa: BLE001
            failed[row] = True
    return phash(images), featureless(images), failed


def near_duplicate_groups(hashes: np.ndarray, max_distance: int, usable: np.ndarray | None = None) -> np.ndarray:
    """(N,) int64 group of each photo: the row of its group's first photo, or -1 for a photo in no group.

    Photos whose hashes differ in at most ``max_distance`` bits are joined, and so, transitively, are the photos
    joined to either. Only ``usable`` photos (default all) are compared. Candidates come from exact matches on
    ``max_distance + 1`` bands of the hash (two hashes within the distance agree on at least one band), so the
    cost grows with the photos that share a band, not with every pair.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = hashes.size
    rows = np.arange(n) if usable is None else np.flatnonzero(usable)
    parent = np.arange(n)
    edges = [_close_pairs(hashes, rows, band, max_distance) for band in _bands(max_distance)]
    first, second = (np.concatenate(side) for side in zip(*edges)) if edges else (np.zeros(0, int),) * 2
    for a, b in zip(first.tolist(), second.tolist()):
        root_a, root_b = _root(parent, a), _root(parent, b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)  # the group is named by its first row
    roots = np.array([_root(parent, i) for i in range(n)], dtype=np.int64)
    sizes = np.bincount(roots, minlength=n)
    return np.where(sizes[roots] > 1, roots, -1)


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """(offset, width) of ``max_distance + 1`` bands covering the 64 bits (at least one bit each)."""
    n_bands = min(max_distance + 1, 64)
    edges = np.linspace(0, 64, n_bands + 1).round().astype(int)
    return [(int(start), int(stop - start)) for start, stop in zip(edges[:-1], edges[1:])]


def _close_pairs(hashes: np.ndarray, rows: np.ndarray, band: tuple[int, int], max_distance: int):
    """Pairs of ``rows`` equal on ``band`` whose hashes are within ``max_distance``: (first, second) row arrays."""
    offset, width = band
    mask = np.uint64((1 << width) - 1) if width < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    keys = (hashes[rows] >> np.uint64(offset)) & mask
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_rows = keys[order], rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    stops = np.r_[starts[1:], sorted_keys.size]
    firsts, seconds = [np.zeros(0, int)], [np.zeros(0, int)]
    for start, stop in zip(starts[stops - starts > 1], stops[stops - starts > 1]):
        members = sorted_rows[start:stop]
        i, j = np.triu_indices(members.size, k=1)
        close = hamming(hashes[members[i]], hashes[members[j]]) <= max_distance
        firsts.append(members[i[close]])
        seconds.append(members[j[close]])
    return np.concatenate(firsts), np.concatenate(seconds)


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return int(i)


def summarise_groups(group: np.ndarray, featureless_rows: np.ndarray, failed: np.ndarray) -> dict:
    """Counts for the manifest summary: groups, the photos in them, and the photos never compared."""
    grouped = group >= 0
    return {
        "n_groups": int(np.unique(group[grouped]).size),
        "n_photos": int(grouped.sum()),
        "n_featureless": int((featureless_rows & ~failed).sum()),
        "n_undecodable": int(failed.sum()),
    }


def hash_table(image_id: pd.Series, hashes: np.ndarray, featureless_rows, failed, group) -> pd.DataFrame:
    """The table the manifest rule writes beside the manifest, in manifest row order."""
    return pd.DataFrame(
        {
            "image_id": image_id.to_numpy(),
            "phash": [f"{value:016x}" for value in hashes.tolist()],
            "featureless": np.asarray(featureless_rows, bool),
            "undecodable": np.asarray(failed, bool),
            "near_duplicate_group": np.asarray(group, np.int64),
        }
    )


def describe(summary: dict) -> str:
    """The line of results_summary.txt: "N near-duplicate groups, M photos"."""
    return f"{summary['n_groups']} near-duplicate groups, {summary['n_photos']} photos"
