"""Collect evaluation JSONs into ``results.csv`` and summarise them over seeds, with the geographic prior alone
beside its limits (from each replicate's prior.json) and what could not be computed and why (the evaluations'
reasons and the pretraining runs' pair fallbacks, from their pairs.json)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path, write_text
from geocontrast.data.real_pairs import range_text
from geocontrast.evaluate import METRIC_COLUMNS, RESULT_COLUMNS
from geocontrast.prior.scores import LEARNED, TOP_K, prior_table
from geocontrast.cli import exit_without_teardown

GROUP_COLUMNS = ("strategy", "protocol", "label_fraction")


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN for one seed) and n_seeds of every metric per (strategy, protocol, label_fraction).

    Columns: the group columns, ``n_seeds``, then ``<metric>_mean`` and ``<metric>_std`` for each metric
    of :data:`geocontrast.evaluate.METRIC_COLUMNS` present in ``results``.
    """
    metrics = [column for column in METRIC_COLUMNS if column in results.columns]
    grouped = results.groupby(list(GROUP_COLUMNS), sort=False)
    summary = grouped[metrics].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary.insert(0, "n_seeds", grouped["seed"].nunique())
    return summary.reset_index()


def collect(records: list[dict]) -> pd.DataFrame:
    """One row per evaluation record with :data:`geocontrast.evaluate.RESULT_COLUMNS` (missing facts are NaN),
    sorted by strategy, protocol, label fraction and seed."""
    frame = pd.DataFrame.from_records(records).reindex(columns=list(RESULT_COLUMNS))
    return frame.sort_values(["strategy", "protocol", "label_fraction", "seed"], kind="stable", ignore_index=True)


CLASSIFICATION_METRICS = ("top1", "top5", "macro_top1", "prior_top1")
TASK_METRICS = {
    "genus_pairs": ("pairs_similar_accuracy", "pairs_distinct_accuracy"),
    "mislabel": ("mislabel_auc", "mislabel_precision"),
    "clustering": ("nmi_species", "ari_species", "nmi_genus", "ari_genus"),
}
"""What the text summary shows of each downstream task; every other protocol shows CLASSIFICATION_METRICS."""


def format_summary(summary: pd.DataFrame) -> str:
    """A fixed-width text table of mean ± std (in %) per row of :func:`summarise`, for terminals and logs."""
    lines = []
    for _, row in summary.iterrows():
        cells = [
            f"{row['strategy']:<16}",
            f"{row['protocol']:<12}",
            f"{row['label_fraction']:>5g}%",
            f"n={int(row['n_seeds'])}",
        ]
        for metric in TASK_METRICS.get(row["protocol"], CLASSIFICATION_METRICS):
            mean, std = 100 * row.get(f"{metric}_mean", float("nan")), 100 * row.get(f"{metric}_std", float("nan"))
            cells.append(f"{metric} {mean:5.1f} ± {std:4.1f}")
        lines.append("  ".join(cells))
    header = "strategy          protocol      labels  seeds  mean ± std over seeds, % (test images; tasks: own scores)"
    return "\n".join([header, *lines]) + "\n"


BUDGET_COLUMNS = ("pretrain_steps", "pretrain_anchors", "pretrain_images", "pretrain_seconds")


def budget_text(results: pd.DataFrame) -> str:
    """What each pretraining job spent, mean over seeds, per strategy and the train labels it trained on (a
    label-trained strategy has one encoder per label budget): optimiser steps, anchors, images through the encoder
    (all views) and wall seconds; one budget means equal steps and anchors."""
    pretrained = results.dropna(subset=["pretrain_steps"])
    if pretrained.empty:
        return ""
    jobs = pretrained.groupby(["strategy", "pretrain_label_fraction"], sort=False, dropna=False)
    spent = jobs[list(BUDGET_COLUMNS)].mean()
    lines = [
        "",
        "Pretraining budget, mean over seeds: % of train labels trained on, optimiser steps, anchors seen,"
        " images through the encoder, s",
    ]
    for (strategy, labels), row in spent.iterrows():
        lines.append(
            f"{strategy:<16}  labels {labels:>4g} %  steps {row['pretrain_steps']:7.0f}"
            f"  anchors {row['pretrain_anchors']:9.0f}  images {row['pretrain_images']:9.0f}"
            f"  {row['pretrain_seconds']:7.1f} s"
        )
    return "\n".join(lines) + "\n"


