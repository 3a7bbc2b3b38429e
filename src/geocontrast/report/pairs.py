"""What each strategy's pairs share: the pairs.json of every pretraining run, as one table and one figure.

A row of the table is one (strategy, pair kind) averaged over seeds: the share of pairs with the same species,
genus, family, observer and observation date, and the median distance; the random pairs of each run are the
baseline kind. The figure draws the shares as grouped bars (one panel per fact), the median distances, and the
anchors whose positive fell back to the anchor itself, by cause (a neighbour's or, for ``observation`` positives,
another photo's: :mod:`geocontrast.strategies.diagnostics`)::

    python -m geocontrast.report.pairs --pairs pretrain/*/seed*/pairs.json --out pairs.png --table pairs.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path
from geocontrast.cli import exit_without_teardown
from geocontrast.data.real_pairs import REAL_RANGES
from geocontrast.report.style import plt, save_figure
from geocontrast.results.table import read_pair_records

KINDS = ("positive", "negative", "masked", "random")
SHARES = ("species", "genus", "family", "observer", "date")
CAUSES = (
    "no_coordinates",
    "no_neighbour_within_r",
    "neighbours_outside_split",
    "single_photo",
    "other_photos_outside_split",
)
"""Why a positive fell back to the anchor: a neighbour's causes (pairs.json ``fallbacks``), then another photo's
(``observation_fallbacks``)."""
KIND_COLOURS = {"positive": "#009E73", "negative": "#D55E00", "masked": "#CC79A7", "random": "#999999"}
REAL_SOURCE = "real range"
REAL_NOTE = "real range: the share in two research-grade iNaturalist exports (context positives within 5 km)"


def pairs_table(records: list[dict]) -> pd.DataFrame:
    """One row per (run, kind) the runs have, in the order given: seeds, pairs per seed and, averaged over seeds,
    the same-fact shares, the self share of positives, the median distance and the fallback shares by cause."""
    rows = []
    for record in records:
        fallbacks = record.get("fallbacks") or record.get("observation_fallbacks")
        for kind in KINDS:
            summary = record["pairs"].get(kind)
            if summary is None:
                continue
            distance = summary.get("distance_km") or {}
            rows.append(
                {
                    "run": record["run"],
                    "kind": kind,
                    "pairs": summary["n"],
                    **{f"same_{fact}": summary.get(f"same_{fact}") for fact in SHARES},
                    "self_share": summary.get("self_share"),
                    "median_km": distance.get("p50"),
                    **{
                        f"fallback_{cause}": (
                            fallbacks.get(cause, 0) / fallbacks["n_anchors"]
                            if fallbacks and kind == "positive"
                            else None
                        )
                        for cause in CAUSES
                    },
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError("no pairs.json records")
    order = list(dict.fromkeys(frame["run"]))
    table = frame.groupby(["run", "kind"], sort=False).agg(
        seeds=("pairs", "size"), **{c: (c, "mean") for c in frame.columns if c not in ("run", "kind")}
    )
    table = table.reset_index()
    table["run"] = pd.Categorical(table["run"], order, ordered=True)
    table["kind"] = pd.Categorical(table["kind"], KINDS, ordered=True)
    return table.sort_values(["run", "kind"]).reset_index(drop=True).astype({"run": str, "kind": str})


def pairs_figure(table: pd.DataFrame, *, figure_width_in: float = 10.0) -> plt.Figure:
    """Grouped bars of the same-fact shares per run and pair kind, behind them the ranges of real collections
    (:data:`REAL_RANGES`, a band in the kind's colour), the median distances (log scale) and the positives'
    fallbacks by cause (stacked share of anchors)."""
    runs = list(dict.fromkeys(table["run"]))
    x = np.arange(len(runs))
    width = 0.8 / len(KINDS)
    figure, axes = plt.subplots(2, 4, figsize=(figure_width_in, 0.5 * figure_width_in), sharex=True)
    panels = [(f"same_{fact}", f"same {fact}") for fact in SHARES] + [("median_km", "median distance (km)")]
    for axis, (column, title) in zip(axes.flat, panels):
        for kind in KINDS:
            low_high = REAL_RANGES.get((column.removeprefix("same_"), kind))
            if low_high is not None:
                label = f"{REAL_SOURCE}, {kind}"
                axis.axhspan(*low_high, color=KIND_COLOURS[kind], alpha=0.3, lw=0, zorder=0, label=label)
        for offset, kind in enumerate(KINDS):
            values = table[table["kind"] == kind].set_index("run")[column].reindex(runs).astype(float)
            axis.bar(x + (offset - 1.5) * width, values, width, color=KIND_COLOURS[kind], label=kind)
        axis.set_title(title)
        if column == "median_km":
            axis.set_yscale("log")
        else:
            axis.set_ylim(0, 1)
    axis = axes.flat[len(panels)]
    positives = table[table["kind"] == "positive"].set_index("run").reindex(runs)
    bottom = np.zeros(len(runs))
    for cause, colour in zip(CAUSES, ("#E69F00", "#56B4E9", "#0072B2", "#F0E442", "#CC79A7")):
        share = positives[f"fallback_{cause}"].astype(float).fillna(0.0).to_numpy()
        axis.bar(x, share, 0.6, bottom=bottom, color=colour, label=cause.replace("_", " "))
        bottom += share
    axis.set_title("positive fell back to the anchor")
    spare = axes.flat[len(panels) + 1]
    spare.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    order = [labels.index(name) for name in labels if not name.startswith(REAL_SOURCE)]  # the bars first
    order += [labels.index(name) for name in labels if name.startswith(REAL_SOURCE)]
    kinds = spare.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        title="pairs",
        loc="upper center",
        bbox_to_anchor=(0.5, 1.15),
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )
    spare.add_artist(kinds)
    spare.legend(
        *axis.get_legend_handles_labels(),
        title="fallback cause",
        loc="upper center",
        bbox_to_anchor=(0.5, 0.4),
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )
    for axis in axes[-1]:
        axis.set_xticks(x, runs, rotation=45, ha="right")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.text(0.5, 0.005, REAL_NOTE, ha="center", va="bottom", fontsize="small")
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.pairs", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs", required=True, type=Path, nargs="+", help="pretrain/<strategy>/seed<s>/[l<pct>/]pairs.json"
    )
    parser.add_argument("--out", required=True, type=Path, help="figure .png (an .svg is written beside it)")
    parser.add_argument("--table", required=True, type=Path, help="the table as .csv")
    parser.add_argument("--figure-width-in", type=float, default=10.0)
    args = parser.parse_args(argv)
    table = pairs_table(read_pair_records(args.pairs))
    with atomic_path(args.table) as partial:
        table.to_csv(partial, index=False, float_format="%.4g")
    save_figure(pairs_figure(table, figure_width_in=args.figure_width_in), args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
