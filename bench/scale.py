"""Scale rehearsal: the whole workflow of config/scale.yaml at several sizes, per-stage time and memory, growth.

For each ``--photos`` size the scale config is run end to end (``snakemake --cores``) with world.n_images set to
that size and world.n_observers scaled with it (photos per observer stay as configured); every rule writes a
Snakemake ``benchmark:`` file, which gives each job's wall time and a sampled peak RSS and CPU time (Snakemake
samples twice a second for 15 s, then every 30 s); every Python process the run starts also logs its exact peak
RSS (the kernel's high-water mark) and CPU time (``bench/process_log/sitecustomize.py``), which replace the
sampled ones of its job (``bench/parts/workflow_jobs.py``). Jobs are grouped into stages (their rule). Between
sizes each stage's growth exponent b (time ~ photos^b, and the same for peak RSS) is fitted by least squares on
log-log; the largest size is projected to ``--project`` photos. ``--plan`` sizes are only planned
(``snakemake -n``): the DAG build time and job count, e.g. at iNaturalist 2021 train's 2.7 million.

    PYTHONPATH=src .venv/bin/python bench/scale.py --photos 50000 500000 --plan 2700000
        [--config config/scale.yaml] [--set world.taxonomy.n_orders=4 ...] [--cores 2] [--workdir DIR]

``--set KEY=VALUE`` overrides any config key (dotted path, YAML value), e.g. a small taxonomy for a quick check.
Writes bench/results/scale.json (every job, per-stage table, exponents, projection, plans, the targets of issue
18 checked) and bench/results/scale.png. Re-running resumes: Snakemake skips finished jobs of a size's workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from parts.workflow_jobs import PROCESS_LOG, cpu_model, exact_cpu, exact_peaks, job_outputs, read_benchmarks, rule_names
from parts.workflow_jobs import snakemake as run_snakemake

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PRETRAINING = "pretrain"
MEASURES = ("seconds", "cpu_seconds", "max_rss_mb")
TARGETS = {"max_rss_mb": 6 * 1024, "exponent": 1.15, "hours_without_pretraining": 2.0}
ISSUE_PHOTOS = 500_000
"""Issue 18's targets at 500,000 photos on 2 cores: every job's peak RSS, every stage's growth exponent except
the capped pretraining, and the wall time of everything but pretraining."""


def set_key(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        config = config.setdefault(key, {})
    config[last] = value


def scaled_config(base: dict, photos: int, overrides: list[str]) -> dict:
    """``base`` at ``photos`` photos, observers scaled with them, ``overrides`` (KEY=YAML) applied last."""
    config = json.loads(json.dumps(base))
    world = config["world"]
    world["n_observers"] = max(1, round(world["n_observers"] * photos / world["n_images"]))
    world["n_images"] = photos
    config["dataset"]["name"] = f"{config['dataset']['name']}_{photos}"
    for override in overrides:
        key, _, value = override.partition("=")
        set_key(config, key, yaml.safe_load(value))
    return config


def planned_jobs(dry_run_stdout: str) -> int:
    """The jobs a dry run would run: its job table's total, 0 when it has none (nothing to be done)."""
    totals = re.findall(r"^total\s+(\d+)$", dry_run_stdout, re.M)
    return int(totals[-1]) if totals else 0