def collapse_text(results: pd.DataFrame) -> str:
    """The pretraining runs whose representation collapsed, totally or partly, by the end of their budget (from
    the monitors on held-out photos: geocontrast.train.monitor), each with how; empty when none did."""
    if "pretrain_collapse" not in results:
        return ""
    collapse = results["pretrain_collapse"]  # all-NaN (float) when no run collapsed
    flagged = results[collapse.notna() & (collapse.astype(str) != "")]
    runs = flagged.drop_duplicates(["strategy", "seed", "pretrain_label_fraction"])
    if runs.empty:
        return ""
    lines = ["", "Pretraining runs whose representation collapsed by the end (their rows above include them):"]
    for row in runs.itertuples(index=False):
        labels = f" at {row.pretrain_label_fraction:g} % labels" if row.pretrain_label_fraction else ""
        lines.append(f"{row.strategy} seed {row.seed}{labels}: {row.pretrain_collapse}")
    return "\n".join(lines) + "\n"


def pretraining_run(path: Path) -> tuple[str, int]:
    """(run, seed) of a pretraining job's file, from its folders as the pretrain rules lay them out:
    ``<strategy>/seed<s>/<file>`` (run: the strategy or arm) or, for a strategy pretrained at each label budget,
    ``<strategy>/seed<s>/l<pct>/<file>`` (run: ``<strategy>_l<pct>``). Other layouts are refused."""
    folder, budget = Path(path).parent, ""
    if re.fullmatch(r"l\d+(\.\d+)?", folder.name):
        folder, budget = folder.parent, f"_{folder.name}"
    if not re.fullmatch(r"seed\d+", folder.name):
        raise ValueError(f"{path}: expected <strategy>/seed<seed>/[l<pct>/]{Path(path).name}")
    return f"{folder.parent.name}{budget}", int(folder.name.removeprefix("seed"))


def read_pair_records(paths: Iterable[Path]) -> list[dict]:
    """The pairs.json records of pretraining runs (:mod:`geocontrast.strategies.diagnostics`), each with ``run``
    (the strategy or arm, ``<strategy>_l<pct>`` at a label budget) and ``seed``, from its folder
    (:func:`pretraining_run`)."""
    records = []
    for path in map(Path, paths):
        run, seed = pretraining_run(path)
        records.append({**json.loads(path.read_text()), "run": run, "seed": seed})
    return records


def read_priors(paths: Iterable[Path]) -> list[dict]:
    """The prior.json of each replicate's geographic prior, each with ``replicate`` from its folders
    (``replicates/<replicate>/geoprior/l<pct>/prior.json``, as the geo_prior rule lays them out)."""
    records = []
    for path in map(Path, paths):
        match = re.search(r"replicates/(\d+)/geoprior/l[^/]+/[^/]+$", path.as_posix())
        if match is None:
            raise ValueError(f"{path}: expected replicates/<replicate>/geoprior/l<pct>/{path.name}")
        records.append({**json.loads(path.read_text()), "replicate": int(match.group(1))})
    return records


def prior_text(table: pd.DataFrame) -> str:
    """The "geographic prior alone" section of results_summary.txt (:func:`prior_table`): per label budget and
    prior (inputs, training data), each model's test top-1/top-5 mean ± std over replicates, the learned prior's
    range AUC and calibration error; empty without a fitted prior."""
    if table.empty:
        return ""
    lines = ["", "Geographic prior alone (test photos with coordinates), mean ± std over replicates, %:"]
    groups = table.groupby(["label_fraction", "inputs", "trained_on"], sort=True)
    for (labels, inputs, trained_on), group in groups:
        lines.append(f"labels {labels:g} %, inputs {inputs}, trained on {trained_on}:")
        for model, rows in group.groupby("model", sort=False):
            cells = [f"  {model:<30}"]
            cells += [f"top{k} {100 * rows[f'top{k}'].mean():5.1f} ± {100 * rows[f'top{k}'].std():4.1f}" for k in TOP_K]
            if model == LEARNED:
                for column, name in (("range_auc", "range AUC"), ("ece", "ECE")):
                    value = rows[column].astype(float).mean()
                    cells.append(f"{name} {value:.3f}" if pd.notna(value) else f"{name} -")
            lines.append("  ".join([*cells, f"({rows['replicate'].nunique()} replicates)"]))
    return "\n".join(lines) + "\n"


NOT_COMPUTED_COLUMNS = ("level", "what", "where", "why")


