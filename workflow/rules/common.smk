# Config lookups and input functions shared by the rules. The workflow plans from geocontrast.registry (plain data),
# never from the strategy classes, so `snakemake -n` imports no torch.
import json
import os
import re

from geocontrast import registry

DATASET = config["dataset"]["name"]
RESULTS = f"results/{DATASET}"
LOGS = f"results/logs/{DATASET}"
BENCHMARKS = f"results/benchmarks/{DATASET}"
# Scheduling: pretraining is the longest chain of jobs, so the jobs it needs run first, then pretraining, and the
# evaluation jobs of finished encoders fill the cores around it. Snakemake starts the set of ready jobs with the
# largest summed priority, so a job pretraining needs outranks any number of pretraining jobs that fit the cores
# (a table job on every core is not starved by one-core pretraining jobs).
PRETRAINING_PRIORITY = 1
BEFORE_PRETRAINING_PRIORITY = 1000


wildcard_constraints:
    res=r"\d+",
    k=r"\d+",
    m=r"\d+",
    radius_km=r"\d+(\.\d+)?",
    rule=r"far|band|random",
    rep=r"\d+",
    strategy=r"[a-z][a-z0-9_]*",
    seed=r"\d+",
    pct=r"\d+(\.\d+)?",
    quality="|".join(registry.QUALITIES[1:]),
    first=r"[a-z][a-z0-9_]*",
    second=r"[a-z][a-z0-9_]*",


def all_outputs():
    """What `snakemake` builds by default (extended as later stages land)."""
    return [
        *pool_paths("manifest.parquet"),
        *(path for res in config["image_cache"]["resolutions"] for path in pool_paths(f"cache/{res}px.npy")),
        *pretrain_outputs(),
        f"{RESULTS}/results.csv",
        f"{RESULTS}/comparisons.csv",
        *report_outputs(),
    ]


def replicate(seed):
    """The data replicate of pretraining seed ``seed``: the seed itself when replicates redraw the data
    (splits.resample), else 0 for every seed (one split, label subsets, geo tables and prior shared by all)."""
    return int(seed) if config["splits"]["resample"] else 0


def replicate_seed(base, rep):
    """The seed a data product of replicate ``rep`` is drawn with: its config seed + rep."""
    return int(base) + int(rep)


def replicate_seed_of(key):
    """A params function: the config seed at ``key`` (a path such as "splits/seed") plus the job's replicate {rep}
    (see replicate_seed)."""

    def seed(wildcards):
        return replicate_seed(lookup(dpath=key, within=config), wildcards.rep)

    return seed


WORLD_PER_REPLICATE = config["dataset"]["source"] == "synthetic" and config["world"]["per_replicate"]
"""Whether each replicate draws its own synthetic world (world.seed + replicate): then the replicates share nothing
but the config. A real collection (any other source) is one photo pool that every replicate resamples."""


def pool_folder(rep="{rep}"):
    """Where the photo pool of replicate ``rep`` lives (source table, images, world, manifest, image caches):
    replicates/<rep>/ when each replicate draws its own world, else results/<name>/ for all. Without ``rep``, the
    pattern a rule's output names (with the {rep} wildcard when pools are per replicate)."""
    return f"{RESULTS}/replicates/{rep}" if WORLD_PER_REPLICATE else RESULTS


POOL_TAG = "_rep{rep}" if WORLD_PER_REPLICATE else ""  # in the log and benchmark names of the pool's jobs


def pool_path(seed, name):
    """File ``name`` of the photo pool that pretraining seed ``seed``'s replicate reads."""
    return f"{pool_folder(replicate(seed))}/{name}"


def pool_paths(name):
    """File ``name`` of every photo pool the pretraining seeds read (one when they share it)."""
    return list(dict.fromkeys(pool_path(seed, name) for seed in config["pretrain"]["seeds"]))


def replicate_folder(seed):
    """Where the data products of pretraining seed ``seed``'s replicate live (splits, geo tables, prior, pairs)."""
    return f"{RESULTS}/replicates/{replicate(seed)}"


