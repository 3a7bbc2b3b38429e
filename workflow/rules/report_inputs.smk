# The report's figures: which are drawn for this config (report_outputs, part of `rule all`) and the input
# functions and arguments of the report rules. Config lookups shared with the other stages are in common.smk.


REPORT = f"{RESULTS}/report"


def report_outputs():
    """What `rule all` builds of the report. The label-budget curve needs two or more evaluated label fractions;
    with one it is not scheduled; the task figures only come with evaluate.tasks, the prior's figure and range map
    only with evaluate.prior, the collection on a purity sweep only with report.sweep. Retrieval grids and
    embedding maps are drawn for the first seed."""
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
    if sweep_table():
        figures.append("sweep_position")
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


def resampled_splits_summaries():
    """The splits summaries of replicates that each resampled the split of one photo pool (splits.resample with
    more than one seed): the comparisons' corrected resampled t reads their test/train ratio. None otherwise."""
    summaries = dict.fromkeys(f"{replicate_folder(seed)}/splits_summary.json" for seed in config["pretrain"]["seeds"])
    return list(summaries) if config["splits"]["resample"] and len(summaries) > 1 and not WORLD_PER_REPLICATE else []


def shared_split_inputs(wildcards):
    """The manifest and the one split every replicate shares (not splits.resample), so that the comparisons'
    bootstrap over the shared test photos resamples whole observations. None when replicates resample."""
    if config["splits"]["resample"]:
        return {}
    return {"manifest": f"{pool_folder(0)}/manifest.parquet", "shared_splits": f"{replicate_folder(0)}/splits.parquet"}


def shared_split_arguments(wildcards, input):
    """--manifest and --shared-splits of the comparisons CLI, when it has them."""
    return " ".join(
        f"--{name.replace('_', '-')} {input[name]}" for name in ("manifest", "shared_splits") if name in input.keys()
    )


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
    """The largest cached resolution of the first seed's photos: figures show photos, not training inputs."""
    return pool_path(FIRST_SEED, f"cache/{max(config['image_cache']['resolutions'])}px.npy")


def world_truth(rep):
    """The true ranges of replicate ``rep``'s synthetic world, which only that source has."""
    return f"{pool_folder(rep)}/world/truth.npz" if config["dataset"]["source"] == "synthetic" else None


def map_inputs(wildcards):
    """What a map draws: the first seed's photos, split, neighbours or prior, over its world's true ranges."""
    inputs = {"manifest": pool_path(FIRST_SEED, "manifest.parquet")}
    if wildcards.kind == "splits":
        inputs["splits"] = splits_path(FIRST_SEED)
    elif wildcards.kind == "radius":
        inputs["neighbours"] = neighbour_table_path(FIRST_SEED)
    else:
        inputs["prior_grid"] = prior_path(FIRST_SEED, f"{config['report']['label_fraction']:g}", "grid.npz")
        inputs["prior_json"] = prior_path(FIRST_SEED, f"{config['report']['label_fraction']:g}", "prior.json")
    if world_truth(replicate(FIRST_SEED)):
        inputs["truth"] = world_truth(replicate(FIRST_SEED))
    return inputs


def map_arguments(wildcards, input):
    return " ".join(f"--{name.replace('_', '-')} {path}" for name, path in input.items())
