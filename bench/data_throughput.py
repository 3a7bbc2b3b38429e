"""Benchmark the data stage on the default world: world generation, rendering and image cache throughput.

    .venv/bin/python bench/data_throughput.py [--images 4000]

Prints and writes bench/results/data_throughput.json. Absolute images/s vary with the shared machine; the
ratios (2 workers against 1, measured in this same run) are the comparable numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml
from snakemake.utils import validate

from geocontrast.data.cache import build_image_cache
from geocontrast.data.synthetic import generate_world, render_photos

REPO = Path(__file__).resolve().parents[1]


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.json"))
    params = {**config["world"], "n_images": args.images}

    results = {"n_images": args.images, "image_size": params["image_size"]}
    started = time.perf_counter()
    world = generate_world(params)
    results["world_seconds"] = round(time.perf_counter() - started, 3)
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, 2):
            root = Path(scratch) / f"images{workers}"
            seconds = timed(render_photos, world, params, root, workers=workers, progress=False)
            results[f"render_images_per_s_{workers}w"] = round(args.images / seconds, 1)
        paths = [Path(scratch) / "images1" / p for p in world.photos["path"]]
        for workers in (1, 2):
            seconds = timed(
                build_image_cache, paths, 64, Path(scratch) / f"cache{workers}.npy", workers=workers, progress=False
            )
            results[f"cache_64px_images_per_s_{workers}w"] = round(args.images / seconds, 1)
    results["render_speedup_2w"] = round(results["render_images_per_s_2w"] / results["render_images_per_s_1w"], 2)
    results["cache_speedup_2w"] = round(
        results["cache_64px_images_per_s_2w"] / results["cache_64px_images_per_s_1w"], 2
    )
    out = REPO / "bench" / "results" / "data_throughput.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
