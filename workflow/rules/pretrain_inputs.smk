# The pretraining jobs: which (strategy, seed, label budget) encoders the config asks for, where each lives, and
# the pretrain rules' inputs and arguments. Config lookups shared with the other stages are in common.smk.


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


def pretrain_cache(name, seed):
    """The image cache a strategy (or arm) pretrains on at seed ``seed``: its replicate's clean one, or an arm's
    degraded copy (pretrain.arms.<arm>.quality); evaluation always reads the clean one."""
    quality = config["pretrain"]["arms"].get(name, {}).get("quality", "clean")
    suffix = "" if quality == "clean" else f"_{quality}"
    return pool_path(seed, f"cache/{config['pretrain']['resolution']}px{suffix}.npy")


def pretrain_inputs(wildcards):
    """A strategy depends on the geo tables only if it uses them, so changing the radius re-trains only those."""
    inputs = {
        "cache": pretrain_cache(wildcards.strategy, wildcards.seed),
        "manifest": pool_path(wildcards.seed, "manifest.parquet"),
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
    """The settings of one job (geocontrast.train.settings.PretrainSettings, as JSON): the pretrain section less
    the job-level keys (registry.PRETRAIN_JOB_KEYS: which jobs, how many GPUs), with only its own strategy's
    options (changing them re-trains only that strategy) and the deterministic switch. A label-trained job trains
    on the labels of its budget {pct} (label_fraction)."""
    training = {key: value for key, value in config["pretrain"].items() if key not in registry.PRETRAIN_JOB_KEYS}
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
