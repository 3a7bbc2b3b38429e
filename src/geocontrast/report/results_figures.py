"""Result figures: pure functions from tables to a matplotlib Figure, plus the report CLI (figures and the table).

Inputs are the evaluation results (``results.csv``, columns :data:`geocontrast.evaluate.RESULT_COLUMNS`, one row
per strategy x seed x protocol x label fraction; metrics are fractions in [0, 1]) and, for the training curves,
the pretraining ``metrics.jsonl`` files (:data:`geocontrast.train.loop.METRIC_KEYS`). Figures show percentages,
mean over seeds with error bars of the seeds' std (or the standard error, ``error_bar="sem"``).

Strategies are drawn in the order they first appear in the results (the config's order), with the baselines
(:data:`geocontrast.report.panels.BASELINES`) first; the most-common-species baseline (protocol ``baseline``) is
a reference line, not a bar. The ordering, summary and drawing helpers every results figure shares live in
:mod:`geocontrast.report.panels`.

The results table (Markdown, CSV, HTML) is built in :mod:`geocontrast.report.results_table`; this CLI's ``table``
writes it.

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
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.cli import exit_without_teardown, json_object
from geocontrast.evaluate import RANKS
from geocontrast.report.panels import (
    MOST_COMMON,
    MOST_COMMON_LABEL,
    accuracy_axes,
    as_percent,
    at_label_fraction,
    baseline_handles,
    baseline_lines,
    check_options,
    draw_bars,
    error_bar_lengths,
    fill_handles,
    finish_figure,
    is_bottom,
    legend_entries,
    most_common_rows,
    panel_grid,
    panel_protocols,
    panel_rows,
    protocol_title,
    require_columns,
    seed_count,
    seed_note,
    species_summary,
    strategy_order,
)
from geocontrast.report.results_table import results_table, write_table
from geocontrast.report.style import note_figure, plt, save_figure, strategy_colour
from geocontrast.results.table import pretraining_run

ACCURACY_LABEL = "accuracy on test (%)"


# ---------------------------------------------------------------------------------------------- figures
def accuracy_bars(
    results: pd.DataFrame,
    *,
    top_k: Sequence[int] = (1, 5),
    error_bar: str = "std",
    figure_width_in: float = 7.0,
    label_fraction: float = 10,
) -> plt.Figure:
    """Figure 1: top-k accuracy bars per strategy, one panel per protocol, the most-common baseline as lines.

    ``top_k``: which top-k accuracies get a bar (one fill per k); ``error_bar``: ``std`` or ``sem`` over seeds;
    ``figure_width_in``: width in inches (height follows); ``label_fraction``: the label budget (percent) shown.
    """
    top_k = check_options(error_bar, top_k)
    metrics = [f"top{k}" for k in top_k]
    require_columns(results, metrics, "accuracy")
    summary = species_summary(at_label_fraction(results, label_fraction))
    protocols = panel_protocols(summary)
    baseline = most_common_rows(summary)
    figure, axes, columns = panel_grid(len(protocols), figure_width_in, 0.45, len(protocols))
    for i, (ax, protocol) in enumerate(zip(axes, protocols)):
        draw_bars(ax, panel_rows(summary, protocol, metrics[0]), metrics, error_bar)
        baseline_lines(ax, baseline, metrics)
        ax.set_title(protocol_title(protocol))
        if is_bottom(i, len(axes), columns):
            ax.set_xlabel("pretraining strategy")
    accuracy_axes(axes, columns, [ACCURACY_LABEL] * len(axes))
    names = [f"top-{k}" for k in top_k]
    handles = fill_handles(names) + baseline_handles(baseline, metrics, [f"{MOST_COMMON_LABEL}, {n}" for n in names])
    return finish_figure(
        figure,
        handles,
        [h.get_label() for h in handles],
        f"bars: {seed_note(summary, error_bar)}",
        f"Test accuracy with {label_fraction:g} % of the training labels",
    )


def rank_accuracy(
    results: pd.DataFrame, *, error_bar: str = "std", figure_width_in: float = 7.0, label_fraction: float = 10
) -> plt.Figure:
    """Figure 2: top-1 accuracy at every taxonomic rank (species → kingdom), a line per strategy, panel per protocol.

    Predictions and labels are mapped to their ancestor at each rank (``acc_<rank>`` columns); the most-common
    baseline is drawn dashed in every panel.
    """
    check_options(error_bar)
    ranks = [rank for rank in RANKS if f"acc_{rank}" in results.columns and results[f"acc_{rank}"].notna().any()]
    if not ranks:
        raise ValueError(f"the rank figure needs acc_<rank> result columns, e.g. {[f'acc_{r}' for r in RANKS]}")
    metrics = [f"acc_{rank}" for rank in ranks]
    summary = species_summary(at_label_fraction(results, label_fraction))
    protocols = panel_protocols(summary)
    baseline = most_common_rows(summary)
    figure, axes, columns = panel_grid(len(protocols), figure_width_in, 0.45, len(protocols))
    x = np.arange(len(ranks))
    for i, (ax, protocol) in enumerate(zip(axes, protocols)):
        panel = pd.concat([baseline, panel_rows(summary, protocol, metrics[0])], ignore_index=True)
        dodge = 0.25 / max(1, len(panel) - 1)  # spread the strategies a little so error bars do not overlap
        for j, row in enumerate(panel.itertuples(index=False)):
            rows = panel.iloc[[j]]
            means = np.concatenate([as_percent(rows, m) for m in metrics])
            errors = np.concatenate([error_bar_lengths(rows, m, error_bar) for m in metrics])
            is_baseline = row.strategy == MOST_COMMON
            ax.errorbar(
                x + (j - (len(panel) - 1) / 2) * dodge,
                means,
                yerr=errors,
                capsize=2,
                color=strategy_colour(row.strategy),
                marker="" if is_baseline else "o",
                markersize=3,
                linestyle="--" if is_baseline else "-",
                linewidth=1,
                elinewidth=0.8,
                label=MOST_COMMON_LABEL if is_baseline else row.strategy,
            )
        ax.set_xticks(x, ranks, rotation=30, ha="right")
        if is_bottom(i, len(axes), columns):
            ax.set_xlabel("taxonomic rank")
        ax.set_title(protocol_title(protocol))
    accuracy_axes(axes, columns, [f"top-1 {ACCURACY_LABEL}"] * len(axes))
    handles, labels = legend_entries(axes)
    return finish_figure(
        figure,
        handles,
        labels,
        f"error bars: {seed_note(summary, error_bar)}",
        f"Accuracy per taxonomic rank with {label_fraction:g} % of the training labels",
    )


def geo_prior_comparison(
    results: pd.DataFrame,
    *,
    top_k: Sequence[int] = (1, 5),
    error_bar: str = "std",
    figure_width_in: float = 7.0,
    label_fraction: float = 10,
) -> plt.Figure:
    """Figure 3: accuracy without and with the geographic prior, paired bars per strategy.

    One row of panels per k of ``top_k``, one column per protocol (fewer when the width is narrow); the number
    above each pair is the mean gain (``prior_gain_top<k>``, percentage points, paired per seed). Results without
    any prior (evaluate.prior false, or no coordinates) get a figure that says so.
    """
    top_k = check_options(error_bar, top_k)
    require_columns(results, [c for k in top_k for c in (f"top{k}", f"prior_top{k}")], "geo-prior")
    if results[[f"prior_top{k}" for k in top_k]].isna().all(axis=None):
        return note_figure("no geographic prior in these results: see results_summary.txt for why")
    summary = species_summary(at_label_fraction(results, label_fraction))
    protocols = panel_protocols(summary)
    baseline = most_common_rows(summary)
    panels = [(k, protocol) for k in top_k for protocol in protocols]
    figure, axes, columns = panel_grid(len(panels), figure_width_in, 0.36, len(protocols))
    for i, (ax, (k, protocol)) in enumerate(zip(axes, panels)):
        pair = [f"top{k}", f"prior_top{k}"]
        panel = panel_rows(summary, protocol, pair[1])
        draw_bars(ax, panel, pair, error_bar)
        baseline_lines(ax, baseline, pair[:1])
        gains = (
            as_percent(panel, f"prior_gain_top{k}")
            if f"prior_gain_top{k}_mean" in panel
            else as_percent(panel, pair[1]) - as_percent(panel, pair[0])
        )
        tops = as_percent(panel, pair[1]) + error_bar_lengths(panel, pair[1], error_bar)
        for x, (gain, top) in enumerate(zip(gains, tops)):
            ax.annotate(
                f"{gain:+.1f}",
                (x + 0.2, top),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
            )
        ax.margins(y=0.12)  # headroom for the gain labels
        ax.set_title(protocol_title(protocol))
        if is_bottom(i, len(axes), columns):
            ax.set_xlabel("pretraining strategy")
    accuracy_axes(axes, columns, [f"top-{k} {ACCURACY_LABEL}" for k, _ in panels])
    handles = fill_handles(["image only", "image × geographic prior"]) + baseline_handles(
        baseline, [f"top{top_k[0]}"], [MOST_COMMON_LABEL]
    )
    return finish_figure(
        figure,
        handles,
        [h.get_label() for h in handles],
        f"bars: {seed_note(summary, error_bar)}; numbers: mean gain (percentage points)",
        f"Geographic prior at test time, {label_fraction:g} % of the training labels",
    )


def label_budget_curve(
    results: pd.DataFrame, *, top_k: Sequence[int] = (1, 5), error_bar: str = "std", figure_width_in: float = 7.0
) -> plt.Figure:
    """Figure 4: accuracy against the share of labelled training images (log x), one line per strategy.

    One row of panels per k of ``top_k``, one column per protocol (fewer when the width is narrow). Refused
    (ValueError) when the results hold fewer than two label fractions: a curve needs at least two points.
    """
    from matplotlib.ticker import NullLocator

    top_k = check_options(error_bar, top_k)
    require_columns(results, [f"top{k}" for k in top_k], "label-budget")
    fractions = sorted(float(f) for f in results["label_fraction"].unique())
    if len(fractions) < 2:
        raise ValueError(
            f"the label-budget curve needs at least two label fractions; the results hold only "
            f"{', '.join(f'{f:g} %' for f in fractions) or 'none'} (evaluate more label fractions)"
        )
    summary = species_summary(results)
    protocols = panel_protocols(summary)
    baseline = most_common_rows(summary)
    panels = [(k, protocol) for k in top_k for protocol in protocols]
    figure, axes, columns = panel_grid(len(panels), figure_width_in, 0.36, len(protocols))
    for i, (ax, (k, protocol)) in enumerate(zip(axes, panels)):
        metric = f"top{k}"
        panel = pd.concat([baseline, panel_rows(summary, protocol, metric)], ignore_index=True)
        for strategy in strategy_order(panel["strategy"]):
            rows = panel[panel["strategy"] == strategy].sort_values("label_fraction")
            is_baseline = strategy == MOST_COMMON
            ax.errorbar(
                rows["label_fraction"].to_numpy(float),
                as_percent(rows, metric),
                yerr=error_bar_lengths(rows, metric, error_bar),
                capsize=2,
                color=strategy_colour(strategy),
                marker="" if is_baseline else "o",
                markersize=3,
                linewidth=1,
                elinewidth=0.8,
                linestyle="--" if is_baseline else "-",
                label=MOST_COMMON_LABEL if is_baseline else strategy,
            )
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(protocol_title(protocol))
        if is_bottom(i, len(axes), columns):
            ax.set_xlabel("labelled train images (%)")
    accuracy_axes(axes, columns, [f"top-{k} {ACCURACY_LABEL}" for k, _ in panels])
    handles, labels = legend_entries(axes)
    return finish_figure(
        figure, handles, labels, f"error bars: {seed_note(summary, error_bar)}", "Accuracy against the label budget"
    )


TRAINING_PANELS = (
    ("loss", "training loss", 1.0, "each strategy's own objective"),
    ("knn_top1", "online kNN top-1 (%)", 100.0, "kNN on val images"),
    ("embedding_std", "embedding std", 1.0, "collapse monitor (→ 0: collapse)"),
    ("mean_pairwise_cosine", "mean pairwise cosine", 1.0, "collapse monitor (→ 1: collapse)"),
)
"""(metrics.jsonl key, y label, scale, panel title) of the training-curve panels."""


def read_metrics(paths: Iterable[Path]) -> pd.DataFrame:
    """One row per epoch of every pretraining job's ``metrics.jsonl``, with ``strategy`` (the run:
    ``<strategy>_l<pct>`` for a job at a label budget) and ``seed`` columns.

    Strategy and seed come from the path, as the pretrain rules lay it out
    (:func:`~geocontrast.results.table.pretraining_run`); other layouts are refused.
    """
    frames = []
    for path in map(Path, paths):
        run, seed = pretraining_run(path)
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path} holds no epoch: pretraining wrote no metrics")
        frame = pd.DataFrame(lines)
        frame.insert(0, "seed", seed)
        frame.insert(0, "strategy", run)
        frames.append(frame)
    if not frames:
        raise ValueError("no metrics.jsonl given")
    return pd.concat(frames, ignore_index=True)


def training_curves(metrics: pd.DataFrame, *, error_bar: str = "std", figure_width_in: float = 7.0) -> plt.Figure:
    """Figure 9: per-epoch training curves (loss, online kNN top-1, collapse monitors), mean over seeds with a band.

    ``metrics``: :func:`read_metrics`'s table. The band is the seeds' std (or standard error) at each epoch.
    """
    from matplotlib.ticker import MaxNLocator

    check_options(error_bar)
    require_columns(metrics, ["strategy", "seed", "epoch", *(panel[0] for panel in TRAINING_PANELS)], "training-curves")
    figure, axes, columns = panel_grid(len(TRAINING_PANELS), figure_width_in, 0.34, 2)
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
            ax.plot(
                stats.index,
                stats["mean"],
                color=colour,
                linewidth=1.2,
                marker="o",
                markersize=2.5,
                label=f"{strategy} ({seed_count(int(seeds[strategy]))})",
            )
            ax.fill_between(
                stats.index, stats["mean"] - spread, stats["mean"] + spread, color=colour, alpha=0.2, linewidth=0
            )
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if is_bottom(i, len(axes), columns):
            ax.set_xlabel("epoch")
    handles, labels = legend_entries(axes)
    return finish_figure(figure, handles, labels, f"line: mean over seeds; band: ± {error_bar}", "Pretraining curves")


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
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.report.results_figures", description=__doc__.splitlines()[0]
    )
    parser.add_argument("figure", choices=list(FIGURES))
    parser.add_argument("--results", type=Path, help="results.csv (every figure but training_curves)")
    parser.add_argument(
        "--metrics", type=Path, nargs="+", help="<strategy>/seed<seed>/metrics.jsonl files (training_curves)"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="figure .png (an .svg is written beside it); table: .md (.csv and .html beside it)",
    )
    parser.add_argument(
        "--params-json", type=json_object, default="{}", help="keyword arguments of the figure as a JSON object"
    )
    parser.add_argument("--not-computed", type=Path, help="table: not_computed.csv of results.py, shown below it")
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
    if args.figure == "table":
        not_computed = pd.read_csv(args.not_computed, keep_default_na=False) if args.not_computed else None
        written = write_table(output, args.out, not_computed)
    else:
        written = save_figure(output, args.out)
    print("\n".join(map(str, written)))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
