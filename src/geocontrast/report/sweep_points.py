"""The points of a sweep (``config/purity_sweep.yaml``) and their workflow runs: one Snakemake call per point.

A sweep file names the configs every point is built on, the overrides every point shares, one knob (``vary``, a
dotted config key) and its ``levels``, and ``extras``: points that change one more knob at the level ``extras_at``
(or at the level they set themselves). Each point is an ordinary workflow run with its own dataset name
(``<name>_<knob><level>`` or ``<name>_<extra>``), so its results live in ``results/<dataset>/`` and Snakemake caches
and resumes it. :func:`run_sweep` writes each point's overrides to ``results/sweeps/<name>/configs/<dataset>.yaml``
and calls ``snakemake results/<dataset>/comparisons.csv --configfile <configfiles> <that file> --cores N`` per
point, with the workflow profile ``make run`` would pick (a file rather than ``--config``, which would pass nested
numbers as strings). The CLI and the summaries are in :mod:`geocontrast.report.sweep`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from geocontrast.atomic import atomic_path
from geocontrast.settings import merged_config

RESULTS = Path("results")
"""The workflow's results folder, relative to the folder Snakemake runs in."""
TARGET = "comparisons.csv"
"""What each point's Snakemake run builds (its pretraining, with the pairs.json, comes with it)."""


@dataclass(frozen=True)
class Point:
    """One workflow run of a sweep: its dataset, the knob's level, the extra it changes (None on the curve) and
    its overrides of the sweep's configfiles."""

    dataset: str
    level: float
    extra: str | None
    config: dict


@dataclass(frozen=True)
class Sweep:
    name: str
    configfiles: list[str]
    vary: str
    points: list[Point]
    reference: str
    label_fractions: list[float]

    @property
    def folder(self) -> Path:
        """Where the figure, the table and the points' config files go (under the results folder)."""
        return Path("sweeps") / self.name


def nested(dotted: str, value) -> dict:
    """``{"a": {"b": value}}`` for ``"a.b"``."""
    for key in reversed(dotted.split(".")):
        value = {key: value}
    return value


def parse_sweep(spec: dict) -> Sweep:
    """The points of a sweep file (module docstring): the levels in order, then the extras at ``extras_at``."""
    name, vary, common = spec["name"], spec["vary"], spec.get("config", {})
    knob = vary.split(".")[-1]

    def point(dataset: str, level: float, extra: str | None, overrides: dict) -> Point:
        config = merged_config(merged_config(common, nested(vary, level)), overrides)
        return Point(dataset, level, extra, merged_config(config, {"dataset": {"name": dataset}}))

    def level_of(overrides: dict, default: float) -> float:
        """The knob's level an extra sets itself (its overrides name ``vary``), else ``default``."""
        for key in vary.split("."):
            if not isinstance(overrides, dict) or key not in overrides:
                return default
            overrides = overrides[key]
        return overrides

    points = [point(f"{name}_{knob}{level:g}", level, None, {}) for level in spec["levels"]]
    extras_at = spec.get("extras_at", spec["levels"][0])
    points += [
        point(f"{name}_{extra}", level_of(over, extras_at), extra, over)
        for extra, over in spec.get("extras", {}).items()
    ]
    return Sweep(
        name=name,
        configfiles=list(spec.get("configfiles", [])),
        vary=vary,
        points=points,
        reference=common.get("compare", {}).get("reference", "augmented"),
        label_fractions=[float(pct) for pct in spec.get("label_fractions", [10])],
    )


def read_sweep(path: Path) -> Sweep:
    return parse_sweep(yaml.safe_load(Path(path).read_text()))


def snakemake_command(
    sweep: Sweep, point: Point, config_path: Path, *, cores: str = "all", extra_args: Sequence[str] = ()
) -> list[str]:
    """The Snakemake call that builds ``point``'s comparisons (run from the folder holding config/config.yaml)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        str(RESULTS / point.dataset / TARGET),  # first: options such as --quiet take the words after them
        "--configfile",
        *sweep.configfiles,
        str(config_path),
        "--cores",
        str(cores),
        *extra_args,
    ]


def run_sweep(sweep: Sweep, *, cores: str = "all", dry_run: bool = False, extra_args: Sequence[str] = ()) -> int:
    """Each point's overrides written to its config file, then its Snakemake run, one after another, from the
    current folder (the workflow's); stops at the first point that fails (its return code)."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    for point in sweep.points:
        config_path = RESULTS / sweep.folder / "configs" / f"{point.dataset}.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(config_path) as partial:
            partial.write_text(yaml.safe_dump(point.config, sort_keys=False))
        arguments = [*extra_args, *(["-n"] if dry_run else [])]
        command = snakemake_command(sweep, point, config_path, cores=cores, extra_args=arguments)
        print(" ".join(command), flush=True)
        code = subprocess.run(command, env=env).returncode
        if code != 0:
            print(f"{point.dataset}: snakemake failed ({code})", file=sys.stderr)
            return code
    return 0


def default_profile() -> str:
    """The workflow profile ``make run`` picks: ``cpu`` where ``nvidia-smi -L`` finds no GPU, else ``default``."""
    if shutil.which("nvidia-smi") is None:
        return "cpu"
    return "default" if subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0 else "cpu"
