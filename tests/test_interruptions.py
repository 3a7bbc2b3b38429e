"""A workflow killed with SIGKILL mid-job resumes to the results of an uninterrupted run.

The tiny world runs once uninterrupted to results.csv (the reference, with ``deterministic: true``). Each stage
test then starts a run, waits until that stage's job is inside its work, kills the whole Snakemake process group
with SIGKILL, unlocks, reruns with ``--rerun-incomplete`` and compares results.csv byte for byte. The image-cache
run starts from an empty folder on one core (the reference had two), so it is also the second full run of the
determinism test; the later stages start
from a copy of the reference without the stage's outputs and everything after them (Snakemake does not rebuild a
missing intermediate file when the files after it are up to date), which keeps the whole file to a few minutes.

What a user does after such a kill is the same: ``snakemake --unlock``, then ``snakemake --rerun-incomplete``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG
from test_train_loop import Killed, kill_at_save, metrics, run, two_epochs  # noqa: F401 (fixtures)
from test_workflow import snakemake, snakemake_command

from geocontrast.atomic import atomic_path

TARGET = "results/tiny/results.csv"
RESULTS = Path("results/tiny")
LOGS = Path("results/logs/tiny")
POOL = RESULTS / "replicates" / "0"  # the one seed's world (world.per_replicate)
POLL_S = 0.005
# Timing and memory fields of a metrics.jsonl line; every other field must repeat exactly.
TIMING_KEYS = ("images_per_s", "seconds", "wall_seconds", "peak_memory_mb")
PRETRAINED = RESULTS / "pretrain" / "context_pos_neg" / "seed0"
RESULTS_TABLE = ("results.csv", "results_summary.csv", "results_summary.txt")


@dataclass(frozen=True)
class Stage:
    """Where to interrupt a run: what is removed under results/tiny/ from a copy of the reference (None: start
    from an empty folder), the file whose appearance shows the stage's job is at work (a glob), that job's
    output, which must not exist yet when the kill lands, and the cores of both runs."""

    removed: tuple[str, ...] | None
    at_work: str
    output: str
    cores: str = "2"


STAGES = {
    # The cache's temporary file: the kill lands while rows are being written into it. One core, where the
    # reference had two: without the deterministic switch, torch would sum in another order.
    "image_cache": Stage(
        None, str(POOL / "cache" / ".32px.partial-*.npy"), str(POOL / "cache" / "32px.npy"), cores="1"
    ),
    "neighbour_table": Stage(
        ("replicates/0/neighbours", "pretrain", "eval", *RESULTS_TABLE),
        str(LOGS / "neighbour_table_rep0_r5_k64.log"),
        str(RESULTS / "replicates" / "0" / "neighbours" / "r5_k64.npz"),
    ),
    # last.pt after the first of three epochs: the rerun resumes from it.
    "pretrain": Stage(
        ("pretrain", "eval", *RESULTS_TABLE), str(PRETRAINED / "last.pt"), str(PRETRAINED / "encoder.pt")
    ),
    "evaluation": Stage(
        ("eval", *RESULTS_TABLE),
        str(LOGS / "evaluate_context_pos_neg_seed0_finetune_l10.log"),
        str(RESULTS / "eval" / "context_pos_neg" / "seed0" / "finetune_l10.json"),
    ),
}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The tiny world, deterministic, cut to one strategy that uses both geo tables, one seed and fine-tuning,
    with three short pretraining epochs so a kill can land between two of them."""
    settings = yaml.safe_load(TINY_CONFIG.read_text())
    settings["deterministic"] = True
    settings["pretrain"].update(strategies=["context_pos_neg"], seeds=[0], epochs=3)
    settings["evaluate"].update(protocols=["finetune"], random_init=False)
    path = tmp_path_factory.mktemp("config") / "interruptions.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, config) -> Path:
    """An uninterrupted run to results.csv."""
    workdir = tmp_path_factory.mktemp("reference")
    result = snakemake(workdir, TARGET, configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, config, reference):
    """interrupted(stage) -> the folder of a run killed inside that stage and rerun to the end (made once)."""
    runs: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in runs:
            runs[name] = kill_and_rerun(STAGES[name], tmp_path_factory.mktemp(name), config, reference)
        return runs[name]

    return make


