"""The Snakemake workflow end to end on the tiny world: outputs, caching, and what a config change re-runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, TINY_CONFIG
from PIL import Image

from geocontrast.data.cache import load_image_cache
from geocontrast.data.manifest import read_manifest
from geocontrast.geo.negatives import load_negative_table
from geocontrast.geo.neighbours import load_neighbour_table


def snakemake_command(workdir: Path, *args: str, configfile: Path = TINY_CONFIG) -> tuple[list[str], dict]:
    """The command line and environment that run the repository's workflow in workdir, with this interpreter's
    environment first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *args,
    ]
    return command, env


def snakemake(workdir: Path, *args: str, configfile: Path = TINY_CONFIG) -> subprocess.CompletedProcess:
    """Run the repository's workflow in workdir to the end (see :func:`snakemake_command`)."""
    command, env = snakemake_command(workdir, *args, configfile=configfile)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table."""
    table = result.stdout.split("Job stats:")[-1]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if name != "total"}


def test_dry_run_of_the_default_config_plans_every_stage(tmp_path):
    result = snakemake(tmp_path, "-n", configfile=REPO / "config" / "config.yaml")
    assert result.returncode == 0, result.stderr
    strategies, seeds = 4 + 1, 3  # four pretrained strategies and the random-init baseline
    assert planned_jobs(result) == {
        "synthetic_world": 1,
        "manifest": 1,
        "image_cache": 2,
        "splits": 1,
        "neighbour_table": 1,
        "negative_table": 1,
        "pretrain": 4 * seeds,
        "embed": strategies * seeds,
        "geo_prior": 1,
        "evaluate_frozen": 2 * strategies * seeds,
        "finetune": strategies * seeds,
        "most_common_baseline": 1,
        "results_table": 1,
        "comparisons": 1,
        "report_comparisons": 1,
        "report_accuracy": 1,
        "report_ranks": 1,
        "report_geo_prior": 1,
        "report_training_curves": 1,
        "report_table": 1,
        "report_example_pairs": 1,
        "report_map": 3,
        "report_nearest_neighbours": strategies,
        "report_embedding": strategies,
        "all": 1,
    }


def test_families_config_plans_every_strategy_and_task_with_only_the_geo_tables_it_uses(tmp_path):
    result = snakemake(tmp_path, "-n", configfile=REPO / "config" / "families.yaml")
    assert result.returncode == 0, result.stderr
    strategies, seeds, frozen = 10 + 1, 3, 2 + 5  # linear, knn and five tasks per strategy x seed
    jobs = planned_jobs(result)
    assert jobs["pretrain"] == 10 * seeds and jobs["evaluate_frozen"] == strategies * seeds * frozen
    assert jobs["genus_pairs"] == 1 and jobs["report_tasks"] == 1 and jobs["report_mislabel_roc"] == 1
    assert "finetune" not in jobs
    tables = {}
    for block in result.stdout.split("rule pretrain:")[1:]:
        inputs = re.search(r"input: (.*)", block).group(1)
        strategy = re.search(r"wildcards: strategy=(\w+)", block).group(1)
        tables[strategy] = ("neighbours/" in inputs, "negatives/" in inputs)
    assert tables == {
        "supervised": (False, False),
        "classifier": (False, False),
        "augmented": (False, False),
        "context_pos": (True, False),
        "context_pos_neg": (True, True),
        "triplet": (True, True),
        "autoencoder": (False, False),
        "simsiam": (False, False),
        "byol": (False, False),
        "oracle": (False, False),
    }


def test_the_schema_offers_exactly_the_registered_strategies():
    from geocontrast.strategies import STRATEGIES

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    pretrain = schema["properties"]["pretrain"]["properties"]
    assert sorted(pretrain["strategies"]["items"]["enum"]) == sorted(STRATEGIES)
    assert sorted(pretrain["strategy_options"]["properties"]) == sorted(STRATEGIES)


@pytest.mark.slow
def test_tiny_world_runs_end_to_end_and_reruns_only_what_changed(tmp_path):
    first = snakemake(tmp_path)
    assert first.returncode == 0, first.stderr
    results = tmp_path / "results" / "tiny"
    manifest = read_manifest(results / "manifest.parquet")
    cache = load_image_cache(results / "cache" / "32px.npy")
    assert cache.shape == (len(manifest), 32, 32, 3)
    assert cache.reshape(len(cache), -1).std(axis=1).min() > 0  # every row holds a decoded photo
    assert (tmp_path / "results" / "logs" / "tiny" / "synthetic_world.log").exists()
    neighbours = load_neighbour_table(results / "neighbours" / "r5_k64.npz")
    assert len(neighbours.indptr) == len(manifest) + 1
    assert not np.any(np.diff(neighbours.indptr)[~manifest["has_coords"].to_numpy()])  # no coords, no positives
    negatives = load_negative_table(results / "negatives" / "far_m64.npz")
    assert negatives.candidates.shape == (len(manifest), 64)

    encoder = results / "pretrain" / "context_pos_neg" / "seed0" / "encoder.pt"
    metrics = encoder.with_name("metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1 and encoder.with_name("last.pt").exists()
    table = pd.read_csv(results / "results.csv")
    evaluated = {"supervised", "context_pos_neg", "random_init"}
    assert set(table["strategy"]) == evaluated | {"most_common"}
    assert len(table) == len(evaluated) * 2 * 3 + 1  # strategies x seeds x protocols, plus the baseline
    assert table[["top1", "top5", "prior_top1", "acc_genus"]].notna().all().all()
    assert ((table["top1"] <= table["top5"]) & (table["acc_species"] <= table["acc_genus"] + 1e-12)).all()
    summary = (results / "results_summary.txt").read_text()
    assert summary in first.stdout + first.stderr  # the run ends by printing the table
    comparisons = pd.read_csv(results / "comparisons.csv")  # no `augmented` here: only the random_init reference
    assert set(zip(comparisons["strategy"], comparisons["reference"])) == {
        ("supervised", "random_init"),
        ("context_pos_neg", "random_init"),
    }
    assert len(comparisons) == 2 * 3 * 3 and (comparisons["n_pairs"] == 2).all()  # pairs x protocols x metrics
    assert set(comparisons["test_sampling"]) == {"photo_bootstrap"}  # the seeds share one split
    assert (results / "comparisons.txt").read_text() in first.stdout + first.stderr
    report = results / "report"
    for figure in (
        "accuracy",
        "comparisons",
        "ranks",
        "geo_prior",
        "training_curves",
        "example_pairs",
        "map_ranges",
        "embedding/context_pos_neg_seed0",
        "nearest_neighbours/random_init_seed0",
    ):
        assert Image.open(report / f"{figure}.png").size[0] > 300, figure
    html = snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert html.returncode == 0, html.stderr
    assert "example_pairs.png" in (tmp_path / "report.html").read_text(errors="replace")

    again = snakemake(tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    changed = tmp_path / "changed.yaml"
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["report"] = {"error_bar": "sem"}
    changed.write_text(yaml.safe_dump(config))
    replot = planned_jobs(snakemake(tmp_path, "-n", configfile=changed))
    assert "report_accuracy" in replot and all(job.startswith("report_") or job == "all" for job in replot), replot

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["neighbours"] = {"radius_km": 2.5}
    changed.write_text(yaml.safe_dump(config))
    rerun = planned_jobs(snakemake(tmp_path, "-n", configfile=changed))
    assert rerun["neighbour_table"] == 1 and "splits" not in rerun
    assert rerun["pretrain"] == 2 and rerun["embed"] == 2  # only the geo strategy's seeds, not supervised's
