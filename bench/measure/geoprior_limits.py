"""The geographic prior against the world's truth: prior-only top-1/top-5 on the test photos of a config's world
for each (inputs, training data, loss) variant, beside the oracles P(y | x) and P(y | x, date).

Runs only what the prior needs (the world without rendering, the manifest, the first replicate's splits, the
world's occurrence table) and fits one prior per variant at one label budget; nothing of the workflow's output
is read or written::

    nice python bench/measure/geoprior_limits.py --config config/config.yaml --out-dir /tmp/geoprior_limits \\
        [--label-fraction 10] [--losses full random_locations data_locations] [--params-json '{}'] \\
        [--occurrence-params-json '{"epochs": 3}'] [--inputs location location+date] [--data photos occurrences]

prints a Markdown table (val and test, learned rows then the limit rows) and writes it with every prior.json
under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from snakemake.utils import validate

from geocontrast.data.manifest import MANIFEST_COLUMNS, read_manifest, validate_manifest, write_manifest
from geocontrast.data.splits import make_splits
from geocontrast.data.synthetic import generate_world, write_truth
from geocontrast.data.synthetic.oracle import oracle_product
from geocontrast.data.synthetic.truth import Truth, simulate_occurrences
from geocontrast.prior.fit import geoprior
from geocontrast.prior.model import LOSSES, PriorSettings

REPO = Path(__file__).resolve().parents[2]
INPUT_SETS = {"location": ["location"], "location+date": ["location", "date"]}
DATA = {"photos": "labelled photos", "occurrences": "+ occurrence table"}


def prepare(config: dict, out_dir: Path) -> dict[str, Path]:
    """The world's manifest, splits, oracle and occurrence table under ``out_dir`` (made once, then reused)."""
    paths = {name: out_dir / name for name in ("manifest.parquet", "splits.parquet", "occurrences.csv", "oracle.npz")}
    truth = out_dir / "world" / "truth.npz"
    if all(path.exists() for path in paths.values()):
        return paths
    world = generate_world(config["world"])
    write_truth(world, truth.parent)
    manifest = validate_manifest(world.photos[list(MANIFEST_COLUMNS)])
    write_manifest(manifest, paths["manifest.parquet"])
    split = config["splits"]
    splits = make_splits(
        manifest,
        split["mode"],
        split["fractions"],
        split["label_fractions"],
        split["seed"],
        split["block_km"],
        split["min_labelled_per_species"],
    )
    splits.to_parquet(paths["splits.parquet"])
    np.savez_compressed(
        paths["oracle.npz"], **oracle_product(Truth.load(truth), read_manifest(paths["manifest.parquet"]), splits)
    )
    simulate_occurrences(world, config["world"]).to_csv(paths["occurrences.csv"], index=False)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--label-fraction", type=float, default=10.0)
    parser.add_argument("--losses", nargs="+", default=["full"], choices=LOSSES)
    parser.add_argument("--params-json", default="{}", help="geoprior params over the config's")
    parser.add_argument(
        "--occurrence-params-json", default="{}", help="params over those for the occurrence-table fits (e.g. epochs)"
    )
    parser.add_argument("--inputs", nargs="+", default=list(INPUT_SETS), choices=list(INPUT_SETS))
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA), help="the training records")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    config = yaml.safe_load(args.config.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.json"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    paths = prepare(config, args.out_dir)
    base = {**config["evaluate"]["geoprior"], **json.loads(args.params_json)}
    rows, limits = [], None
    for loss in args.losses:
        for inputs in (INPUT_SETS[name] for name in args.inputs):
            for records in args.data:
                data, occurrences = DATA[records], paths["occurrences.csv"] if records == "occurrences" else None
                name = f"{'+'.join(inputs)}_{loss}_{records}"
                prior = geoprior(
                    paths["manifest.parquet"],
                    paths["splits.parquet"],
                    args.label_fraction,
                    args.out_dir / name,
                    PriorSettings.from_mapping(
                        {
                            **base,
                            **(json.loads(args.occurrence_params_json) if occurrences else {}),
                            "inputs": inputs,
                            "loss": loss,
                        }
                    ),
                    args.seed,
                    occurrences,
                    paths["oracle.npz"],
                )
                rows.append(
                    {
                        "inputs": " + ".join(inputs),
                        "trained on": data,
                        "loss": loss,
                        "n_train": prior["n_train"],
                        "val top-1": prior["val_top1"],
                        "val top-5": prior["val_top5"],
                        "test top-1": prior["test_top1"],
                        "test top-5": prior["test_top5"],
                        "range AUC": prior["range_auc_mean"],
                        "ECE": prior["reliability_test"]["ece"],
                        "fit s": prior["fit_seconds"],
                    }
                )
                limits = prior["prior_only_test"][1:]
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for limit in limits:
        rows.append({"inputs": limit["model"], "test top-1": limit["top1"], "test top-5": limit["top5"]})
    table = pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")
    (args.out_dir / "table.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
