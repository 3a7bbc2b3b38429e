"""Replicates and their photo pools in the plan: each replicate's own world (world.per_replicate) or one pool that
every replicate resamples (a fixed world, a real collection), the jobs that read them, and the interval the
comparisons then carry."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from conftest import TINY_CONFIG
from test_workflow import planned_jobs, shell_commands, snakemake


@pytest.fixture(scope="module")
def tiny_dry_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """A dry run of the tests' tiny config, shared by the tests that read its plan."""
    return snakemake(tmp_path_factory.mktemp("tiny_dry_run"), "-n")


@pytest.fixture(scope="module")
def fixed_world_dry_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """A dry run of the tiny config with one world that every replicate resamples (world.per_replicate false)."""
    workdir = tmp_path_factory.mktemp("fixed_world_dry_run")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["world"]["per_replicate"] = False
    (workdir / "fixed_world.yaml").write_text(yaml.safe_dump(config))
    return snakemake(workdir, "-n", configfile=workdir / "fixed_world.yaml")


def world_seeds(result: subprocess.CompletedProcess) -> dict[str, dict]:
    """{source table written: world settings} of a dry run's synthetic_world jobs."""
    return {
        source: json.loads(world)
        for world, source in (
            re.search(r"--world-json '(.*?)' --source (\S+)", command).groups()
            for command in shell_commands(result, r"geocontrast\.data\.synthetic")
        )
    }


def test_each_replicate_draws_its_own_world_whose_settings_differ_only_in_the_seed(tiny_dry_run):
    assert tiny_dry_run.returncode == 0, tiny_dry_run.stderr[-3000:]
    worlds = world_seeds(tiny_dry_run)
    seed = yaml.safe_load(TINY_CONFIG.read_text())["world"]["seed"]
    assert {source: world.pop("seed") for source, world in worlds.items()} == {
        "results/tiny/replicates/0/source/photos.parquet": seed,
        "results/tiny/replicates/1/source/photos.parquet": seed + 1,
    }
    first, second = worlds.values()
    assert first == second  # the config is all they share


def test_every_job_of_a_seed_reads_only_its_own_replicates_world(tiny_dry_run):
    shared = r"results/tiny/(manifest|cache/|world/|images)"
    assert not [command for command in shell_commands(tiny_dry_run) if re.search(shared, command)]
    # Every job but those that gather every replicate's records (by design) reads one replicate's files.
    for command in shell_commands(tiny_dry_run, r"geocontrast\.(?!results\.table |report\.prior )\S+"):
        replicates = set(re.findall(r"results/tiny/replicates/(\d+)/", command))
        seeds = set(re.findall(r"results/tiny/(?:pretrain|eval|embeddings|cam)/[^/\s]+/seed(\d+)", command))
        assert replicates <= seeds if len(seeds) == 1 else len(replicates) <= 1, command


def test_a_fixed_world_is_one_pool_at_the_shared_paths_every_replicate_resamples(fixed_world_dry_run):
    assert fixed_world_dry_run.returncode == 0, fixed_world_dry_run.stderr[-3000:]
    seed = yaml.safe_load(TINY_CONFIG.read_text())["world"]["seed"]
    worlds = world_seeds(fixed_world_dry_run)
    assert {source: world["seed"] for source, world in worlds.items()} == {"results/tiny/source/photos.parquet": seed}
    arguments = " ".join(shell_commands(fixed_world_dry_run))
    assert set(re.findall(r"--manifest (\S+)", arguments)) == {"results/tiny/manifest.parquet"}
    assert set(re.findall(r"--cache (\S+)", arguments)) == {"results/tiny/cache/32px.npy"}
    assert set(re.findall(r"--truth (\S+)", arguments)) == {"results/tiny/world/truth.npz"}


def test_a_real_collection_is_one_pool_that_every_replicate_resamples_whatever_world_per_replicate_says(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    (tmp_path / "photos.csv").write_text("path,species\n")
    config["dataset"] = {"name": "mine", "source": "csv", "csv": {"path": str(tmp_path / "photos.csv")}}
    config["world"]["per_replicate"] = True
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=tmp_path / "mine.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result)["manifest"] == 1 and planned_jobs(result)["image_cache"] == 1
    assert set(re.findall(r"--manifest (\S+)", " ".join(shell_commands(result)))) == {"results/mine/manifest.parquet"}
    (command,) = shell_commands(result, r"geocontrast\.results\.comparisons")
    summaries = re.search(r"--splits-summaries (.*?) ?--", command).group(1).split()  # the corrected resampled t
    assert summaries == [f"results/mine/replicates/{r}/splits_summary.json" for r in (0, 1)]


@pytest.mark.parametrize(
    ("run", "summaries"),
    [
        ("tiny_dry_run", []),  # independent worlds: the plain t
        ("fixed_world_dry_run", [f"results/tiny/replicates/{r}/splits_summary.json" for r in (0, 1)]),  # corrected
    ],
)
def test_comparisons_correct_the_t_only_for_replicates_that_resample_one_pool(run, summaries, request):
    (command,) = shell_commands(request.getfixturevalue(run), r"geocontrast\.results\.comparisons")
    assert re.search(r"--splits-summaries (.*?) ?--", command).group(1).split() == summaries


def test_every_pretraining_job_of_a_seed_reads_that_replicates_data(tiny_dry_run):
    assert tiny_dry_run.returncode == 0, tiny_dry_run.stderr[-3000:]
    commands = re.findall(r"^Shell command: python -m geocontrast.train (.*)$", tiny_dry_run.stdout, re.M)
    splits = {
        (re.search(r"pretrain/(\w+)/seed(\d)", c).groups()): re.search(r"--splits (\S+)", c).group(1) for c in commands
    }
    assert splits == {
        (strategy, seed): f"results/tiny/replicates/{seed}/splits.parquet"
        for strategy in ("supervised", "context_pos_neg")
        for seed in ("0", "1")
    }
