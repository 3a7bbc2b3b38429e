"""The image cache contract: every image decoded and resized once into a uint8 array (docs/architecture.md).

``cache/{res}px.npy`` holds shape (N, res, res, 3), rows in manifest order, and is memory-mapped by training so
no JPEG is decoded twice. Each image is resized so its shorter side is ``res`` and centre-cropped to a square.

CLI (called by the workflow's cache rule)::

    python -m geocontrast.data.cache --manifest manifest.parquet --image-root images/ --resolution 64 \\
        --out cache/64px.npy --report cache/64px.json --workers 2 [--skip-corrupt]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import numpy as np
from tqdm import tqdm

from geocontrast.atomic import atomic_path, write_json
from geocontrast.cli import exit_without_teardown
from geocontrast.data.decode import decode_image
from geocontrast.data.manifest import read_manifest

CHUNK_SIZE = 64
MAX_LISTED = 20


class CorruptImageError(ValueError):
    """Some images could not be decoded; the message lists their paths."""


def build_image_cache(
    paths: Sequence[Path],
    resolution: int,
    out_path: Path,
    workers: int = 1,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> dict:
    """Decode ``paths`` into ``out_path`` (.npy, (N, resolution, resolution, 3) uint8, rows in the given order).

    The array is written to a temporary file next to ``out_path`` and renamed into place only on success, so an
    interrupted or failed run never leaves a half-written cache. Images are decoded by ``workers`` processes,
    each writing its chunks' rows into the file. Images that fail to decode are all collected first; then
    :class:`CorruptImageError` is raised listing them, or with ``skip_corrupt`` their rows are zero-filled.

    Returns a report: n_images, resolution, n_corrupt, corrupt ([{row, path, error}]), seconds, images_per_s.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    out_path = Path(out_path)
    start = time.perf_counter()
    with atomic_path(out_path) as partial:
        # Only the header and size are written here: the rows start as zeros, and failed images' rows stay so.
        np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(paths), resolution, resolution, 3))
        corrupt = _decode_into(partial, list(paths), resolution, workers, progress)
        if corrupt and not skip_corrupt:
            raise CorruptImageError(_corrupt_message(corrupt, len(paths)))
    seconds = time.perf_counter() - start
    return {
        "n_images": len(paths),
        "resolution": resolution,
        "n_corrupt": len(corrupt),
        "corrupt": corrupt,
        "seconds": seconds,
        "images_per_s": len(paths) / seconds,
    }


def load_image_cache(path: Path) -> np.memmap:
    """Memory-map a cache read-only, checking it is (N, res, res, 3) uint8."""
    try:
        cache = np.load(path, mmap_mode="r")
    except ValueError as error:
        raise ValueError(f"{path}: not a .npy image cache ({error})") from error
    if cache.dtype != np.uint8 or cache.ndim != 4 or cache.shape[1] != cache.shape[2] or cache.shape[3] != 3:
        raise ValueError(
            f"{path}: expected an image cache of shape (N, res, res, 3) uint8, got {cache.shape} {cache.dtype}"
        )
    return cache


def _decode_into(cache_path: Path, paths: list[Path], resolution: int, workers: int, progress: bool) -> list[dict]:
    """Fill the cache file chunk by chunk, in ``workers`` processes when more than one; return failures by row."""
    chunk_starts = range(0, len(paths), CHUNK_SIZE)
    chunk_paths = [paths[start : start + CHUNK_SIZE] for start in chunk_starts]
    # Processes, not threads: PIL holds the GIL for much of a small image's decode, and two threads measured no
    # faster than one. fork (unlike spawn) needs no `if __name__ == "__main__"` guard in the caller's script.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) if workers > 1 else None
    decode_chunks = pool.map if pool else map
    corrupt: list[dict] = []
    try:
        # pool.map submits every chunk now, so the workers are forked before tqdm starts its monitor thread.
        failures_per_chunk = decode_chunks(
            _decode_chunk, repeat(cache_path), chunk_starts, chunk_paths, repeat(resolution)
        )
        with tqdm(total=len(paths), unit="img", desc="decode", disable=not progress, file=sys.stderr) as bar:
            for chunk, failures in zip(chunk_paths, failures_per_chunk):
                corrupt += failures
                bar.update(len(chunk))
    finally:
        if pool:
            # On an interrupt, drop the queued chunks instead of decoding the rest of the dataset first.
            pool.shutdown(cancel_futures=True)
    return corrupt


def _decode_chunk(cache_path: Path, start: int, paths: list[Path], resolution: int) -> list[dict]:
    """Decode ``paths`` into rows start, start + 1, ... of the cache file; return the failures."""
    cache = np.load(cache_path, mmap_mode="r+")
    failures = []
    for row, path in enumerate(paths, start):
        try:
            cache[row] = decode_image(path, resolution)
        # PIL signals a bad file with many exception types (OSError, SyntaxError, ValueError, EOFError, ...).
        except Exception as error:  # noqa: BLE001
            failures.append({"row": row, "path": str(path), "error": f"{type(error).__name__}: {error}"})
    cache.flush()
    return failures


def _corrupt_message(corrupt: list[dict], n_images: int) -> str:
    listed = "\n".join(f"  row {f['row']}: {f['path']} ({f['error']})" for f in corrupt[:MAX_LISTED])
    more = f"\n  ... and {len(corrupt) - MAX_LISTED} more" if len(corrupt) > MAX_LISTED else ""
    return (
        f"{len(corrupt)} of {n_images} images could not be decoded:\n{listed}{more}\n"
        "Fix or remove them, or pass skip_corrupt=True (--skip-corrupt) to zero-fill their rows."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.data.cache", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--image-root", type=Path, required=True, help="folder the manifest paths are relative to")
    parser.add_argument("--resolution", type=int, required=True, help="side of the cached square images, in pixels")
    parser.add_argument("--out", type=Path, required=True, help="image cache (.npy)")
    parser.add_argument("--report", type=Path, required=True, help="decode report (.json)")
    parser.add_argument("--workers", type=int, default=1, help="decoding threads")
    parser.add_argument("--skip-corrupt", action="store_true", help="zero-fill undecodable images instead of failing")
    args = parser.parse_args(argv)

    manifest = read_manifest(args.manifest)
    paths = [args.image_root / p for p in manifest["path"]]
    try:
        report = build_image_cache(paths, args.resolution, args.out, args.workers, args.skip_corrupt)
    except CorruptImageError as error:
        print(f"{args.manifest}: {error}", file=sys.stderr)
        return 1
    for failure in report["corrupt"]:
        failure["image_id"] = manifest["image_id"].iat[failure["row"]]
    write_json(report, args.report)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
