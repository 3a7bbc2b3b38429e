# Data stage: source -> validated manifest -> image cache per resolution -> splits. The synthetic world is one
# source; the real-data sources (sources.smk) write the same two outputs. The world also writes what its truth
# knows: occurrence records without photos, and per replicate the oracle the geographic prior is scored against.
# With world.per_replicate each replicate draws its own world, so the world, manifest and caches are per replicate
# too (pool_folder: replicates/<r>/, their jobs' {rep} the replicate); else one pool serves every replicate.


if config["dataset"]["source"] == "synthetic":

    rule synthetic_world:
        output:
            source=f"{pool_folder()}/source/photos.parquet",
            images=directory(f"{pool_folder()}/images"),
            truth=f"{pool_folder()}/world/truth.npz",
            taxonomy=f"{pool_folder()}/world/taxonomy.parquet",
            stats=f"{pool_folder()}/world/stats.json",
        log:
            f"{LOGS}/synthetic_world{POOL_TAG}.log",
        benchmark:
            f"{BENCHMARKS}/synthetic_world{POOL_TAG}.tsv"
        params:
            world=world_json(),
            world_dir=truth_folder,
        priority: BEFORE_PRETRAINING_PRIORITY
        conda:
            "../envs/data.yaml"
        threads: 8
        shell:
            "python -m geocontrast.data.synthetic --world-json {params.world:q} --source {output.source}"
            " --image-root {output.images} --world-dir {params.world_dir} --workers {threads} > {log} 2>&1"

    rule world_occurrences:
        output:
            f"{pool_folder()}/world/occurrences.csv",
        log:
            f"{LOGS}/world_occurrences{POOL_TAG}.log",
        params:
            world=world_json(with_occurrences=True),
        conda:
            "../envs/data.yaml"
        shell:
            "python -m geocontrast.data.synthetic.truth --world-json {params.world:q} --out {output} > {log} 2>&1"

    # What the world's truth allows a prior on a replicate's test photos (the oracle's ranked species, the true
    # ranges): a product of the world that the prior's scoring reads.
    rule world_oracle:
        input:
            truth=f"{pool_folder()}/world/truth.npz",
            taxonomy=f"{pool_folder()}/world/taxonomy.parquet",  # read beside truth.npz
            manifest=f"{pool_folder()}/manifest.parquet",
            splits=f"{RESULTS}/replicates/{{rep}}/splits.parquet",
        output:
            f"{RESULTS}/replicates/{{rep}}/oracle.npz",
        log:
            f"{LOGS}/world_oracle_rep{{rep}}.log",
        benchmark:
            f"{BENCHMARKS}/world_oracle_rep{{rep}}.tsv"
        conda:
            "../envs/data.yaml"
        shell:
            "python -m geocontrast.data.synthetic.oracle --truth {input.truth} --manifest {input.manifest}"
            " --splits {input.splits} --out {output} > {log} 2>&1"


# The manifest also hashes every photo and groups the near-duplicates (dataset.near_duplicates), which the splits
# keep together (or of which only one is kept).
rule manifest:
    input:
        source=f"{pool_folder()}/source/photos.parquet",
        images=f"{pool_folder()}/images",
    output:
        manifest=f"{pool_folder()}/manifest.parquet",
        summary=f"{pool_folder()}/manifest_summary.json",
        near_duplicates=f"{pool_folder()}/near_duplicates.parquet",
    log:
        f"{LOGS}/manifest{POOL_TAG}.log",
    benchmark:
        f"{BENCHMARKS}/manifest{POOL_TAG}.tsv"
    params:
        near_duplicates=json.dumps(config["dataset"]["near_duplicates"], sort_keys=True),
    priority: BEFORE_PRETRAINING_PRIORITY
    conda:
        "../envs/data.yaml"
    threads: 8
    shell:
        "python -m geocontrast.data.manifest --source {input.source} --image-root {input.images}"
        " --out {output.manifest} --summary {output.summary} --near-duplicates {output.near_duplicates}"
        " --near-duplicates-json {params.near_duplicates:q} --workers {threads} > {log} 2>&1"


rule image_cache:
    input:
        manifest=f"{pool_folder()}/manifest.parquet",
        images=f"{pool_folder()}/images",
    output:
        cache=f"{pool_folder()}/cache/{{res}}px.npy",
        report=f"{pool_folder()}/cache/{{res}}px.json",
    log:
        f"{LOGS}/image_cache{POOL_TAG}_{{res}}px.log",
    benchmark:
        f"{BENCHMARKS}/image_cache{POOL_TAG}_{{res}}px.tsv"
    params:
        skip_corrupt="--skip-corrupt" if config["image_cache"]["skip_corrupt"] else "",
    priority: BEFORE_PRETRAINING_PRIORITY
    conda:
        "../envs/data.yaml"
    threads: 8
    shell:
        "python -m geocontrast.data.cache --manifest {input.manifest} --image-root {input.images}"
        " --resolution {wildcards.res} --out {output.cache} --report {output.report}"
        " --workers {threads} {params.skip_corrupt} > {log} 2>&1"


# A degraded copy of a cache for the arms that pretrain on worse photos (pretrain.arms.<arm>.quality).
rule degraded_cache:
    input:
        f"{pool_folder()}/cache/{{res}}px.npy",
    output:
        f"{pool_folder()}/cache/{{res}}px_{{quality}}.npy",
    log:
        f"{LOGS}/degraded_cache{POOL_TAG}_{{res}}px_{{quality}}.log",
    benchmark:
        f"{BENCHMARKS}/degraded_cache{POOL_TAG}_{{res}}px_{{quality}}.tsv"
    params:
        seed=config["image_cache"]["quality_seed"],
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.data.quality --cache {input} --quality {wildcards.quality} --seed {params.seed}"
        " --out {output} > {log} 2>&1"


rule splits:
    input:
        manifest=f"{pool_folder()}/manifest.parquet",
        near_duplicates=f"{pool_folder()}/near_duplicates.parquet",
    output:
        splits=f"{RESULTS}/replicates/{{rep}}/splits.parquet",
        summary=f"{RESULTS}/replicates/{{rep}}/splits_summary.json",
    log:
        f"{LOGS}/splits_rep{{rep}}.log",
    benchmark:
        f"{BENCHMARKS}/splits_rep{{rep}}.tsv"
    params:
        mode=config["splits"]["mode"],
        fractions=joined(config["splits"]["fractions"]),
        label_fractions=joined(config["splits"]["label_fractions"]),
        seed=replicate_seed_of("splits/seed"),
        block_km=config["splits"]["block_km"],
        min_labelled=config["splits"]["min_labelled_per_species"],
    priority: BEFORE_PRETRAINING_PRIORITY
    conda:
        "../envs/data.yaml"
    shell:
        "python -m geocontrast.data.splits --manifest {input.manifest} --out {output.splits}"
        " --summary {output.summary} --mode {params.mode} --fractions {params.fractions}"
        " --label-fractions {params.label_fractions} --seed {params.seed}"
        " --block-km {params.block_km} --min-labelled-per-species {params.min_labelled}"
        " --near-duplicates {input.near_duplicates} > {log} 2>&1"