def splits_path(seed):
    return f"{replicate_folder(seed)}/splits.parquet"


def neighbour_table_path(seed):
    """The positives table of a replicate, named by its radius and K, as its contract in docs/architecture.md
    has it."""
    neighbours = config["neighbours"]
    return f"{replicate_folder(seed)}/neighbours/r{neighbours['radius_km']:g}_k{neighbours['k']}.npz"


def negative_table_path(seed):
    negatives = config["negatives"]
    return f"{replicate_folder(seed)}/negatives/{negatives['rule']}_m{negatives['m']}.npz"


def prior_path(seed, pct, name="probs.npy"):
    return f"{replicate_folder(seed)}/geoprior/l{pct}/{name}"


def genus_pairs_path(seed, pct):
    return f"{replicate_folder(seed)}/tasks/genus_pairs_l{pct}.json"


FIRST_SEED = config["pretrain"]["seeds"][0]  # figures that show one split (maps, retrieval grids) show this one's


def source_settings(name):
    """A source's config section as one JSON argument, without cache_dir (the CLI's --cache-dir)."""
    return json.dumps({k: v for k, v in config["dataset"][name].items() if k != "cache_dir"}, sort_keys=True)


def folder_sidecar():
    """The folder source's sidecar CSV as an input (re-read when it changes), or none."""
    sidecar = config["dataset"]["folder"]["sidecar"]
    return [sidecar] if sidecar else []


def world_json(with_occurrences=False):
    """A params function: the world section as one JSON argument, so any change to it re-renders the world, with
    the seed of the job's replicate (world.seed + {rep}) when each replicate draws its own world. n_occurrences
    only reaches the occurrence table (with_occurrences), so changing it leaves the photos alone; per_replicate
    is the workflow's, not the world's."""
    left_out = {"per_replicate", *([] if with_occurrences else ["n_occurrences"])}

    def world(wildcards):
        settings = {key: value for key, value in config["world"].items() if key not in left_out}
        settings["seed"] = replicate_seed(settings["seed"], wildcards.get("rep", 0))
        return json.dumps(settings, sort_keys=True)

    return world


def prior_occurrences(rep):
    """The occurrence table replicate ``rep``'s geographic prior also trains on (evaluate.geoprior_occurrences):
    a path, the replicate's world's own table, or None."""
    source = config["evaluate"]["geoprior_occurrences"]
    if source == "world":
        if config["dataset"]["source"] != "synthetic":
            raise ValueError("evaluate.geoprior_occurrences: 'world' needs dataset.source synthetic; give a path")
        return f"{pool_folder(rep)}/world/occurrences.csv"
    return source


def geo_prior_inputs(wildcards):
    """The prior's manifest and splits, its occurrence table when configured and, on the synthetic world, the
    replicate's oracle to score it against."""
    inputs = {
        "manifest": f"{pool_folder(wildcards.rep)}/manifest.parquet",
        "splits": f"{RESULTS}/replicates/{wildcards.rep}/splits.parquet",
    }
    if prior_occurrences(wildcards.rep):
        inputs["occurrences"] = prior_occurrences(wildcards.rep)
    if world_truth(wildcards.rep):
        inputs["oracle"] = f"{RESULTS}/replicates/{wildcards.rep}/oracle.npz"
    return inputs


def geo_prior_arguments(wildcards, input):
    """--occurrences and --oracle of the prior's CLI, for the inputs it has."""
    return " ".join(f"--{name} {input[name]}" for name in ("occurrences", "oracle") if name in input.keys())


def joined(values):
    return " ".join(str(v) for v in values)


def job_label_fractions(wildcards):
    """The label budgets of an evaluation job (job_budgets), as one argument."""
    return joined(job_budgets(wildcards))


def priors_argument(wildcards, input):
    """--priors with the prior records when the results table has any."""
    return f"--priors {input.priors}" if input.priors else ""


