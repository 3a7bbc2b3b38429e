# Report stage: figures and the results table, redrawn from cached results (results.csv, pretraining metrics).
# Each rule gets only the report keys it draws with, as JSON params, so changing a key re-runs just those rules.
# `snakemake --report report.html` gathers the outputs marked report(...) with their captions.


rule report_accuracy:
    input:
        results=f"{RESULTS}/results.csv",
    output:
        png=report(
            f"{REPORT}/accuracy.png",
            caption="../report/accuracy.rst",
            category="Results",
            labels={"figure": "top-k accuracy per strategy"},
        ),
        svg=f"{REPORT}/accuracy.svg",
    log:
        f"{LOGS}/report_accuracy.log",
    benchmark:
        f"{BENCHMARKS}/report_accuracy.tsv"
    params:
        plot=report_params("top_k", "error_bar", "figure_width_in", "label_fraction"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.results_figures accuracy --results {input.results} --out {output.png}"
        " --params-json {params.plot:q} > {log} 2>&1"


rule report_ranks:
    input:
        results=f"{RESULTS}/results.csv",
    output:
        png=report(
            f"{REPORT}/ranks.png",
            caption="../report/ranks.rst",
            category="Results",
            labels={"figure": "accuracy per taxonomic rank"},
        ),
        svg=f"{REPORT}/ranks.svg",
    log:
        f"{LOGS}/report_ranks.log",
    benchmark:
        f"{BENCHMARKS}/report_ranks.tsv"
    params:
        plot=report_params("error_bar", "figure_width_in", "label_fraction"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.results_figures ranks --results {input.results} --out {output.png}"
        " --params-json {params.plot:q} > {log} 2>&1"


rule report_geo_prior:
    input:
        results=f"{RESULTS}/results.csv",
    output:
        png=report(
            f"{REPORT}/geo_prior.png",
            caption="../report/geo_prior.rst",
            category="Results",
            labels={"figure": "with and without the geographic prior"},
        ),
        svg=f"{REPORT}/geo_prior.svg",
    log:
        f"{LOGS}/report_geo_prior.log",
    benchmark:
        f"{BENCHMARKS}/report_geo_prior.tsv"
    params:
        plot=report_params("top_k", "error_bar", "figure_width_in", "label_fraction"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.results_figures geo_prior --results {input.results} --out {output.png}"
        " --params-json {params.plot:q} > {log} 2>&1"


rule report_prior:
    input:
        priors=prior_records([f"{config['report']['label_fraction']:g}"]),
    output:
        png=report(
            f"{REPORT}/prior.png",
            caption="../report/prior.rst",
            category="Results",
            labels={"figure": "the geographic prior alone, against its limits"},
        ),
        svg=f"{REPORT}/prior.svg",
    log:
        f"{LOGS}/report_prior.log",
    benchmark:
        f"{BENCHMARKS}/report_prior.tsv"
    params:
        width=config["report"]["figure_width_in"],
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.prior --priors {input.priors} --out {output.png}"
        " --figure-width-in {params.width} > {log} 2>&1"


rule report_label_budget:
    input:
        results=f"{RESULTS}/results.csv",
    output:
        png=report(
            f"{REPORT}/label_budget.png",
            caption="../report/label_budget.rst",
            category="Results",
            labels={"figure": "accuracy against the label budget"},
        ),
        svg=f"{REPORT}/label_budget.svg",
    log:
        f"{LOGS}/report_label_budget.log",
    benchmark:
        f"{BENCHMARKS}/report_label_budget.tsv"
    params:
        plot=report_params("top_k", "error_bar", "figure_width_in"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.results_figures label_budget --results {input.results} --out {output.png}"
        " --params-json {params.plot:q} > {log} 2>&1"


rule report_training_curves:
    input:
        metrics=[path for path in pretrain_outputs() if path.endswith("metrics.jsonl")],
    output:
        png=report(
            f"{REPORT}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Pretraining",
            labels={"figure": "training curves"},
        ),
        svg=f"{REPORT}/training_curves.svg",
    log:
        f"{LOGS}/report_training_curves.log",
    benchmark:
        f"{BENCHMARKS}/report_training_curves.tsv"
    params:
        plot=report_params("error_bar", "figure_width_in"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.results_figures training_curves --metrics {input.metrics}"
        " --out {output.png} --params-json {params.plot:q} > {log} 2>&1"


rule report_table:
    input:
        results=f"{RESULTS}/results.csv",
        not_computed=f"{RESULTS}/not_computed.csv",
    output:
        markdown=f"{REPORT}/results_table.md",
        csv=f"{REPORT}/results_table.csv",
        html=report(
            f"{REPORT}/results_table.html",
            caption="../report/results_table.rst",
            category="Results",
            labels={"figure": "results table"},
        ),
    log:
        f"{LOGS}/report_table.log",
    benchmark:
        f"{BENCHMARKS}/report_table.tsv"
    params:
        table=json.dumps(config["report"]["table"], sort_keys=True),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.results_figures table --results {input.results} --out {output.markdown}"
        " --not-computed {input.not_computed} --params-json {params.table:q} > {log} 2>&1"


rule report_example_pairs:
    input:
        manifest=pool_path(FIRST_SEED, "manifest.parquet"),
        cache=display_cache(),
        neighbours=neighbour_table_path(FIRST_SEED),
        negatives=negative_table_path(FIRST_SEED),
    output:
        png=report(
            f"{REPORT}/example_pairs.png",
            caption="../report/example_pairs.rst",
            category="Pairs",
            labels={"figure": "example pairs"},
        ),
        svg=f"{REPORT}/example_pairs.svg",
    log:
        f"{LOGS}/report_example_pairs.log",
    benchmark:
        f"{BENCHMARKS}/report_example_pairs.tsv"
    params:
        augment_strength=config["pretrain"]["augment_strength"],
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.report.examples pairs --manifest {input.manifest} --cache {input.cache}"
        " --neighbours {input.neighbours} --negatives {input.negatives} --out {output.png}"
        " --augment-strength {params.augment_strength} > {log} 2>&1"


rule report_nearest_neighbours:
    input:
        manifest=pool_path(FIRST_SEED, "manifest.parquet"),
        splits=splits_path(FIRST_SEED),
        cache=display_cache(),
        embeddings=embeddings_path,
    output:
        png=report(
            f"{REPORT}/nearest_neighbours/{{strategy}}_seed{{seed}}.png",
            caption="../report/nearest_neighbours.rst",
            category="Retrieval",
            labels={"strategy": "{strategy}", "seed": "{seed}"},
        ),
        svg=f"{REPORT}/nearest_neighbours/{{strategy}}_seed{{seed}}.svg",
    log:
        f"{LOGS}/report_nearest_neighbours_{{strategy}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/report_nearest_neighbours_{{strategy}}_seed{{seed}}.tsv"
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.report.examples neighbours --manifest {input.manifest} --splits {input.splits}"
        " --cache {input.cache} --embeddings {input.embeddings} --strategy {wildcards.strategy}"
        " --run-seed {wildcards.seed} --out {output.png} > {log} 2>&1"


rule report_embedding:
    input:
        manifest=pool_path(FIRST_SEED, "manifest.parquet"),
        splits=splits_path(FIRST_SEED),
        embeddings=embeddings_path,
    output:
        png=report(
            f"{REPORT}/embedding/{{strategy}}_seed{{seed}}.png",
            caption="../report/embedding.rst",
            category="Embeddings",
            labels={"strategy": "{strategy}", "seed": "{seed}"},
        ),
        svg=f"{REPORT}/embedding/{{strategy}}_seed{{seed}}.svg",
    log:
        f"{LOGS}/report_embedding_{{strategy}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/report_embedding_{{strategy}}_seed{{seed}}.tsv"
    conda:
        "../envs/train.yaml"
    shell:
        # One thread: t-SNE's OpenMP threads measured up to 8x slower on a busy 2-core machine.
        "python -m geocontrast.report.embedding --manifest {input.manifest} --splits {input.splits}"
        " --embeddings {input.embeddings} --strategy {wildcards.strategy} --run-seed {wildcards.seed}"
        " --out {output.png} --threads 1 > {log} 2>&1"


rule report_map:
    input:
        unpack(map_inputs),
    output:
        png=report(
            f"{REPORT}/map_{{kind}}.png", caption="../report/maps.rst", category="Maps", labels={"map": "{kind}"}
        ),
        svg=f"{REPORT}/map_{{kind}}.svg",
    log:
        f"{LOGS}/report_map_{{kind}}.log",
    benchmark:
        f"{BENCHMARKS}/report_map_{{kind}}.tsv"
    params:
        inputs=map_arguments,
    wildcard_constraints:
        kind="splits|radius|ranges",
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.report.maps {wildcards.kind} {params.inputs} --out {output.png} > {log} 2>&1"


rule report_tasks:
    input:
        results=f"{RESULTS}/results.csv",
    output:
        png=report(
            f"{REPORT}/tasks.png",
            caption="../report/tasks.rst",
            category="Downstream tasks",
            labels={"figure": "downstream tasks"},
        ),
        svg=f"{REPORT}/tasks.svg",
    log:
        f"{LOGS}/report_tasks.log",
    benchmark:
        f"{BENCHMARKS}/report_tasks.tsv"
    params:
        plot=report_params("error_bar", "figure_width_in", "label_fraction"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.task_figures tasks --results {input.results} --out {output.png}"
        " --params-json {params.plot:q} > {log} 2>&1"


rule report_mislabel_roc:
    input:
        mislabel_records(),
    output:
        png=report(
            f"{REPORT}/mislabel_roc.png",
            caption="../report/mislabel_roc.rst",
            category="Downstream tasks",
            labels={"figure": "mislabel detection ROC"},
        ),
        svg=f"{REPORT}/mislabel_roc.svg",
    log:
        f"{LOGS}/report_mislabel_roc.log",
    benchmark:
        f"{BENCHMARKS}/report_mislabel_roc.tsv"
    params:
        plot=report_params("figure_width_in"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.task_figures mislabel_roc --records {input} --out {output.png}"
        " --params-json {params.plot:q} > {log} 2>&1"


rule report_pairs:
    input:
        pair_records(),
    output:
        png=report(
            f"{REPORT}/pairs.png",
            caption="../report/pairs.rst",
            category="Pairs",
            labels={"figure": "what the pairs share"},
        ),
        svg=f"{REPORT}/pairs.svg",
        table=f"{REPORT}/pairs.csv",
    log:
        f"{LOGS}/report_pairs.log",
    benchmark:
        f"{BENCHMARKS}/report_pairs.tsv"
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.pairs --pairs {input} --out {output.png} --table {output.table} > {log} 2>&1"


rule report_sweep_position:
    input:
        sweep=sweep_table(),
        pairs=pair_records(),
    output:
        png=report(
            f"{REPORT}/sweep_position.png",
            caption="../report/sweep_position.rst",
            category="Pairs",
            labels={"figure": "the collection on the purity sweep"},
        ),
        svg=f"{REPORT}/sweep_position.svg",
    log:
        f"{LOGS}/report_sweep_position.log",
    benchmark:
        f"{BENCHMARKS}/report_sweep_position.tsv"
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.sweep_position --sweep {input.sweep} --pairs {input.pairs}"
        " --out {output.png} > {log} 2>&1"


rule report_comparisons:
    input:
        comparisons=f"{RESULTS}/comparisons.csv",
    output:
        png=report(
            f"{REPORT}/comparisons.png",
            caption="../report/comparisons.rst",
            category="Results",
            labels={"figure": "paired comparisons (forest plot)"},
        ),
        svg=f"{REPORT}/comparisons.svg",
    log:
        f"{LOGS}/report_comparisons.log",
    benchmark:
        f"{BENCHMARKS}/report_comparisons.tsv"
    params:
        plot=report_params("figure_width_in", "label_fraction"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.report.forest --comparisons {input.comparisons} --out {output.png}"
        " --params-json {params.plot:q} > {log} 2>&1"


rule report_cam:
    input:
        cams=cam_paths(),
        cache=display_cache(),
    output:
        png=report(
            f"{REPORT}/cam.png",
            caption="../report/cam.rst",
            category="Results",
            labels={"figure": "class-activation maps of the fine-tuned classifiers"},
        ),
        svg=f"{REPORT}/cam.svg",
    log:
        f"{LOGS}/report_cam.log",
    benchmark:
        f"{BENCHMARKS}/report_cam.tsv"
    params:
        strategies=joined(evaluated_strategies()),
        width=config["report"]["figure_width_in"],
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.report.cam --cams {input.cams} --strategies {params.strategies}"
        " --cache {input.cache} --out {output.png} --figure-width-in {params.width} > {log} 2>&1"
