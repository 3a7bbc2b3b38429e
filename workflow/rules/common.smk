# Config lookups and input functions shared by the rules.
import json
import os

DATASET = config["dataset"]["name"]
RESULTS = f"results/{DATASET}"
LOGS = f"results/logs/{DATASET}"
BENCHMARKS = f"results/benchmarks/{DATASET}"


wildcard_constraints:
    res=r"\d+",


def all_outputs():
    """What `snakemake` builds by default (extended as later stages land)."""
    return [
        f"{RESULTS}/manifest.parquet",
        f"{RESULTS}/splits.parquet",
        *expand(f"{RESULTS}/cache/{{res}}px.npy", res=config["image_cache"]["resolutions"]),
    ]


def world_json():
    """The world section as one JSON argument, so any change to it re-renders the world."""
    return json.dumps(config["world"], sort_keys=True)


def joined(values):
    return " ".join(str(v) for v in values)
