# Pretraining stage: one job per (strategy, seed); {strategy} is a registered strategy or an arm (pretrain.arms),
# which runs its base strategy with its own options. last.pt beside the outputs is not an output, so a killed job
# keeps it and resumes from it when Snakemake runs the job again.


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        encoder=f"{RESULTS}/pretrain/{{strategy}}/seed{{seed}}/encoder.pt",
        metrics=f"{RESULTS}/pretrain/{{strategy}}/seed{{seed}}/metrics.jsonl",
        pairs=f"{RESULTS}/pretrain/{{strategy}}/seed{{seed}}/pairs.json",
    log:
        f"{LOGS}/pretrain_{{strategy}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/pretrain_{{strategy}}_seed{{seed}}.tsv"
    params:
        strategy=pretrain_strategy,
        training=pretrain_params_json,
        tables=pretrain_table_args,
        out_dir=output_folder,
        launcher=pretrain_launcher(),
    priority: PRETRAINING_PRIORITY
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        gpu=config["pretrain"]["gpus"],
    shell:
        "{params.launcher} -m geocontrast.train --strategy {params.strategy} --cache {input.cache}"
        " --manifest {input.manifest} --splits {input.splits} --out-dir {params.out_dir}"
        " --params-json {params.training:q} {params.tables} --threads {threads} > {log} 2>&1"


# A label-trained strategy (registry label_budget: supervised, classifier, and their arms) is pretrained once per
# evaluated label budget, on that budget's labelled rows, in l<pct>/ inside its seed folder: the same job with the
# budget as its label_fraction.
use rule pretrain as pretrain_at_budget with:
    output:
        encoder=f"{RESULTS}/pretrain/{{strategy}}/seed{{seed}}/l{{pct}}/encoder.pt",
        metrics=f"{RESULTS}/pretrain/{{strategy}}/seed{{seed}}/l{{pct}}/metrics.jsonl",
        pairs=f"{RESULTS}/pretrain/{{strategy}}/seed{{seed}}/l{{pct}}/pairs.json",
    log:
        f"{LOGS}/pretrain_{{strategy}}_seed{{seed}}_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/pretrain_{{strategy}}_seed{{seed}}_l{{pct}}.tsv"
    wildcard_constraints:
        strategy=label_trained_names(),
