# Real-data sources: each writes what synthetic_world writes, the photo table and the image folder, for the manifest
# rule. Only the rule of the configured dataset.source is defined, so the shared outputs are never ambiguous.
# Downloads and API answers stay in the source's cache_dir between runs (outside results/, so `make clean` keeps them).


if config["dataset"]["source"] == "inat2021":

    rule inat2021:
        output:
            source=f"{RESULTS}/source/photos.parquet",
            images=directory(f"{RESULTS}/images"),
        log:
            f"{LOGS}/inat2021.log",
        benchmark:
            f"{BENCHMARKS}/inat2021.tsv"
        params:
            settings=source_settings("inat2021"),
            cache_dir=config["dataset"]["inat2021"]["cache_dir"],
        conda:
            "../envs/data.yaml"
        threads: 1
        shell:
            "python -m geocontrast.data.inat2021 --config-json {params.settings:q} --source {output.source}"
            " --image-root {output.images} --cache-dir {params.cache_dir:q} > {log} 2>&1"


if config["dataset"]["source"] == "inat_api":

    rule inat_api:
        output:
            source=f"{RESULTS}/source/photos.parquet",
            images=directory(f"{RESULTS}/images"),
        log:
            f"{LOGS}/inat_api.log",
        benchmark:
            f"{BENCHMARKS}/inat_api.tsv"
        params:
            settings=source_settings("inat_api"),
            cache_dir=config["dataset"]["inat_api"]["cache_dir"],
        conda:
            "../envs/data.yaml"
        threads: 1
        shell:
            "python -m geocontrast.data.inat_api --config-json {params.settings:q} --source {output.source}"
            " --image-root {output.images} --cache-dir {params.cache_dir:q} > {log} 2>&1"


if config["dataset"]["source"] == "csv":
    if not config["dataset"]["csv"]["path"]:
        raise ValueError("dataset.source is csv: set dataset.csv.path to the CSV file listing your photos")

    rule csv:
        input:
            csv=config["dataset"]["csv"]["path"],
        output:
            source=f"{RESULTS}/source/photos.parquet",
            images=directory(f"{RESULTS}/images"),
        log:
            f"{LOGS}/csv.log",
        benchmark:
            f"{BENCHMARKS}/csv.tsv"
        params:
            settings=source_settings("csv"),
        conda:
            "../envs/data.yaml"
        threads: 1
        shell:
            "python -m geocontrast.data.csv_source --config-json {params.settings:q} --source {output.source}"
            " --image-root {output.images} > {log} 2>&1"


if config["dataset"]["source"] == "inat_export":
    if not config["dataset"]["inat_export"]["path"]:
        raise ValueError("dataset.source is inat_export: set dataset.inat_export.path to the export's CSV or zip")

    rule inat_export:
        input:
            export=config["dataset"]["inat_export"]["path"],
        output:
            source=f"{RESULTS}/source/photos.parquet",
            images=directory(f"{RESULTS}/images"),
        log:
            f"{LOGS}/inat_export.log",
        benchmark:
            f"{BENCHMARKS}/inat_export.tsv"
        params:
            settings=source_settings("inat_export"),
            cache_dir=config["dataset"]["inat_export"]["cache_dir"],
        conda:
            "../envs/data.yaml"
        threads: 1
        shell:
            "python -m geocontrast.data.inat_export --config-json {params.settings:q} --source {output.source}"
            " --image-root {output.images} --cache-dir {params.cache_dir:q} > {log} 2>&1"


if config["dataset"]["source"] == "dwca":
    if not config["dataset"]["dwca"]["path"]:
        raise ValueError("dataset.source is dwca: set dataset.dwca.path to the archive (.zip or its folder)")

    rule dwca:
        input:
            archive=config["dataset"]["dwca"]["path"],
        output:
            source=f"{RESULTS}/source/photos.parquet",
            images=directory(f"{RESULTS}/images"),
        log:
            f"{LOGS}/dwca.log",
        benchmark:
            f"{BENCHMARKS}/dwca.tsv"
        params:
            settings=source_settings("dwca"),
            cache_dir=config["dataset"]["dwca"]["cache_dir"],
        conda:
            "../envs/data.yaml"
        threads: 1
        shell:
            "python -m geocontrast.data.dwca --config-json {params.settings:q} --source {output.source}"
            " --image-root {output.images} --cache-dir {params.cache_dir:q} > {log} 2>&1"


if config["dataset"]["source"] == "folder":
    if not config["dataset"]["folder"]["path"]:
        raise ValueError("dataset.source is folder: set dataset.folder.path to the folder of photos")

    rule folder:
        input:
            folder=config["dataset"]["folder"]["path"],
            sidecar=folder_sidecar(),
        output:
            source=f"{RESULTS}/source/photos.parquet",
            images=directory(f"{RESULTS}/images"),
        log:
            f"{LOGS}/folder.log",
        benchmark:
            f"{BENCHMARKS}/folder.tsv"
        params:
            settings=source_settings("folder"),
        conda:
            "../envs/data.yaml"
        threads: 1
        shell:
            "python -m geocontrast.data.folder --config-json {params.settings:q} --source {output.source}"
            " --image-root {output.images} > {log} 2>&1"
