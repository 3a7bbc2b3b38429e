"""The map of when geography helps: a sweep of the world's local aggregation, its table, its crossover and figure.

The sweep's points and their runs are :mod:`geocontrast.report.sweep_points`; this module is the CLI::

    python -m geocontrast.report.sweep run config/purity_sweep.yaml [--cores all] [--profile cpu] [--dry-run] \\
        [-- SNAKEMAKE-ARGS]
    python -m geocontrast.report.sweep summarise config/purity_sweep.yaml [--results results]

``summarise`` reads what has finished: per point, ``comparisons.csv`` (the paired Δ of each geographic strategy
against the reference, with its interval) and the ``pairs.json`` of each strategy's pretraining seeds (the
measured purity of the context positives the runs used: ``pairs.positive.same_species``, over the positives that
are another photo; anchors that fell back to themselves are ``self_share``). It writes
``results/sweeps/<name>/sweep.csv`` and ``sweep.md`` (one row per point, strategy and protocol) and ``sweep.png``
(and .svg): Δ top-1 against measured purity, a panel per protocol, with the crossover of each strategy's curve
(:func:`crossover`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path
from geocontrast.cli import exit_without_teardown
from geocontrast.data.real_pairs import REAL_RANGES, range_text
from geocontrast.report.panels import finish_figure, panel_grid, protocol_order, protocol_title
from geocontrast.report.style import plt, save_figure, strategy_colour
from geocontrast.report.sweep_points import RESULTS, TARGET, Point, Sweep, default_profile, read_sweep, run_sweep

REAL_SPECIES_POSITIVE = REAL_RANGES[("species", "positive")]
"""The purity of real collections' context positives (two iNaturalist exports), drawn as a band in every panel."""
REAL_BAND = {"facecolor": "none", "edgecolor": "0.72", "hatch": "///", "linewidth": 0}
GEOGRAPHIC = ("context_pos", "context_pos_neg")
"""The strategies whose Δ against the reference the sweep maps."""
EXTRA_MARKERS = ("s", "D", "^", "v", "P", "X")
EXTRA_NUDGE = 1.12
"""The k-th extra at a curve point's purity is drawn at its purity x EXTRA_NUDGE**k (k from 1): an extra that changes
no pair share would hide behind the curve's point of its level (:func:`extra_nudges`)."""
TABLE_COLUMNS = [
    "dataset", "level", "extra", "strategy", "protocol", "purity", "random_purity", "self_share", "pair_seeds",
    "diff", "low", "high", "n_pairs", "verdict", "vary", "reference", "label_fraction",
]  # fmt: skip
"""sweep.csv: one row per (point, strategy, protocol); shares and differences are fractions; the last three are
the sweep's knob, reference strategy and label budget (%), the same on every row, so the table draws on its own."""


@dataclass(frozen=True)
class Crossover:
    """Where a Δ curve crosses 0: ``purity`` (the first crossing), and ``low``/``high``, the purities between
    which the interval covers 0 around it (NaN: the interval still covers 0 at that end of the sweep)."""

    purity: float
    low: float
    high: float
    crossings: int


def pair_purity(folder: Path, strategy: str) -> dict:
    """Mean over ``strategy``'s pretraining seeds in ``folder`` (a point's results) of its pairs.json shares:
    ``purity`` (positives of the anchor's species), ``random_purity`` (random pairs of it), ``self_share``
    (anchors whose positive fell back to themselves) and ``pair_seeds`` (the pairs.json files read)."""
    records = [
        json.loads(path.read_text()) for path in sorted((folder / "pretrain" / strategy).glob("seed*/pairs.json"))
    ]

    def mean(kind: str, share: str) -> float:
        values = [(record["pairs"].get(kind) or {}).get(share) for record in records]
        values = [value for value in values if value is not None]
        return float(np.mean(values)) if values else math.nan

    return {
        "purity": mean("positive", "same_species"),
        "random_purity": mean("random", "same_species"),
        "self_share": mean("positive", "self_share"),
        "pair_seeds": len(records),
    }


