"""bench/scale.py's arithmetic (growth exponents, projection, scaled configs) and the job table it shares with
bench/workflow_time.py (bench/parts/workflow_jobs.py: stages of benchmark files, exact process records)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def jobs_table():
    sys.path.insert(0, str(REPO / "bench"))  # as when a bench script runs: bench/parts is importable as parts
    from parts import workflow_jobs

    return workflow_jobs


@pytest.fixture(scope="module")
def scale(jobs_table):
    spec = importlib.util.spec_from_file_location("scale", REPO / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_benchmark_file_belongs_to_the_longest_rule_its_name_starts_with(jobs_table):
    rules = jobs_table.rule_names()
    assert jobs_table.stage_of("report_map_species", rules) == "report_map"
    assert jobs_table.stage_of("negative_table_rep0_far_m64", rules) == "negative_table"
    assert jobs_table.stage_of("evaluate_frozen_context_pos_seed0", rules) == "evaluate_frozen"
    assert jobs_table.stage_of("most_common_baseline_seed0_l10", rules) == "most_common_baseline"


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


def test_a_jobs_exact_peak_rss_and_cpu_replace_the_sampled_ones_when_its_process_logged_them(jobs_table, tmp_path):
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
    jobs = jobs_table.job_outputs(logs)
    assert jobs["finetune_s_seed0_l10"] == (
        "geocontrast.evaluate",
        ["eval/s/seed0/finetune_l10.json", "eval/s/seed0/f.pt"],
    )
    process_log = tmp_path / "processes.jsonl"
    evaluate, frozen = "src/geocontrast/evaluate/__main__.py", "src/geocontrast/evaluate/frozen.py"
    cpu = {"cpu_seconds": 30.0, "children_cpu_seconds": 0.0}
    records = [
        {"argv": [evaluate, "--out", "eval/s/seed0/finetune_l10.json"], "max_rss_mb": 900.0, **cpu},
        {"argv": [evaluate, "--out", "eval/s/seed0/finetune_l10.json"], "max_rss_mb": 700.0, **cpu},  # run again
        # only the folder of its outputs; the pairs file it reads is genus_pairs' output, not its job's; a worker
        # pool's CPU is its children's
        {
            "argv": [frozen, "--pairs", "tasks/pairs.json", "--out-dir", "eval/s/seed0"],
            "max_rss_mb": 2000.0,
            "cpu_seconds": 12.0,
            "children_cpu_seconds": 6.0,
        },
        {"argv": ["-m", "snakemake", "-n"], "max_rss_mb": 150.0, **cpu},  # no job's
    ]
    process_log.write_text("".join(json.dumps(record) + "\n" for record in records))
    peaks = jobs_table.exact_peaks(process_log, jobs)
    assert peaks == {"finetune_s_seed0_l10": 700.0, "evaluate_frozen_s_seed0": 2000.0}
    exact = jobs_table.exact_cpu(process_log, jobs)
    assert exact == {"finetune_s_seed0_l10": 30.0, "evaluate_frozen_s_seed0": 18.0}
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for stem in jobs:
        (bench / f"{stem}.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n40.0\t0:00:40\t500.0\t15.0\n")
    table = jobs_table.read_benchmarks(bench, ["finetune", "evaluate_frozen", "genus_pairs", "manifest"], peaks, exact)
    table = table.set_index("job")
    finetune = table.loc["finetune_s_seed0_l10"]
    assert finetune[["max_rss_mb", "sampled_rss_mb", "rss_source"]].tolist() == [700.0, 500.0, "exact"]
    assert finetune[["cpu_seconds", "sampled_cpu_seconds", "cpu_source"]].tolist() == [30.0, 15.0, "exact"]
    genus_pairs = table.loc["genus_pairs"]
    assert genus_pairs[["max_rss_mb", "rss_source", "cpu_seconds", "cpu_source"]].tolist() == [
        500.0,
        "sampled",
        15.0,
        "sampled",
    ]


def test_a_python_process_started_with_the_process_log_folder_logs_its_peak_and_cpu_only_when_asked(tmp_path):
    import os
    import subprocess

    log = tmp_path / "processes.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench" / "process_log")}
    # 300 MB, touched; then 0.5 s of CPU, then a 0.5 s sleep, then a child that burns 0.3 s of CPU
    work = (
        "import subprocess, sys, time\nx = bytearray(300 * 2**20)\nwhile time.process_time() < 0.5: pass\n"
        "time.sleep(0.5)\nsubprocess.run([sys.executable, '-c', 'import time\\nwhile time.process_time() < 0.3: pass'])"
    )
    subprocess.run([sys.executable, "-c", work, "--out", "a.json"], env=env, check=True)
    assert not log.exists()  # without GEOCONTRAST_PROCESS_LOG nothing is written
    subprocess.run([sys.executable, "-c", work, "--out", "a.json"], env={**env, "GEOCONTRAST_PROCESS_LOG": str(log)})
    child, record = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["argv"] == ["-c", "--out", "a.json"] and 300 <= record["max_rss_mb"] < 400  # its own, not pytest's
    assert 0.5 <= record["cpu_seconds"] < 1.0 + 2.0  # its 0.5 s loop and its start-up, not the child's
    assert (
        record["children_cpu_seconds"] == pytest.approx(child["cpu_seconds"], abs=0.05) and child["cpu_seconds"] >= 0.3
    )
    assert record["seconds"] >= 1.0 + child["seconds"] - 0.05  # loop, sleep and child: wall, not CPU


def test_processes_sharing_one_core_log_the_time_each_waited_for_it(tmp_path):
    import os
    import subprocess

    log = tmp_path / "processes.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench" / "process_log"), "GEOCONTRAST_PROCESS_LOG": str(log)}
    core = min(os.sched_getaffinity(0))  # one of the cores this test may use
    burn = f"import os, time\nos.sched_setaffinity(0, {{{core}}})\nwhile time.process_time() < 0.5: pass"
    pair = [subprocess.Popen([sys.executable, "-c", burn], env=env) for _ in range(2)]  # both on that core
    assert [process.wait() for process in pair] == [0, 0]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    if not Path("/proc/self/schedstat").exists():  # a kernel without CONFIG_SCHED_INFO: the record says it cannot
        assert [record["waiting_seconds"] for record in records] == [None, None]
        return
    # While one ran its 0.5 s the other was ready and waited: at least one of them for most of that, both in all
    # for more (the kernel interleaves them).
    waits = sorted(record["waiting_seconds"] for record in records)
    assert waits[-1] >= 0.25 and sum(waits) >= 0.4, waits
    assert all(record["seconds"] >= record["cpu_seconds"] + record["waiting_seconds"] - 0.05 for record in records)


def test_a_stage_adds_up_its_jobs_process_age_and_waiting_and_says_how_busy_its_processes_were(jobs_table):
    spec = importlib.util.spec_from_file_location("workflow_time", REPO / "bench" / "workflow_time.py")
    workflow_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(workflow_time)
    jobs = pd.DataFrame(
        {
            "stage": ["splits", "splits", "pretrain"],
            "job": ["splits_rep0", "splits_rep1", "pretrain_s_seed0"],
            "seconds": [1.0, 1.0, 10.0],
            "cpu_seconds": [0.7, 0.7, 9.0],
            "sampled_cpu_seconds": [0.5, 0.5, 9.0],
            "cpu_source": ["exact"] * 3,
            "process_seconds": [0.8, 0.8, 9.5],
            "waiting_seconds": [0.05, 0.05, 0.3],
        }
    )
    stages = workflow_time.stage_table(jobs).set_index("stage")
    assert stages.loc["splits", ["busy", "process_busy"]].tolist() == pytest.approx([0.7, 0.875])
    assert stages.loc["splits", "waiting_seconds"] == pytest.approx(0.1)
    row = stages.reset_index().iloc[0].to_dict()
    assert workflow_time.seconds_and_share(row, "process_seconds", "process_busy") == "9.5 s (95%)"
    # a run stored before the process log had the fields: its stage rows lack them
    older = {key: value for key, value in row.items() if key not in ("process_seconds", "waiting_seconds")}
    assert workflow_time.seconds_and_share(older, "waiting_seconds") == "?"


def test_a_dry_run_with_nothing_to_do_plans_no_job(scale):
    assert scale.planned_jobs("Building DAG of jobs...\nNothing to be done (all requested files are present).\n") == 0
    assert scale.planned_jobs("job     count\n----  -----\nall       1\ntotal    44\n") == 44
