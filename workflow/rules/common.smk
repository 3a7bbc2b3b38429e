# Config lookups and input functions shared by the rules.
import json
import os

DATASET = config["dataset"]["name"]
RESULTS = f"results/{DATASET}"
LOGS = f"results/logs/{DATASET}"
BENCHMARKS = f"results/benchmarks/{DATASET}"


wildcard_constraints:
    res=r"\d+",
    k=r"\d+",
    m=r"\d+",
    radius_km=r"\d+(\.\d+)?",
    rule=r"far|band|random",


def all_outputs():
    """What `snakemake` builds by default (extended as later stages land)."""
    return [
        f"{RESULTS}/manifest.parquet",
        f"{RESULTS}/splits.parquet",
        *expand(f"{RESULTS}/cache/{{res}}px.npy", res=config["image_cache"]["resolutions"]),
        neighbour_table_path(),
        negative_table_path(),
    ]


def neighbour_table_path():
    """The positives table named by its radius and K, as DESIGN.md's contract has it."""
    neighbours = config["neighbours"]
    return f"{RESULTS}/neighbours/r{neighbours['radius_km']:g}_k{neighbours['k']}.npz"


def negative_table_path():
    negatives = config["negatives"]
    return f"{RESULTS}/negatives/{negatives['rule']}_m{negatives['m']}.npz"


def world_json():
    """The world section as one JSON argument, so any change to it re-renders the world."""
    return json.dumps(config["world"], sort_keys=True)


def joined(values):
    return " ".join(str(v) for v in values)
