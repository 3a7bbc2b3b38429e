"""What every results figure shares: the order of strategies and protocols, mean and spread over seeds, and
the panel grid, bars, baseline lines and legend they are drawn with.

Summaries are :func:`geocontrast.results.table.summarise` tables (``<metric>_mean``, ``<metric>_std``,
``n_seeds`` per strategy x protocol x label fraction); values are fractions, drawn as percentages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geocontrast.evaluate import PROTOCOL_TITLES, TASKS
from geocontrast.report.style import plt, strategy_colour
from geocontrast.results.table import summarise

if TYPE_CHECKING:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

MOST_COMMON = "most_common"
BASELINE_PROTOCOL = "baseline"
BASELINES = (MOST_COMMON, "random_init")
"""Drawn before every pretraining strategy, in this order."""
PROTOCOLS = ("finetune", "linear", "knn")
"""Panel order; any other protocol in the results follows these."""
ERROR_BARS = ("std", "sem")
MOST_COMMON_LABEL = "most common species"
# Fill of the bars of the j-th top-k (or without / with prior): solid first, then lighter and hatched.
BAR_ALPHAS = (1.0, 0.35, 0.6, 0.2, 0.8)
BAR_HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\")
BASELINE_LINESTYLES = ("--", ":", "-.", (0, (5, 1)), (0, (1, 3)))
MIN_ROW_IN = 2.4  # below this a row of panels has no room left for ticks, labels and titles
MIN_PANEL_IN = 2.2  # narrower figures stack the panels in fewer columns (a 3.5 in column: one)
LEGEND_COLUMN_IN = 1.7  # width one legend entry needs, to choose the legend's columns


# ---------------------------------------------------------------------------------------------- ordering
def strategy_order(strategies: Iterable[str]) -> list[str]:
    """Unique strategies in order of first appearance, with :data:`BASELINES` moved to the front."""
    seen = list(dict.fromkeys(strategies))
    return [s for s in BASELINES if s in seen] + [s for s in seen if s not in BASELINES]


def protocol_order(protocols: Iterable[str]) -> list[str]:
    """Evaluation protocols present, :data:`PROTOCOLS` first, without the baseline's own protocol."""
    seen = [p for p in dict.fromkeys(protocols) if p != BASELINE_PROTOCOL]
    return [p for p in PROTOCOLS if p in seen] + [p for p in seen if p not in PROTOCOLS]


def ordered_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows sorted by strategy order, then protocol order, then label fraction."""
    strategies = {s: i for i, s in enumerate(strategy_order(summary["strategy"]))}
    protocols = {p: i for i, p in enumerate([BASELINE_PROTOCOL, *protocol_order(summary["protocol"])])}
    keys = pd.DataFrame(
        {
            "s": summary["strategy"].map(strategies),
            "p": summary["protocol"].map(protocols),
            "f": summary["label_fraction"],
        }
    )
    return summary.loc[keys.sort_values(["s", "p", "f"], kind="stable").index].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- selection
def check_options(error_bar: str, top_k: Sequence[int] = (1,)) -> list[int]:
    if error_bar not in ERROR_BARS:
        raise ValueError(f"error_bar must be one of {ERROR_BARS}, not {error_bar!r}")
    top_k = [int(k) for k in top_k]
    if not top_k:
        raise ValueError("top_k is empty: name at least one k, e.g. [1, 5]")
    return top_k


def require_columns(results: pd.DataFrame, columns: Iterable[str], figure: str) -> None:
    missing = [column for column in columns if column not in results.columns]
    if missing:
        raise ValueError(f"the {figure} figure needs result columns {missing}, absent from the results")


def at_label_fraction(results: pd.DataFrame, label_fraction: float) -> pd.DataFrame:
    """The rows evaluated with ``label_fraction`` percent of the train labels (refused when there are none)."""
    rows = results[np.isclose(results["label_fraction"].astype(float), float(label_fraction))]
    if rows.empty:
        present = sorted(results["label_fraction"].unique())
        raise ValueError(
            f"no results at label_fraction {label_fraction:g} %; the results hold {present} "
            f"(set report.label_fraction to one of them)"
        )
    return rows


def species_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of the species-identification rows (downstream tasks have their own figures)."""
    results = results[~results["protocol"].isin(TASKS)]
    if results.empty:
        raise ValueError("the results table holds no species identification result: nothing to draw")
    return ordered_summary(summarise(results))


def panel_rows(summary: pd.DataFrame, protocol: str, metric: str) -> pd.DataFrame:
    """Summary rows of one protocol that hold ``metric``, in strategy order."""
    rows = summary[(summary["protocol"] == protocol) & summary[f"{metric}_mean"].notna()]
    return rows.reset_index(drop=True)


def panel_protocols(summary: pd.DataFrame) -> list[str]:
    """The panels' protocols; refused when the results hold only the baseline."""
    protocols = protocol_order(summary["protocol"])
    if not protocols:
        raise ValueError(f"the results hold no evaluation protocol besides {BASELINE_PROTOCOL!r}: nothing to draw")
    return protocols


