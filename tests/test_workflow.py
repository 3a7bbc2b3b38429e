"""The Snakemake workflow end to end on the tiny world: outputs, caching, and what a config change re-runs."""

from __future__ import annotations

import json
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

from geocontrast import registry
from geocontrast.data.cache import load_image_cache
from geocontrast.data.manifest import read_manifest
from geocontrast.geo.negatives import load_negative_table
from geocontrast.geo.neighbours import load_neighbour_table


def snakemake_command(
    workdir: Path, *args: str, configfile: Path = TINY_CONFIG, python_flags: tuple[str, ...] = ()
) -> tuple[list[str], dict]:
    """The command line and environment that run the repository's workflow in workdir, with this interpreter's
    environment first on PATH (``python_flags``: options of the interpreter that runs Snakemake)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        sys.executable,
        *python_flags,
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


def snakemake(workdir: Path, *args: str, configfile: Path = TINY_CONFIG, **options) -> subprocess.CompletedProcess:
    """Run the repository's workflow in workdir to the end (see :func:`snakemake_command`)."""
    command, env = snakemake_command(workdir, *args, configfile=configfile, **options)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table."""
    table = result.stdout.split("Job stats:")[-1]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if name != "total"}


@pytest.fixture(scope="module")
def default_dry_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """A dry run of the default config, its imports timed (python -X importtime writes them to stderr)."""
    workdir = tmp_path_factory.mktemp("default_dry_run")
    return snakemake(workdir, "-n", configfile=REPO / "config" / "config.yaml", python_flags=("-X", "importtime"))


def imported_modules(importtime_log: str) -> set[str]:
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+([\w.]+)$", importtime_log, re.M))


def test_dry_run_of_the_default_config_plans_every_stage(default_dry_run):
    assert default_dry_run.returncode == 0, default_dry_run.stderr[-3000:]
    strategies, seeds = 4 + 1, 3  # four pretrained strategies and the random-init baseline
    assert planned_jobs(default_dry_run) == {
        "synthetic_world": seeds,  # each replicate its own world (world.per_replicate)
        "manifest": seeds,
        "image_cache": 2 * seeds,
        "splits": seeds,  # one data replicate per seed (splits.resample)
        "neighbour_table": seeds,
        "negative_table": seeds,
        "pretrain": 3 * seeds,
        "pretrain_at_budget": seeds,  # supervised: once per evaluated label budget (one by default)
        "world_oracle": seeds,  # what the world's truth allows the prior on each replicate's test photos
        "geo_prior": seeds,
        "evaluate_frozen": (strategies - 1) * seeds,  # embeds once, then linear and knn at every budget
        "evaluate_frozen_at_budget": seeds,  # supervised: the encoder of each budget
        "finetune": strategies * seeds,
        "cam": strategies,  # the class-activation maps' classifiers: first seed, report.label_fraction
        "report_cam": 1,
        "most_common_baseline": seeds,
        "results_table": 1,
        "comparisons": 1,
        "report_pairs": 1,
        "report_comparisons": 1,
        "report_accuracy": 1,
        "report_ranks": 1,
        "report_geo_prior": 1,
        "report_prior": 1,
        "report_training_curves": 1,
        "report_table": 1,
        "report_example_pairs": 1,
        "report_map": 3,
        "report_nearest_neighbours": strategies,
        "report_embedding": strategies,
        "all": 1,
    }
    # No rule is even tried for a job it cannot do (the per-(strategy, seed) frozen rule for a label-trained
    # strategy used to raise in its input function, tolerated but printed for every such job).
    assert "Exception" not in default_dry_run.stderr, default_dry_run.stderr[-3000:]


def test_planning_imports_neither_torch_nor_numba(default_dry_run):
    modules = imported_modules(default_dry_run.stderr)
    assert "snakemake.workflow" in modules and "geocontrast.registry" in modules  # the log is the dry run's
    heavy = sorted(name for name in modules if name.split(".")[0] in ("torch", "numba"))
    assert not heavy, heavy[:10]


@pytest.mark.parametrize(
    "name, pretrained, frozen_jobs",
    [
        ("ablation", {"cpn_weak_near", "cpn_unmasked", "augmented_no_hue"}, 11 * 3),
        ("quality", {"augmented_down4", "context_pos_neg_down4"}, 8 * 3),
    ],
)
def test_the_shipped_arm_configs_plan_every_arm(tmp_path, name, pretrained, frozen_jobs):
    result = snakemake(tmp_path, "-n", configfile=REPO / "config" / f"{name}.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Exception" not in result.stderr, result.stderr[-3000:]
    trained = set(re.findall(r"pretrain/(\w+)/seed0/encoder\.pt", result.stdout))
    assert pretrained <= trained, sorted(trained)
    assert planned_jobs(result)["evaluate_frozen"] == frozen_jobs  # the arms, their bases and random_init


def test_families_config_plans_every_strategy_and_task_with_only_the_geo_tables_it_uses(tmp_path):
    result = snakemake(tmp_path, "-n", configfile=REPO / "config" / "families.yaml")
    assert result.returncode == 0, result.stderr
    strategies, seeds = 11 + 1, 3
    jobs = planned_jobs(result)
    assert jobs["pretrain"] + jobs["pretrain_at_budget"] == 11 * seeds  # supervised, classifier: at one budget
    assert jobs["evaluate_frozen"] + jobs["evaluate_frozen_at_budget"] == strategies * seeds  # 2 protocols, 5 tasks
    frozen = re.search(r"^Shell command: python -m geocontrast.evaluate.frozen .*$", result.stdout, re.M)
    assert "--protocols linear knn genus_probe family_probe genus_pairs mislabel clustering " in frozen[0]
    assert jobs["genus_pairs"] == seeds  # one set of genus pairs per data replicate
    assert jobs["report_tasks"] == 1 and jobs["report_mislabel_roc"] == 1
    assert "finetune" not in jobs
    tables = {}
    for block in re.split(r"rule pretrain(?:_at_budget)?:", result.stdout)[1:]:
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
        "swav": (False, False),
        "oracle": (False, False),
    }


def test_the_registry_lists_exactly_the_strategy_classes():
    from geocontrast.strategies import STRATEGIES

    assert list(registry.STRATEGIES) == list(STRATEGIES)
    assert all(strategy.name == name for name, strategy in STRATEGIES.items())


def test_the_schema_offers_exactly_the_registered_protocols_and_tasks():
    evaluate = json.loads((REPO / "workflow" / "schemas" / "config.schema.json").read_text())["properties"]["evaluate"][
        "properties"
    ]
    assert sorted(evaluate["protocols"]["items"]["enum"]) == sorted(registry.PROTOCOLS)
    assert sorted(evaluate["tasks"]["items"]["enum"]) == sorted(registry.TASKS)
    sections = {spec.section for spec in (*registry.PROTOCOLS.values(), *registry.TASKS.values())}
    assert sections <= set(evaluate)


def arm_config(tmp_path: Path, arms: dict, strategies: list[str]) -> Path:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["pretrain"].update(strategies=strategies, arms=arms, seeds=[0])
    path = tmp_path / "arms.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_arm_trains_its_base_strategy_with_its_options_and_only_the_tables_they_need(tmp_path):
    arms = {"triplet_random_negatives": {"strategy": "triplet", "options": {"negative": "random"}}}
    result = snakemake(tmp_path, "-n", configfile=arm_config(tmp_path, arms, ["triplet", "triplet_random_negatives"]))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["pretrain"] == 2 and jobs["evaluate_frozen"] == 3  # and random_init
    commands = re.findall(r"^Shell command: python -m geocontrast.train (.*)$", result.stdout, re.M)
    arm = next(command for command in commands if "/triplet_random_negatives/" in command)
    plain = next(command for command in commands if "/triplet/" in command)
    assert "--strategy triplet " in arm and '"negative": "random"' in arm
    assert "--neighbours " in arm and "--negatives " not in arm  # a random negative needs no negative table
    assert "--negatives " in plain and '"options": {}' in plain


def test_a_quality_arm_pretrains_on_its_degraded_cache_and_fused_pairs_read_both_embeddings(tmp_path):
    arms = {"augmented_down2": {"strategy": "augmented", "quality": "down2"}}
    path = arm_config(tmp_path, arms, ["augmented", "augmented_down2"])
    config = yaml.safe_load(path.read_text())
    config["evaluate"]["fusion"] = [["augmented", "augmented_down2"]]
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["degraded_cache"] == 1 and jobs["evaluate_fusion"] == 1
    commands = re.findall(r"^Shell command: python -m geocontrast\.(train|evaluate\.frozen|evaluate\.fusion) (.*)$",
                          result.stdout, re.M)  # fmt: skip
    caches = {(module, re.search(r"/(\w+)/seed0", command)[1]): re.search(r"--cache (\S+)", command)
              for module, command in commands}  # fmt: skip
    assert caches[("train", "augmented_down2")][1].endswith("/cache/32px_down2.npy")
    assert caches[("train", "augmented")][1].endswith("/cache/32px.npy")
    assert caches[("evaluate.frozen", "augmented_down2")][1].endswith("/cache/32px.npy")  # evaluated on clean photos
    fusion = next(command for module, command in commands if module == "evaluate.fusion")
    assert "embeddings/augmented/seed0.npy" in fusion and "embeddings/augmented_down2/seed0.npy" in fusion


def test_the_schema_offers_exactly_the_registered_qualities():
    schema = json.loads((REPO / "workflow" / "schemas" / "config.schema.json").read_text())
    arm = schema["properties"]["pretrain"]["properties"]["arms"]["additionalProperties"]
    assert arm["properties"]["quality"]["enum"] == list(registry.QUALITIES)


@pytest.mark.parametrize(
    ("arms", "strategies", "named"),
    [
        ({"fast": {"strategy": "triplet", "options": {"negativ": "random"}}}, ["fast"], "negativ"),
        ({"triplet": {"strategy": "triplet"}}, ["triplet"], "pretrain.arms.triplet"),
        ({}, ["not_a_strategy"], "not_a_strategy"),
    ],
)
def test_a_bad_arm_or_strategy_name_stops_the_dry_run_naming_it(tmp_path, arms, strategies, named):
    result = snakemake(tmp_path, "-n", configfile=arm_config(tmp_path, arms, strategies))
    assert result.returncode != 0 and named in result.stdout + result.stderr


@pytest.mark.slow
def test_tiny_world_runs_end_to_end(tiny_world_run):
    workdir, first = tiny_world_run
    results = workdir / "results" / "tiny"
    manifest = read_manifest(results / "replicates" / "0" / "manifest.parquet")  # replicate 0's world
    cache = load_image_cache(results / "replicates" / "0" / "cache" / "32px.npy")
    assert cache.shape == (len(manifest), 32, 32, 3)
    assert cache.reshape(len(cache), -1).std(axis=1).min() > 0  # every row holds a decoded photo
    neighbours = load_neighbour_table(results / "replicates" / "0" / "neighbours" / "r5_k64.npz")
    assert len(neighbours.indptr) == len(manifest) + 1
    assert not np.any(np.diff(neighbours.indptr)[~manifest["has_coords"].to_numpy()])  # no coords, no positives
    negatives = load_negative_table(results / "replicates" / "0" / "negatives" / "far_m64.npz")
    assert negatives.candidates.shape == (len(manifest), 64)

    encoder = results / "pretrain" / "context_pos_neg" / "seed0" / "encoder.pt"
    metrics = encoder.with_name("metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1 and encoder.with_name("last.pt").exists()
    embeddings = np.load(results / "embeddings" / "random_init" / "seed0.npy")
    assert embeddings.shape[0] == len(manifest) and embeddings.dtype == np.float16
    table = pd.read_csv(results / "results.csv")
    evaluated = {"supervised", "context_pos_neg", "random_init"}
    assert set(table["strategy"]) == evaluated | {"most_common"}
    assert len(table) == len(evaluated) * 2 * 3 + 2  # strategies x seeds x protocols, plus a baseline per replicate
    assert (table["replicate"] == table["seed"]).all()  # splits.resample: replicate r is seed r's data
    labels = table.groupby("strategy", dropna=False)["pretrain_label_fraction"].unique()  # labels it trained on
    assert list(labels["supervised"]) == [10] and list(labels["context_pos_neg"]) == [0]
    assert np.isnan(labels["random_init"]).all()  # no pretraining
    assert (results / "pretrain" / "supervised" / "seed1" / "l10" / "encoder.pt").exists()  # at its one budget
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
    assert set(comparisons["test_sampling"]) == {"in_replicates"}  # each replicate drew its own test split
    assert set(comparisons["interval"]) == {"t"}  # ... of its own world: independent replicates
    assert (comparisons["rho"] == 0).all() and set(comparisons["role"]) == {"exploratory"}
    primary, _, others = (results / "comparisons.txt").read_text().partition("\n")
    assert "not in this run" in primary  # the default primary compares with augmented, which the tiny run lacks
    output = first.stdout + first.stderr
    assert primary in output and others in output and output.index(primary) < output.index(summary)
    assert "What the geographic prior adds" in (results / "comparisons.txt").read_text()
    assert "Geographic prior alone" in summary
    report = results / "report"
    for figure in (
        "accuracy",
        "comparisons",
        "ranks",
        "geo_prior",
        "prior",
        "training_curves",
        "example_pairs",
        "map_ranges",
        "embedding/context_pos_neg_seed0",
        "nearest_neighbours/random_init_seed0",
    ):
        assert Image.open(report / f"{figure}.png").size[0] > 300, figure


@pytest.mark.slow
def test_replicates_draw_their_own_data_which_every_strategy_of_one_shares(tiny_world_run):
    results = tiny_world_run[0] / "results" / "tiny"
    replicates = [results / "replicates" / r for r in ("0", "1")]
    first, second = (read_manifest(replicate / "manifest.parquet") for replicate in replicates)
    assert not first[["lat", "lon"]].head(100).equals(second[["lat", "lon"]].head(100))  # two worlds
    assert (replicates[0] / "cache" / "32px.npy").read_bytes() != (replicates[1] / "cache" / "32px.npy").read_bytes()
    for table in ("neighbours/r5_k64.npz", "negatives/far_m64.npz"):
        tables = [np.load(results / "replicates" / r / table) for r in ("0", "1")]
        assert any(not np.array_equal(tables[0][key], tables[1][key]) for key in tables[0].files), table
    logs = tiny_world_run[0] / "results" / "logs" / "tiny"
    for seed in (0, 1):  # both strategies of one seed read that replicate's splits
        for strategy in ("supervised", "context_pos_neg"):
            record = json.loads((results / "eval" / strategy / f"seed{seed}" / "linear_l10.json").read_text())
            assert record["replicate"] == seed
    assert logs.exists()


def shell_commands(result: subprocess.CompletedProcess, module: str = r"\S+") -> list[str]:
    """The arguments of a dry run's commands that run ``python -m <module>`` (a regex)."""
    return re.findall(rf"^Shell command: python -m {module} (.*)$", result.stdout, re.M)