def kill_and_rerun(stage: Stage, workdir: Path, config: Path, reference: Path) -> Path:
    if stage.removed is not None:
        shutil.copytree(reference, workdir, symlinks=True, dirs_exist_ok=True)
        for path in (*(RESULTS / name for name in stage.removed), LOGS):  # logs: the stage's appears when it starts
            shutil.rmtree(workdir / path) if (workdir / path).is_dir() else (workdir / path).unlink()
    kill_when(workdir, config, stage.at_work, "--cores", stage.cores)
    assert not (workdir / stage.output).exists(), f"{stage.output} was written before the kill"
    assert any((workdir / ".snakemake" / "incomplete").rglob("*")), "Snakemake marked no job incomplete"

    unlocked = snakemake(workdir, "--unlock", configfile=config)
    assert unlocked.returncode == 0, unlocked.stderr[-3000:]
    rerun = snakemake(workdir, TARGET, "--rerun-incomplete", "--cores", stage.cores, configfile=config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (workdir / stage.output).exists()
    return workdir


def kill_when(workdir: Path, config: Path, at_work: str, *args: str) -> None:
    """Run the workflow in its own process group; SIGKILL the group as soon as ``at_work`` exists."""
    command, env = snakemake_command(workdir, TARGET, *args, configfile=config)
    with open(workdir / "killed_run.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any(workdir.glob(at_work)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                f"{at_work} never appeared before the run ended:\n{(workdir / 'killed_run.log').read_text()[-3000:]}"
            )
        time.sleep(POLL_S)
    os.killpg(process.pid, signal.SIGKILL)  # Snakemake and every job it started
    process.wait()


def results_table(workdir: Path) -> str:
    """results.csv less its pretrain_seconds column, the one value of a run that is wall time, not arithmetic."""
    return pd.read_csv(workdir / TARGET).drop(columns="pretrain_seconds").to_csv(index=False)


def comparable(metrics_path: Path) -> list[dict]:
    lines = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    return [{key: value for key, value in line.items() if key not in TIMING_KEYS} for line in lines]


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("stage", list(STAGES))
def test_run_killed_inside_a_stage_reruns_to_the_uninterrupted_results(interrupted, reference, stage):
    workdir = interrupted(stage)
    assert results_table(workdir) == results_table(reference)
    left_over = [path.name for path in (workdir / "results").rglob("*.partial-*")]
    assert not left_over, f"temporary files left by the killed job: {left_over}"


@pytest.mark.slow
@pytest.mark.extended
def test_killed_pretraining_resumes_from_its_checkpoint_keeping_every_epochs_metrics(interrupted, reference):
    workdir = interrupted("pretrain")
    rerun_log = (workdir / LOGS / "pretrain_context_pos_neg_seed0.log").read_text()
    assert "epoch 2/3" in rerun_log and "epoch 1/3" not in rerun_log  # epoch 1 came from last.pt
    # Snakemake deletes an incomplete job's outputs, metrics.jsonl included, before it runs the job again.
    resumed = comparable(workdir / PRETRAINED / "metrics.jsonl")
    assert [line["epoch"] for line in resumed] == [1, 2, 3]
    assert resumed == comparable(reference / PRETRAINED / "metrics.jsonl")


@pytest.mark.slow
@pytest.mark.extended
def test_two_deterministic_runs_give_identical_results_on_any_core_count(interrupted, reference):
    # The image-cache run built everything again from an empty folder, on 1 core where the reference had 2.
    assert results_table(interrupted("image_cache")) == results_table(reference)


def test_resume_restores_a_metrics_file_deleted_since_the_checkpoint(
    tiny_inputs,  # noqa: F811 (the imported fixture)
    two_epochs,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    kill_at_save(monkeypatch, 1, before_writing=False)
    with pytest.raises(Killed):
        run(tiny_inputs, tmp_path, epochs=2, steps_per_epoch=3)
    monkeypatch.undo()
    (tmp_path / "metrics.jsonl").unlink()  # as Snakemake does before it runs an incomplete job again
    run(tiny_inputs, tmp_path, epochs=2, steps_per_epoch=3)
    assert [line["loss"] for line in metrics(tmp_path)] == [line["loss"] for line in metrics(two_epochs)]


def test_temporary_file_of_a_killed_writer_is_removed_by_the_next_writer(tmp_path):
    orphan = tmp_path / ".table.partial-999999999.npz"  # no such process
    orphan.write_bytes(b"half a table")
    with atomic_path(tmp_path / "table.npz") as partial:
        partial.write_bytes(b"a table")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["table.npz"]
