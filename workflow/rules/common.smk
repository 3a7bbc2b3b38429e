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
        f"{RESULTS}/manifest.parquet",
        *expand(f"{RESULTS}/cache/{{res}}px.npy", res=config["image_cache"]["resolutions"]),
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


def world_json(with_occurrences=False):
    """The world section as one JSON argument, so any change to it re-renders the world; n_occurrences only
    reaches the occurrence table (with_occurrences), so changing it leaves the photos alone."""
    world = config["world"] if with_occurrences else {k: v for k, v in config["world"].items() if k != "n_occurrences"}
    return json.dumps(world, sort_keys=True)


def prior_occurrences():
    """The occurrence table the geographic prior also trains on (evaluate.geoprior_occurrences), or None."""
    source = config["evaluate"]["geoprior_occurrences"]
    if source == "world":
        if config["dataset"]["source"] != "synthetic":
            raise ValueError("evaluate.geoprior_occurrences: 'world' needs dataset.source synthetic; give a path")
        return f"{RESULTS}/world/occurrences.csv"
    return source


def geo_prior_inputs(wildcards):
    """The prior's manifest and splits, its occurrence table when configured and the world's truth to score it."""
    inputs = {
        "manifest": f"{RESULTS}/manifest.parquet",
        "splits": f"{RESULTS}/replicates/{wildcards.rep}/splits.parquet",
    }
    if prior_occurrences():
        inputs["occurrences"] = prior_occurrences()
    if world_truth():
        inputs["truth"] = world_truth()
        inputs["taxonomy"] = f"{RESULTS}/world/taxonomy.parquet"  # read beside truth.npz
    return inputs


def geo_prior_arguments(wildcards, input):
    """--occurrences and --truth of the geoprior CLI, for the inputs it has."""
    return " ".join(f"--{name} {input[name]}" for name in ("occurrences", "truth") if name in input.keys())


def joined(values):
    return " ".join(str(v) for v in values)


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


def pretrain_folder(strategy, seed, pct):
    """Where the encoder evaluated at label budget ``pct`` is trained: pretrain/<strategy>/seed<s>/, or for a
    label-trained strategy its budget's folder l<pct>/ inside it."""
    folder = f"{RESULTS}/pretrain/{strategy}/seed{seed}"
    if not label_trained(strategy):
        return folder
    if pct is None:
        raise ValueError(f"{strategy} is pretrained per label budget: only a job at one budget reads its encoder")
    return f"{folder}/l{pct}"


def pretrain_jobs():
    """The folder of every pretraining job: one per (strategy, seed), one per (strategy, seed, label budget) of
    a label-trained strategy."""
    return list(
        dict.fromkeys(
            pretrain_folder(strategy, seed, pct)
            for strategy in config["pretrain"]["strategies"]
            for seed in config["pretrain"]["seeds"]
            for pct in label_percents()
        )
    )


def pretrain_outputs():
    """Encoder and training curves of every pretraining job: the report plots the curves."""
    return [f"{folder}/{name}" for folder in pretrain_jobs() for name in ("encoder.pt", "metrics.jsonl")]


def pretrain_cache(name):
    """The image cache a strategy (or arm) pretrains on: the clean one, or an arm's degraded copy
    (pretrain.arms.<arm>.quality); evaluation always reads the clean one."""
    quality = config["pretrain"]["arms"].get(name, {}).get("quality", "clean")
    suffix = "" if quality == "clean" else f"_{quality}"
    return f"{RESULTS}/cache/{config['pretrain']['resolution']}px{suffix}.npy"


def pretrain_inputs(wildcards):
    """A strategy depends on the geo tables only if it uses them, so changing the radius re-trains only those."""
    inputs = {
        "cache": pretrain_cache(wildcards.strategy),
        "manifest": f"{RESULTS}/manifest.parquet",
        "splits": splits_path(wildcards.seed),
    }
    tables = strategy_tables(wildcards.strategy)
    if "neighbours" in tables:
        inputs["neighbours"] = neighbour_table_path(wildcards.seed)
    if "negatives" in tables:
        inputs["negatives"] = negative_table_path(wildcards.seed)
    return inputs


def pretrain_table_args(wildcards, input):
    return " ".join(f"--{name} {input[name]}" for name in ("neighbours", "negatives") if name in input.keys())


def pretrain_launcher():
    """What runs the training module: python, or torchrun with one process per GPU (pretrain.gpus > 1)."""
    gpus = config["pretrain"]["gpus"]
    return "python" if gpus == 1 else f"torchrun --standalone --nproc_per_node {gpus}"


