"""Run every benchmark in bench/ and summarise their figures against their targets in one table.

Every ``bench/<name>.py`` except this one is a benchmark writing ``bench/results/<name>.json``. This script runs
them one after the other (each in its own interpreter, so one's threads and memory do not weigh on the next),
then reads the result files and writes

  bench/results/summary.json   every figure: value, reference, ratio to the reference, target, pass
  bench/results/summary.md     the same as a Markdown table (README.md links to it)

A ratio is "times better than the reference measured in the same run" (throughput over the reference's, or the
reference's time over ours), because absolute rates drift with the shared machine while side-by-side ratios do
not (docs/architecture.md, "Measuring"). A benchmark records each figure's target with it (train_throughput.py);
figures without one are reported, not judged.

    .venv/bin/python bench/run_all.py                    # every benchmark but BY_HAND's (~20 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --only neighbours  # run some, summarise all existing results
    .venv/bin/python bench/run_all.py --summarise-only   # no benchmark runs: summarise the committed results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from geocontrast.atomic import atomic_path, write_json

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


BY_HAND = ("scale", "workflow_time")
"""Benchmarks run only when named with --only: scale.py runs the whole workflow at 50,000 and 500,000 photos
(hours); workflow_time.py runs the default workflow from nothing (~12 minutes) and must run on a quiet machine."""


def benchmarks() -> list[str]:
    """Names of the benchmark scripts in bench/, sorted."""
    return sorted(path.stem for path in BENCH.glob("*.py") if path.name != Path(__file__).name)


def figure(
    name: str,
    value: float,
    reference_name: str,
    reference: float,
    ratio: float,
    target: float | None = None,
    passed: bool | None = None,
    unit: str = "",
) -> dict:
    """One row of the summary: ``ratio`` is times better than ``reference`` (higher is better)."""
    return {
        "figure": name,
        "value": value,
        "unit": unit,
        "reference": reference_name,
        "reference_value": reference,
        "ratio": ratio,
        "target": target,
        "pass": passed,
    }


def train_throughput_figures(results: dict) -> list[dict]:
    """Per encoder: every strategy end to end against compute-only, and augmented against lightly's SimCLR."""
    rows = []
    for encoder, result in results["encoders"].items():
        for strategy, row in result["strategies"].items():
            rows.append(
                figure(
                    f"{encoder} {strategy}: training loop end to end",
                    row["e2e_images_per_s"],
                    "compute-only step rate",
                    row["compute_images_per_s"],
                    row["e2e_over_compute"],
                    row["target"],
                    row["pass"],
                    unit="images/s",
                )
            )
        lightly = result.get("lightly")
        if lightly and lightly["augmented_over_lightly"] is not None:
            rows.append(
                figure(
                    f"{encoder} augmented: training loop end to end",
                    result["strategies"]["augmented"]["e2e_images_per_s"],
                    f"lightly SimCLR ({lightly['best']})",
                    lightly["best_images_per_s"],
                    lightly["augmented_over_lightly"],
                    lightly["target"],
                    lightly["pass"],
                    unit="images/s",
                )
            )
    return rows


def neighbours_figures(results: dict) -> list[dict]:
    """Per size: our neighbour table's time against cKDTree's capped nearest-K query (and full ball lists)."""
    rows = []
    for row in results["rows"]:
        ours = row["ours"]["time_s"]
        rows.append(
            figure(
                f"neighbour table, {row['n']:,} points",
                ours,
                "cKDTree nearest-K",
                row["kdtree_nearest_k"]["time_s"],
                row["kdtree_over_ours"],
                unit="s",
            )
        )
        if row["ball_list"]:
            rows.append(
                figure(
                    f"neighbour table, {row['n']:,} points",
                    ours,
                    "cKDTree ball lists + sample",
                    row["ball_list"]["time_s"],
                    row["ball_list_over_ours"],
                    unit="s",
                )
            )
    return rows


def data_throughput_figures(results: dict) -> list[dict]:
    """Rendering and image caching with 2 workers against 1."""
    return [
        figure(
            f"{stage} with 2 workers",
            results[f"{key}_2w"],
            "1 worker",
            results[f"{key}_1w"],
            results[f"{key}_2w"] / results[f"{key}_1w"],
            unit="images/s",
        )
        for stage, key in (("rendering", "render_images_per_s"), ("64 px image cache", "cache_64px_images_per_s"))
    ]


