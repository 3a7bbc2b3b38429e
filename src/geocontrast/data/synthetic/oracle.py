"""What the world's truth allows a geographic prior on a replicate's test photos: the oracle's ranked species and
each species' true range, written once per replicate for the prior's scoring to read (the prior never imports the
world).

For every test photo with coordinates and a species (the rows the prior is scored on), in manifest order, the
oracle P(y | x) and P(y | x, date) (:func:`~.truth.oracle_probabilities`, over the manifest's sorted species)
ranks its :data:`RANKED` most probable classes; a row the oracle cannot score (no date, for the dated oracle) has
``usable`` False. The true range of a species is the world's land cells whose suitability is at least
:data:`PRESENT_FRACTION` of the species' maximum.

CLI (the workflow's world_oracle rule)::

    python -m geocontrast.data.synthetic.oracle --truth world/truth.npz --manifest manifest.parquet \\
        --splits replicates/0/splits.parquet --out replicates/0/oracle.npz

``oracle.npz``: ``classes`` (C,), ``rows`` (n,) manifest rows, ``location_ranked`` and ``location_date_ranked``
(n, k) int class indices best first (-1 where not usable), ``location_usable`` and ``location_date_usable`` (n,)
bool, ``cell_lat`` and ``cell_lon`` (M,) the land cells' centres, ``present`` (C, M) bool, ``present_fraction``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path
from geocontrast.cli import exit_without_teardown
from geocontrast.data.manifest import read_manifest, species_classes
from geocontrast.data.synthetic.truth import ORACLE_BLOCK_ELEMENTS, Truth, oracle_probabilities
from geocontrast.metrics import ranked_classes

RANKED = 5  # the most probable classes kept per photo: enough for every top-k the prior reports
PRESENT_FRACTION = 0.1  # a world cell is in a species' true range where its suitability >= this x its maximum
ORACLES = {"location": False, "location_date": True}  # name: whether the oracle is given the photo's day


def scored_rows(manifest: pd.DataFrame, splits: pd.DataFrame) -> np.ndarray:
    """Manifest rows the prior is scored on: test photos with coordinates and a species."""
    if not (splits["image_id"].to_numpy() == manifest["image_id"].to_numpy()).all():
        raise ValueError("splits must list the manifest's image_ids in manifest order")
    usable = (splits["split"].to_numpy() == "test") & manifest["has_coords"].to_numpy(bool)
    return np.flatnonzero(usable & manifest["species"].notna().to_numpy())


def ranked_oracle(truth: Truth, classes: list[str], lat, lon, days=None) -> tuple[np.ndarray, np.ndarray]:
    """(n, RANKED) the oracle's most probable class indices per row, best first, and (n,) whether the oracle could
    score the row (-1 ranks where not); computed a block of rows at a time."""
    n_rows = np.asarray(lat).size
    ranked = np.full((n_rows, min(RANKED, len(classes))), -1, dtype=np.int64)
    usable = np.zeros(n_rows, dtype=bool)
    step = max(1, ORACLE_BLOCK_ELEMENTS // max(1, len(classes)))
    for start in range(0, n_rows, step):
        block = slice(start, start + step)
        probs = oracle_probabilities(truth, classes, lat[block], lon[block], None if days is None else days[block])
        finite = np.isfinite(probs).all(axis=1)
        usable[block] = finite
        ranked[np.arange(n_rows)[block][finite]] = ranked_classes(probs[finite], RANKED)
    return ranked, usable


def true_ranges(truth: Truth, classes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The world's land cells (M,) lat and lon and (C, M) whether each is in each class's true range."""
    land = truth.landscape
    lon_mesh, lat_mesh = np.meshgrid(land.lon, land.lat)
    cells = land.land.ravel()
    suitability = truth.suitability[truth.class_order(classes)].reshape(len(classes), -1)[:, cells]
    present = suitability >= PRESENT_FRACTION * suitability.max(axis=1, keepdims=True)
    return lat_mesh.ravel()[cells], lon_mesh.ravel()[cells], present


def oracle_product(truth: Truth, manifest: pd.DataFrame, splits: pd.DataFrame) -> dict[str, np.ndarray]:
    """The arrays of ``oracle.npz`` (see the module's docstring) for one replicate."""
    _, classes = species_classes(manifest["species"])
    rows = scored_rows(manifest, splits)
    lat = manifest["lat"].to_numpy(np.float64, na_value=np.nan)[rows]
    lon = manifest["lon"].to_numpy(np.float64, na_value=np.nan)[rows]
    days = pd.to_datetime(manifest["observed_on"].iloc[rows]).dt.day_of_year.to_numpy(np.float64, na_value=np.nan)
    product = {"classes": np.array(classes, dtype=str), "rows": rows}
    for name, dated in ORACLES.items():
        product[f"{name}_ranked"], product[f"{name}_usable"] = ranked_oracle(
            truth, classes, lat, lon, days if dated else None
        )
    product["cell_lat"], product["cell_lon"], product["present"] = true_ranges(truth, classes)
    product["present_fraction"] = np.float64(PRESENT_FRACTION)
    return product


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.data.synthetic.oracle", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--truth", type=Path, required=True, help="the world's truth.npz (taxonomy.parquet beside)")
    parser.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--splits", type=Path, required=True, help="the replicate's splits (.parquet)")
    parser.add_argument("--out", type=Path, required=True, help="oracle.npz to write")
    args = parser.parse_args(argv)
    try:
        product = oracle_product(Truth.load(args.truth), read_manifest(args.manifest), pd.read_parquet(args.splits))
    except ValueError as error:
        print(f"oracle: {args.splits}: {error}", file=sys.stderr)
        return 1
    with atomic_path(args.out) as partial:
        np.savez_compressed(partial, **product)
    print(f"oracle: {product['rows'].size} test photos, {product['classes'].size} species -> {args.out}")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