@pytest.mark.slow
def test_every_job_logs_its_output_and_its_errors(tiny_world_run):
    logs = tiny_world_run[0] / "results" / "logs" / "tiny"
    assert (logs / "synthetic_world_rep0.log").exists() and (logs / "synthetic_world_rep1.log").exists()
    frozen = (logs / "evaluate_frozen_context_pos_neg_seed0.log").read_text()
    assert "embeddings/context_pos_neg/seed0.npy: " in frozen  # printed to stdout
    assert "eval/context_pos_neg/seed0/knn_l10.json" in frozen
    summary = (tiny_world_run[0] / "results" / "tiny" / "results_summary.txt").read_text()
    assert summary in (logs / "results_table.log").read_text()  # the results CLI prints the table


@pytest.mark.slow
def test_tiny_world_report_gathers_the_figures(tiny_world_run, tmp_path):
    workdir = tiny_world_run[0]
    html = snakemake(workdir, "--report", str(tmp_path / "report.html"))
    assert html.returncode == 0, html.stderr
    assert "example_pairs.png" in (tmp_path / "report.html").read_text(errors="replace")


@pytest.mark.slow
def test_tiny_world_reruns_only_what_changed(tiny_world_run, tmp_path):
    workdir = tiny_world_run[0]
    again = snakemake(workdir, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    changed = tmp_path / "changed.yaml"
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["report"] = {"error_bar": "sem"}
    changed.write_text(yaml.safe_dump(config))
    replot = planned_jobs(snakemake(workdir, "-n", configfile=changed))
    assert "report_accuracy" in replot and all(job.startswith("report_") or job == "all" for job in replot), replot

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["neighbours"] = {"radius_km": 2.5}
    changed.write_text(yaml.safe_dump(config))
    rerun = planned_jobs(snakemake(workdir, "-n", configfile=changed))
    assert rerun["neighbour_table"] == 2 and "splits" not in rerun  # one table per data replicate
    assert rerun["pretrain"] == 2 and rerun["evaluate_frozen"] == 2  # only the geo strategy's seeds


def test_a_label_trained_strategy_is_pretrained_and_evaluated_at_each_label_budget(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["splits"] = {"label_fractions": [0.1, 0.5, 1.0]}
    config["evaluate"] = {**config["evaluate"], "label_fractions": [10, 50]}
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    seeds = 2
    assert jobs["pretrain"] == seeds  # context_pos_neg: one encoder per seed, evaluated at both budgets
    assert jobs["pretrain_at_budget"] == 2 * seeds  # supervised: one encoder per seed and budget
    assert jobs["evaluate_frozen"] == 2 * seeds and jobs["evaluate_frozen_at_budget"] == 2 * seeds  # + random_init
    training = {}
    for command in re.findall(r"^Shell command: python -m geocontrast.train (.*)$", result.stdout, re.M):
        folder = re.search(r"--out-dir results/tiny/pretrain/(\S+)", command).group(1)
        training[folder] = json.loads(re.search(r"--params-json '(.*?)'", command).group(1))["label_fraction"]
    assert training == {
        "context_pos_neg/seed0": 10,  # pretrain.label_fraction: the online kNN monitor's bank only
        "context_pos_neg/seed1": 10,
        "supervised/seed0/l10": 10,
        "supervised/seed0/l50": 50,
        "supervised/seed1/l10": 10,
        "supervised/seed1/l50": 50,
    }
    encoders = {}  # the frozen and fine-tuning evaluations of seed 0: (strategy, budget) -> encoders read
    evaluations = re.findall(r"^Shell command: python -m geocontrast\.evaluate(?:\.frozen)? (.*)$", result.stdout, re.M)
    for command in evaluations:
        encoder = re.search(r"--encoder results/tiny/pretrain/(\S+)/encoder\.pt", command)
        out = re.search(r"--out(?:-dir)? results/tiny/eval/(\w+)/seed0\b", command)
        if encoder and out:
            for budget in re.search(r"--label-fractions? ((?:[\d.]+ )+)", command).group(1).split():
                encoders.setdefault((out.group(1), budget), []).append(encoder.group(1))
    assert {key: sorted(paths) for key, paths in encoders.items()} == {
        ("supervised", "10"): ["supervised/seed0/l10"] * 2,  # frozen and fine-tuned
        ("supervised", "50"): ["supervised/seed0/l50"] * 2,
        ("context_pos_neg", "10"): ["context_pos_neg/seed0"] * 2,
        ("context_pos_neg", "50"): ["context_pos_neg/seed0"] * 2,
    }


def test_every_rule_that_runs_a_job_writes_a_benchmark_file():
    """bench/scale.py reads each job's time and memory from its benchmark file: a rule without one is a stage
    the scale rehearsal cannot see."""
    missing = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule |use rule )", path.read_text(), flags=re.M)[1:]:
            name = re.match(r"(?:use )?rule (\w+)", block).group(1)
            if name != "all" and "benchmark:" not in block.split("\n\n\n")[0]:
                missing.append(f"{path.name}: {name}")
    assert not missing, missing
