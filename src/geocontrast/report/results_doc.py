"""The generated part of ``docs/results.md``: for each results folder, the run's two text summaries with the
date, machine and config that produced them, written between two markers of an existing Markdown file.

The workflow's ``results_table`` and ``comparisons`` rules write ``results_summary.txt`` and ``comparisons.txt``
into ``results/<dataset.name>/``. The date is when the summary was written;
the machine is the one this command runs on, so run it where the workflow ran. Everything outside the markers
(the hand-written prose and tables) is kept as it is::

    python -m geocontrast.report.results_doc results/synthetic_flora --config config/config.yaml \\
        --out docs/results.md
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from geocontrast.atomic import write_text
from geocontrast.cli import exit_without_teardown

BEGIN = "<!-- generated:begin -->"
END = "<!-- generated:end -->"
TEXTS = (
    ("results_summary.txt", "Summary over seeds"),
    ("comparisons.txt", "Paired comparisons"),
)
"""The files read from each results folder, in the order they are shown, with their headings."""


def cpu_model(cpuinfo: str) -> str | None:
    """The first ``model name`` of a /proc/cpuinfo text, or None when it has none (e.g. some ARM kernels)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def gpu_seen() -> str:
    """What torch sees: the first GPU's name, 'no GPU' or 'torch not installed' (torch is imported only here)."""
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} seen by torch)"
    return "no GPU seen by torch"


def describe_machine(cpuinfo: Path = Path("/proc/cpuinfo"), gpu: str | None = None) -> str:
    """The CPU model (from ``cpuinfo`` when readable, else :func:`platform.processor`), its logical core count
    and the GPU torch sees (``gpu`` given: that text instead of asking torch)."""
    model = cpu_model(cpuinfo.read_text()) if cpuinfo.is_file() else None
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model}, {os.cpu_count()} logical cores, {gpu_seen() if gpu is None else gpu}"


def text_paths(results_dir: Path) -> list[tuple[Path, str]]:
    """(path, heading) of each of :data:`TEXTS` in ``results_dir``; FileNotFoundError names the first missing."""
    paths = [(results_dir / name, heading) for name, heading in TEXTS]
    for path, _ in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; the workflow writes it at the end of a run (make run)")
    return paths


def pretraining_recipe(results: pd.DataFrame) -> str:
    """The encoders, resolutions and epochs of the pretrained runs in a results.csv (the defaults change over
    time, so a section names what its numbers were measured with), e.g. "cnn5_half at 32 px, 5 epochs"."""
    trained = results[results["epochs"].fillna(0) > 0]
    recipes = trained[["encoder", "resolution", "epochs"]].drop_duplicates()
    if recipes.empty:
        return "none"
    return "; ".join(f"{r.encoder} at {r.resolution:g} px, {r.epochs:g} epochs" for r in recipes.itertuples())


def results_section(results_dir: Path, machine: str, config: Path | None = None) -> str:
    """One Markdown section for a results folder: dataset, date, machine, config and the two texts fenced.

    Raises FileNotFoundError naming the missing file when the folder lacks one of :data:`TEXTS`."""
    paths = text_paths(results_dir)
    written = datetime.fromtimestamp(paths[0][0].stat().st_mtime, tz=UTC).date().isoformat()
    lines = [
        f"### {results_dir.name}",
        "",
        f"- date: {written} (when `{paths[0][0].name}` was written)",
        f"- machine: {machine}",
        f"- config: {f'`{config}`' if config is not None else 'not recorded'}",
    ]
    if (results_dir / "results.csv").exists():
        lines.append(f"- pretraining: {pretraining_recipe(pd.read_csv(results_dir / 'results.csv'))}")
    for path, heading in paths:
        lines += ["", f"{heading} (`{path}`):", "", "```text", path.read_text().rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def replace_generated(document: str, generated: str) -> str:
    """``document`` with the text between :data:`BEGIN` and :data:`END` replaced by ``generated``; the markers and
    everything outside them are kept. Raises ValueError when the markers are missing, repeated or out of order."""
    if document.count(BEGIN) != 1 or document.count(END) != 1 or document.index(BEGIN) > document.index(END):
        raise ValueError(f"expected one {BEGIN} line followed by one {END} line")
    head, rest = document.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{generated.strip()}\n{END}{tail}"


def generated_text(sections: Sequence[str]) -> str:
    note = "<!-- Written by `make results-doc` (python -m geocontrast.report.results_doc); edits here are lost. -->"
    return "\n\n".join([note, *(section.strip() for section in sections)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.results_doc", description=__doc__)
    parser.add_argument("results", nargs="+", type=Path, help="results folders, e.g. results/synthetic_flora")
    parser.add_argument(
        "--config",
        nargs="*",
        type=Path,
        default=[],
        help="the config file each results folder was run with, in the same order (none: 'not recorded')",
    )
    parser.add_argument("--out", required=True, type=Path, help="the Markdown file holding the markers")
    args = parser.parse_args(argv)
    if args.config and len(args.config) != len(args.results):
        parser.error(f"{len(args.config)} --config files for {len(args.results)} results folders: give one each")
    if not args.out.is_file():
        parser.error(f"{args.out}: not found; it must exist and hold the {BEGIN} and {END} markers")
    configs = args.config or [None] * len(args.results)
    try:
        for folder in args.results:  # every file checked before torch is imported to look for a GPU
            text_paths(folder)
        machine = describe_machine()
        sections = [results_section(folder, machine, config) for folder, config in zip(args.results, configs)]
        document = replace_generated(args.out.read_text(), generated_text(sections))
    except FileNotFoundError as error:
        parser.error(str(error))
    except ValueError as error:
        parser.error(f"{args.out}: {error}")
    write_text(document, args.out)
    print(f"wrote {len(sections)} results section(s) into {args.out}")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
