# Geo stage: neighbour tables (positives) and negative tables, from the validated manifest; one per data replicate,
# each drawn with its config seed + the replicate.


rule neighbour_table:
    input:
        manifest=f"{pool_folder()}/manifest.parquet",
    output:
        table=f"{RESULTS}/replicates/{{rep}}/neighbours/r{{radius_km}}_k{{k}}.npz",
        summary=f"{RESULTS}/replicates/{{rep}}/neighbours/r{{radius_km}}_k{{k}}.json",
    log:
        f"{LOGS}/neighbour_table_rep{{rep}}_r{{radius_km}}_k{{k}}.log",
    benchmark:
        f"{BENCHMARKS}/neighbour_table_rep{{rep}}_r{{radius_km}}_k{{k}}.tsv"
    params:
        seed=replicate_seed_of("neighbours/seed"),
        min_km=config["neighbours"]["min_km"],
        fallback=config["neighbours"]["fallback"],
        memory_budget_gb=config["neighbours"]["memory_budget_gb"],
        exclude_same_observer=("--exclude-same-observer" if config["neighbours"]["exclude_same_observer"] else ""),
    priority: BEFORE_PRETRAINING_PRIORITY
    conda:
        "../envs/data.yaml"
    threads: 8
    shell:
        "python -m geocontrast.geo.neighbours --manifest {input.manifest} --out {output.table}"
        " --summary {output.summary} --radius-km {wildcards.radius_km} --k {wildcards.k} --seed {params.seed}"
        " --min-km {params.min_km} --fallback {params.fallback} --memory-budget-gb {params.memory_budget_gb}"
        " {params.exclude_same_observer} --threads {threads} > {log} 2>&1"


rule negative_table:
    input:
        manifest=f"{pool_folder()}/manifest.parquet",
    output:
        table=f"{RESULTS}/replicates/{{rep}}/negatives/{{rule}}_m{{m}}.npz",
        summary=f"{RESULTS}/replicates/{{rep}}/negatives/{{rule}}_m{{m}}.json",
    log:
        f"{LOGS}/negative_table_rep{{rep}}_{{rule}}_m{{m}}.log",
    benchmark:
        f"{BENCHMARKS}/negative_table_rep{{rep}}_{{rule}}_m{{m}}.tsv"
    params:
        seed=replicate_seed_of("negatives/seed"),
        r_neg_km=config["negatives"]["r_neg_km"],
        band_km=joined(config["negatives"]["band_km"]),
    priority: BEFORE_PRETRAINING_PRIORITY
    conda:
        "../envs/data.yaml"
    threads: 8
    shell:
        "python -m geocontrast.geo.negatives --manifest {input.manifest} --out {output.table}"
        " --summary {output.summary} --m {wildcards.m} --rule {wildcards.rule} --r-neg-km {params.r_neg_km}"
        " --band-km {params.band_km} --seed {params.seed} --threads {threads} > {log} 2>&1"