def most_common_rows(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[(summary["strategy"] == MOST_COMMON) & (summary["protocol"] == BASELINE_PROTOCOL)]


def as_percent(rows: pd.DataFrame, metric: str) -> np.ndarray:
    return rows[f"{metric}_mean"].to_numpy(float) * 100


def error_bar_lengths(rows: pd.DataFrame, metric: str, error_bar: str) -> np.ndarray:
    """Half-length of the error bars in percent; one seed has no spread, so no bar (0)."""
    spread = rows[f"{metric}_std"].fillna(0.0).to_numpy(float) * 100
    if error_bar == "sem":
        spread = spread / np.sqrt(rows["n_seeds"].to_numpy(float))
    return spread


def seed_count(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def seed_note(summary: pd.DataFrame, error_bar: str) -> str:
    """'mean ± std over 3 seeds' (or '2–3 seeds' when strategies differ); the baseline's one run is not counted."""
    seeds = summary.loc[summary["strategy"] != MOST_COMMON, "n_seeds"]
    low, high = int(seeds.min()), int(seeds.max())
    seeds = seed_count(low) if low == high else f"{low}–{high} seeds"
    return f"mean ± {error_bar} over {seeds}" if high > 1 else f"{seeds}, no error bars"


# ---------------------------------------------------------------------------------------------- drawing
def panel_grid(n: int, width_in: float, row_height: float, columns: int) -> tuple[plt.Figure, list, int]:
    """``n`` panels filled row by row, ``columns`` to a row or as many as ``width_in`` holds; returns the columns.

    A row is ``row_height`` x width tall, never under :data:`MIN_ROW_IN`.
    """
    columns = max(1, min(columns, n, int(width_in // MIN_PANEL_IN)))
    rows = -(-n // columns)
    height = max(width_in * row_height, MIN_ROW_IN) * rows
    figure, grid = plt.subplots(rows, columns, squeeze=False, layout="constrained", figsize=(width_in, height))
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.remove()
    return figure, axes[:n], columns


def accuracy_axes(axes: list, columns: int, labels: Sequence[str]) -> None:
    """Panels with the same y label share their y axis; a panel repeats neither label nor ticks of its left twin."""
    first: dict[str, object] = {}
    for i, (ax, label) in enumerate(zip(axes, labels)):
        if label in first:
            ax.sharey(first[label])
        first.setdefault(label, ax)
        if i % columns and labels[i - 1] == label:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.yaxis.grid(True, linewidth=0.4, alpha=0.5)
        ax.set_axisbelow(True)


def is_bottom(i: int, n: int, columns: int) -> bool:
    """Panel i is the last one of its column (it carries the x label)."""
    return i + columns >= n


def legend_entries(axes: list) -> tuple[list, list[str]]:
    """Handles and labels of all panels, each label once, in first-seen order."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def finish_figure(figure: plt.Figure, handles: list, labels: list[str], legend_title: str, title: str) -> plt.Figure:
    """Legend below the panels (as many columns as the width holds) and a title that wraps to the width."""
    columns = max(1, min(len(labels), int(figure.get_figwidth() // LEGEND_COLUMN_IN)))
    figure.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False, title=legend_title)
    figure.suptitle(title, wrap=True)
    return figure


def bar_style(colour: str, j: int) -> dict:
    from matplotlib.colors import to_rgba

    return {
        "facecolor": to_rgba(colour, BAR_ALPHAS[j % len(BAR_ALPHAS)]),
        "edgecolor": colour,
        "hatch": BAR_HATCHES[j % len(BAR_HATCHES)],
        "linewidth": 0.6,
    }


def draw_bars(ax, panel: pd.DataFrame, metrics: Sequence[str], error_bar: str) -> None:
    """Grouped bars: one group per strategy (its colour), one bar per metric (its fill); x ticks name strategies."""
    x = np.arange(len(panel))
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        bars = ax.bar(
            x + (j - (len(metrics) - 1) / 2) * width,
            as_percent(panel, metric),
            width,
            yerr=error_bar_lengths(panel, metric, error_bar),
            capsize=2,
            error_kw={"elinewidth": 0.8, "capthick": 0.8},
        )
        for bar, strategy in zip(bars, panel["strategy"]):
            bar.set(**bar_style(strategy_colour(strategy), j))
    ax.set_xticks(x, panel["strategy"], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(panel) - 0.4)


def baseline_lines(ax, baseline: pd.DataFrame, metrics: Sequence[str]) -> None:
    """The most-common-species baseline as horizontal lines, one line style per metric."""
    for j, metric in enumerate(metrics):
        if baseline[f"{metric}_mean"].notna().any():
            ax.axhline(
                as_percent(baseline, metric)[0],
                color=strategy_colour(MOST_COMMON),
                linewidth=1,
                linestyle=BASELINE_LINESTYLES[j % len(BASELINE_LINESTYLES)],
                zorder=0.5,
            )


def fill_handles(labels: Sequence[str]) -> list[Patch]:
    from matplotlib.patches import Patch

    return [Patch(**bar_style("0.35", j), label=label) for j, label in enumerate(labels)]


def baseline_handles(baseline: pd.DataFrame, metrics: Sequence[str], labels: Sequence[str]) -> list[Line2D]:
    from matplotlib.lines import Line2D

    return [
        Line2D(
            [],
            [],
            color=strategy_colour(MOST_COMMON),
            linewidth=1,
            linestyle=BASELINE_LINESTYLES[j % len(BASELINE_LINESTYLES)],
            label=label,
        )
        for j, (metric, label) in enumerate(zip(metrics, labels))
        if baseline[f"{metric}_mean"].notna().any()
    ]


def protocol_title(protocol: str) -> str:
    return PROTOCOL_TITLES.get(protocol, protocol)