def point_rows(point: Point, folder: Path, reference: str, label_fraction: float, metric: str = "top1") -> pd.DataFrame:
    """A finished point's rows: per geographic strategy and protocol, the paired Δ ``metric`` against
    ``reference`` at ``label_fraction`` % labels from its comparisons.csv, beside its strategy's :func:`pair_purity`."""
    comparisons = pd.read_csv(folder / TARGET)
    chosen = comparisons[
        (comparisons["reference"] == reference)
        & comparisons["strategy"].isin(GEOGRAPHIC)
        & (comparisons["metric"] == metric)
        & np.isclose(comparisons["label_fraction"], label_fraction)
    ]
    purity = {strategy: pair_purity(folder, strategy) for strategy in chosen["strategy"].unique()}
    rows = [
        {
            "dataset": point.dataset,
            "level": point.level,
            "extra": point.extra or "",
            "strategy": row.strategy,
            "protocol": row.protocol,
            **purity[row.strategy],
            "diff": row.diff,
            "low": row.low,
            "high": row.high,
            "n_pairs": row.n_pairs,
            "verdict": row.verdict,
            "reference": reference,
            "label_fraction": label_fraction,
        }
        for row in chosen.itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def sweep_table(sweep: Sweep, results: Path) -> tuple[pd.DataFrame, list[str]]:
    """The rows of every point whose comparisons.csv exists under ``results``, in the sweep's order, and the
    datasets of the points not finished yet."""
    frames, missing = [], []
    for point in sweep.points:
        folder = results / point.dataset
        if (folder / TARGET).exists():
            frames += [point_rows(point, folder, sweep.reference, pct) for pct in sweep.label_fractions]
        else:
            missing.append(point.dataset)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLE_COLUMNS)
    return table.assign(vary=sweep.vary), missing


def read_sweep_table(path: Path) -> pd.DataFrame:
    """A sweep.csv as :func:`sweep_table` made it (a curve point's empty ``extra`` read back as "")."""
    return pd.read_csv(path, dtype={"extra": str}).fillna({"extra": ""})


def zero_crossings(t: np.ndarray, y: np.ndarray) -> list[float]:
    """The t where the piecewise-linear curve through (t, y) reaches 0: each point with y = 0, and the linear
    interpolation inside each segment whose ends have opposite signs."""
    found = [float(t[i]) for i in range(len(t)) if y[i] == 0]
    for i in range(len(t) - 1):
        if y[i] * y[i + 1] < 0:
            found.append(float(t[i] + (t[i + 1] - t[i]) * y[i] / (y[i] - y[i + 1])))
    return sorted(found)


def crossover(
    purity: Sequence[float], diff: Sequence[float], low: Sequence[float], high: Sequence[float]
) -> Crossover | None:
    """Where Δ crosses 0 along the sweep, or None where it keeps one sign over the measured purities.

    The curve joins the points (sorted by purity) with straight lines in log purity, as the figure draws them;
    points without a finite Δ or a positive purity are left out. The crossover is its first zero (``crossings``
    counts them all). Its interval joins the interval bounds the same way: it is the stretch of purity around the
    crossover where the interpolated interval covers 0, ended on each side by the nearest zero of either bound's
    curve (below it geography surely hurts, above it surely helps, or the reverse). An end where the interval
    still covers 0 at the last measured purity, or where the points have no intervals, is NaN: the sweep does not
    bound the crossover on that side.
    """
    frame = pd.DataFrame({"purity": purity, "diff": diff, "low": low, "high": high}).astype(float)
    frame = frame[np.isfinite(frame["diff"]) & (frame["purity"] > 0)].sort_values("purity")
    t = np.log10(frame["purity"].to_numpy())
    roots = zero_crossings(t, frame["diff"].to_numpy())
    if not roots:
        return None
    root = roots[0]
    bounded = frame[np.isfinite(frame["low"]) & np.isfinite(frame["high"])]
    tb = np.log10(bounded["purity"].to_numpy())
    ends = [*zero_crossings(tb, bounded["low"].to_numpy()), *zero_crossings(tb, bounded["high"].to_numpy())]
    below = [end for end in ends if end <= root]
    above = [end for end in ends if end >= root]
    return Crossover(
        purity=10**root,
        low=10 ** max(below) if below else math.nan,
        high=10 ** min(above) if above else math.nan,
        crossings=len(roots),
    )


