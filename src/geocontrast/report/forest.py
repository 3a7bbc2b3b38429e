"""Forest plot of the paired comparisons: one row per strategy vs reference, one panel per protocol.

Input: ``comparisons.csv`` (:mod:`geocontrast.results.compare`; differences are fractions, drawn as points).

CLI (called by ``workflow/rules/report.smk``; writes ``comparisons.png`` and ``comparisons.svg``)::

    python -m geocontrast.report.forest --comparisons comparisons.csv --out comparisons.png \\
        [--params-json '{"metric": "top1", "label_fraction": 10, "figure_width_in": 7.0}']
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.cli import exit_without_teardown, json_object
from geocontrast.report.panels import (
    at_label_fraction,
    finish_figure,
    is_bottom,
    panel_grid,
    protocol_order,
    protocol_title,
    strategy_order,
)
from geocontrast.report.style import plt, save_figure, strategy_colour
from geocontrast.results.compare import METRIC_NAMES

ROW_IN = 0.22  # height of one comparison row; 20 rows and the legend fit a page
MARGIN_IN = 1.4  # title, x label and legend


def forest_rows(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The (reference, strategy) rows, grouped by reference (the config's reference first), the first reference
    leading the strategies of the later groups, then the results' order; columns reference, strategy, y (0: top)."""
    pairs = comparisons[["reference", "strategy"]].drop_duplicates()
    references = list(dict.fromkeys(comparisons["reference"]))
    order = {s: i for i, s in enumerate(strategy_order([references[0], *comparisons["strategy"]]))}
    pairs = pairs.assign(r=pairs["reference"].map(references.index), s=pairs["strategy"].map(order)).sort_values(
        ["r", "s"]
    )
    return pairs[["reference", "strategy"]].reset_index(drop=True).rename_axis("y").reset_index()


def forest_plot(
    comparisons: pd.DataFrame, *, metric: str = "top1", label_fraction: float = 10, figure_width_in: float = 7.0
) -> plt.Figure:
    """Mean paired difference (point) and interval (line) per strategy vs reference, a panel per protocol.

    Filled points: resolved (the primary comparison: its interval excludes 0; an exploratory one: its Holm-adjusted
    p is below 1 - confidence); open: unresolved; a point without a line: no interval (one replicate, no spread).
    """
    from matplotlib.lines import Line2D

    if metric not in METRIC_NAMES:
        raise ValueError(f"metric must be one of {list(METRIC_NAMES)}, not {metric!r}")
    if comparisons.empty:
        figure, ax = plt.subplots(figsize=(figure_width_in, 1.5))
        ax.text(0.5, 0.5, "no comparisons: the results hold no strategy besides the references", ha="center")
        ax.set_axis_off()
        return figure
    shown = at_label_fraction(comparisons[comparisons["metric"] == metric], label_fraction)
    rows = forest_rows(shown)
    shown = shown.merge(rows, on=["reference", "strategy"])
    protocols = protocol_order(shown["protocol"])
    height = len(rows) * ROW_IN + MARGIN_IN
    figure, axes, columns = panel_grid(len(protocols), figure_width_in, height / figure_width_in, len(protocols))
    name = METRIC_NAMES[metric]
    for i, (ax, protocol) in enumerate(zip(axes, protocols)):
        draw_forest(ax, shown[shown["protocol"] == protocol], len(rows))
        ax.set_title(protocol_title(protocol))
        if i % columns == 0:
            ax.set_yticks(rows["y"], [f"{s} \u2212 {r}" for s, r in zip(rows["strategy"], rows["reference"])])
        else:
            ax.tick_params(labelleft=False)
        if is_bottom(i, len(axes), columns):
            ax.set_xlabel(f"\u0394 {name} (points)")
    for ax in axes[1:]:
        ax.sharey(axes[0])
    confidence = shown["confidence"].iloc[0]
    counts = sorted(set(shown["n_pairs"]))
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}\u2013{counts[-1]}"
    handles = [
        Line2D([], [], color="0.3", marker="o", linewidth=1.2, label="resolved (exploratory lines: Holm-adjusted)"),
        Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linewidth=1.2, label="unresolved"),
    ]
    title = (
        f"Paired differences in {name} at {label_fraction:g} % labels: mean over {n} replicates "
        f"with its {confidence:.0%} interval"
    )
    return finish_figure(figure, handles, [h.get_label() for h in handles], "", title)


def draw_forest(ax, panel: pd.DataFrame, n_rows: int) -> None:
    """Shaded alternate rows, reference groups separated, the zero line, and each row's interval and point."""
    for y in range(0, n_rows, 2):
        ax.axhspan(y - 0.5, y + 0.5, color="0.95", zorder=0)
    ax.axvline(0, color="0.35", linewidth=0.8, linestyle="--", zorder=1)
    first_rows = panel.groupby("reference")["y"].min()
    for y in first_rows[first_rows > 0]:
        ax.axhline(y - 0.5, color="0.6", linewidth=0.6)
    for row in panel.itertuples():
        if row.n_pairs == 0 or np.isnan(row.diff):
            continue
        colour = strategy_colour(row.strategy)
        if not np.isnan(row.low):
            ax.hlines(row.y, 100 * row.low, 100 * row.high, color=colour, linewidth=1.4, zorder=2)
        face = colour if row.resolved else "white"
        ax.plot(100 * row.diff, row.y, "o", color=colour, markerfacecolor=face, markersize=5, zorder=3)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.xaxis.grid(True, linewidth=0.4, alpha=0.5)
    ax.tick_params(axis="y", length=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.forest", description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", required=True, type=Path, help="comparisons.csv")
    parser.add_argument("--out", required=True, type=Path, help="figure .png (an .svg is written beside it)")
    parser.add_argument("--params-json", type=json_object, default="{}", help="keyword arguments of the figure")
    args = parser.parse_args(argv)
    figure = forest_plot(pd.read_csv(args.comparisons), **args.params_json)
    print("\n".join(map(str, save_figure(figure, args.out))))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