def not_computed_table(records: list[dict], pair_records: Iterable[dict] = ()) -> pd.DataFrame:
    """What could not be computed and why, one row per (what, why) of the evaluation records' ``not_computed``
    (``where``: the protocols it concerns and how many evaluations) and per fallback note of the pretraining runs'
    pairs.json (``where``: run and seed); ``level`` is ``warning`` for notes that concern every sampled anchor
    (those pairs carry no geography at all), else ``note``."""
    concerns: dict[tuple[str, str], list[str]] = {}
    for record in records:
        for what, reason in record.get("not_computed", {}).items():
            concerns.setdefault((what, reason), []).append(record.get("protocol", "?"))
    rows = [
        ("note", what, f"{', '.join(sorted(set(protocols)))}; {len(protocols)} evaluations", reason)
        for (what, reason), protocols in sorted(concerns.items())
    ]
    for record in pair_records:
        for note in record.get("notes", []):
            level = "warning" if note["every"] else "note"
            rows.append((level, note["what"], f"{record['run']} seed {record['seed']}", note["why"]))
    return pd.DataFrame(rows, columns=list(NOT_COMPUTED_COLUMNS))


def not_computed_text(table: pd.DataFrame) -> str:
    """The "what could not be computed and why" section of results_summary.txt (:func:`not_computed_table`);
    empty when everything was computed."""
    if table.empty:
        return ""
    lines = ["", "What could not be computed and why:"]
    for row in table.itertuples(index=False):
        loud = "WARNING " if row.level == "warning" else ""
        lines.append(f"- {loud}{row.what} ({row.where}): {row.why}")
    return "\n".join(lines) + "\n"


def collection_text(manifest_summaries: Mapping[int | None, dict]) -> str:
    """The collection's line of results_summary.txt: photos, those with coordinates and, when the manifest found
    them, the near-duplicate groups ("N near-duplicate groups, M photos") the splits kept together. Keyed by
    replicate when each replicate drew its own world (one line each), by None for the one pool of every replicate."""
    lines = []
    for replicate, summary in manifest_summaries.items():
        n_images = summary["n_images"]
        whose = "" if replicate is None else f" of replicate {replicate} (its own world)"
        line = f"Collection{whose}: {n_images} photos, {n_images - summary['n_without_coords']} with coordinates"
        near = summary.get("near_duplicates")
        if near is not None:
            dropped = f" ({near['n_dropped']} dropped)" if near.get("n_dropped") else ""
            line += f"; {near['n_groups']} near-duplicate groups, {near['n_photos']} photos{dropped}"
        lines.append(line)
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def context_purity(pair_records: Iterable[dict]) -> dict | None:
    """How pure the collection's context positives are: the share of uniform neighbour positives (runs with
    ``positive: neighbour`` and no appearance filter) of the anchor's species and genus, and of random pairs of one
    species, mean over those runs and seeds (``runs``: how many); None when no run drew context positives."""
    records = list(pair_records)
    context = [
        record["pairs"]["positive"]
        for record in records
        if record.get("options", {}).get("positive") == "neighbour"
        and record.get("options", {}).get("filter_temperature") is None
        and (record["pairs"].get("positive") or {}).get("same_species") is not None
    ]
    if not context:
        return None
    shares = {fact: [pair.get(f"same_{fact}") for pair in context] for fact in ("species", "genus")}
    purity = {fact: float(np.nanmean(np.array(values, dtype=float))) for fact, values in shares.items()}
    randoms = [r["pairs"]["random"]["same_species"] for r in records if (r["pairs"].get("random") or {}).get("n")]
    return {**purity, "random": float(np.mean(randoms)) if randoms else None, "runs": len(context)}


def purity_text(purity: dict | None) -> str:
    """results_summary.txt's line of the collection's context-positive purity (:func:`context_purity`) beside the
    ranges of real iNaturalist exports (what the purity sweep maps, docs/results.md "When geography helps");
    empty without one."""
    if purity is None:
        return ""
    line = (
        f"Context positives (neighbours within the radius; {purity['runs']} pretraining runs): "
        f"{100 * purity['species']:.1f} % of the anchor's species, {100 * purity['genus']:.1f} % of its genus"
    )
    if purity["random"] is not None:
        line += f"; random pairs {100 * purity['random']:.2f} % of one species"
    real = f"{range_text('species', 'positive')}, {range_text('genus', 'positive')}"
    return line + f" (real iNaturalist exports within 5 km: {real}; random pairs {range_text('species', 'random')})\n"


