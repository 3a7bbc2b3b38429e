"""The geographic prior on its own (figure ``prior.png``): what it scores beside what the data allows, and how far
its probabilities can be trusted.

Left: test top-1 and top-5 of the prior alone (no image) against the most-common-species baseline and, on the
synthetic world, the oracles P(y | x) and P(y | x, date) computed from the world's truth ("limit" rows), mean ±
std over replicates (:func:`geocontrast.prior.scores.prior_table`). Right: the reliability diagram of
the normalised prior as a classifier, its bins pooled over the replicates (count-weighted), with the expected
calibration error; a calibrated prior lies on the diagonal.

CLI (the workflow's report_prior rule)::

    python -m geocontrast.report.prior --priors replicates/0/geoprior/l10/prior.json ... --out report/prior.png \\
        [--figure-width-in 7]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geocontrast.cli import exit_without_teardown
from geocontrast.prior.scores import LEARNED, MOST_COMMON, TOP_K, prior_table
from geocontrast.report.style import STRATEGY_COLOURS, note_figure, plt, save_figure
from geocontrast.results.table import read_priors

MODEL_COLOURS = {MOST_COMMON: STRATEGY_COLOURS["most_common"], LEARNED: "#0072B2"}
LIMIT_COLOUR = "#CCCCCC"
LIMIT_HATCHES = ("//", "xx", "..")  # the oracle limits, in the order prior.json lists them


def pooled_reliability(reliabilities: list[dict]) -> dict:
    """One reliability diagram from several (:func:`geocontrast.prior.scores.reliability` of each
    replicate, same bins): counts summed, mean confidence and accuracy weighted by each bin's counts, and the
    expected calibration error of the pooled bins."""
    count = np.sum([r["count"] for r in reliabilities], axis=0).astype(float)
    weighted = {
        name: np.nansum([np.asarray(r[name], dtype=float) * r["count"] for r in reliabilities], axis=0)
        for name in ("confidence", "accuracy")
    }
    filled = count > 0
    confidence = np.where(filled, weighted["confidence"] / np.maximum(count, 1), np.nan)
    accuracy = np.where(filled, weighted["accuracy"] / np.maximum(count, 1), np.nan)
    gap = np.abs(np.nan_to_num(confidence) - np.nan_to_num(accuracy))
    return {
        "bin_edges": np.asarray(reliabilities[0]["bin_edges"], dtype=float),
        "count": count,
        "confidence": confidence,
        "accuracy": accuracy,
        "ece": float((count * gap).sum() / max(count.sum(), 1)),
    }


def prior_figure(priors: list[dict], figure_width_in: float = 7.0) -> plt.Figure:
    """The two panels for ``priors`` (prior.json contents with their ``replicate``, one label budget)."""
    table = prior_table(priors)
    if table.empty:
        return note_figure("the geographic prior was skipped: see results_summary.txt for why")
    figure, (scores_ax, reliability_ax) = plt.subplots(
        1, 2, figsize=(figure_width_in, 0.42 * figure_width_in), gridspec_kw={"width_ratios": [1.3, 1]}
    )
    models = list(dict.fromkeys(table["model"]))
    grouped = table.groupby("model", sort=False)
    width = 0.8 / len(models)
    hatches = iter(LIMIT_HATCHES)
    for i, model in enumerate(models):
        rows = grouped.get_group(model)
        means = [100 * rows[f"top{k}"].mean() for k in TOP_K]
        errors = [100 * np.nan_to_num(rows[f"top{k}"].std()) for k in TOP_K]
        colour = MODEL_COLOURS.get(model, LIMIT_COLOUR)
        hatch = None if model in MODEL_COLOURS else next(hatches, None)
        x = np.arange(len(TOP_K)) + (i - (len(models) - 1) / 2) * width
        scores_ax.bar(x, means, width, yerr=errors, color=colour, hatch=hatch, edgecolor="#555555", label=model)
    scores_ax.set_xticks(np.arange(len(TOP_K)), [f"top-{k}" for k in TOP_K])
    scores_ax.set_ylabel("test accuracy of the prior alone, %")
    first = table.iloc[0]
    scores_ax.set_title(f"inputs {first['inputs']}; trained on {first['trained_on']}", fontsize=8)
    scores_ax.legend(frameon=False, fontsize=6, loc="upper left")
    scores_ax.margins(y=0.25)

    reliabilities = [prior["reliability_test"] for prior in priors if "reliability_test" in prior]
    if reliabilities:
        pooled = pooled_reliability(reliabilities)
        edges = pooled["bin_edges"]
        centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        filled = pooled["count"] > 0
        reliability_ax.bar(
            centres[filled],
            pooled["accuracy"][filled],
            widths[filled],
            color="#0072B2",
            edgecolor="white",
            label="accuracy in the bin",
        )
        reliability_ax.plot([0, 1], [0, 1], color="#555555", linestyle="--", linewidth=0.8, label="calibrated")
        for centre, count in zip(centres[filled], pooled["count"][filled]):
            reliability_ax.annotate(f"{count:.0f}", (centre, 0.01), ha="center", va="bottom", fontsize=5, color="white")
        reliability_ax.set_title(f"reliability, ECE {pooled['ece']:.3f}", fontsize=8)
        reliability_ax.legend(frameon=False, fontsize=6, loc="upper left")
    reliability_ax.set_xlim(0, 1)
    reliability_ax.set_ylim(0, 1)
    reliability_ax.set_xlabel("confidence (highest prior probability)")
    reliability_ax.set_ylabel("accuracy")
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.prior", description=__doc__.splitlines()[0])
    parser.add_argument("--priors", required=True, type=Path, nargs="+", help="each replicate's prior.json")
    parser.add_argument("--out", required=True, type=Path, help="figure .png (an .svg is written beside it)")
    parser.add_argument("--figure-width-in", type=float, default=7.0)
    args = parser.parse_args(argv)
    priors = read_priors(args.priors)
    if len({prior.get("label_fraction") for prior in priors}) > 1:
        parser.error("--priors of one label budget only")
    save_figure(prior_figure(priors, args.figure_width_in), args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
