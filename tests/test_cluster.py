"""The cluster path without a cluster: the SLURM profile's dry run, and jobs submitted as job scripts."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO, TINY_CONFIG
from test_workflow import planned_jobs, snakemake

SLURM_PROFILE = REPO / "profiles" / "slurm"


def job_blocks(output: str, rule: str) -> list[str]:
    """The dry run's printout of every job of ``rule``, up to its shell command."""
    return re.findall(rf"^rule {rule}:\n(.*?)^Shell command: .*?$", output, re.M | re.S)


def resources(block: str) -> dict[str, str]:
    line = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
    return dict(item.split("=", 1) for item in line.split(", "))


def test_slurm_profile_sends_every_gpu_rule_to_the_gpu_partition_with_a_gpu_request(tmp_path):
    result = snakemake(
        tmp_path, "-n", "--workflow-profile", str(SLURM_PROFILE), configfile=REPO / "config" / "config.yaml"
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for rule in ("pretrain", "pretrain_at_budget", "evaluate_frozen", "evaluate_frozen_at_budget", "finetune"):
        blocks = job_blocks(output, rule)
        assert blocks, rule
        for block in blocks:
            assert {key: resources(block)[key] for key in ("gpu", "slurm_partition")} == {
                "gpu": "1",
                "slurm_partition": "gpu",
            }, (rule, block)
    baseline = resources(job_blocks(output, "most_common_baseline")[0])
    assert "gpu" not in baseline and baseline["slurm_partition"] == "cpu"


def test_pretraining_on_several_gpus_asks_for_them_and_runs_under_torchrun(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["pretrain"]["gpus"] = 4
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--workflow-profile", str(SLURM_PROFILE), configfile=tmp_path / "config.yaml")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    blocks = job_blocks(output, "pretrain") + job_blocks(output, "pretrain_at_budget")  # supervised: per budget
    jobs = planned_jobs(result)
    assert len(blocks) == jobs["pretrain"] + jobs["pretrain_at_budget"] == 4
    assert all(resources(block)["gpu"] == "4" for block in blocks)
    assert output.count("Shell command: torchrun --standalone --nproc_per_node 4 -m geocontrast.train") == 4


@pytest.mark.slow
@pytest.mark.extended
def test_cluster_executor_runs_the_jobs_from_job_scripts(tmp_path):
    """Every job goes through Snakemake's cluster path (job script, submission, status checks); the 'scheduler' is
    bash running the script (so one job at a time), polled every second instead of every 10. Pretraining runs as
    a two-GPU job would: two processes under torchrun (on CPU here)."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["pretrain"].update(gpus=2, device="cpu")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    encoder = "results/tiny/pretrain/context_pos_neg/seed0/encoder.pt"
    result = snakemake(
        tmp_path,
        "--executor",
        "cluster-generic",
        "--cluster-generic-submit-cmd",
        "bash",
        "--jobs",
        "2",
        "--seconds-between-status-checks",
        "1",
        encoder,
        configfile=tmp_path / "config.yaml",
    )
    assert result.returncode == 0, result.stderr
    assert "Shell command: torchrun --standalone --nproc_per_node 2" in result.stdout + result.stderr
    job_scripts = re.findall(r"^\s+Command: .* --mode remote$", result.stdout + result.stderr, re.M)
    assert len(job_scripts) == 7  # world, manifest, image cache, splits, neighbour and negative tables, pretrain
    assert (tmp_path / encoder).exists() and (tmp_path / encoder).with_name("metrics.jsonl").exists()


def test_cpu_profile_runs_every_gpu_rule_on_one_thread(tmp_path):
    """profiles/cpu (make run without a GPU) names every rule that asks for a GPU, and their jobs get one thread; so
    do the jobs pretraining needs that would ask for every core."""
    profile = REPO / "profiles" / "cpu"
    one_thread = yaml.safe_load((profile / "config.yaml").read_text())["set-threads"]
    result = snakemake(tmp_path, "-n", "--workflow-profile", str(profile), configfile=REPO / "config" / "config.yaml")
    assert result.returncode == 0, result.stderr
    jobs = re.findall(r"^rule (\w+):\n(.*?)^Shell command: (.*?)$", result.stdout + result.stderr, re.M | re.S)
    gpu_jobs = [(rule, command) for rule, block, command in jobs if "gpu" in resources(block)]
    assert {rule for rule, _ in gpu_jobs} >= {"pretrain", "evaluate_frozen", "finetune", "cam"}
    for rule, command in gpu_jobs:
        assert one_thread.get(rule) == 1, rule
        assert "--threads 1 " in command, (rule, command)
    # the jobs pretraining needs: one core each, so each takes the next free core ahead of one-core evaluation jobs
    upstream = [command for rule, _, command in jobs if rule in ("image_cache", "neighbour_table", "negative_table")]
    assert len(upstream) == 12  # each replicate's world: two resolutions of its cache, its two tables
    assert all(re.search(r"--(threads|workers) 1 ", command) for command in upstream), upstream


def test_pretraining_and_what_it_needs_go_first(tmp_path):
    """Pretraining is the longest chain: the jobs it needs outrank any set of pretraining jobs the cores hold (the
    scheduler sums priorities, and a table job takes every core), pretraining outranks every other job."""
    result = snakemake(tmp_path, "-n", configfile=REPO / "config" / "config.yaml")
    assert result.returncode == 0, result.stderr
    blocks = re.findall(r"^(?:local)?rule (\w+):\n(.*?)^\s*$", result.stdout + result.stderr, re.M | re.S)
    priorities: dict[str, set[int]] = {}
    for rule, block in blocks:
        found = re.search(r"^\s+priority: (\d+)$", block, re.M)
        priorities.setdefault(rule, set()).add(int(found.group(1)) if found else 0)
    needed = {"synthetic_world", "manifest", "image_cache", "splits", "neighbour_table", "negative_table"}
    pretraining = priorities["pretrain"] | priorities["pretrain_at_budget"]
    rest = set().union(
        *(values for rule, values in priorities.items() if rule not in needed | {"pretrain", "pretrain_at_budget"})
    )
    assert len(pretraining) == 1 and rest == {0} and min(pretraining) > 0
    cores = 512  # a large node: its pretraining jobs, one core each, all at once
    assert all(min(priorities[rule]) > cores * max(pretraining) for rule in needed)
