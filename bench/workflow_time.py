"""The default workflow from an empty results folder: wall time, the jobs' CPU time per stage, how busy the cores were.

What ``make run`` runs, timed: ``snakemake --workflow-profile profiles/<profile> --cores N`` on the checkout
``--repo`` (its code, its config/config.yaml), in a fresh work folder, then ``snakemake --report``. Every job's
Python process logs its exact CPU time and age when it exits (``bench/process_log/sitecustomize.py``; Snakemake's
own benchmark files undercount CPU for any job longer than 15 s, ``bench/parts/workflow_jobs.py``), so the per-stage
table says how busy each stage's jobs really were (CPU / wall). The whole run's CPU time is the kernel's account of
every process Snakemake started and waited for (``getrusage`` of this script's children), Snakemake's own share is
its process's record. ``busy`` of the run: all CPU seconds over wall x cores; ``cores without a job``: wall x cores
minus the jobs' summed wall.

    .venv/bin/python bench/workflow_time.py --label after             # this checkout
    git worktree add /tmp/before <commit>
    .venv/bin/python bench/workflow_time.py --repo /tmp/before --label before

Run back to back on a quiet machine (no other runs or helpers beside it): the runs of one session are comparable,
absolute times of different days and machines are not. Each run is stored under its label in
bench/results/workflow_time.json (the machine and commit with it) and all stored runs are tabulated side by side in
bench/results/workflow_time.md. ~6 minutes a run on 2 cores (cnn5_half; ~11 with cnn5). Not run by
``bench/run_all.py`` unless named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from parts.workflow_jobs import (
    PROCESS_LOG,
    cpu_model,
    exact_cpu,
    job_outputs,
    job_processes,
    read_benchmarks,
    rule_names,
    snakemake,
    vector_flags,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
BUSY_TARGET = 0.9
"""Issue 36's target: every stage's jobs busy at least 90 % of their wall time."""


def with_process_times(jobs: pd.DataFrame, process_log: Path, outputs: dict) -> pd.DataFrame:
    """The jobs with their process's age at exit (``process_seconds``) and the seconds its threads waited for a
    core (``waiting_seconds``), from the process log; NaN where a job has no record (or one without the field)."""
    records = job_processes(process_log, outputs)
    jobs = jobs.copy()
    for column, field in (("process_seconds", "seconds"), ("waiting_seconds", "waiting_seconds")):
        jobs[column] = [records.get(stem, {}).get(field) for stem in jobs["job"]]
        jobs[column] = pd.to_numeric(jobs[column], errors="coerce")
    return jobs


def stage_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage (rule): jobs, summed wall and CPU seconds, busy = CPU / wall, and Snakemake's sampled CPU beside
    the exact one; where the process log has them, the summed age of the jobs' processes (from their start to their
    exit record: the job's wall less starting the shell and the interpreter's exit) and the seconds they waited for
    a core; longest stages first."""
    stages = (
        jobs.groupby("stage")
        .agg(
            jobs=("job", "size"),
            seconds=("seconds", "sum"),
            cpu_seconds=("cpu_seconds", "sum"),
            sampled_cpu_seconds=("sampled_cpu_seconds", "sum"),
            exact_jobs=("cpu_source", lambda source: int((source == "exact").sum())),
            process_seconds=("process_seconds", lambda values: values.sum(min_count=1)),
            waiting_seconds=("waiting_seconds", lambda values: values.sum(min_count=1)),
        )
        .reset_index()
    )
    stages["busy"] = stages["cpu_seconds"] / stages["seconds"]
    stages["sampled_busy"] = stages["sampled_cpu_seconds"] / stages["seconds"]
    stages["process_busy"] = stages["cpu_seconds"] / stages["process_seconds"]
    return stages.sort_values("seconds", ascending=False, ignore_index=True)


