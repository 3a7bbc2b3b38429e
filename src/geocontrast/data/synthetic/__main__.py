"""CLI: generate the synthetic world, render its photos, and write the source table and the world's truth.

    python -m geocontrast.data.synthetic --world-json '{...}' --source source.parquet \
        --image-root images/ --world-dir world/ --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ...atomic import atomic_path, write_json
from ...cli import exit_without_teardown
from ..manifest import MANIFEST_COLUMNS
from .world import generate_world, render_photos, write_truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.data.synthetic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--world-json", required=True, help="the `world` config section as JSON")
    parser.add_argument("--source", type=Path, required=True, help="output: photo table (manifest columns)")
    parser.add_argument("--image-root", type=Path, required=True, help="output: folder of rendered JPEGs")
    parser.add_argument("--world-dir", type=Path, required=True, help="output: truth rasters, taxonomy, stats")
    parser.add_argument("--workers", type=int, default=1, help="render processes")
    args = parser.parse_args(argv)

    params = json.loads(args.world_json)
    started = time.perf_counter()
    world = generate_world(params)
    generated = time.perf_counter()
    render_photos(world, params, args.image_root, workers=args.workers)
    rendered = time.perf_counter()

    with atomic_path(args.source) as partial:
        world.photos[list(MANIFEST_COLUMNS)].to_parquet(partial, index=False)
    write_truth(world, args.world_dir)
    n_images = len(world.photos)
    stats = {
        "n_images": n_images,
        "n_observations": len(world.observations),
        "n_species": len(world.taxonomy),
        "world_seconds": round(generated - started, 3),
        "render_seconds": round(rendered - generated, 3),
        "render_images_per_s": round(n_images / max(rendered - generated, 1e-9), 1),
        "workers": args.workers,
    }
    write_json(stats, args.world_dir / "stats.json")
    print(json.dumps(stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
