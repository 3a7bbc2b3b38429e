"""Result figures and the results table: pure functions from tables to a matplotlib Figure, plus the report CLI.

Inputs are the evaluation results (``results.csv``, columns :data:`geocontrast.evaluate.RESULT_COLUMNS`, one row
per strategy x seed x protocol x label fraction; metrics are fractions in [0, 1]) and, for the training curves,
the pretraining ``metrics.jsonl`` files (:data:`geocontrast.train.loop.METRIC_KEYS`). Figures show percentages,
mean over seeds with error bars of the seeds' std (or the standard error, ``error_bar="sem"``).

Strategies are drawn in the order they first appear in the results (the config's order), with the baselines
:data:`BASELINES` first; the most-common-species baseline (protocol ``baseline``) is a reference line, not a bar.

CLI (called by ``workflow/rules/report.smk``; writes ``fig.png`` at 300 dpi and ``fig.svg`` beside it)::

    python -m geocontrast.report.results_figures accuracy --results results.csv --out accuracy.png \\
        [--params-json '{"top_k": [1, 5], "error_bar": "std"}']
    python -m geocontrast.report.results_figures training_curves \\
        --metrics pretrain/augmented/seed0/metrics.jsonl ... --out training_curves.png
    python -m geocontrast.report.results_figures table --results results.csv --out results_table.md
        # also writes results_table.csv and results_table.html (the HTML report shows HTML inline)
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullLocator

from geocontrast.atomic import atomic_path
from geocontrast.cli import json_object
from geocontrast.evaluate import CLASSIFICATION_METRIC_COLUMNS, RANKS, TASKS
from geocontrast.evaluate.results import summarise
from geocontrast.report.style import plt, save_figure, strategy_colour

MOST_COMMON = "most_common"
BASELINE_PROTOCOL = "baseline"
BASELINES = (MOST_COMMON, "random_init")
"""Drawn before every pretraining strategy, in this order."""
PROTOCOLS = ("finetune", "linear", "knn")
"""Panel order; any other protocol in the results follows these."""
PROTOCOL_TITLES = {"finetune": "fine-tune", "linear": "linear probe", "knn": "kNN on frozen features"}
ERROR_BARS = ("std", "sem")
ACCURACY_LABEL = "accuracy on test (%)"
TABLE_METRICS = ("top1", "top5", "macro_top1", "prior_top1", "prior_top5")
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


def _ordered(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows sorted by strategy order, then protocol order, then label fraction."""
    strategies = {s: i for i, s in enumerate(strategy_order(summary["strategy"]))}
    protocols = {p: i for i, p in enumerate([BASELINE_PROTOCOL, *protocol_order(summary["protocol"])])}
    keys = pd.DataFrame({"s": summary["strategy"].map(strategies), "p": summary["protocol"].map(protocols),
                         "f": summary["label_fraction"]})
    return summary.loc[keys.sort_values(["s", "p", "f"], kind="stable").index].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- selection
def _check_options(error_bar: str, top_k: Sequence[int] = (1,)) -> list[int]:
    if error_bar not in ERROR_BARS:
        raise ValueError(f"error_bar must be one of {ERROR_BARS}, not {error_bar!r}")
    top_k = [int(k) for k in top_k]
    if not top_k:
        raise ValueError("top_k is empty: name at least one k, e.g. [1, 5]")
    return top_k


def _require_columns(results: pd.DataFrame, columns: Iterable[str], figure: str) -> None:
    missing = [column for column in columns if column not in results.columns]
    if missing:
        raise ValueError(f"the {figure} figure needs result columns {missing}, absent from the results")


def _at_label_fraction(results: pd.DataFrame, label_fraction: float) -> pd.DataFrame:
    """The rows evaluated with ``label_fraction`` percent of the train labels (refused when there are none)."""
    rows = results[np.isclose(results["label_fraction"].astype(float), float(label_fraction))]
    if rows.empty:
        present = sorted(results["label_fraction"].unique())
        raise ValueError(f"no results at label_fraction {label_fraction:g} %; the results hold {present} "
                         f"(set report.label_fraction to one of them)")
    return rows