def run_totals(jobs: pd.DataFrame, wall: float, cores: int, all_cpu: float, snakemake_cpu: float | None) -> dict:
    """The run as a whole: wall, every process's CPU, the jobs' summed wall and CPU, busy shares."""
    return {
        "wall_seconds": round(wall, 1),
        "cores": cores,
        "jobs": len(jobs),
        "job_seconds": round(float(jobs["seconds"].sum()), 1),
        "job_cpu_seconds": round(float(jobs["cpu_seconds"].sum()), 1),
        "all_cpu_seconds": round(all_cpu, 1),
        "snakemake_cpu_seconds": None if snakemake_cpu is None else round(snakemake_cpu, 1),
        "busy": round(all_cpu / (wall * cores), 3),
        "cores_without_a_job": round(wall * cores - float(jobs["seconds"].sum()), 1),
        "stages_below_busy_target": sorted(
            stage_table(jobs).query("busy < @BUSY_TARGET and jobs > 0")["stage"].tolist()
        ),
    }


def snakemake_own_cpu(process_log: Path) -> float | None:
    """The CPU seconds of the Snakemake process that ran the workflow (its own, not its jobs'): the record of the
    ``-m snakemake`` process that lived longest."""
    if not process_log.exists():
        return None
    records = [json.loads(line) for line in process_log.read_text().splitlines() if line.strip()]
    runs = [r for r in records if r["argv"][0].endswith("snakemake/__main__.py") and "cpu_seconds" in r]
    return max(runs, key=lambda r: r["seconds"])["cpu_seconds"] if runs else None