FIGURES: dict[str, Callable[[dict], list[dict]]] = {
    "train_throughput": train_throughput_figures,
    "neighbours": neighbours_figures,
    "data_throughput": data_throughput_figures,
}
"""What the summary shows of each benchmark's result file; a benchmark missing here is listed without figures."""


def run_benchmark(name: str) -> dict:
    """Run bench/<name>.py with this interpreter; its output goes to the terminal as it comes."""
    print(f"== bench/{name}.py", file=sys.stderr, flush=True)
    started = time.perf_counter()
    returncode = subprocess.run([sys.executable, str(BENCH / f"{name}.py")], cwd=BENCH.parent, check=False).returncode
    return {"ran": True, "exit_code": returncode, "seconds": round(time.perf_counter() - started, 1)}


def summarise(name: str, run: dict | None) -> dict:
    """A benchmark's entry in summary.json: how it ran (if it did now) and its figures from its result file."""
    path = RESULTS / f"{name}.json"
    entry = {"results": str(path.relative_to(BENCH.parent)), **(run or {"ran": False})}
    if run and run["exit_code"] != 0:
        entry["status"] = f"failed (exit code {run['exit_code']}); figures below are from an earlier run, if any"
    if not path.exists():
        entry.update(status=entry.get("status", "no results yet: run it"), figures=[])
        return entry
    results = json.loads(path.read_text())
    entry["machine"] = machine(results.get("machine", {}))
    entry.setdefault("status", "ran now" if run else "summarised from existing results")
    extract = FIGURES.get(name)
    entry["figures"] = extract(results) if extract else []
    if not extract:
        entry["status"] += "; no figures defined in bench/run_all.py FIGURES"
    return entry


def machine(info: dict) -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores, cpu' from a result file's machine record (what the ratios held on)."""
    parts = [
        info.get("cpu_model") or info.get("processor"),
        info.get("cpu_count") and f"{info['cpu_count']} cores",
        info.get("device"),
    ]
    return ", ".join(str(part) for part in parts if part) or "not recorded"


def markdown(summary: dict) -> str:
    """summary.json as a Markdown page: one table of every figure, then each benchmark's status."""
    lines = [
        "# Benchmark summary",
        "",
        (
            f"Written by `bench/run_all.py` on {summary['written_at']}. Ratio: times better than the reference "
            "measured in the same run (throughput over the reference's, or the reference's time over ours); "
            "absolute values drift with the shared machine, ratios much less. Figures without a target are reported, "
            "not judged."
        ),
        "",
        "| benchmark | figure | value | reference | ratio | target | pass |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary["benchmarks"].items():
        for row in entry["figures"]:
            target = f"≥ {row['target']:g}" if row["target"] is not None else "–"
            verdict = {True: "PASS", False: "**FAIL**", None: "–"}[row["pass"]]
            lines.append(
                f"| {name} | {row['figure']} | {row['value']:.3g} {row['unit']} | {row['reference']} "
                f"({row['reference_value']:.3g} {row['unit']}) | {row['ratio']:.2f} | {target} | {verdict} |"
            )
    lines += ["", "| benchmark | result file | machine | status |", "|---|---|---|---|"]
    for name, entry in summary["benchmarks"].items():
        lines.append(f"| {name} | `{entry['results']}` | {entry.get('machine', '–')} | {entry['status']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="run nothing; summarise the result files already in bench/results/",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=benchmarks(),
        help=f"run only these (of: {', '.join(benchmarks())}); the summary still covers all",
    )
    args = parser.parse_args(argv)

    to_run = [] if args.summarise_only else (args.only or [name for name in benchmarks() if name not in BY_HAND])
    runs = {name: run_benchmark(name) for name in to_run}
    summary = {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmarks": {name: summarise(name, runs.get(name)) for name in benchmarks()},
    }
    write_json(summary, RESULTS / "summary.json")
    table = markdown(summary)
    with atomic_path(RESULTS / "summary.md") as partial:
        partial.write_text(table)
    print(table)
    failed = [name for name, run in runs.items() if run["exit_code"] != 0]
    judged = [row for entry in summary["benchmarks"].values() for row in entry["figures"] if row["pass"] is not None]
    print(
        f"{len(judged) - sum(row['pass'] for row in judged)} of {len(judged)} judged figures below target; "
        f"{len(failed)} benchmark(s) failed to run{': ' + ', '.join(failed) if failed else ''}",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
