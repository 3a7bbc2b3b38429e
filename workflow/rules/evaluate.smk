# Evaluation stage: frozen features, the geographic prior, one job per (strategy, seed, protocol, label budget),
# and the results table. The baselines are the strategies random_init (the untrained encoder) and most_common.


rule embed:
    input:
        unpack(embed_inputs),
    output:
        f"{RESULTS}/embeddings/{{strategy}}/seed{{seed}}.npy",
    log:
        f"{LOGS}/embed_{{strategy}}_seed{{seed}}.log",
    params:
        source=embed_source,
        resolution=config["pretrain"]["resolution"],
        deterministic=deterministic_flag(),
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        gpu=1,
    shell:
        "python -m geocontrast.evaluate.embed --cache {input.cache} --out {output} {params.source}"
        " --seed {wildcards.seed} --resolution {params.resolution} --threads {threads} {params.deterministic}"
        " 2> {log}"


rule geo_prior:
    input:
        manifest=f"{RESULTS}/manifest.parquet",
        splits=f"{RESULTS}/splits.parquet",
    output:
        probs=f"{RESULTS}/geoprior/l{{pct}}/probs.npy",
        summary=f"{RESULTS}/geoprior/l{{pct}}/prior.json",
        grid=f"{RESULTS}/geoprior/l{{pct}}/grid.npz",
    log:
        f"{LOGS}/geo_prior_l{{pct}}.log",
    params:
        geoprior=json.dumps(config["evaluate"]["geoprior"], sort_keys=True),
        seed=config["evaluate"]["geoprior_seed"],
        out_dir=output_folder,
    conda:
        "../envs/train.yaml"
    threads: 1  # a small MLP: a second thread measured slower on 2 busy cores
    shell:
        "python -m geocontrast.evaluate.geoprior --manifest {input.manifest} --splits {input.splits}"
        " --label-fraction {wildcards.pct} --out-dir {params.out_dir} --params-json {params.geoprior:q}"
        " --seed {params.seed} --threads {threads} 2> {log}"


rule genus_pairs:
    input:
        cache=f"{RESULTS}/cache/{config['pretrain']['resolution']}px.npy",
        manifest=f"{RESULTS}/manifest.parquet",
        splits=f"{RESULTS}/splits.parquet",
    output:
        f"{RESULTS}/tasks/genus_pairs_l{{pct}}.json",
    log:
        f"{LOGS}/genus_pairs_l{{pct}}.log",
    params:
        task=json.dumps(config["evaluate"]["genus_pairs"], sort_keys=True),
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.evaluate.tasks --cache {input.cache} --manifest {input.manifest}"
        " --splits {input.splits} --label-fraction {wildcards.pct} --params-json {params.task:q}"
        " --out {output} 2> {log}"


rule evaluate_frozen:
    input:
        unpack(evaluation_inputs),
        embeddings=f"{RESULTS}/embeddings/{{strategy}}/seed{{seed}}.npy",
    output:
        f"{RESULTS}/eval/{{strategy}}/seed{{seed}}/{{protocol}}_l{{pct}}.json",
    log:
        f"{LOGS}/evaluate_{{strategy}}_seed{{seed}}_{{protocol}}_l{{pct}}.log",
    params:
        run=run_facts,
        protocol=protocol_params,
        pairs=pairs_argument,
    wildcard_constraints:
        protocol="linear|knn|genus_pairs|mislabel|clustering|[a-z]+_probe",
    conda:
        "../envs/train.yaml"
    threads: 1
    shell:
        "python -m geocontrast.evaluate --protocol {wildcards.protocol} --manifest {input.manifest}"
        " --splits {input.splits} --label-fraction {wildcards.pct} --embeddings {input.embeddings}"
        " --prior {input.prior} {params.pairs} --run-json {params.run:q} --params-json {params.protocol:q}"
        " --threads {threads} --out {output} 2> {log}"


rule finetune:
    input:
        unpack(evaluation_inputs),
        unpack(embed_inputs),
    output:
        f"{RESULTS}/eval/{{strategy}}/seed{{seed}}/finetune_l{{pct}}.json",
    log:
        f"{LOGS}/evaluate_{{strategy}}_seed{{seed}}_finetune_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/finetune_{{strategy}}_seed{{seed}}_l{{pct}}.tsv"
    params:
        run=run_facts,
        protocol=finetune_params,
        source=embed_source,
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        gpu=1,
    shell:
        "python -m geocontrast.evaluate --protocol finetune --manifest {input.manifest} --splits {input.splits}"
        " --label-fraction {wildcards.pct} --cache {input.cache} {params.source} --prior {input.prior}"
        " --run-json {params.run:q} --params-json {params.protocol:q} --threads {threads} --out {output} 2> {log}"


rule most_common_baseline:
    input:
        unpack(evaluation_inputs),
    output:
        f"{RESULTS}/eval/most_common/seed{{seed}}/baseline_l{{pct}}.json",
    log:
        f"{LOGS}/evaluate_most_common_seed{{seed}}_l{{pct}}.log",
    params:
        run=most_common_run_facts,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.evaluate --protocol baseline --manifest {input.manifest} --splits {input.splits}"
        " --label-fraction {wildcards.pct} --prior {input.prior} --run-json {params.run:q} --out {output} 2> {log}"


rule results_table:
    input:
        evaluation_outputs(),
    output:
        table=f"{RESULTS}/results.csv",
        summary=f"{RESULTS}/results_summary.csv",
        text=f"{RESULTS}/results_summary.txt",
    log:
        f"{LOGS}/results_table.log",
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.evaluate.results {input} --out {output.table} --summary {output.summary}"
        " --text {output.text} 2> {log}"


# Paired comparisons (geocontrast.evaluate.compare): every strategy against compare.reference and against
# random_init, per protocol and label budget, with intervals. The evaluation JSONs supply the per-photo hits for
# the test-photo bootstrap when replicates share one test split.
rule comparisons:
    input:
        results=f"{RESULTS}/results.csv",
        evaluations=evaluation_outputs(),
    output:
        table=f"{RESULTS}/comparisons.csv",
        text=f"{RESULTS}/comparisons.txt",
    log:
        f"{LOGS}/comparisons.log",
    params:
        compare=json.dumps(config["compare"], sort_keys=True),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.evaluate.compare --results {input.results} --evaluations {input.evaluations}"
        " --out {output.table} --text {output.text} --params-json {params.compare:q} > /dev/null 2> {log}"