def sweep_position_text(purity: dict | None, sweep: pd.DataFrame, source: str) -> str:
    """Where the collection's species purity lies on a purity sweep's curves (``sweep``: its sweep.csv, the rows of
    the swept levels, not its extra points): per strategy and protocol, the Δ against the sweep's reference and its
    interval bounds interpolated linearly in log purity between the two levels around it, or that it lies outside
    the swept range. A reading of the synthetic map at this purity, not a prediction for the collection."""
    if purity is None or sweep.empty:
        return ""
    curve = sweep[sweep["extra"].isna() & sweep["purity"].gt(0) & sweep["diff"].notna()]
    x = math.log(purity["species"]) if purity["species"] > 0 else -math.inf
    lines = [f"On the purity sweep {source} at this purity ({100 * purity['species']:.1f} %), Δ top-1 in points:"]
    budgets = curve["label_fraction"].nunique() > 1
    for (strategy, protocol, pct), rows in curve.groupby(list(GROUP_COLUMNS)):
        name = f"{strategy} ({protocol}{f', {pct:g} % labels' if budgets else ''})"
        rows = rows.sort_values("purity")
        t = np.log(rows["purity"].to_numpy(float))
        if not t[0] <= x <= t[-1]:
            span = f"{100 * rows['purity'].iloc[0]:.1f}–{100 * rows['purity'].iloc[-1]:.1f} %"
            lines.append(f"  {name}: outside the swept purities ({span})")
            continue
        diff, low, high = (100 * np.interp(x, t, rows[column].to_numpy(float)) for column in ("diff", "low", "high"))
        lines.append(f"  {name}: {diff:+.1f} [{low:+.1f}, {high:+.1f}]")
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def read_collections(paths: Iterable[Path]) -> dict[int | None, dict]:
    """The manifest summaries by replicate (``replicates/<r>/manifest_summary.json``; None: the shared pool's)."""
    summaries = {}
    for path in paths:
        match = re.search(r"replicates/(\d+)/manifest_summary\.json$", Path(path).as_posix())
        summaries[int(match.group(1)) if match else None] = json.loads(Path(path).read_text())
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.results.table", description=__doc__)
    parser.add_argument("evaluations", nargs="+", type=Path, help="evaluation JSON files")
    parser.add_argument("--out", required=True, type=Path, help="results.csv")
    parser.add_argument("--summary", required=True, type=Path, help="results_summary.csv")
    parser.add_argument("--text", type=Path, help="also write the summary as a text table here")
    parser.add_argument("--pairs", type=Path, nargs="*", default=[], help="pretrain/<run>/seed<s>/pairs.json files")
    parser.add_argument("--not-computed", type=Path, help="also write what could not be computed and why as .csv")
    parser.add_argument("--priors", type=Path, nargs="*", default=[], help="replicates/<r>/geoprior/l<pct>/prior.json")
    parser.add_argument(
        "--collections",
        type=Path,
        nargs="*",
        default=[],
        help="manifest_summary.json of the photo pool, or replicates/<r>/manifest_summary.json of each world",
    )
    parser.add_argument(
        "--sweep", type=Path, nargs="*", default=[], help="a purity sweep's sweep.csv to place the collection on"
    )
    args = parser.parse_args(argv)
    records = []
    for path in args.evaluations:
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError as error:
            parser.error(f"{path}: not valid JSON ({error})")
    results = collect(records)
    summary = summarise(results)
    pair_records = read_pair_records(args.pairs)
    not_computed = not_computed_table(records, pair_records)
    purity = context_purity(pair_records)
    sweep = pd.concat([pd.read_csv(path) for path in args.sweep]) if args.sweep else pd.DataFrame()
    source = " and ".join(str(path) for path in args.sweep)
    outputs = ((results, args.out), (summary, args.summary), (not_computed, args.not_computed))
    for frame, path in outputs:
        if path is not None:
            with atomic_path(path) as partial:
                frame.to_csv(partial, index=False)
    text = (
        format_summary(summary)
        + budget_text(results)
        + collapse_text(results)
        + prior_text(prior_table(read_priors(args.priors)))
        + not_computed_text(not_computed)
        + collection_text(read_collections(args.collections))
        + purity_text(purity)
        + sweep_position_text(purity, sweep, source)
    )
    if args.text:
        write_text(text, args.text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