def pretrain_params_json(wildcards):
    """The training params of one job: the pretrain section less the job-level keys (which jobs, how many GPUs),
    with only its own strategy's options (changing them re-trains only that strategy) and the deterministic switch.
    A label-trained job trains on the labels of its budget {pct} (label_fraction)."""
    job_keys = ("strategies", "arms", "seeds", "gpus", "strategy_options")
    training = {key: value for key, value in config["pretrain"].items() if key not in job_keys}
    options = strategy_options(wildcards.strategy)
    arm = config["pretrain"]["arms"].get(wildcards.strategy, {})
    augment = {**training["augment"], **arm.get("augment", {})}
    if "pct" in wildcards.keys():
        training["label_fraction"] = float(wildcards.pct)
    return json.dumps(
        {
            **training,
            "augment": augment,
            "options": options,
            "seed": int(wildcards.seed),
            "deterministic": config["deterministic"],
        },
        sort_keys=True,
    )


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


def frozen_protocols():
    """What a frozen job runs from its one embedding: the frozen protocols of evaluate.protocols and every task
    of evaluate.tasks."""
    evaluate = config["evaluate"]
    return [p for p in evaluate["protocols"] if registry.PROTOCOLS[p].frozen] + list(evaluate["tasks"])


def frozen_outputs(pcts):
    """A frozen job's result files, one per (protocol, label budget of ``pcts``), with {strategy} and {seed} (and
    a {pct} of ``pcts``) left open."""
    return expand(
        f"{RESULTS}/eval/{{{{strategy}}}}/seed{{{{seed}}}}/{{protocol}}_l{{pct}}.json",
        protocol=frozen_protocols(),
        pct=pcts,
    )


def fused_pairs():
    """The fused pairs of evaluate.fusion as their strategy names (augmented+context_pos_neg)."""
    return [registry.FUSION_SEPARATOR.join(pair) for pair in config["evaluate"]["fusion"]]


def check_fusion():
    """Every pair of evaluate.fusion is two different evaluated, label-free strategies; raised at planning time."""
    evaluated = evaluated_strategies()
    for first, second in config["evaluate"]["fusion"]:
        missing = [name for name in (first, second) if name not in evaluated]
        if missing or first == second:
            raise ValueError(
                f"evaluate.fusion: [{first}, {second}] must name two different evaluated strategies "
                f"({', '.join(evaluated)})"
            )
        trained = [name for name in (first, second) if label_trained(name)]
        if trained:  # one frozen job fuses every budget, but such an encoder differs per budget
            raise ValueError(
                f"evaluate.fusion: [{first}, {second}]: {', '.join(trained)} is pretrained per label budget; fuse "
                "label-free strategies"
            )


check_fusion()


def fusion_outputs():
    return expand(
        f"{RESULTS}/eval/{{fused}}/seed{{seed}}/fusion_l{{pct}}.json",
        fused=fused_pairs(),
        seed=config["pretrain"]["seeds"],
        pct=label_percents(),
    )


def fusion_inputs(wildcards):
    """The two strategies' embeddings of the seed, the manifest and splits, and per label budget its prior."""
    inputs = {
        "embeddings": [
            f"{RESULTS}/embeddings/{name}/seed{wildcards.seed}.npy" for name in (wildcards.first, wildcards.second)
        ],
        **split_inputs(wildcards),
    }
    if PRIOR:
        inputs["priors"] = [prior_path(wildcards.seed, pct) for pct in label_percents()]
    return inputs


def fusion_run_facts(wildcards):
    return run_facts(wildcards, strategy=registry.FUSION_SEPARATOR.join((wildcards.first, wildcards.second)))


def evaluation_outputs():
    """Every evaluation JSON that results.csv collects: protocols, downstream tasks and fused pairs."""
    finetune = ["finetune"] if "finetune" in config["evaluate"]["protocols"] else []
    return [
        *expand(
            f"{RESULTS}/eval/{{strategy}}/seed{{seed}}/{{protocol}}_l{{pct}}.json",
            strategy=evaluated_strategies(),
            seed=config["pretrain"]["seeds"],
            protocol=[*frozen_protocols(), *finetune],
            pct=label_percents(),
        ),
        *expand(
            f"{RESULTS}/eval/{registry.BASELINE}/seed{{seed}}/baseline_l{{pct}}.json",
            seed=config["pretrain"]["seeds"],
            pct=label_percents(),
        ),
        *fusion_outputs(),
    ]


def encoder_path(wildcards):
    """The encoder an evaluation job reads: its strategy's, or for a label-trained strategy the one trained at
    the job's label budget."""
    pct = wildcards.pct if "pct" in wildcards.keys() else None
    return f"{pretrain_folder(wildcards.strategy, wildcards.seed, pct)}/encoder.pt"


