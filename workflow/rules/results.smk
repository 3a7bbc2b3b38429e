# The results stage (geocontrast.results): the results table over every evaluation record, and the paired
# comparisons with their intervals.


rule results_table:
    input:
        evaluations=evaluation_outputs(),
        pairs=pair_records(),
        priors=prior_records(),
        collections=pool_paths("manifest_summary.json"),
        sweep=sweep_table(),
    output:
        table=f"{RESULTS}/results.csv",
        summary=f"{RESULTS}/results_summary.csv",
        text=f"{RESULTS}/results_summary.txt",
        not_computed=f"{RESULTS}/not_computed.csv",
    log:
        f"{LOGS}/results_table.log",
    benchmark:
        f"{BENCHMARKS}/results_table.tsv"
    params:
        priors=priors_argument,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m geocontrast.results.table {input.evaluations} --pairs {input.pairs} --out {output.table}"
        " --summary {output.summary} --text {output.text} --not-computed {output.not_computed}"
        " {params.priors} --collections {input.collections} --sweep {input.sweep} > {log} 2>&1"


# Paired comparisons (geocontrast.results.comparisons, the CLI of .compare and .compare_text): every strategy
# against compare.reference and against random_init, per protocol and label budget, with intervals. The evaluation
# JSONs supply the per-photo hits for the test-photo bootstrap when replicates share one test split.
rule comparisons:
    input:
        unpack(shared_split_inputs),
        results=f"{RESULTS}/results.csv",
        evaluations=evaluation_outputs(),
        splits=resampled_splits_summaries(),
    output:
        table=f"{RESULTS}/comparisons.csv",
        text=report(
            f"{RESULTS}/comparisons.txt",
            caption="../report/comparisons_text.rst",
            category="Results",
            labels={"figure": "primary result and comparisons (text)"},
        ),
    log:
        f"{LOGS}/comparisons.log",
    benchmark:
        f"{BENCHMARKS}/comparisons.tsv"
    params:
        compare=json.dumps(config["compare"], sort_keys=True),
        shared=shared_split_arguments,
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.results.comparisons --results {input.results} --evaluations {input.evaluations}"
        " --splits-summaries {input.splits} {params.shared} --out {output.table} --text {output.text}"
        " --params-json {params.compare:q} > {log} 2>&1"
