"""bench/scale.py's arithmetic: stages of benchmark files, growth exponents, projection, scaled configs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("scale", REPO / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_benchmark_file_belongs_to_the_longest_rule_its_name_starts_with(scale):
    rules = scale.rule_names()
    assert scale.stage_of("report_map_species", rules) == "report_map"
    assert scale.stage_of("negative_table_rep0_far_m64", rules) == "negative_table"
    assert scale.stage_of("evaluate_frozen_context_pos_seed0", rules) == "evaluate_frozen"
    assert scale.stage_of("most_common_baseline_seed0_l10", rules) == "most_common_baseline"


def test_growth_exponents_recover_power_laws_and_project_along_them(scale):
    photos = [1_000, 4_000, 16_000]
    stages = pd.DataFrame(
        [{"photos": n, "stage": "knn", "seconds": 2e-3 * n**1.5, "cpu_seconds": n, "max_rss_mb": 100} for n in photos]
        + [{"photos": n, "stage": "table", "seconds": n / 100, "cpu_seconds": n, "max_rss_mb": n / 100} for n in photos]
    )
    exponents = scale.growth_exponents(stages).set_index("stage")
    assert exponents.loc["knn", "seconds_exponent"] == pytest.approx(1.5)
    assert exponents.loc["knn", "max_rss_mb_exponent"] == pytest.approx(0.0)
    assert exponents.loc["table", "max_rss_mb_exponent"] == pytest.approx(1.0)
    assert exponents.loc["knn", "cpu_seconds_exponent"] == pytest.approx(1.0)
    projected = scale.projection(stages, exponents.reset_index(), 64_000).set_index("stage")
    assert projected.loc["knn", "seconds"] == pytest.approx(2e-3 * 64_000**1.5)
    checks = scale.target_checks(stages, exponents.reset_index())
    assert not checks["exponent_ok"] and checks["worst_exponent"] == pytest.approx(1.5)


def test_a_scaled_config_keeps_photos_per_observer_and_applies_overrides(scale):
    base = {"dataset": {"name": "scale"}, "world": {"n_images": 500_000, "n_observers": 25_000}}
    config = scale.scaled_config(base, 50_000, ["world.taxonomy.n_orders=4", "pretrain.steps_per_epoch=10"])
    assert config["world"]["n_observers"] == 2_500 and config["world"]["n_images"] == 50_000
    assert config["world"]["taxonomy"] == {"n_orders": 4} and config["pretrain"]["steps_per_epoch"] == 10
    assert config["dataset"]["name"] == "scale_50000" and base["world"]["n_images"] == 500_000


def test_the_projection_to_the_issue_size_names_the_stages_over_the_memory_target(scale):
    stages = pd.DataFrame(
        [
            {"photos": n, "stage": "prior", "seconds": n / 100, "cpu_seconds": n / 100, "max_rss_mb": n / 10}
            for n in (5_000, 50_000)
        ]
        + [
            {"photos": n, "stage": "pretrain", "seconds": 3600.0, "cpu_seconds": 3600.0, "max_rss_mb": 2000}
            for n in (5_000, 50_000)
        ]
    )
    checks = scale.projected_checks(stages, scale.growth_exponents(stages), photos=500_000)
    assert checks["stages_over_max_rss"] == {"prior": pytest.approx(50_000.0)}  # 500,000 / 10 MB
    assert checks["hours_without_pretraining"] == pytest.approx(5_000 / 3600)  # the capped pretraining left out
    projected = scale.projection(stages, scale.growth_exponents(stages), 500_000)
    assert scale.highlighted_stages(projected) == ["prior", "pretrain"]  # longest first, then the largest memory
    assert scale.highlighted_stages(projected, per_measure=1) == ["prior"]


def test_a_jobs_exact_peak_rss_replaces_the_sampled_one_when_its_process_logged_it(scale, tmp_path):
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "run.snakemake.log").write_text(
        "localrule finetune:\n    input: a.npy\n    output: eval/s/seed0/finetune_l10.json, eval/s/seed0/f.pt\n"
        "    benchmark: benchmarks/finetune_s_seed0_l10.tsv\nShell command: python -m geocontrast.evaluate --x\n\n"
        "rule evaluate_frozen:\n    output: eval/s/seed0/linear_l10.json, eval/s/seed0/knn_l10.json\n"
        "    benchmark: benchmarks/evaluate_frozen_s_seed0.tsv\n"
        "Shell command: python -m geocontrast.evaluate.frozen --out-dir eval/s/seed0\n\n"
        "rule genus_pairs:\n    output: tasks/pairs.json\n    benchmark: benchmarks/genus_pairs.tsv\n"
        "Shell command: python -m geocontrast.evaluate.tasks --out tasks/pairs.json\n\n"
        "rule manifest:\n    output: manifest.parquet\n    benchmark: benchmarks/manifest.tsv\n"
        "Shell command: python -m geocontrast.data.manifest --out manifest.parquet\n"
    )
    jobs = scale.job_outputs(logs)
    assert jobs["finetune_s_seed0_l10"] == (
        "geocontrast.evaluate",
        ["eval/s/seed0/finetune_l10.json", "eval/s/seed0/f.pt"],
    )
    peak_log = tmp_path / "peak_rss.jsonl"
    evaluate, frozen = "src/geocontrast/evaluate/__main__.py", "src/geocontrast/evaluate/frozen.py"
    records = [
        {"argv": [evaluate, "--out", "eval/s/seed0/finetune_l10.json"], "max_rss_mb": 900.0},
        {"argv": [evaluate, "--out", "eval/s/seed0/finetune_l10.json"], "max_rss_mb": 700.0},  # run again: the last
        # only the folder of its outputs; the pairs file it reads is genus_pairs' output, not its job's
        {"argv": [frozen, "--pairs", "tasks/pairs.json", "--out-dir", "eval/s/seed0"], "max_rss_mb": 2000.0},
        {"argv": ["-m", "snakemake", "-n"], "max_rss_mb": 150.0},  # no job's
    ]
    peak_log.write_text("".join(json.dumps(record) + "\n" for record in records))
    peaks = scale.exact_peaks(peak_log, jobs)
    assert peaks == {"finetune_s_seed0_l10": 700.0, "evaluate_frozen_s_seed0": 2000.0}
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for stem in jobs:
        (bench / f"{stem}.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n10.0\t0:00:10\t500.0\t9.0\n")
    table = scale.read_benchmarks(bench, ["finetune", "evaluate_frozen", "genus_pairs", "manifest"], peaks)
    table = table.set_index("job")
    assert table.loc["finetune_s_seed0_l10", ["max_rss_mb", "sampled_rss_mb", "rss_source"]].tolist() == [
        700.0,
        500.0,
        "exact",
    ]
    assert table.loc["genus_pairs", ["max_rss_mb", "rss_source"]].tolist() == [500.0, "sampled"]


def test_a_python_process_started_with_the_peak_rss_folder_logs_its_peak_only_when_asked(tmp_path):
    import os
    import subprocess
    import sys

    log = tmp_path / "peak_rss.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench" / "peak_rss")}
    allocate = "x = bytearray(300 * 2**20)"  # 300 MB, touched
    subprocess.run([sys.executable, "-c", allocate, "--out", "a.json"], env=env, check=True)
    assert not log.exists()  # without GEOCONTRAST_PEAK_RSS_LOG nothing is written
    subprocess.run(
        [sys.executable, "-c", allocate, "--out", "a.json"], env={**env, "GEOCONTRAST_PEAK_RSS_LOG": str(log)}
    )
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["argv"] == ["-c", "--out", "a.json"] and 300 <= record["max_rss_mb"] < 400  # its own, not pytest's
    assert record["children_max_rss_mb"] == 0.0


def test_a_dry_run_with_nothing_to_do_plans_no_job(scale):
    assert scale.planned_jobs("Building DAG of jobs...\nNothing to be done (all requested files are present).\n") == 0
    assert scale.planned_jobs("job     count\n----  -----\nall       1\ntotal    44\n") == 44