def embeddings_path(wildcards):
    """The frozen features the report's retrieval and embedding figures show: a label-trained strategy's are
    those of its encoder at report.label_fraction."""
    folder = f"{RESULTS}/embeddings/{wildcards.strategy}/seed{wildcards.seed}"
    return (
        f"{folder}/l{config['report']['label_fraction']:g}.npy"
        if label_trained(wildcards.strategy)
        else f"{folder}.npy"
    )


def encoder_inputs(wildcards):
    inputs = {"cache": f"{RESULTS}/cache/{config['pretrain']['resolution']}px.npy"}
    if wildcards.strategy != RANDOM_INIT:
        inputs["encoder"] = encoder_path(wildcards)
    return inputs


def encoder_source(wildcards):
    """The CLIs' encoder argument: a pretrained encoder.pt, or the random-init baseline's encoder name."""
    if wildcards.strategy == RANDOM_INIT:
        return f"--random-init {config['pretrain']['encoder']}"
    return f"--encoder {encoder_path(wildcards)}"


def split_inputs(wildcards):
    """The manifest and the splits of the job's replicate."""
    return {"manifest": f"{RESULTS}/manifest.parquet", "splits": splits_path(wildcards.seed)}


PRIOR = config["evaluate"]["prior"]  # false: no geo_prior jobs; the prior columns of results.csv are NaN


def evaluation_inputs(wildcards):
    """Manifest, splits and (evaluate.prior) the geographic prior of the job's replicate and label budget."""
    inputs = split_inputs(wildcards)
    if PRIOR:
        inputs["prior"] = prior_path(wildcards.seed, wildcards.pct)
    return inputs


def frozen_inputs(wildcards):
    """Encoder and cache, manifest and splits, and per label budget its prior (evaluate.prior; and genus pairs
    when asked)."""
    inputs = {**encoder_inputs(wildcards), **split_inputs(wildcards)}
    if PRIOR:
        inputs["priors"] = [prior_path(wildcards.seed, pct) for pct in job_budgets(wildcards)]
    if "genus_pairs" in frozen_protocols():
        inputs["pairs"] = [genus_pairs_path(wildcards.seed, pct) for pct in job_budgets(wildcards)]
    return inputs


def prior_argument(wildcards, input):
    """The evaluation CLIs' prior argument(s): --prior/--priors with the job's prior files, none without a prior."""
    for name in ("prior", "priors"):
        if name in input.keys():
            return f"--{name} {input[name]}"
    return "--no-prior-reason 'evaluate.prior is false'"


def pairs_argument(wildcards, input):
    return f"--pairs {input.pairs}" if "pairs" in input.keys() else ""


def frozen_params():
    """The config sections the frozen protocols read (registry: each one's section), as one JSON argument."""
    specs = {**registry.PROTOCOLS, **registry.TASKS}
    sections = sorted({specs[protocol].section for protocol in frozen_protocols()})
    return json.dumps({section: config["evaluate"][section] for section in sections}, sort_keys=True)


def eval_folder(wildcards):
    return f"{RESULTS}/eval/{wildcards.strategy}/seed{wildcards.seed}"


def run_facts(wildcards, strategy=None):
    """What a results row records about its run (geocontrast.evaluate.RUN_COLUMNS), as a JSON argument."""
    strategy = strategy or wildcards.strategy
    pretrained = strategy not in (RANDOM_INIT, registry.BASELINE)
    return json.dumps(
        {
            "dataset": DATASET,
            "strategy": strategy,
            "seed": int(wildcards.seed),
            "encoder": config["pretrain"]["encoder"] if strategy != registry.BASELINE else None,
            "resolution": config["pretrain"]["resolution"],
            "epochs": config["pretrain"]["epochs"] if pretrained else 0,
            "split_mode": config["splits"]["mode"],
            "replicate": replicate(wildcards.seed),
        },
        sort_keys=True,
    )


def most_common_run_facts(wildcards):
    return run_facts(wildcards, strategy=registry.BASELINE)


def finetune_params(wildcards):
    return json.dumps({**config["evaluate"]["finetune"], "deterministic": config["deterministic"]}, sort_keys=True)


def deterministic_flag():
    """The frozen-evaluation CLI's switch for the top-level `deterministic` key."""
    return "--deterministic" if config["deterministic"] else ""


def output_folder(wildcards, output):
    """The folder of a job's first output, for CLIs that write several files into one folder."""
    return os.path.dirname(output[0])


REPORT = f"{RESULTS}/report"