def _summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of the species-identification rows (downstream tasks have their own figures)."""
    results = results[~results["protocol"].isin(TASKS)]
    if results.empty:
        raise ValueError("the results table holds no species identification result: nothing to draw")
    return _ordered(summarise(results))


def _panel(summary: pd.DataFrame, protocol: str, metric: str) -> pd.DataFrame:
    """Summary rows of one protocol that hold ``metric``, in strategy order."""
    rows = summary[(summary["protocol"] == protocol) & summary[f"{metric}_mean"].notna()]
    return rows.reset_index(drop=True)


def _protocols(summary: pd.DataFrame) -> list[str]:
    """The panels' protocols; refused when the results hold only the baseline."""
    protocols = protocol_order(summary["protocol"])
    if not protocols:
        raise ValueError(f"the results hold no evaluation protocol besides {BASELINE_PROTOCOL!r}: nothing to draw")
    return protocols


def _most_common(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[(summary["strategy"] == MOST_COMMON) & (summary["protocol"] == BASELINE_PROTOCOL)]


def _percent(rows: pd.DataFrame, metric: str) -> np.ndarray:
    return rows[f"{metric}_mean"].to_numpy(float) * 100


def _error(rows: pd.DataFrame, metric: str, error_bar: str) -> np.ndarray:
    """Half-length of the error bars in percent; one seed has no spread, so no bar (0)."""
    spread = rows[f"{metric}_std"].fillna(0.0).to_numpy(float) * 100
    if error_bar == "sem":
        spread = spread / np.sqrt(rows["n_seeds"].to_numpy(float))
    return spread


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _seed_note(summary: pd.DataFrame, error_bar: str) -> str:
    """'mean ± std over 3 seeds' (or '2–3 seeds' when strategies differ); the baseline's one run is not counted."""
    seeds = summary.loc[summary["strategy"] != MOST_COMMON, "n_seeds"]
    low, high = int(seeds.min()), int(seeds.max())
    seeds = _seeds(low) if low == high else f"{low}–{high} seeds"
    return f"mean ± {error_bar} over {seeds}" if high > 1 else f"{seeds}, no error bars"


# ---------------------------------------------------------------------------------------------- drawing
def _panels(n: int, width_in: float, row_height: float, columns: int) -> tuple[plt.Figure, list, int]:
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


def _accuracy_axes(axes: list, columns: int, labels: Sequence[str]) -> None:
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


def _is_bottom(i: int, n: int, columns: int) -> bool:
    """Panel i is the last one of its column (it carries the x label)."""
    return i + columns >= n


def _legend_entries(axes: list) -> tuple[list, list[str]]:
    """Handles and labels of all panels, each label once, in first-seen order."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def _finish(figure: plt.Figure, handles: list, labels: list[str], legend_title: str, title: str) -> plt.Figure:
    """Legend below the panels (as many columns as the width holds) and a title that wraps to the width."""
    columns = max(1, min(len(labels), int(figure.get_figwidth() // LEGEND_COLUMN_IN)))
    figure.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False, title=legend_title)
    figure.suptitle(title, wrap=True)
    return figure


def _bar_style(colour: str, j: int) -> dict:
    return {"facecolor": to_rgba(colour, BAR_ALPHAS[j % len(BAR_ALPHAS)]), "edgecolor": colour,
            "hatch": BAR_HATCHES[j % len(BAR_HATCHES)], "linewidth": 0.6}


def _bars(ax, panel: pd.DataFrame, metrics: Sequence[str], error_bar: str) -> None:
    """Grouped bars: one group per strategy (its colour), one bar per metric (its fill); x ticks name strategies."""
    x = np.arange(len(panel))
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        bars = ax.bar(x + (j - (len(metrics) - 1) / 2) * width, _percent(panel, metric), width,
                      yerr=_error(panel, metric, error_bar), capsize=2, error_kw={"elinewidth": 0.8, "capthick": 0.8})
        for bar, strategy in zip(bars, panel["strategy"]):
            bar.set(**_bar_style(strategy_colour(strategy), j))
    ax.set_xticks(x, panel["strategy"], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(panel) - 0.4)


def _baseline_lines(ax, baseline: pd.DataFrame, metrics: Sequence[str]) -> None:
    """The most-common-species baseline as horizontal lines, one line style per metric."""
    for j, metric in enumerate(metrics):
        if baseline[f"{metric}_mean"].notna().any():
            ax.axhline(_percent(baseline, metric)[0], color=strategy_colour(MOST_COMMON), linewidth=1,
                       linestyle=BASELINE_LINESTYLES[j % len(BASELINE_LINESTYLES)], zorder=0.5)


def _fill_handles(labels: Sequence[str]) -> list[Patch]:
    return [Patch(**_bar_style("0.35", j), label=label) for j, label in enumerate(labels)]


def _baseline_handles(baseline: pd.DataFrame, metrics: Sequence[str], labels: Sequence[str]) -> list[Line2D]:
    return [Line2D([], [], color=strategy_colour(MOST_COMMON), linewidth=1,
                   linestyle=BASELINE_LINESTYLES[j % len(BASELINE_LINESTYLES)], label=label)
            for j, (metric, label) in enumerate(zip(metrics, labels))
            if baseline[f"{metric}_mean"].notna().any()]


def _protocol_title(protocol: str) -> str:
    return PROTOCOL_TITLES.get(protocol, protocol)


# ---------------------------------------------------------------------------------------------- figures
def accuracy_bars(results: pd.DataFrame, *, top_k: Sequence[int] = (1, 5), error_bar: str = "std",
                  figure_width_in: float = 7.0, label_fraction: float = 10) -> plt.Figure:
    """Figure 1: top-k accuracy bars per strategy, one panel per protocol, the most-common baseline as lines.

    ``top_k``: which top-k accuracies get a bar (one fill per k); ``error_bar``: ``std`` or ``sem`` over seeds;
    ``figure_width_in``: width in inches (height follows); ``label_fraction``: the label budget (percent) shown.
    """
    top_k = _check_options(error_bar, top_k)
    metrics = [f"top{k}" for k in top_k]
    _require_columns(results, metrics, "accuracy")
    summary = _summary(_at_label_fraction(results, label_fraction))
    protocols = _protocols(summary)
    baseline = _most_common(summary)
    figure, axes, columns = _panels(len(protocols), figure_width_in, 0.45, len(protocols))
    for i, (ax, protocol) in enumerate(zip(axes, protocols)):
        _bars(ax, _panel(summary, protocol, metrics[0]), metrics, error_bar)
        _baseline_lines(ax, baseline, metrics)
        ax.set_title(_protocol_title(protocol))
        if _is_bottom(i, len(axes), columns):
            ax.set_xlabel("pretraining strategy")
    _accuracy_axes(axes, columns, [ACCURACY_LABEL] * len(axes))
    names = [f"top-{k}" for k in top_k]
    handles = _fill_handles(names) + _baseline_handles(baseline, metrics,
                                                        [f"{MOST_COMMON_LABEL}, {n}" for n in names])
    return _finish(figure, handles, [h.get_label() for h in handles], f"bars: {_seed_note(summary, error_bar)}",
                   f"Test accuracy with {label_fraction:g} % of the training labels")


def rank_accuracy(results: pd.DataFrame, *, error_bar: str = "std", figure_width_in: float = 7.0,
                  label_fraction: float = 10) -> plt.Figure:
    """Figure 2: top-1 accuracy at every taxonomic rank (species → kingdom), a line per strategy, panel per protocol.

    Predictions and labels are mapped to their ancestor at each rank (``acc_<rank>`` columns); the most-common
    baseline is drawn dashed in every panel.
    """
    _check_options(error_bar)
    ranks = [rank for rank in RANKS if f"acc_{rank}" in results.columns and results[f"acc_{rank}"].notna().any()]
    if not ranks:
        raise ValueError(f"the rank figure needs acc_<rank> result columns, e.g. {[f'acc_{r}' for r in RANKS]}")
    metrics = [f"acc_{rank}" for rank in ranks]
    summary = _summary(_at_label_fraction(results, label_fraction))
    protocols = _protocols(summary)
    baseline = _most_common(summary)
    figure, axes, columns = _panels(len(protocols), figure_width_in, 0.45, len(protocols))
    x = np.arange(len(ranks))
    for i, (ax, protocol) in enumerate(zip(axes, protocols)):
        panel = pd.concat([baseline, _panel(summary, protocol, metrics[0])], ignore_index=True)
        dodge = 0.25 / max(1, len(panel) - 1)  # spread the strategies a little so error bars do not overlap
        for j, row in enumerate(panel.itertuples(index=False)):
            rows = panel.iloc[[j]]
            means = np.concatenate([_percent(rows, m) for m in metrics])
            errors = np.concatenate([_error(rows, m, error_bar) for m in metrics])
            is_baseline = row.strategy == MOST_COMMON
            ax.errorbar(x + (j - (len(panel) - 1) / 2) * dodge, means, yerr=errors, capsize=2,
                        color=strategy_colour(row.strategy), marker="" if is_baseline else "o", markersize=3,
                        linestyle="--" if is_baseline else "-", linewidth=1, elinewidth=0.8,
                        label=MOST_COMMON_LABEL if is_baseline else row.strategy)
        ax.set_xticks(x, ranks, rotation=30, ha="right")
        if _is_bottom(i, len(axes), columns):
            ax.set_xlabel("taxonomic rank")
        ax.set_title(_protocol_title(protocol))
    _accuracy_axes(axes, columns, [f"top-1 {ACCURACY_LABEL}"] * len(axes))
    handles, labels = _legend_entries(axes)
    return _finish(figure, handles, labels, f"error bars: {_seed_note(summary, error_bar)}",
                   f"Accuracy per taxonomic rank with {label_fraction:g} % of the training labels")


def geo_prior_comparison(results: pd.DataFrame, *, top_k: Sequence[int] = (1, 5), error_bar: str = "std",
                         figure_width_in: float = 7.0, label_fraction: float = 10) -> plt.Figure:
    """Figure 3: accuracy without and with the geographic prior, paired bars per strategy.

    One row of panels per k of ``top_k``, one column per protocol (fewer when the width is narrow); the number
    above each pair is the mean gain (``prior_gain_top<k>``, percentage points, paired per seed).
    """
    top_k = _check_options(error_bar, top_k)
    _require_columns(results, [c for k in top_k for c in (f"top{k}", f"prior_top{k}")], "geo-prior")
    summary = _summary(_at_label_fraction(results, label_fraction))
    protocols = _protocols(summary)
    baseline = _most_common(summary)
    panels = [(k, protocol) for k in top_k for protocol in protocols]
    figure, axes, columns = _panels(len(panels), figure_width_in, 0.36, len(protocols))
    for i, (ax, (k, protocol)) in enumerate(zip(axes, panels)):
        pair = [f"top{k}", f"prior_top{k}"]
        panel = _panel(summary, protocol, pair[1])
        _bars(ax, panel, pair, error_bar)
        _baseline_lines(ax, baseline, pair[:1])
        gains = (_percent(panel, f"prior_gain_top{k}") if f"prior_gain_top{k}_mean" in panel
                 else _percent(panel, pair[1]) - _percent(panel, pair[0]))
        tops = _percent(panel, pair[1]) + _error(panel, pair[1], error_bar)
        for x, (gain, top) in enumerate(zip(gains, tops)):
            ax.annotate(f"{gain:+.1f}", (x + 0.2, top), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=6)
        ax.margins(y=0.12)  # headroom for the gain labels
        ax.set_title(_protocol_title(protocol))
        if _is_bottom(i, len(axes), columns):
            ax.set_xlabel("pretraining strategy")
    _accuracy_axes(axes, columns, [f"top-{k} {ACCURACY_LABEL}" for k, _ in panels])
    handles = _fill_handles(["image only", "image × geographic prior"]) + _baseline_handles(
        baseline, [f"top{top_k[0]}"], [MOST_COMMON_LABEL])
    return _finish(figure, handles, [h.get_label() for h in handles],
                   f"bars: {_seed_note(summary, error_bar)}; numbers: mean gain (percentage points)",
                   f"Geographic prior at test time, {label_fraction:g} % of the training labels")


def label_budget_curve(results: pd.DataFrame, *, top_k: Sequence[int] = (1, 5), error_bar: str = "std",
                       figure_width_in: float = 7.0) -> plt.Figure:
    """Figure 4: accuracy against the share of labelled training images (log x), one line per strategy.

    One row of panels per k of ``top_k``, one column per protocol (fewer when the width is narrow). Refused
    (ValueError) when the results hold fewer than two label fractions: a curve needs at least two points.
    """
    top_k = _check_options(error_bar, top_k)
    _require_columns(results, [f"top{k}" for k in top_k], "label-budget")
    fractions = sorted(float(f) for f in results["label_fraction"].unique())
    if len(fractions) < 2:
        raise ValueError(f"the label-budget curve needs at least two label fractions; the results hold only "
                         f"{', '.join(f'{f:g} %' for f in fractions) or 'none'} (evaluate more label fractions)")
    summary = _summary(results)
    protocols = _protocols(summary)
    baseline = _most_common(summary)
    panels = [(k, protocol) for k in top_k for protocol in protocols]
    figure, axes, columns = _panels(len(panels), figure_width_in, 0.36, len(protocols))
    for i, (ax, (k, protocol)) in enumerate(zip(axes, panels)):
        metric = f"top{k}"
        panel = pd.concat([baseline, _panel(summary, protocol, metric)], ignore_index=True)
        for strategy in strategy_order(panel["strategy"]):
            rows = panel[panel["strategy"] == strategy].sort_values("label_fraction")
            is_baseline = strategy == MOST_COMMON
            ax.errorbar(rows["label_fraction"].to_numpy(float), _percent(rows, metric),
                        yerr=_error(rows, metric, error_bar), capsize=2, color=strategy_colour(strategy),
                        marker="" if is_baseline else "o", markersize=3, linewidth=1, elinewidth=0.8,
                        linestyle="--" if is_baseline else "-", label=MOST_COMMON_LABEL if is_baseline else strategy)
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(_protocol_title(protocol))
        if _is_bottom(i, len(axes), columns):
            ax.set_xlabel("labelled train images (%)")
    _accuracy_axes(axes, columns, [f"top-{k} {ACCURACY_LABEL}" for k, _ in panels])
    handles, labels = _legend_entries(axes)
    return _finish(figure, handles, labels, f"error bars: {_seed_note(summary, error_bar)}",
                   "Accuracy against the label budget")


TRAINING_PANELS = (
    ("loss", "training loss", 1.0, "each strategy's own objective"),
    ("knn_top1", "online kNN top-1 (%)", 100.0, "kNN on val images"),
    ("embedding_std", "embedding std", 1.0, "collapse monitor (→ 0: collapse)"),
    ("mean_pairwise_cosine", "mean pairwise cosine", 1.0, "collapse monitor (→ 1: collapse)"),
)
"""(metrics.jsonl key, y label, scale, panel title) of the training-curve panels."""


def read_metrics(paths: Iterable[Path]) -> pd.DataFrame:
    """One row per epoch of every ``<strategy>/seed<seed>/metrics.jsonl``, with ``strategy`` and ``seed`` columns.

    Strategy and seed come from the path, as the pretrain rule lays it out; other layouts are refused.
    """
    frames = []
    for path in map(Path, paths):
        seed_dir = path.parent.name
        if not (seed_dir.startswith("seed") and seed_dir[4:].isdigit()):
            raise ValueError(f"{path}: expected <strategy>/seed<seed>/metrics.jsonl")
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path} holds no epoch: pretraining wrote no metrics")
        frame = pd.DataFrame(lines)
        frame.insert(0, "seed", int(seed_dir[4:]))
        frame.insert(0, "strategy", path.parent.parent.name)
        frames.append(frame)
    if not frames:
        raise ValueError("no metrics.jsonl given")
    return pd.concat(frames, ignore_index=True)


def training_curves(metrics: pd.DataFrame, *, error_bar: str = "std", figure_width_in: float = 7.0) -> plt.Figure:
    """Figure 9: per-epoch training curves (loss, online kNN top-1, collapse monitors), mean over seeds with a band.

    ``metrics``: :func:`read_metrics`'s table. The band is the seeds' std (or standard error) at each epoch.
    """
    _check_options(error_bar)
    _require_columns(metrics, ["strategy", "seed", "epoch", *(panel[0] for panel in TRAINING_PANELS)],
                     "training-curves")
    figure, axes, columns = _panels(len(TRAINING_PANELS), figure_width_in, 0.34, 2)
    seeds = metrics.groupby("strategy", sort=False)["seed"].nunique()
    for i, (ax, (key, label, scale, title)) in enumerate(zip(axes, TRAINING_PANELS)):
        for strategy in strategy_order(metrics["strategy"]):
            values = pd.to_numeric(metrics.loc[metrics["strategy"] == strategy, key], errors="coerce") * scale
            epochs = metrics.loc[values.index, "epoch"]
            stats = values.groupby(epochs).agg(["mean", "std", "count"]).sort_index()
            spread = stats["std"].fillna(0.0)
            if error_bar == "sem":
                spread = spread / np.sqrt(stats["count"].clip(lower=1))
            colour = strategy_colour(strategy)
            ax.plot(stats.index, stats["mean"], color=colour, linewidth=1.2, marker="o", markersize=2.5,
                    label=f"{strategy} ({_seeds(int(seeds[strategy]))})")
            ax.fill_between(stats.index, stats["mean"] - spread, stats["mean"] + spread, color=colour,
                            alpha=0.2, linewidth=0)
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if _is_bottom(i, len(axes), columns):
            ax.set_xlabel("epoch")
    handles, labels = _legend_entries(axes)
    return _finish(figure, handles, labels, f"line: mean over seeds; band: ± {error_bar}", "Pretraining curves")


# ---------------------------------------------------------------------------------------------- table
def metric_label(metric: str) -> str:
    """Column header of a metric, e.g. 'top-1', 'macro top-5', 'geo-prior gain top-5', 'genus top-1'."""
    for prefix, name in (("prior_gain_", "geo-prior gain "), ("prior_", "with geo prior "), ("macro_", "macro ")):
        if metric.startswith(prefix):
            return name + metric_label(metric[len(prefix):])
    if metric.startswith("acc_"):
        return f"{metric[4:]} top-1"
    return metric.replace("top", "top-")


def results_table(results: pd.DataFrame, *, metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """One row per strategy x protocol x label fraction: seeds, and each metric as 'mean ± std' in percent.

    Gains are signed; a metric a row lacks (the baseline has no prior) is '–'; one seed shows the mean alone.
    """
    unknown = [m for m in metrics if m not in CLASSIFICATION_METRIC_COLUMNS]
    if unknown:
        raise ValueError(f"unknown table metrics {unknown}; known: {list(CLASSIFICATION_METRIC_COLUMNS)}")
    _require_columns(results, metrics, "results table")
    summary = _summary(results)
    table = pd.DataFrame({
        "strategy": summary["strategy"],
        "protocol": summary["protocol"],
        "labels (%)": [f"{f:g}" for f in summary["label_fraction"].astype(float)],
        "seeds": summary["n_seeds"].astype(int),
    })
    for metric in metrics:
        sign = "+" if metric.startswith("prior_gain_") else ""
        cells = []
        for mean, std in zip(_percent(summary, metric), summary[f"{metric}_std"].to_numpy(float) * 100):
            if np.isnan(mean):
                cells.append("–")
            else:
                cells.append(f"{mean:{sign}.1f}" + ("" if np.isnan(std) else f" ± {std:.1f}"))
        table[f"{metric_label(metric)} (%)"] = cells
    return table


TABLE_NOTE = "Test accuracy in percent, mean ± std over seeds (ddof 1); seeds: number of seeds per row."


def table_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (text columns left-aligned, numbers right-aligned) with its note."""
    columns = list(table.columns)
    align = [":---" if c in ("strategy", "protocol") else "---:" for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([TABLE_NOTE, "", *lines]) + "\n"


def table_html(table: pd.DataFrame) -> str:
    """A standalone HTML page of the table (Snakemake's report shows HTML inline, Markdown and CSV only as files)."""
    style = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
             " th,td{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right}"
             " th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
            f"<p>{TABLE_NOTE}</p>{table.to_html(index=False, border=0)}</body></html>\n")


def write_table(table: pd.DataFrame, markdown_path: Path) -> list[Path]:
    """Write ``markdown_path`` and the same table as .csv and .html beside it (each atomically); returns the paths."""
    markdown_path = Path(markdown_path)
    paths = [markdown_path, markdown_path.with_suffix(".csv"), markdown_path.with_suffix(".html")]
    writers = (lambda path: path.write_text(table_markdown(table)), lambda path: table.to_csv(path, index=False),
               lambda path: path.write_text(table_html(table)))
    for path, write in zip(paths, writers):
        with atomic_path(path) as partial:
            write(partial)
    return paths


# ---------------------------------------------------------------------------------------------- CLI
FIGURES = {
    "accuracy": accuracy_bars,
    "ranks": rank_accuracy,
    "geo_prior": geo_prior_comparison,
    "label_budget": label_budget_curve,
    "training_curves": training_curves,
    "table": results_table,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.results_figures",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=list(FIGURES))
    parser.add_argument("--results", type=Path, help="results.csv (every figure but training_curves)")
    parser.add_argument("--metrics", type=Path, nargs="+", help="<strategy>/seed<seed>/metrics.jsonl files "
                        "(training_curves)")
    parser.add_argument("--out", required=True, type=Path, help="figure .png (an .svg is written beside it); "
                        "table: .md (.csv and .html beside it)")
    parser.add_argument("--params-json", type=json_object, default="{}",
                        help="keyword arguments of the figure as a JSON object")
    args = parser.parse_args(argv)

    function = FIGURES[args.figure]
    params = args.params_json
    known = [name for name, p in inspect.signature(function).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(params) - set(known))
    if unknown:
        parser.error(f"{args.figure} does not take {unknown}; it takes {known}")

    if args.figure == "training_curves":
        if not args.metrics:
            parser.error("training_curves needs --metrics")
        data = read_metrics(args.metrics)
    else:
        if args.results is None:
            parser.error(f"{args.figure} needs --results")
        data = pd.read_csv(args.results)
    output = function(data, **params)
    written = write_table(output, args.out) if args.figure == "table" else save_figure(output, args.out)
    print("\n".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