def time_workflow(repo: Path, workdir: Path, cores: int, profile: str, config: Path) -> dict:
    """Run the workflow of ``repo`` on ``config`` in the empty ``workdir``, then its report; the run's record."""
    dataset = yaml.safe_load(config.read_text())["dataset"]["name"]
    args = ["--workflow-profile", str(repo / "profiles" / profile), "--cores", str(cores)]
    args += ["--configfile", str(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run = snakemake(workdir, args, repo)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"the workflow failed in {workdir}:\n{run.stderr[-3000:]}")
    report_started = time.perf_counter()
    report = snakemake(workdir, ["--configfile", str(config), "--report", "results/report.html"], repo)
    report_wall = time.perf_counter() - report_started
    if report.returncode != 0:
        raise SystemExit(f"the report failed in {workdir}:\n{report.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    all_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    outputs = job_outputs(workdir / ".snakemake" / "log")
    jobs = read_benchmarks(
        workdir / "results" / "benchmarks" / dataset,
        rule_names(repo),
        cpu=exact_cpu(workdir / PROCESS_LOG, outputs),
    )
    jobs = with_process_times(jobs, workdir / PROCESS_LOG, outputs)
    totals = run_totals(jobs, wall, cores, all_cpu, snakemake_own_cpu(workdir / PROCESS_LOG))
    return {
        **totals,
        "report_seconds": round(report_wall, 1),
        "make_run_seconds": round(wall + report_wall, 1),
        "stages": stage_table(jobs).round(3).to_dict(orient="records"),
        "jobs_table": jobs.round(3).to_dict(orient="records"),
    }


def commit_of(repo: Path) -> str:
    """The checkout's commit (short), with '+changes' when its tracked files differ from it."""
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", "HEAD"], capture_output=True).returncode
    return head.stdout.strip() + ("+changes" if dirty else "")


def machine() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "vector_flags": vector_flags(),
        "python": platform.python_version(),
    }


def markdown(runs: dict) -> str:
    """Every stored run side by side: the totals, then the per-stage table of each."""
    labels = list(runs)
    lines = ["# The default workflow's time (`bench/workflow_time.py`)", ""]
    lines.append("Written by `bench/workflow_time.py`; each run's machine and commit below. Busy: CPU seconds over")
    lines.append("wall seconds (of the run: over wall x cores). CPU is exact (each process's own account at exit);")
    lines.append("Snakemake's sampled CPU (its benchmark files) is shown beside it for comparison.")
    lines += ["", "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    rows = [
        (
            "machine",
            lambda r: (
                f"{r['machine']['cpu_model']}, {r['machine']['cpu_count']} cores, "
                f"{'/'.join(r['machine']['vector_flags']) or 'no AVX2'}"
            ),
        ),
        ("commit", lambda r: f"`{r['commit']}`"),
        ("started (UTC)", lambda r: r["started"]),
        ("load average at start", lambda r: f"{r['load_average_start']:.2f}"),
        ("make run: workflow + report", lambda r: f"{r['wall_seconds']:.0f} s + {r['report_seconds']:.0f} s"),
        ("jobs", lambda r: str(r["jobs"])),
        ("jobs' summed wall / CPU", lambda r: f"{r['job_seconds']:,.0f} s / {r['job_cpu_seconds']:,.0f} s"),
        (
            "every process's CPU (Snakemake's own)",
            lambda r: (
                f"{r['all_cpu_seconds']:,.0f} s "
                f"({r['snakemake_cpu_seconds'] if r['snakemake_cpu_seconds'] is not None else '?'} s)"
            ),
        ),
        ("busy (CPU / wall x cores)", lambda r: f"{r['busy']:.0%}"),
        ("core-seconds without a job", lambda r: f"{r['cores_without_a_job']:,.0f} s"),
        ("stages below 90 % busy", lambda r: ", ".join(r["stages_below_busy_target"]) or "none"),
    ]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join(cell(runs[label]) for label in labels) + " |")
    for label in labels:
        lines += [
            "",
            f"## {label}: per stage",
            "",
            "| stage | jobs | wall (sum) | CPU (sum) | busy | Snakemake's sampled CPU (busy) "
            "| processes' age (busy) | waiting for a core |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for stage in runs[label]["stages"]:
            lines.append(
                f"| {stage['stage']} | {stage['jobs']} | {stage['seconds']:,.0f} s | {stage['cpu_seconds']:,.0f} s "
                f"| {stage['busy']:.0%} | {stage['sampled_cpu_seconds']:,.0f} s ({stage['sampled_busy']:.0%}) "
                f"| {seconds_and_share(stage, 'process_seconds', 'process_busy')} "
                f"| {seconds_and_share(stage, 'waiting_seconds')} |"
            )
    return "\n".join(lines) + "\n"


def seconds_and_share(stage: dict, column: str, share: str | None = None) -> str:
    """A stage's summed seconds of ``column`` (with the ``share`` column as a percentage); '?' for runs recorded
    before the process log had the field."""
    value = stage.get(column)
    if value is None or pd.isna(value):
        return "?"
    return f"{value:,.1f} s" + (f" ({stage[share]:.0%})" if share else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to time (its code and config)")
    parser.add_argument("--label", default="this checkout", help="the run's name in the results")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--profile", default="cpu", help="profiles/<name> of the timed checkout")
    parser.add_argument("--config", type=Path, help="config file (default: the checkout's config/config.yaml)")
    parser.add_argument("--workdir", type=Path, help="an empty folder to run in (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--out", type=Path, default=RESULTS / "workflow_time.json")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    config = (args.config or repo / "config" / "config.yaml").resolve()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="workflow_time_"))
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"--workdir {workdir} is not empty: the run must start from nothing")
    record = {
        "repo": str(repo),
        "commit": commit_of(repo),
        "config": str(config.relative_to(repo) if config.is_relative_to(repo) else config),
        "machine": machine(),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "load_average_start": os.getloadavg()[0],
    }
    try:
        record.update(time_workflow(repo, workdir, args.cores, args.profile, config))
    finally:
        if not (args.keep or args.workdir):
            shutil.rmtree(workdir, ignore_errors=True)
    record["load_average_end"] = os.getloadavg()[0]
    runs = json.loads(args.out.read_text())["runs"] if args.out.exists() else {}
    runs[args.label] = record
    args.out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(runs))
    print(
        f"{args.label}: {record['wall_seconds']:.0f} s workflow + {record['report_seconds']:.0f} s report, "
        f"busy {record['busy']:.0%}; wrote {args.out} and {args.out.with_suffix('.md')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