def report_outputs():
    """What `rule all` builds of the report. The label-budget curve needs two or more evaluated label fractions;
    with one it is not scheduled; the task figures only come with evaluate.tasks, the prior's figure and range map
    only with evaluate.prior. Retrieval grids and embedding
    maps are drawn for the first seed."""
    figures = [
        "accuracy",
        "ranks",
        *(["geo_prior", "prior"] if PRIOR else []),
        "training_curves",
        "pairs",
        "comparisons",
        "example_pairs",
        "map_splits",
        "map_radius",
        *(["map_ranges"] if PRIOR else []),  # the prior's predicted ranges
    ]
    if len(set(config["evaluate"]["label_fractions"])) > 1:
        figures.append("label_budget")
    if config["evaluate"]["tasks"]:
        figures.append("tasks")
    if "mislabel" in config["evaluate"]["tasks"]:
        figures.append("mislabel_roc")
    if draw_cam():
        figures.append("cam")
    first_seed = config["pretrain"]["seeds"][0]
    return [
        *(f"{REPORT}/{figure}.png" for figure in figures),
        f"{REPORT}/results_table.md",
        *expand(
            f"{REPORT}/{{kind}}/{{strategy}}_seed{first_seed}.png",
            kind=["nearest_neighbours", "embedding"],
            strategy=evaluated_strategies(),
        ),
    ]


def pair_records():
    """The pair diagnostics (pairs.json) of every pretraining job."""
    return [f"{folder}/pairs.json" for folder in pretrain_jobs()]


def prior_records(pcts=None):
    """The prior.json of every replicate's geographic prior at each label budget of ``pcts`` (default: every
    evaluated one); none without evaluate.prior."""
    if not PRIOR:
        return []
    seeds = config["pretrain"]["seeds"]
    return list(
        dict.fromkeys(prior_path(seed, pct, "prior.json") for seed in seeds for pct in pcts or label_percents())
    )


def mislabel_records():
    """The mislabel-detection records (they keep the ROC curves) at the report's label fraction."""
    return expand(
        f"{RESULTS}/eval/{{strategy}}/seed{{seed}}/mislabel_l{config['report']['label_fraction']:g}.json",
        strategy=evaluated_strategies(),
        seed=config["pretrain"]["seeds"],
    )


def draw_cam():
    """The class-activation maps are of the fine-tuned classifiers: drawn with the finetune protocol and
    report.cam.n_photos > 0."""
    return config["report"]["cam"]["n_photos"] > 0 and "finetune" in config["evaluate"]["protocols"]


def cam_of_kept_classifier():
    """At the species rank the CAM job draws the classifier the finetune job kept; at a coarser rank it fine-tunes."""
    return config["report"]["cam"]["class_rank"] == "species"


def cam_inputs(wildcards):
    if not cam_of_kept_classifier():
        return encoder_inputs(wildcards)
    folder = f"{RESULTS}/eval/{wildcards.strategy}/seed{wildcards.seed}"
    return {"cache": encoder_inputs(wildcards)["cache"], "classifier": f"{folder}/finetune_l{wildcards.pct}.pt"}


def cam_source(wildcards):
    return (
        f"--classifier {cam_inputs(wildcards)['classifier']}" if cam_of_kept_classifier() else encoder_source(wildcards)
    )


def cam_paths():
    """The maps of every evaluated strategy's classifier, fine-tuned on the first seed at report.label_fraction."""
    return expand(
        f"{RESULTS}/cam/{{strategy}}/seed{FIRST_SEED}_l{config['report']['label_fraction']:g}.npz",
        strategy=evaluated_strategies(),
    )


def report_params(*keys):
    """The named keys of the report section as one JSON argument of the figure CLI."""
    return json.dumps({key: config["report"][key] for key in keys}, sort_keys=True)


def display_cache():
    """The largest cached resolution: figures show photos, not training inputs."""
    return f"{RESULTS}/cache/{max(config['image_cache']['resolutions'])}px.npy"


def world_truth():
    """The synthetic world's true ranges, which only that source has."""
    return f"{RESULTS}/world/truth.npz" if config["dataset"]["source"] == "synthetic" else None


def map_inputs(wildcards):
    inputs = {"manifest": f"{RESULTS}/manifest.parquet"}
    if wildcards.kind == "splits":
        inputs["splits"] = splits_path(FIRST_SEED)
    elif wildcards.kind == "radius":
        inputs["neighbours"] = neighbour_table_path(FIRST_SEED)
    else:
        inputs["prior_grid"] = prior_path(FIRST_SEED, f"{config['report']['label_fraction']:g}", "grid.npz")
        inputs["prior_json"] = prior_path(FIRST_SEED, f"{config['report']['label_fraction']:g}", "prior.json")
    if world_truth():
        inputs["truth"] = world_truth()
    return inputs


def map_arguments(wildcards, input):
    return " ".join(f"--{name.replace('_', '-')} {path}" for name, path in input.items())