def stage_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per (photos, stage): jobs, summed wall and CPU seconds, the largest peak RSS of one job."""
    return (
        jobs.groupby(["photos", "stage"])
        .agg(
            jobs=("job", "size"),
            seconds=("seconds", "sum"),
            cpu_seconds=("cpu_seconds", "sum"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .reset_index()
    )


def growth_exponents(stages: pd.DataFrame) -> pd.DataFrame:
    """Per stage: the least-squares slope of log(measure) against log(photos), for each of :data:`MEASURES`."""
    rows = []
    for stage, group in stages.groupby("stage"):
        group = group.sort_values("photos")
        row = {"stage": stage}
        for column in MEASURES:
            ok = group[column] > 0
            x, y = np.log(group.loc[ok, "photos"]), np.log(group.loc[ok, column])
            row[f"{column}_exponent"] = float(np.polyfit(x, y, 1)[0]) if ok.sum() >= 2 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["stage", *(f"{column}_exponent" for column in MEASURES)])


def projection(stages: pd.DataFrame, exponents: pd.DataFrame, photos: int) -> pd.DataFrame:
    """Each stage's time and peak RSS at ``photos``, from the largest measured size and its exponents."""
    largest = stages[stages["photos"] == stages["photos"].max()].merge(exponents, on="stage")
    ratio = photos / largest["photos"]
    grown = {column: largest[column] * ratio ** largest[f"{column}_exponent"].fillna(1.0) for column in MEASURES}
    return pd.DataFrame({"stage": largest["stage"], "photos": photos, **grown})


def target_checks(stages: pd.DataFrame, exponents: pd.DataFrame) -> dict:
    """Issue 18's targets, checked at the largest measured size."""
    largest = stages[stages["photos"] == stages["photos"].max()]
    others = exponents[exponents["stage"] != PRETRAINING]
    hours = largest.loc[largest["stage"] != PRETRAINING, "seconds"].sum() / 3600
    return {
        "photos": int(largest["photos"].max()) if len(largest) else 0,
        "max_rss_mb": float(largest["max_rss_mb"].max()),
        "max_rss_ok": bool(largest["max_rss_mb"].max() <= TARGETS["max_rss_mb"]),
        "worst_exponent": float(others["seconds_exponent"].max()),
        "worst_cpu_exponent": float(others["cpu_seconds_exponent"].max()),
        "exponent_ok": bool((others["seconds_exponent"].fillna(0) <= TARGETS["exponent"]).all()),
        "hours_without_pretraining": float(hours),
        "hours_ok": bool(hours <= TARGETS["hours_without_pretraining"]),
        "targets": TARGETS,
    }


def highlighted_stages(projected: pd.DataFrame, per_measure: int = 5) -> list[str]:
    """The stages the figure names in colour: the largest projected wall time and the largest projected peak RSS
    (at most ten, the colour cycle's length); the others are drawn grey."""
    named: list[str] = []
    for column in ("seconds", "max_rss_mb"):
        for stage in projected.nlargest(per_measure, column)["stage"]:
            if stage not in named:
                named.append(stage)
    return named[:10]


def projected_checks(stages: pd.DataFrame, exponents: pd.DataFrame, photos: int = ISSUE_PHOTOS) -> dict:
    """Issue 18's memory and time targets on the projection to ``photos`` (its 500,000) from the largest measured
    size, while that size has not been run: which stages would pass 6 GB, and the hours without pretraining."""
    ahead = projection(stages, exponents, photos)
    over = ahead.loc[ahead["max_rss_mb"] > TARGETS["max_rss_mb"], ["stage", "max_rss_mb"]]
    return {
        "photos": photos,
        "max_rss_mb": float(ahead["max_rss_mb"].max()),
        "stages_over_max_rss": dict(zip(over["stage"], over["max_rss_mb"].round(1))),
        "hours_without_pretraining": float(ahead.loc[ahead["stage"] != PRETRAINING, "seconds"].sum() / 3600),
    }


