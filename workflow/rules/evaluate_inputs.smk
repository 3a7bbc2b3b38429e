# Input functions and params of the evaluation rules (evaluate.smk, and the results and report rules that gather
# their outputs): which protocols run, their outputs, the encoder or embeddings each job reads, its run facts.


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


def finetune_percents():
    """The label budgets of the finetune protocol (evaluate.finetune_label_fractions, null: every budget) as the
    strings of their output names; raised at planning time if one is not an evaluated budget."""
    chosen = config["evaluate"].get("finetune_label_fractions")
    if chosen is None:
        return label_percents()
    outside = [f"{pct:g}" for pct in chosen if f"{pct:g}" not in label_percents()]
    if outside:
        raise ValueError(
            f"evaluate.finetune_label_fractions: {', '.join(outside)} not in evaluate.label_fractions "
            f"({', '.join(label_percents())})"
        )
    return [f"{pct:g}" for pct in chosen]


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
    budgets = {protocol: label_percents() for protocol in frozen_protocols()} | {"finetune": finetune_percents()}
    return [
        *(
            f"{RESULTS}/eval/{strategy}/seed{seed}/{protocol}_l{pct}.json"
            for strategy in evaluated_strategies()
            for seed in config["pretrain"]["seeds"]
            for protocol in [*frozen_protocols(), *finetune]
            for pct in budgets[protocol]
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
    inputs = {"cache": pool_path(wildcards.seed, f"cache/{config['pretrain']['resolution']}px.npy")}
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
    return {"manifest": pool_path(wildcards.seed, "manifest.parquet"), "splits": splits_path(wildcards.seed)}


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


def linear_params():
    """evaluate.linear as JSON: the linear probe's settings, also those of the probe a fine-tune's LP-FT head starts
    from (a change re-runs the fine-tunes too)."""
    return json.dumps(config["evaluate"]["linear"], sort_keys=True)
