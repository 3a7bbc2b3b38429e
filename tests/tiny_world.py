"""The strategy tests' tiny world (300 photos): manifest, 32 px cache, splits and geo tables built from the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import load_config

from geocontrast.data.cache import build_image_cache
from geocontrast.data.manifest import MANIFEST_COLUMNS, read_manifest, validate_manifest, write_manifest
from geocontrast.data.splits import make_splits
from geocontrast.data.synthetic import generate_world, render_photos
from geocontrast.geo.negatives import negative_table, save_negative_table
from geocontrast.geo.neighbours import neighbour_table, save_neighbour_table

RADIUS_KM = 3.0  # small enough that the tiny world has anchors with and without neighbours
R_NEG_KM = 50.0


def build_tiny_inputs(root: Path) -> dict[str, Path]:
    """Manifest, 32 px cache, splits and geo tables of the tests' tiny world (300 photos), built under root."""
    params = load_config()["world"]
    world = generate_world(params)
    images = root / "images"
    render_photos(world, params, images, workers=1, progress=False)
    manifest = validate_manifest(world.photos[list(MANIFEST_COLUMNS)], image_root=images)
    paths = {
        name: root / file
        for name, file in (
            ("manifest", "manifest.parquet"),
            ("cache", "32px.npy"),
            ("splits", "splits.parquet"),
            ("neighbours", "neighbours.npz"),
            ("negatives", "negatives.npz"),
        )
    }
    write_manifest(manifest, paths["manifest"])
    manifest = read_manifest(paths["manifest"])
    build_image_cache([images / p for p in manifest["path"]], 32, paths["cache"], progress=False)
    make_splits(manifest, seed=0).to_parquet(paths["splits"], index=False)
    lat, lon = (
        manifest["lat"].to_numpy(np.float64, na_value=np.nan),
        manifest["lon"].to_numpy(np.float64, na_value=np.nan),
    )
    save_neighbour_table(
        neighbour_table(lat, lon, radius_km=RADIUS_KM, k=16, seed=0, observation_id=manifest["observation_id"]),
        paths["neighbours"],
    )
    save_negative_table(
        negative_table(lat, lon, m=8, rule="far", seed=0, r_neg_km=R_NEG_KM, observation_id=manifest["observation_id"]),
        paths["negatives"],
    )
    return paths
