"""The workflow used as a Snakemake module from another directory, as a deployed user (or snakedeploy) writes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, TINY_CONFIG
from test_workflow import planned_jobs, snakemake

# What `snakedeploy deploy-workflow` writes, with the repository's path in place of github(...); the last line shows
# where the conda environments would install the package from (workflow/rules/deployment.smk).
USER_SNAKEFILE = f"""\
configfile: "config/config.yaml"


module geocontrast:
    snakefile:
        "{REPO / "workflow" / "Snakefile"}"
    config:
        config


use rule * from geocontrast as *


print("GEOCONTRAST_PACKAGE=" + os.environ["GEOCONTRAST_PACKAGE"])
"""


def deployed_project(root: Path, config_text: str | None = None) -> Path:
    """A user's project folder: their Snakefile importing the module, and the tiny world (or ``config_text``) as
    their config."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "config.yaml").write_text(config_text or TINY_CONFIG.read_text())
    (root / "Snakefile").write_text(USER_SNAKEFILE)
    return root


def run_in(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on the user's Snakefile, from their folder, with this interpreter's environment first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("GEOCONTRAST_PACKAGE", None)
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)


def test_the_module_plans_the_same_jobs_as_the_repository_workflow(tmp_path):
    module = run_in(deployed_project(tmp_path / "user"), "-n")
    assert module.returncode == 0, module.stderr
    direct = snakemake(tmp_path / "direct", "-n")
    assert direct.returncode == 0, direct.stderr
    assert planned_jobs(module) == planned_jobs(direct)
    jobs = planned_jobs(module)  # two strategies x two seeds: the tiny config reached the module
    assert jobs["pretrain"] == jobs["pretrain_at_budget"] == 2  # supervised: once per label budget (one here)
    assert f"GEOCONTRAST_PACKAGE={REPO}\n" in module.stdout  # the environments install this checkout


def test_the_module_fills_what_the_user_config_leaves_out_from_the_schema(tmp_path):
    project = deployed_project(tmp_path / "user")
    (project / "config" / "config.yaml").write_text("dataset: {name: mine}\n")
    result = run_in(project, "-n")
    assert result.returncode == 0, result.stderr
    assert "results/mine/results.csv" in result.stdout
    jobs = planned_jobs(result)  # the schema's four default strategies (supervised at its one budget), three seeds
    assert jobs["pretrain"] == 3 * 3 and jobs["pretrain_at_budget"] == 3


@pytest.mark.slow
@pytest.mark.extended
def test_the_module_runs_the_tiny_world_to_its_results(tmp_path):
    # One strategy, seed and protocol: the end-to-end test runs the whole tiny world; this one shows the module's
    # jobs run from the user's folder (a user's config reaching every stage is the planning test's).
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["pretrain"].update(strategies=["context_pos_neg"], seeds=[0])
    config["evaluate"]["protocols"] = ["linear"]
    project = deployed_project(tmp_path / "user", yaml.safe_dump(config))
    result = run_in(project, "results/tiny/results.csv")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(project / "results" / "tiny" / "results.csv")
    assert set(table["strategy"]) == {"context_pos_neg", "random_init", "most_common"}
    assert set(table.loc[table["strategy"] == "context_pos_neg", "protocol"]) >= {"linear"}
    assert (project / "results" / "logs" / "tiny" / "synthetic_world_rep0.log").exists()  # in the user's folder
