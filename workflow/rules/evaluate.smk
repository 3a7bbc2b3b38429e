# Evaluation stage: one frozen-evaluation job per (strategy, seed) that embeds every photo once and runs every
# frozen protocol and task at every label budget from it (one job start and one embedding instead of one job per
# protocol x budget plus an embedding job: each Python start-up with torch costs seconds), a fine-tuning job per
# (strategy, seed, label budget), the downstream tasks' genus pairs and the report's class-activation maps. A
# label-trained strategy (supervised) has one encoder per label budget, so its frozen job is one per (strategy,
# seed, label budget), reading that budget's encoder. The baselines are the strategies random_init (the untrained
# encoder) and most_common.


rule genus_pairs:
    input:
        cache=f"{pool_folder()}/cache/{config['pretrain']['resolution']}px.npy",
        manifest=f"{pool_folder()}/manifest.parquet",
        splits=f"{RESULTS}/replicates/{{rep}}/splits.parquet",
    output:
        f"{RESULTS}/replicates/{{rep}}/tasks/genus_pairs_l{{pct}}.json",
    log:
        f"{LOGS}/genus_pairs_rep{{rep}}_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/genus_pairs_rep{{rep}}_l{{pct}}.tsv"
    params:
        task=json.dumps(config["evaluate"]["genus_pairs"], sort_keys=True),
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.evaluate.tasks --cache {input.cache} --manifest {input.manifest}"
        " --splits {input.splits} --label-fraction {wildcards.pct} --params-json {params.task:q}"
        " --out {output} > {log} 2>&1"


# One job per (strategy, seed) of a label-free strategy: its one encoder serves every label budget. A label-trained
# strategy's encoder differs per budget: its frozen jobs are evaluate_frozen_at_budget's, below.
rule evaluate_frozen:
    input:
        unpack(frozen_inputs),
    output:
        embeddings=f"{RESULTS}/embeddings/{{strategy}}/seed{{seed}}.npy",
        results=frozen_outputs(label_percents()),
    log:
        f"{LOGS}/evaluate_frozen_{{strategy}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_frozen_{{strategy}}_seed{{seed}}.tsv"
    params:
        source=encoder_source,
        resolution=config["pretrain"]["resolution"],
        deterministic=deterministic_flag(),
        run=run_facts,
        label_fractions=job_label_fractions,
        val_fraction=config["evaluate"]["val_fraction"],
        protocols=joined(frozen_protocols()),
        sections=frozen_params(),
        pairs=pairs_argument,
        prior=prior_argument,
        out_dir=eval_folder,
    wildcard_constraints:
        strategy=label_free_names(),
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        gpu=1,
    shell:
        "python -m geocontrast.evaluate.frozen --cache {input.cache} {params.source} --resolution {params.resolution}"
        " {params.deterministic} --manifest {input.manifest} --splits {input.splits}"
        " --label-fractions {params.label_fractions} --val-fraction {params.val_fraction} {params.prior} {params.pairs}"
        " --protocols {params.protocols} --params-json {params.sections:q} --run-json {params.run:q}"
        " --threads {threads} --embeddings-out {output.embeddings} --out-dir {params.out_dir} > {log} 2>&1"


use rule evaluate_frozen as evaluate_frozen_at_budget with:
    output:
        embeddings=f"{RESULTS}/embeddings/{{strategy}}/seed{{seed}}/l{{pct}}.npy",
        results=frozen_outputs(["{pct}"]),
    log:
        f"{LOGS}/evaluate_frozen_{{strategy}}_seed{{seed}}_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_frozen_{{strategy}}_seed{{seed}}_l{{pct}}.tsv"
    wildcard_constraints:
        strategy=label_trained_names(),