def check_strategies():
    """Every name in pretrain.strategies is a registered strategy or an arm of pretrain.arms, every arm a
    registered strategy with options it knows; raised at planning time, naming the config key."""
    arms = config["pretrain"]["arms"]
    reserved = {*registry.STRATEGIES, registry.RANDOM_INIT, registry.BASELINE}
    for arm, spec in arms.items():
        if arm in reserved:
            raise ValueError(f"pretrain.arms.{arm}: the name of a registered strategy or baseline; choose another")
        registry.strategy(spec["strategy"]).resolve_options(strategy_options(arm))
    for name in config["pretrain"]["strategies"]:
        if name not in registry.STRATEGIES and name not in arms:
            raise ValueError(
                f"pretrain.strategies: {name!r} is neither a registered strategy ({', '.join(registry.STRATEGIES)})"
                f" nor an arm of pretrain.arms ({', '.join(arms) or 'none'})"
            )


def base_strategy(name):
    """The registered strategy a pretraining arm runs (a strategy's own name is its own base)."""
    arm = config["pretrain"]["arms"].get(name)
    return arm["strategy"] if arm else name


def pretrain_strategy(wildcards):
    """What the train CLI runs for a pretraining job: the strategy, or the arm's base strategy."""
    return base_strategy(wildcards.strategy)


def strategy_options(name):
    """A strategy's own settings (pretrain.strategy_options.<strategy>; empty: its defaults); an arm's are its
    base strategy's, updated with the arm's options."""
    arm = config["pretrain"]["arms"].get(name, {})
    base = config["pretrain"]["strategy_options"].get(base_strategy(name), {})
    return {**base, **arm.get("options", {})}


def strategy_tables(name):
    """The geo tables a strategy (or arm) reads under its options, from the registry."""
    return registry.strategy(base_strategy(name)).tables(strategy_options(name))


check_strategies()


def label_trained(name):
    """Whether strategy or arm ``name`` trains on the labels of a label budget (registry label_budget): it is then
    pretrained once per evaluated budget, on exactly that budget's labelled rows, and evaluated at each budget
    with the encoder of that budget."""
    return name != registry.RANDOM_INIT and registry.strategy(base_strategy(name)).label_budget


def label_trained_names():
    """Every name a label-trained pretraining job may have (registered strategies and arms), as a regex
    alternation: the wildcard constraint of the per-budget rules."""
    registered = [name for name, spec in registry.STRATEGIES.items() if spec.label_budget]
    arms = [arm for arm in config["pretrain"]["arms"] if label_trained(arm)]
    return "|".join(re.escape(name) for name in [*registered, *arms])


def label_free_names():
    """Any strategy name but a label-trained one: the wildcard constraint of the rules whose one job per
    (strategy, seed) serves every label budget, so that planning never asks them for a per-budget encoder."""
    return rf"(?!(?:{label_trained_names()})(?![a-z0-9_]))[a-z][a-z0-9_]*"


RANDOM_INIT = registry.RANDOM_INIT  # baseline: the pretraining encoder with random weights, evaluated like the others


def label_percents():
    """Label budgets as the strings of their output names (10 -> "10", 0.5 -> "0.5")."""
    return [f"{pct:g}" for pct in config["evaluate"]["label_fractions"]]


def evaluated_strategies():
    return [*config["pretrain"]["strategies"], *([RANDOM_INIT] if config["evaluate"]["random_init"] else [])]


def job_budgets(wildcards):
    """The label budgets of an evaluation job: its {pct}, or every evaluated budget (the frozen job of an
    encoder that every budget shares)."""
    return [wildcards.pct] if "pct" in wildcards.keys() else label_percents()


def sweep_table():
    """report.sweep, the purity sweep's table results_summary.txt places the collection on: [] without one."""
    return [config["report"]["sweep"]] if config["report"].get("sweep") else []


def deterministic_flag():
    """The frozen-evaluation CLI's switch for the top-level `deterministic` key."""
    return "--deterministic" if config["deterministic"] else ""


def output_folder(wildcards, output):
    """The folder of a job's first output, for CLIs that write several files into one folder."""
    return os.path.dirname(output[0])


def truth_folder(wildcards, output):
    """The folder of the world's truth, where the world writes its own files."""
    return os.path.dirname(output.truth)
