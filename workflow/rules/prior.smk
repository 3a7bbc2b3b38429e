# The geographic prior stage (geocontrast.prior): per replicate and label budget, a presence-only location model
# P(species | lat, lon[, date]) from the labelled train photos (and an occurrence table when given), its
# probabilities for every photo, its own scores and, on the synthetic world, the oracle's limits.


rule geo_prior:
    input:
        unpack(geo_prior_inputs),
    output:
        probs=f"{RESULTS}/replicates/{{rep}}/geoprior/l{{pct}}/probs.npy",
        summary=f"{RESULTS}/replicates/{{rep}}/geoprior/l{{pct}}/prior.json",
        grid=f"{RESULTS}/replicates/{{rep}}/geoprior/l{{pct}}/grid.npz",
    log:
        f"{LOGS}/geo_prior_rep{{rep}}_l{{pct}}.log",
    benchmark:
        f"{BENCHMARKS}/geo_prior_rep{{rep}}_l{{pct}}.tsv"
    params:
        geoprior=json.dumps(config["evaluate"]["geoprior"], sort_keys=True),
        seed=replicate_seed_of("evaluate/geoprior_seed"),
        out_dir=output_folder,
        extra=geo_prior_arguments,
    conda:
        "../envs/train.yaml"
    threads: 1  # a small MLP: a second thread measured slower on 2 busy cores
    shell:
        "python -m geocontrast.prior.fit --manifest {input.manifest} --splits {input.splits}"
        " --label-fraction {wildcards.pct} --out-dir {params.out_dir} --params-json {params.geoprior:q}"
        " --seed {params.seed} {params.extra} --threads {threads} > {log} 2>&1"
