"""The pair statistics of a config's synthetic world, beside the real ranges of iNaturalist exports (issue [R]).

Generates the world (no rendering, no training), validates its photo table as the manifest rule does, keeps one
photo per observation, builds the neighbour table as the neighbour rule does (radius, k and seed from the
config's ``neighbours`` section) and draws ``--draws`` context positives per anchor uniformly from its row, and as
many random pairs (the anchor with a uniform other photo). Prints a Markdown table of five shares::

    nice python bench/measure/pair_statistics.py config/config.yaml config/realistic.yaml [--draws 16] \
        [--world-seeds 0 1 2]

Each config is merged over config/config.yaml, as ``snakemake --configfile`` does; with ``--world-seeds`` each
share is the mean over those worlds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geocontrast.data.real_pairs import REAL_RANGES as PAIR_RANGES

REPO = Path(__file__).resolve().parents[2]
REAL_RANGES = {
    f"{fact}, {'context positive' if kind == 'positive' else 'random pair'}": low_high
    for (fact, kind), low_high in PAIR_RANGES.items()
}
"""The shares of two research-grade iNaturalist exports (geocontrast.data.real_pairs.REAL_RANGES), by the names
pair_statistics() measures them under."""


def load_config(path: Path) -> dict:
    """A config as the workflow sees it with ``--configfile path``: merged over config/config.yaml, with the
    schema's defaults filled in."""
    import yaml
    from snakemake.utils import validate

    from geocontrast.settings import merged_config

    config = merged_config(
        yaml.safe_load((REPO / "config" / "config.yaml").read_text()), yaml.safe_load(Path(path).read_text())
    )
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.json"))
    return config


def pair_statistics(config: dict, draws: int = 16, seed: int = 0) -> dict:
    """The five shares of :data:`REAL_RANGES` for the config's world, with the pair counts."""
    from geocontrast.data.manifest import MANIFEST_COLUMNS, validate_manifest
    from geocontrast.data.synthetic import generate_world
    from geocontrast.geo.neighbours import neighbour_table
    from geocontrast.strategies.diagnostics import fact_codes, pair_summary

    world = generate_world(config["world"])
    manifest = validate_manifest(world.photos[list(MANIFEST_COLUMNS)])
    manifest = manifest.drop_duplicates("observation_id").reset_index(drop=True)  # one photo per observation
    usable = manifest["has_coords"].to_numpy(bool)
    lat = np.where(usable, manifest["lat"].to_numpy(np.float64, na_value=np.nan), np.nan)
    lon = np.where(usable, manifest["lon"].to_numpy(np.float64, na_value=np.nan), np.nan)
    neighbours = config["neighbours"]
    table = neighbour_table(
        lat,
        lon,
        radius_km=neighbours["radius_km"],
        k=neighbours["k"],
        seed=seed,
        observation_id=manifest["observation_id"],
        observer_id=manifest["observer_id"],
        exclude_same_observer=neighbours["exclude_same_observer"],
    )
    rng = np.random.default_rng(seed)
    counts = table.counts()
    anchors = np.repeat(np.flatnonzero(counts > 0), draws)  # (n_anchors * draws,)
    picks = table.indptr[anchors] + (rng.random(anchors.size) * counts[anchors]).astype(np.int64)
    facts = fact_codes(manifest)
    positive = pair_summary(facts, anchors, table.indices[picks])
    located = np.repeat(np.flatnonzero(usable), draws)
    others = rng.integers(len(manifest) - 1, size=located.size)
    random = pair_summary(facts, located, others + (others >= located))  # a uniform other photo
    return {
        "species, context positive": positive["same_species"],
        "genus, context positive": positive["same_genus"],
        "species, random pair": random["same_species"],
        "observer, context positive": positive["same_observer"],
        "date, context positive": positive["same_date"],
        "n_observations": len(manifest),
        "n_anchors": int((counts > 0).sum()),
        "n_species": int(world.photos["species"].nunique()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", type=Path, nargs="+", help="config files (their world and neighbours sections)")
    parser.add_argument("--draws", type=int, default=16, help="context positives (and random pairs) per anchor")
    parser.add_argument("--world-seeds", type=int, nargs="+", help="measure these world.seed values (the mean)")
    args = parser.parse_args(argv)

    measured = {}
    for path in args.configs:
        config = load_config(path)
        seeds = args.world_seeds or [config["world"]["seed"]]
        runs = [pair_statistics({**config, "world": {**config["world"], "seed": seed}}, args.draws) for seed in seeds]
        measured[path] = {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}
    print("| share of pairs with the same … | " + " | ".join(str(path) for path in args.configs) + " | real |")
    print("|---|" + "---|" * len(args.configs) + "---|")
    for name, (low, high) in REAL_RANGES.items():
        cells = []
        for stats in measured.values():
            inside = "" if low <= stats[name] <= high else " ✗"
            cells.append(f"{100 * stats[name]:.2f} %{inside}")
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * low:.1f} – {100 * high:.1f} % |")
    for name in ("n_observations", "n_anchors", "n_species"):
        print(f"| {name.replace('_', ' ')} | " + " | ".join(f"{s[name]:.0f}" for s in measured.values()) + " | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