CURVE = ["strategy", "protocol", "label_fraction"]
"""What one curve of the sweep is: a geographic strategy's Δ under one protocol at one label budget."""


def crossovers(table: pd.DataFrame) -> pd.DataFrame:
    """The :func:`crossover` of each :data:`CURVE` of the level points (extras left out)."""
    rows = []
    curves = table[table["extra"] == ""]
    for (strategy, protocol, label_fraction), curve in curves.groupby(CURVE, sort=False):
        found = crossover(curve["purity"], curve["diff"], curve["low"], curve["high"])
        rows.append(
            {
                "strategy": strategy,
                "protocol": protocol,
                "label_fraction": label_fraction,
                "purity": found.purity if found else math.nan,
                "low": found.low if found else math.nan,
                "high": found.high if found else math.nan,
                "crossings": found.crossings if found else 0,
            }
        )
    return pd.DataFrame(rows, columns=[*CURVE, "purity", "low", "high", "crossings"])


def percent(value: float, digits: int = 1) -> str:
    return "–" if not np.isfinite(value) else f"{100 * value:.{digits}f}"


def bound(value: float) -> str:
    return "open" if not np.isfinite(value) else percent(value, 2)


def budgets_text(label_fractions) -> str:
    """10 -> "10 %"; [10, 100] -> "10 and 100 %"."""
    values = [f"{pct:g}" for pct in dict.fromkeys(label_fractions)]
    return (", ".join(values[:-1]) + " and " if len(values) > 1 else "") + f"{values[-1]} %"


