"""A workflow run's jobs as a table: Snakemake's logs and benchmark files joined with the exact process records.

bench/scale.py and bench/workflow_time.py run the workflow with :func:`snakemake`, which puts
``bench/process_log`` on the jobs' PYTHONPATH so that every Python process logs its exact peak RSS, CPU time and
age when it exits (``bench/process_log/sitecustomize.py``). Snakemake's own ``benchmark:`` files give each job's
wall time exactly, but sample its CPU time and RSS twice a second for the first 15 s and every 30 s after, and
keep the last sample: a job's CPU time after its last sample is missing (a 40 s job is reported with its first
15 s of CPU). :func:`read_benchmarks` replaces both by the exact records where a job's process logged one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent.parent
PROCESS_LOG = "processes.jsonl"
"""One JSON line per Python process of a run (``bench/process_log/sitecustomize.py``), in the run's workdir."""


def snakemake(
    workdir: Path, args: list[str], repo: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``snakemake -s <repo>/workflow/Snakefile --directory <workdir> <args>`` with this interpreter, whose folder
    comes first on PATH as ``make run`` puts the virtualenv's (the rules call ``python -m geocontrast...``); its
    jobs import geocontrast from ``<repo>/src`` (the checkout timed, whatever is installed) and log their processes
    to ``<workdir>/processes.jsonl``."""
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "workflow" / "Snakefile")]
    command += ["--directory", str(workdir), *args]
    paths = [str(repo / "src"), str(REPO / "bench" / "process_log"), os.environ.get("PYTHONPATH", "")]
    env = {**(env or os.environ), "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["GEOCONTRAST_PROCESS_LOG"] = str(workdir.resolve() / PROCESS_LOG)
    return subprocess.run(command, capture_output=True, text=True, env=env)


def job_outputs(log_folder: Path) -> dict[str, tuple[str, list[str]]]:
    """Benchmark file stem -> (the module its shell command runs with ``python -m``, its output paths), from
    Snakemake's logs in ``log_folder`` (the latest log wins for a job run again)."""
    jobs: dict[str, tuple[str, list[str]]] = {}
    for log in sorted(log_folder.glob("*.log")):
        for block in re.split(r"\n(?=(?:local)?rule \w+:)", log.read_text()):
            output = re.search(r"^\s+output: (.+)$", block, re.M)
            benchmark = re.search(r"^\s+benchmark: (.+)$", block, re.M)
            module = re.search(r"python -m ([\w.]+)", block)
            if output and benchmark and module:
                paths = [path.strip() for path in output.group(1).split(",")]
                jobs[Path(benchmark.group(1).strip()).stem] = (module.group(1), paths)
    return jobs


def job_processes(process_log: Path, jobs: dict[str, tuple[str, list[str]]]) -> dict[str, dict]:
    """Benchmark file stem -> the record of the job's process: a process of the job's module whose command line
    names one of the job's outputs (or, failing that, the folder of one, as ``--out-dir`` does; the module tells a
    job from a later one that names the same file as its input); the last such record for a job run again."""
    if not process_log.exists():
        return {}
    records = [json.loads(line) for line in process_log.read_text().splitlines() if line.strip()]
    found: dict[str, dict] = {}
    for stem, (module, paths) in jobs.items():
        files = module.replace(".", "/")
        own = [r for r in records if r["argv"][0].endswith((f"{files}.py", f"{files}/__main__.py"))]
        for names in (set(paths), {str(Path(path).parent) for path in paths}):
            matches = [r for r in own if names & set(r["argv"][1:])]
            if matches:
                found[stem] = matches[-1]
                break
    return found


def exact_peaks(process_log: Path, jobs: dict[str, tuple[str, list[str]]]) -> dict[str, float]:
    """Benchmark file stem -> the job's exact peak RSS (MB): its process's own peak. A child's peak is not added:
    a forked child's counts the parent's pages it was forked with (the short-lived child of each 500,000-photo
    torch job reported 450-560 MB); the memory of a worker pool is in Snakemake's samples, which sum the job's
    processes."""
    return {stem: record["max_rss_mb"] for stem, record in job_processes(process_log, jobs).items()}


def exact_cpu(process_log: Path, jobs: dict[str, tuple[str, list[str]]]) -> dict[str, float]:
    """Benchmark file stem -> the job's exact CPU seconds: its process's own and its waited-for children's (a
    worker pool's); records written before ``cpu_seconds`` was logged give none."""
    return {
        stem: record["cpu_seconds"] + record["children_cpu_seconds"]
        for stem, record in job_processes(process_log, jobs).items()
        if "cpu_seconds" in record
    }


def rule_names(repo: Path = REPO) -> list[str]:
    """Every rule of the workflow (the stages benchmark files are grouped into)."""
    text = "".join(path.read_text() for path in (repo / "workflow" / "rules").glob("*.smk"))
    return sorted(set(re.findall(r"^\s*rule (\w+):", text, re.M)))


def stage_of(stem: str, rules: list[str]) -> str:
    """The rule a benchmark file belongs to: the longest rule name its name starts with."""
    matches = [rule for rule in rules if stem == rule or stem.startswith(rule + "_")]
    return max(matches, key=len) if matches else stem


def read_benchmarks(
    folder: Path, rules: list[str], peaks: dict[str, float] | None = None, cpu: dict[str, float] | None = None
) -> pd.DataFrame:
    """One row per job: stage, job (file stem), wall seconds (Snakemake's benchmark column s), cpu_seconds and
    max_rss_mb, with their sources. cpu_seconds: the job's exact CPU time from ``cpu`` (``cpu_source`` "exact"),
    else Snakemake's sampled cpu_time ("sampled", an undercount for jobs longer than 15 s); sampled_cpu_seconds
    keeps the sampled one. max_rss_mb: the larger of the job's exact peak from ``peaks`` (``rss_source`` "exact")
    and the sampled one (a sample sums the job's process tree at one moment); sampled_rss_mb keeps it."""
    peaks, cpu = peaks or {}, cpu or {}
    rows = []
    for path in sorted(folder.glob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        sampled_rss = float(pd.to_numeric(table["max_rss"], errors="coerce").iloc[-1])
        sampled_cpu = float(pd.to_numeric(table["cpu_time"], errors="coerce").iloc[-1])
        rows.append(
            {
                "stage": stage_of(path.stem, rules),
                "job": path.stem,
                "seconds": float(pd.to_numeric(table["s"], errors="coerce").iloc[-1]),
                "cpu_seconds": cpu.get(path.stem, sampled_cpu),
                "max_rss_mb": max(peaks.get(path.stem, sampled_rss), sampled_rss),
                "sampled_cpu_seconds": sampled_cpu,
                "sampled_rss_mb": sampled_rss,
                "cpu_source": "exact" if path.stem in cpu else "sampled",
                "rss_source": "exact" if path.stem in peaks else "sampled",
            }
        )
    columns = ["stage", "job", "seconds", "cpu_seconds", "max_rss_mb", "sampled_cpu_seconds", "sampled_rss_mb"]
    return pd.DataFrame(rows, columns=[*columns, "cpu_source", "rss_source"])


def cpu_model() -> str:
    """The CPU's model name (lscpu), e.g. 'Intel(R) Xeon(R) Processor @ 2.80GHz'."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except (OSError, AttributeError):
        import platform

        return platform.processor()


def vector_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """Which of the vector extensions that set these runs' speed the CPU has (avx2, avx512f, avx512_bf16,
    amx_tile): what tells a plain-AVX2 machine from an AVX-512 or AMX one."""
    try:
        flags = {flag for line in cpuinfo.read_text().splitlines() if line.startswith("flags") for flag in line.split()}
    except OSError:
        return []
    return [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if flag in flags]