def figure(stages: pd.DataFrame, projected: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MEASURES), figsize=(15, 4.5))
    named = highlighted_stages(projected)
    colours = dict(zip(named, plt.get_cmap("tab10").colors))
    for stage, group in stages.groupby("stage"):
        group = group.sort_values("photos")
        ahead = projected[projected["stage"] == stage]
        style = {
            "color": colours.get(stage, "0.75"),
            "lw": 1.2 if stage in colours else 0.6,
            "zorder": 2 + (stage in colours),
        }
        for ax, column in zip(axes, MEASURES):
            ax.plot(group["photos"], group[column], "o-", ms=3, label=stage if stage in colours else None, **style)
            ax.plot(
                [group["photos"].iloc[-1], *ahead["photos"]], [group[column].iloc[-1], *ahead[column]], ":", **style
            )
    axes[0].plot([], [], "-", color="0.75", lw=0.6, label="other stages")
    labels = ("wall seconds (all jobs of the stage)", "CPU seconds (all jobs of the stage)", "peak RSS of one job (MB)")
    for ax, label in zip(axes, labels):
        ax.set(xscale="log", yscale="log", xlabel="photos", ylabel=label)
    axes[-1].axhline(TARGETS["max_rss_mb"], color="grey", lw=0.8, ls="--")
    handles, names = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    fig.suptitle("geocontrast scale rehearsal: measured (solid), projected (dotted)")
    fig.tight_layout()
    fig.savefig(out, dpi=150)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "scale.yaml")
    parser.add_argument("--photos", type=int, nargs="+", default=[50_000, 500_000], help="sizes run end to end")
    parser.add_argument("--plan", type=int, nargs="*", default=[2_700_000], help="sizes only planned (snakemake -n)")
    parser.add_argument("--project", type=int, default=2_700_000, help="size the largest run is projected to")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "scale_runs")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args(argv)
    base = yaml.safe_load(args.config.read_text())
    all_jobs, plans, runs = [], [], []
    for photos, run in [*((p, False) for p in args.plan), *((p, True) for p in sorted(args.photos))]:
        config = scaled_config(base, photos, args.overrides)
        workdir = args.workdir / str(photos)
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        start = time.perf_counter()
        dry = run_snakemake(workdir, ["--configfile", str(config_path), "--cores", str(args.cores), "-n"])
        dag_seconds = time.perf_counter() - start
        if dry.returncode != 0:
            raise SystemExit(f"planning {photos} photos failed:\n{dry.stderr[-3000:]}")
        plan = {"photos": photos, "dry_run_seconds": dag_seconds, "jobs_to_run": planned_jobs(dry.stdout)}
        print(f"{photos} photos: {plan['jobs_to_run']} jobs planned in {dag_seconds:.1f} s", flush=True)
        if not run:
            plans.append(plan)
            continue
        start = time.perf_counter()
        result = run_snakemake(
            workdir, ["--configfile", str(config_path), "--cores", str(args.cores), "--rerun-incomplete"]
        )
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"the run at {photos} photos failed:\n{result.stderr[-3000:]}")
        runs.append({**plan, "wall_seconds": wall})
        print(f"{photos} photos: ran in {wall:.0f} s", flush=True)
        outputs = job_outputs(workdir / ".snakemake" / "log")
        peaks, cpu = exact_peaks(workdir / PROCESS_LOG, outputs), exact_cpu(workdir / PROCESS_LOG, outputs)
        benchmarks = workdir / "results" / "benchmarks" / config["dataset"]["name"]
        jobs = read_benchmarks(benchmarks, rule_names(), peaks, cpu)
        all_jobs.append(jobs.assign(photos=photos))
    jobs = pd.concat(all_jobs, ignore_index=True)
    stages = stage_table(jobs)
    exponents = growth_exponents(stages)
    projected = projection(stages, exponents, args.project)
    wide = stages.pivot(index="stage", columns="photos", values=list(MEASURES))
    wide.columns = [f"{what}_{photos}" for what, photos in wide.columns]
    table = wide.reset_index().merge(exponents, on="stage")
    print(table.round(2).to_string(index=False))
    result = {
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "overrides": args.overrides,
        "cores": args.cores,
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
        "plans": plans,
        "stages": table.to_dict(orient="records"),
        "projection": projected.to_dict(orient="records"),
        "checks": target_checks(stages, exponents),
        "projected_checks": projected_checks(stages, exponents),
        "jobs": jobs.to_dict(orient="records"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    figure(stages, projected, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