def sweep_markdown(sweep: Sweep, table: pd.DataFrame, found: pd.DataFrame, missing: list[str]) -> str:
    """sweep.md: the table in percent, the crossovers and the points not finished yet."""
    knob = sweep.vary.split(".")[-1]
    lines = [
        f"Δ top-1 (points) of each geographic strategy − {sweep.reference} at {budgets_text(sweep.label_fractions)} "
        f"labels, against the measured purity of its context positives (% of positives of the anchor's species; "
        f"random pairs beside it). `{sweep.vary}` sets each level; an extra changes one more knob.",
        "",
        f"| {knob} | extra | strategy | protocol | labels % | purity % | random pairs % | self % | Δ | interval "
        "| replicates | verdict |",
        "|---:|:---|:---|:---|---:|---:|---:|---:|---:|:---|---:|:---|",
    ]
    for row in table.itertuples(index=False):
        interval = "–" if not np.isfinite(row.low) else f"[{percent(row.low)}, {percent(row.high)}]"
        lines.append(
            f"| {row.level:g} | {row.extra or '–'} | {row.strategy} | {row.protocol} | {row.label_fraction:g} "
            f"| {percent(row.purity, 2)} "
            f"| {percent(row.random_purity, 2)} | {percent(row.self_share)} | {percent(row.diff)} | {interval} "
            f"| {row.n_pairs} | {row.verdict} |"
        )
    lines += [
        "",
        "Crossover (purity % where Δ reaches 0, and where its interval covers 0 around it; open: it still covers 0 "
        "at that end of the sweep):",
        "",
    ]
    for row in found.itertuples(index=False):
        where = (
            f"{percent(row.purity, 2)} % [{bound(row.low)}, {bound(row.high)}]"
            + (f", first of {row.crossings}" if row.crossings > 1 else "")
            if row.crossings
            else "none in the measured range"
        )
        lines.append(f"- {row.strategy}, {row.protocol}, {row.label_fraction:g} % labels: {where}")
    if missing:
        lines += ["", f"Not finished yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def extra_nudges(table: pd.DataFrame) -> dict[str, float]:
    """The factor each point's purity is drawn at: 1 on the curve and for an extra at a purity of its own; the k-th
    extra that sits on a curve point's purity (within 10 %), EXTRA_NUDGE**k, so that it does not hide there."""
    curve = table.loc[table["extra"] == "", "purity"].to_numpy(float)
    nudges, hidden = {"": 1.0}, 0
    for extra, rows in table[table["extra"] != ""].groupby("extra", sort=False):
        on_curve = np.isclose(rows["purity"].mean(), curve, rtol=0.1).any()
        hidden += int(on_curve)
        nudges[extra] = EXTRA_NUDGE**hidden if on_curve else 1.0
    return nudges


def sweep_figure(
    table: pd.DataFrame, found: pd.DataFrame, *, mark: tuple[float, str] | None = None, figure_width_in: float = 7.0
) -> plt.Figure:
    """Δ top-1 (points) against measured purity (log), a panel per protocol and label budget: each geographic
    strategy's levels joined, with their intervals, the zero line, the crossover (dotted) with its interval
    (shaded), and the extra points as open markers at their own purity, nudged right (:data:`EXTRA_NUDGE`), and the
    real collections' purity as a hatched band (:data:`REAL_SPECIES_POSITIVE`). ``mark``: a purity (a fraction) and
    its label drawn as a solid vertical line in every panel (a collection's place on the map)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogFormatter

    budgets = sorted(set(table["label_fraction"]))
    panels = [(protocol, pct) for pct in budgets for protocol in protocol_order(table["protocol"])]
    vary, reference = table[["vary", "reference"]].iloc[0]
    measured = 100 * table.loc[table["extra"] == "", "purity"]
    # One budget: two panels a row; several: a row per budget, a panel per protocol.
    columns = 2 if len(budgets) == 1 else len(panels) // len(budgets)
    width = figure_width_in if columns <= 2 else max(figure_width_in, columns * 3.5)
    figure, axes, _ = panel_grid(max(1, len(panels)), width, 0.55 * 2 / columns, columns)
    extras = list(dict.fromkeys(table.loc[table["extra"] != "", "extra"]))
    markers = dict(zip(extras, EXTRA_MARKERS))
    nudges = extra_nudges(table)
    drawn = 100 * table["purity"] * table["extra"].map(nudges)
    marks = [100 * share for share in REAL_SPECIES_POSITIVE] + ([100 * mark[0]] if mark and mark[0] > 0 else [])
    x_range = (min([drawn.min(), *marks]) / 1.25, max([drawn.max(), *marks]) * 1.25)
    for ax, (protocol, pct) in zip(axes, panels):
        panel = table[(table["protocol"] == protocol) & (table["label_fraction"] == pct)]
        ax.axhline(0, color="0.35", linewidth=0.8, linestyle="--", zorder=1)
        for strategy, rows in panel.groupby("strategy", sort=False):
            colour = strategy_colour(strategy)
            for extra, points in rows.groupby("extra", sort=False):
                points = points.sort_values("purity")
                errors = 100 * np.abs(points[["low", "high"]].to_numpy().T - points["diff"].to_numpy())
                style = (
                    {"marker": "o", "linestyle": "-", "markerfacecolor": colour}
                    if extra == ""
                    else {"marker": markers[extra], "linestyle": "none", "markerfacecolor": "white"}
                )
                x, y = 100 * points["purity"] * nudges[extra], 100 * points["diff"]
                errors = np.nan_to_num(errors)  # a point without an interval is drawn without a bar
                ax.errorbar(x, y, yerr=errors, color=colour, markersize=5, linewidth=1.2, capsize=2, zorder=3, **style)
            cross = found[
                (found["strategy"] == strategy) & (found["protocol"] == protocol) & (found["label_fraction"] == pct)
            ]
            for row in cross[cross["crossings"] > 0].itertuples(index=False):
                low = 100 * row.low if np.isfinite(row.low) else measured.min()
                high = 100 * row.high if np.isfinite(row.high) else measured.max()
                ax.axvspan(low, high, color=colour, alpha=0.12, linewidth=0, zorder=0)
                ax.axvline(100 * row.purity, color=colour, linewidth=1.0, linestyle=":", zorder=2)
        ax.axvspan(*(100 * share for share in REAL_SPECIES_POSITIVE), **REAL_BAND, zorder=0)
        if mark is not None:
            ax.axvline(100 * mark[0], color="black", linewidth=1.3, zorder=4)
        ax.set_xscale("log")
        ax.set_xlim(*x_range)  # every panel on one purity axis, so they read side by side
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))  # labels 2, 3, 5 only on a narrow range
        ax.set_title(protocol_title(protocol) + ("" if len(budgets) == 1 else f", {pct:g} % labels"))
        ax.set_xlabel("context positives of the anchor's species (%)")
        ax.set_ylabel(f"Δ top-1 vs {reference} (points)")
    strategies = list(dict.fromkeys(table["strategy"]))
    handles = [Line2D([], [], color=strategy_colour(s), marker="o", label=s) for s in strategies]
    knob, levels = vary.split(".")[-1], table.groupby("extra")["level"].first()
    handles += [
        Line2D([], [], color="0.3", marker=markers[e], ls="none", mfc="white", label=f"{e} ({knob} {levels[e]:g})")
        for e in extras
    ]
    handles.append(Patch(color="0.3", alpha=0.2, label="crossover (dotted), its interval"))
    handles.append(Patch(**REAL_BAND, label=f"real iNaturalist exports ({range_text('species', 'positive')})"))
    if mark is not None:
        handles.append(Line2D([], [], color="black", linewidth=1.3, label=f"{mark[1]} ({100 * mark[0]:.2g} %)"))
    counts = sorted(set(table["n_pairs"]))
    n = "no" if not counts else f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}\u2013{counts[-1]}"
    title = (
        f"When geography helps: Δ top-1 at {budgets_text(budgets)} labels against the purity of context "
        f"positives ({vary} swept; mean over {n} replicates with its interval)"
    )
    return finish_figure(figure, handles, [h.get_label() for h in handles], "", title)


def summarise(sweep: Sweep, results: Path) -> list[Path]:
    """Write sweep.csv, sweep.md and sweep.png (and .svg) of what has finished; returns the paths."""
    table, missing = sweep_table(sweep, results)
    found = crossovers(table)
    folder = results / sweep.folder
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "sweep.csv") as partial:
        table.to_csv(partial, index=False)
    with atomic_path(folder / "sweep.md") as partial:
        partial.write_text(sweep_markdown(sweep, table, found, missing))
    written = [folder / "sweep.csv", folder / "sweep.md"]
    if not table.empty:
        written += save_figure(sweep_figure(table, found), folder / "sweep.png")
    for dataset in missing:
        print(f"{dataset}: not finished ({results / dataset / TARGET} missing)", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    argv, snakemake_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.report.sweep",
        description=__doc__.splitlines()[0],
        epilog="run: the arguments after -- go to every snakemake call",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the workflow for every point (snakemake per point)")
    summary = commands.add_parser("summarise", help="table and figure of the finished points")
    for sub in (run, summary):
        sub.add_argument("sweep", type=Path, help="sweep file, e.g. config/purity_sweep.yaml")
    run.add_argument("--cores", default="all")
    run.add_argument("--profile", help="workflow profile under profiles/ (default: as make run picks)")
    run.add_argument("--dry-run", action="store_true", help="plan every point (snakemake -n)")
    summary.add_argument("--results", type=Path, default=RESULTS, help="the workflow's results folder")
    args = parser.parse_args(argv)
    sweep = read_sweep(args.sweep)
    if args.command == "run":
        profile = ["--workflow-profile", f"profiles/{args.profile or default_profile()}"]
        return run_sweep(sweep, cores=args.cores, dry_run=args.dry_run, extra_args=[*profile, *snakemake_args])
    if snakemake_args:
        parser.error("summarise takes no snakemake arguments")
    print("\n".join(map(str, summarise(sweep, args.results))))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