# Feature fusion (evaluate.fusion): a linear probe on two strategies' frozen features side by side, per seed and
# label budget, from the embeddings their frozen jobs saved; rows of strategy <first>+<second>, protocol fusion.
rule evaluate_fusion:
    input:
        unpack(fusion_inputs),
    output:
        expand(
            f"{RESULTS}/eval/{{{{first}}}}+{{{{second}}}}/seed{{{{seed}}}}/fusion_l{{pct}}.json",
            pct=label_percents(),
        ),
    log:
        f"{LOGS}/evaluate_fusion_{{first}}+{{second}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_fusion_{{first}}+{{second}}_seed{{seed}}.tsv"
    params:
        run=fusion_run_facts,
        label_fractions=joined(label_percents()),
        val_fraction=config["evaluate"]["val_fraction"],
        linear=linear_params(),
        prior=prior_argument,
        out_dir=output_folder,
    conda:
        "../envs/train.yaml"
    threads: 2
    shell:
        "python -m geocontrast.evaluate.fusion --embeddings {input.embeddings} --manifest {input.manifest}"
        " --splits {input.splits} --label-fractions {params.label_fractions} --val-fraction {params.val_fraction}"
        " {params.prior}"
        " --params-json {params.linear:q} --run-json {params.run:q} --threads {threads}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule finetune:
    input:
        unpack(evaluation_inputs),
        unpack(encoder_inputs),
    output:
        json=f"{RESULTS}/eval/{{strategy}}/seed{{seed}}/finetune_l{{pct}}.json",
        classifier=f"{RESULTS}/eval/{{strategy}}/seed{{seed}}/finetune_l{{pct}}.pt",
    log:
        f"{LOGS}/evaluate_{{strategy}}_seed{{seed}}_finetune_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/finetune_{{strategy}}_seed{{seed}}_l{{pct}}.tsv"
    params:
        run=run_facts,
        protocol=finetune_params,
        probe=linear_params(),
        val_fraction=config["evaluate"]["val_fraction"],
        source=encoder_source,
        prior=prior_argument,
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        gpu=1,
    shell:
        "python -m geocontrast.evaluate --protocol finetune --manifest {input.manifest} --splits {input.splits}"
        " --label-fraction {wildcards.pct} --val-fraction {params.val_fraction} --cache {input.cache}"
        " {params.source} {params.prior}"
        " --run-json {params.run:q} --params-json {params.protocol:q} --probe-json {params.probe:q}"
        " --threads {threads} --out {output.json}"
        " --classifier-out {output.classifier} > {log} 2>&1"


# Class-activation maps for the report (report.cam): the encoder fine-tuned as the finetune job does it (same
# params and seed; the finetune jobs keep no weights), then the maps of a few test photos, the same for every
# strategy.
rule cam:
    input:
        unpack(split_inputs),
        unpack(cam_inputs),
    output:
        f"{RESULTS}/cam/{{strategy}}/seed{{seed}}_l{{pct}}.npz",
    log:
        f"{LOGS}/cam_{{strategy}}_seed{{seed}}_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/cam_{{strategy}}_seed{{seed}}_l{{pct}}.tsv"
    params:
        source=cam_source,
        resolution=config["pretrain"]["resolution"],
        finetune=finetune_params,
        probe=linear_params(),
        val_fraction=config["evaluate"]["val_fraction"],
        cam=json.dumps(config["report"]["cam"], sort_keys=True),
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        gpu=1,
    shell:
        "python -m geocontrast.evaluate.cam --cache {input.cache} {params.source} --resolution {params.resolution}"
        " --manifest {input.manifest} --splits {input.splits} --label-fraction {wildcards.pct}"
        " --val-fraction {params.val_fraction}"
        " --seed {wildcards.seed} --params-json {params.finetune:q} --probe-json {params.probe:q}"
        " --cam-json {params.cam:q}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule most_common_baseline:
    input:
        unpack(evaluation_inputs),
    output:
        f"{RESULTS}/eval/most_common/seed{{seed}}/baseline_l{{pct}}.json",
    log:
        f"{LOGS}/evaluate_most_common_seed{{seed}}_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/most_common_baseline_seed{{seed}}_l{{pct}}.tsv"
    params:
        run=most_common_run_facts,
        prior=prior_argument,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.evaluate --protocol baseline --manifest {input.manifest} --splits {input.splits}"
        " --label-fraction {wildcards.pct} {params.prior} --run-json {params.run:q} --out {output} > {log} 2>&1"
