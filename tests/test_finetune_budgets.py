"""evaluate.finetune_label_fractions: the fine-tune at some label budgets, the frozen protocols at all of them."""

from __future__ import annotations

import re

import yaml
from test_workflow import TINY_CONFIG, planned_jobs, snakemake


def budgets_config(tmp_path, **evaluate):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["splits"] = {"label_fractions": [0.1, 1.0]}
    config["evaluate"] = {**config["evaluate"], "label_fractions": [10, 100], **evaluate}
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def planned_finetunes(result) -> set[tuple[str, str]]:
    """(strategy/seed, budget) of every planned fine-tune."""
    found = re.findall(r"--out results/tiny/eval/(\S+)/finetune_l(\S+)\.json", result.stdout)
    return set(found)


def test_the_finetune_runs_only_at_its_budgets_and_the_frozen_protocols_at_every_budget(tmp_path):
    every = snakemake(tmp_path, "-n", configfile=budgets_config(tmp_path))
    chosen = snakemake(tmp_path, "-n", configfile=budgets_config(tmp_path, finetune_label_fractions=[10]))
    assert every.returncode == 0 and chosen.returncode == 0, (every.stderr + chosen.stderr)[-3000:]
    assert {budget for _, budget in planned_finetunes(every)} == {"10", "100"}
    assert planned_finetunes(chosen) == {(run, budget) for run, budget in planned_finetunes(every) if budget == "10"}
    assert planned_jobs(chosen)["evaluate_frozen"] == planned_jobs(every)["evaluate_frozen"]
    assert "knn_l100.json" in chosen.stdout and "linear_l100.json" in chosen.stdout


def test_a_finetune_budget_that_is_not_evaluated_is_refused_at_planning_time(tmp_path):
    refused = snakemake(tmp_path, "-n", configfile=budgets_config(tmp_path, finetune_label_fractions=[50]))
    assert refused.returncode != 0
    assert "evaluate.finetune_label_fractions: 50 not in evaluate.label_fractions (10, 100)" in refused.stdout
