"""Figures of the downstream tasks: one bar panel per task score, and the ROC curves of mislabel detection.

Inputs: ``results.csv`` (task rows, :data:`geocontrast.evaluate.TASKS`) and the ``mislabel_l<pct>.json``
evaluation records, which keep the ROC curve. Bars are the mean over seeds with the seeds' std (or standard
error) as error bars, in the strategies' report colours.

CLI (called by ``workflow/rules/report.smk``; writes ``fig.png`` and ``fig.svg``)::

    python -m geocontrast.report.task_figures tasks --results results.csv --out tasks.png [--params-json '{...}']
    python -m geocontrast.report.task_figures mislabel_roc --records eval/*/seed*/mislabel_l10.json --out roc.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.cli import exit_without_teardown, json_object
from geocontrast.evaluate import TASKS
from geocontrast.report.panels import (
    at_label_fraction,
    check_options,
    draw_bars,
    finish_figure,
    is_bottom,
    ordered_summary,
    panel_grid,
    seed_note,
    strategy_order,
)
from geocontrast.report.style import plt, save_figure, strategy_colour
from geocontrast.results.table import summarise

TASK_PANELS = (
    ("genus_probe", "top1", "genus identification", "top-1 (%)"),
    ("family_probe", "top1", "family identification", "top-1 (%)"),
    ("order_probe", "top1", "order identification", "top-1 (%)"),
    ("genus_pairs", "pairs_similar_accuracy", "similar genus pairs", "accuracy (%)"),
    ("genus_pairs", "pairs_distinct_accuracy", "distinct genus pairs", "accuracy (%)"),
    ("mislabel", "mislabel_auc", "mislabel detection", "ROC-AUC (%)"),
    ("mislabel", "mislabel_precision", "mislabel detection", "precision at noise rate (%)"),
    ("clustering", "nmi_species", "species clusters", "NMI (%)"),
    ("clustering", "ari_species", "species clusters", "ARI (%)"),
    ("clustering", "nmi_genus", "genus clusters", "NMI (%)"),
    ("clustering", "ari_genus", "genus clusters", "ARI (%)"),
)
"""(protocol, metric, panel title, y label) of the task panels, in this order; those without results are left out."""
CHANCE = {"mislabel_auc": 50.0, "pairs_similar_accuracy": 50.0, "pairs_distinct_accuracy": 50.0}
"""Scores of a guess (%), drawn as a dotted line."""


def task_bars(
    results: pd.DataFrame, *, error_bar: str = "std", figure_width_in: float = 7.0, label_fraction: float = 10
) -> plt.Figure:
    """Figure: one panel per downstream-task score present in ``results``, a bar per strategy with error bars."""
    check_options(error_bar)
    rows = at_label_fraction(results, label_fraction)
    rows = rows[rows["protocol"].isin(TASKS)]
    if rows.empty:
        raise ValueError(
            f"the results hold no downstream task at {label_fraction:g} % labels "
            f"(evaluate.tasks is empty?): nothing to draw"
        )
    summary = ordered_summary(summarise(rows))
    panels = [
        (protocol, metric, title, label)
        for protocol, metric, title, label in TASK_PANELS
        if summary.loc[summary["protocol"] == protocol, f"{metric}_mean"].notna().any()
        if f"{metric}_mean" in summary
    ]
    columns = 3 if summary["strategy"].nunique() <= 6 else 2  # room for the strategy names under each bar
    figure, axes, columns = panel_grid(len(panels), figure_width_in, 0.32 if columns == 3 else 0.42, columns)
    for i, (ax, (protocol, metric, title, label)) in enumerate(zip(axes, panels)):
        panel = summary[(summary["protocol"] == protocol) & summary[f"{metric}_mean"].notna()].reset_index(drop=True)
        draw_bars(ax, panel, [metric], error_bar)
        if metric in CHANCE:
            ax.axhline(CHANCE[metric], color="0.4", linewidth=0.8, linestyle=":", zorder=0.5)
        if not metric.startswith("ari_"):  # only the adjusted Rand index can fall below 0
            ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))
        ax.set_title(title)
        ax.set_ylabel(label)
        ax.yaxis.grid(True, linewidth=0.4, alpha=0.5)
        ax.set_axisbelow(True)
        if not is_bottom(i, len(axes), columns):
            ax.tick_params(labelbottom=False)
    return finish_figure(
        figure,
        [],
        [],
        f"error bars: {seed_note(summary, error_bar)}; dotted: chance",
        f"Downstream tasks on frozen features ({label_fraction:g} % labels)",
    )


def read_mislabel_records(paths: Iterable[Path]) -> list[dict]:
    """The mislabel evaluation records (strategy, seed, AUC, ROC curve); refused when one lacks its curve."""
    records = []
    for path in map(Path, paths):
        record = json.loads(path.read_text())
        if record.get("protocol") != "mislabel" or "roc" not in record:
            raise ValueError(f"{path}: not a mislabel evaluation record with a ROC curve")
        records.append(record)
    if not records:
        raise ValueError("no mislabel records given")
    return records


def mislabel_roc(records: list[dict], *, figure_width_in: float = 7.0) -> plt.Figure:
    """Figure: ROC curves of finding the injected wrong labels, one panel per strategy, one line per seed."""
    strategies = strategy_order(record["strategy"] for record in records)
    figure, axes, columns = panel_grid(len(strategies), figure_width_in, 0.3, 4)
    for i, (ax, strategy) in enumerate(zip(axes, strategies)):
        runs = sorted((r for r in records if r["strategy"] == strategy), key=lambda r: r["seed"])
        for run in runs:
            ax.plot(run["roc"]["fpr"], run["roc"]["tpr"], color=strategy_colour(strategy), linewidth=1, alpha=0.8)
        ax.plot([0, 1], [0, 1], color="0.5", linewidth=0.8, linestyle=":")
        auc = np.array([r["mislabel_auc"] for r in runs])
        ax.set_title(f"{strategy}\nAUC {auc.mean():.2f}" + (f" ± {auc.std(ddof=1):.2f}" if auc.size > 1 else ""))
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
        if i % columns == 0:
            ax.set_ylabel("true positive rate")
        else:
            ax.tick_params(labelleft=False)
        if is_bottom(i, len(axes), columns):
            ax.set_xlabel("false positive rate")
        else:
            ax.tick_params(labelbottom=False)
    noise = records[0]["n_flipped"] / records[0]["n_labelled"]
    title = (
        f"Mislabel detection: ROC of neighbourhood disagreement ({records[0]['n_flipped']} of "
        f"{records[0]['n_labelled']} labelled images, {noise:.0%}, relabelled)"
    )
    return finish_figure(figure, [], [], "one line per seed; dotted: chance", title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.report.task_figures", description=__doc__.splitlines()[0]
    )
    parser.add_argument("figure", choices=["tasks", "mislabel_roc"])
    parser.add_argument("--results", type=Path, help="results.csv (tasks)")
    parser.add_argument("--records", type=Path, nargs="+", help="mislabel_l<pct>.json records (mislabel_roc)")
    parser.add_argument("--out", required=True, type=Path, help="figure .png (an .svg is written beside it)")
    parser.add_argument("--params-json", type=json_object, default="{}", help="keyword arguments of the figure")
    args = parser.parse_args(argv)
    if args.figure == "tasks":
        if args.results is None:
            parser.error("tasks needs --results")
        figure = task_bars(pd.read_csv(args.results), **args.params_json)
    else:
        if not args.records:
            parser.error("mislabel_roc needs --records")
        figure = mislabel_roc(read_mislabel_records(args.records), **args.params_json)
    print("\n".join(map(str, save_figure(figure, args.out))))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
