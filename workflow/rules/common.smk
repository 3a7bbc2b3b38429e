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
    strategy=r"[a-z_]+",
    seed=r"\d+",


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


GEO_POSITIVE_STRATEGIES = {"context_pos", "context_pos_neg"}
GEO_NEGATIVE_STRATEGIES = {"context_pos_neg"}


def pretrain_outputs():
    pretrain = config["pretrain"]
    return expand(f"{RESULTS}/pretrain/{{strategy}}/seed{{seed}}/encoder.pt",
                  strategy=pretrain["strategies"], seed=pretrain["seeds"])


def pretrain_inputs(wildcards):
    """A strategy depends on the geo tables only if it uses them, so changing the radius re-trains only those."""
    inputs = {
        "cache": f"{RESULTS}/cache/{config['pretrain']['resolution']}px.npy",
        "manifest": f"{RESULTS}/manifest.parquet",
        "splits": f"{RESULTS}/splits.parquet",
    }
    if wildcards.strategy in GEO_POSITIVE_STRATEGIES:
        inputs["neighbours"] = neighbour_table_path()
    if wildcards.strategy in GEO_NEGATIVE_STRATEGIES:
        inputs["negatives"] = negative_table_path()
    return inputs


def pretrain_table_args(wildcards, input):
    return " ".join(f"--{name} {input[name]}" for name in ("neighbours", "negatives") if name in input.keys())


def pretrain_params_json(seed):
    training = {key: value for key, value in config["pretrain"].items() if key not in ("strategies", "seeds")}
    return json.dumps({**training, "seed": int(seed)}, sort_keys=True)
