"""Paired comparisons: every strategy against a reference and against ``random_init``, with intervals.

Replicate r (the ``seed`` column of ``results.csv``: with ``splits.resample`` seed r also draws replicate r's data,
the ``replicate`` column; without it every seed shares replicate 0) trains and evaluates every strategy; within a
replicate all strategies share the split, the label subset, the geo tables and the prior, so the paired difference
d_r = m(strategy, r) - m(reference, r) is free of everything they share. For each (strategy, reference,
protocol, label budget, metric), over the n replicates where both have a value, the mean of d_r gets the t
interval over replicates, widened in quadrature by a test-photo term ``v_photo`` (the formulas, and why:
:mod:`geocontrast.results.intervals`).

**Test-set sampling error** enters through ``v_photo``, decided from the per-photo hit records of the evaluation
JSONs (:func:`geocontrast.metrics.hit_record`):

- the replicates scored *different* test photos (each replicate redrew the split): each d_r carries its own
  test-sampling error, so s2 already contains it; ``v_photo = 0`` (``test_sampling = in_replicates``).
- the replicates all scored *the same* test photos (the fixed-split mode): that error is common to every d_r and
  s2 cannot see it; ``v_photo`` is the variance of the paired, species-stratified bootstrap over test photos (the
  same photos resampled for both strategies and every replicate, each species keeping its test count), in closed
  form (:func:`~geocontrast.results.intervals.photo_variance`) rather than by Monte Carlo, so it is exact and
  needs no seed (``test_sampling = photo_bootstrap``).
- no records (JSONs not given, or written before records existed), or under two replicates:
  ``v_photo = 0`` and ``test_sampling = unknown``; with a fixed split the interval then covers initialisation
  and training only.

A fused pair's rows (strategy ``a+b``, protocol ``fusion``: :mod:`geocontrast.evaluate.fusion`) are compared as
linear probes: with the reference, random_init, ``a`` and ``b``.

With one replicate there is no spread to estimate: no interval, verdict ``unresolved (1 replicate)``. A
comparison is *resolved* when its interval excludes 0. An unresolved comparison with two or more pairs also gets
the replicates to resolve it (:func:`~geocontrast.results.intervals.replicates_to_resolve`, a planning aid).

``comparisons.csv`` columns (differences and means are fractions, like ``results.csv``):
``reference``, ``strategy``, ``protocol``, ``label_fraction`` (percent), ``metric`` (top1, top5, macro_top1);
``n_pairs`` (replicates with both values), ``n_unpaired`` (replicates with only one, or a NaN);
``strategy_mean``, ``reference_mean`` (over the paired replicates); ``diff`` (mean paired difference);
``low``, ``high`` (the interval; NaN below two pairs); ``se``, ``replicate_se`` (sqrt(s2 / n)),
``photo_se`` (sqrt(v_photo)); ``df`` (n - 1, of the t quantile); ``confidence``; ``test_sampling``;
``resolved`` (bool); ``verdict`` (``resolved``, ``unresolved``, ``unresolved (1 replicate)`` or ``no pairs``);
``replicates_to_resolve`` (unresolved comparisons only; NaN otherwise or beyond
:data:`~geocontrast.results.intervals.MAX_REPLICATES`).

``comparisons.txt`` puts every comparison in plain words (:func:`plain_words`), then what the geographic prior
adds to each strategy (:func:`prior_gains`, :func:`prior_gain_words`).

CLI (called by the workflow's comparisons rule; prints the plain-words text)::

    python -m geocontrast.results.compare --results results.csv --evaluations eval/*/seed*/*.json \\
        --out comparisons.csv --text comparisons.txt [--params-json '{"reference": "augmented"}']
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path, write_text
from geocontrast.cli import json_object
from geocontrast.evaluate import PROTOCOL_TITLES, TASKS
from geocontrast.results.intervals import (
    MAX_REPLICATES,
    paired_interval,
    photo_variance,
    replicates_to_resolve,
    verdict,
)
from geocontrast.metrics import read_hits
from geocontrast.registry import FUSION, FUSION_SEPARATOR
from geocontrast.settings import Settings

RANDOM_INIT = "random_init"
METRICS = {"top1": (1, "micro"), "top5": (5, "micro"), "macro_top1": (1, "macro")}
"""Compared metrics: the top-k of their per-photo hits, and how photos are weighed (micro: each photo the same;
macro: each species the same)."""
METRIC_NAMES = {"top1": "top-1", "top5": "top-5", "macro_top1": "macro top-1"}


@dataclass(frozen=True)
class CompareSettings(Settings):
    """What is compared and at what confidence (config ``compare``)."""

    section: ClassVar[str] = "compare"

    reference: str = "augmented"  # every strategy is compared with it (and with random_init)
    confidence: float = 0.95  # coverage of the intervals
    metrics: tuple[Literal["top1", "top5", "macro_top1"], ...] = tuple(METRICS)
    contrasts: tuple[tuple[str, ...], ...] = ()  # further [strategy, against] pairs

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.confidence < 1:
            raise ValueError(f"compare.confidence: expected a number in (0, 1), got {self.confidence}")
        if any(len(pair) != 2 for pair in self.contrasts):
            raise ValueError(f"compare.contrasts: expected [strategy, against] pairs, got {self.as_dict()['contrasts']}")
COLUMNS = (
    "reference",
    "strategy",
    "protocol",
    "label_fraction",
    "metric",
    "n_pairs",
    "n_unpaired",
    "strategy_mean",
    "reference_mean",
    "diff",
    "low",
    "high",
    "se",
    "replicate_se",
    "photo_se",
    "df",
    "confidence",
    "test_sampling",
    "resolved",
    "verdict",
    "replicates_to_resolve",
)
NOT_COMPARED = ("baseline", *TASKS)
"""Protocols without species top-k per photo: the most-common baseline and the downstream tasks."""
COMPARED_AS = {FUSION.name: "linear"}
"""A fused pair's probe is a linear probe: its rows are compared with the linear rows of other strategies."""


def comparison_pairs(
    strategies: Iterable[str], reference: str, contrasts: Iterable[Iterable[str]] = ()
) -> list[tuple[str, str]]:
    """(strategy, reference) pairs: each strategy against ``reference``, then each against ``random_init``, then
    the named ``contrasts`` (strategy, against) such as an ablation's one-factor controls, then each fused pair
    ``a+b`` against ``a`` and against ``b``, where both ran.

    ``random_init`` is only ever a reference, so no comparison appears twice with its sign flipped. A reference
    absent from ``strategies`` yields no pairs.
    """
    strategies = list(dict.fromkeys(strategies))
    pairs = []
    for base in dict.fromkeys([reference, RANDOM_INIT]):
        if base in strategies:
            pairs += [(s, base) for s in strategies if s not in (base, RANDOM_INIT)]
    fused = [(s, part) for s in strategies if FUSION_SEPARATOR in s for part in s.split(FUSION_SEPARATOR)]
    for strategy, against in [*(tuple(contrast) for contrast in contrasts), *fused]:
        if strategy in strategies and against in strategies and (strategy, against) not in pairs:
            pairs.append((strategy, against))
    return pairs


HitKey = tuple[str, str, float, int]
"""(strategy, protocol, label_fraction, seed) of one evaluation record."""


@dataclass(frozen=True)
class PhotoHits:
    """One evaluation's decoded hit record: which test photos (``rows_sha1``), hits per top-k, species."""

    rows_sha1: str
    hits: dict[int, np.ndarray]
    labels: np.ndarray

    @classmethod
    def from_record(cls, record: dict) -> PhotoHits:
        hits, labels = read_hits(record)
        return cls(record["rows_sha1"], hits, labels)


def test_sampling(
    strategy: str, reference: str, protocol: str, label_fraction: float, seeds: list[int], hits: Mapping
) -> tuple[str, list[tuple[PhotoHits, PhotoHits]]]:
    """How test-set sampling enters one comparison (module docstring), and the paired hit records if shared.

    Refuses a replicate whose two records scored different photos: the pair would not be a pair.
    """
    pairs = [
        (hits.get((strategy, protocol, label_fraction, s)), hits.get((reference, protocol, label_fraction, s)))
        for s in seeds
    ]
    if len(pairs) < 2 or any(a is None or b is None for a, b in pairs):
        return "unknown", []
    for seed, (a, b) in zip(seeds, pairs):
        if a.rows_sha1 != b.rows_sha1:
            raise ValueError(
                f"replicate {seed}, {protocol} at {label_fraction:g} %: {strategy} and {reference} were scored on "
                "different test photos"
            )
    if len({a.rows_sha1 for a, _ in pairs}) == 1:
        return "photo_bootstrap", pairs
    return "in_replicates", []


def compare(
    results: pd.DataFrame,
    hits: Mapping[HitKey, PhotoHits] | None = None,
    settings: CompareSettings = CompareSettings(),
) -> pd.DataFrame:
    """One row per (reference, strategy, protocol, label budget, metric) with the columns :data:`COLUMNS`.

    ``results``: ``results.csv``; ``hits``: hit records (:func:`read_hit_records`), keyed by :data:`HitKey`.
    """
    metrics, confidence = list(settings.metrics), settings.confidence
    hits = hits or {}
    rows = results[~results["protocol"].isin(NOT_COMPARED)].replace({"protocol": COMPARED_AS})
    if rows.duplicated(["strategy", "protocol", "label_fraction", "seed"]).any():
        raise ValueError("results hold two rows for one (strategy, protocol, label_fraction, seed)")
    table = rows.set_index(["strategy", "protocol", "label_fraction", "seed"])[metrics].sort_index()
    protocols = [p for p in PROTOCOL_TITLES if p in set(rows["protocol"])]
    protocols += [p for p in dict.fromkeys(rows["protocol"]) if p not in protocols]
    records = []
    for strategy, base in comparison_pairs(rows["strategy"], settings.reference, settings.contrasts):
        for protocol in protocols:
            for label_fraction in sorted(rows.loc[rows["protocol"] == protocol, "label_fraction"].unique()):
                key = (protocol, label_fraction)
                if (strategy, *key) not in table.index or (base, *key) not in table.index:
                    continue
                ours, theirs = table.loc[(strategy, *key)], table.loc[(base, *key)]
                for metric in metrics:
                    paired = pd.concat([ours[metric], theirs[metric]], axis=1, keys=["s", "r"])
                    both = paired.dropna()
                    seeds = [int(s) for s in both.index]
                    sampling, pairs = test_sampling(strategy, base, protocol, float(label_fraction), seeds, hits)
                    variance = 0.0
                    if pairs:
                        k, weighting = METRICS[metric]
                        per_photo = np.stack([a.hits[k].astype(int) - b.hits[k].astype(int) for a, b in pairs])
                        variance = photo_variance(per_photo, pairs[0][0].labels, weighting)
                    interval = paired_interval((both["s"] - both["r"]).to_numpy(), confidence, variance)
                    resolved = bool(interval["low"] > 0 or interval["high"] < 0)
                    needed = np.nan
                    if not resolved:
                        needed = replicates_to_resolve(
                            interval["mean"], interval["replicate_se"], interval["n"], interval["photo_se"], confidence
                        )
                    records.append(
                        {
                            "reference": base,
                            "strategy": strategy,
                            "protocol": protocol,
                            "label_fraction": label_fraction,
                            "metric": metric,
                            "n_pairs": interval["n"],
                            "n_unpaired": len(paired) - len(both),
                            "strategy_mean": both["s"].mean(),
                            "reference_mean": both["r"].mean(),
                            "diff": interval["mean"],
                            **{c: interval[c] for c in ("low", "high", "se", "replicate_se", "photo_se", "df")},
                            "confidence": confidence,
                            "test_sampling": sampling,
                            "resolved": resolved,
                            "verdict": verdict(interval["n"], interval["low"], interval["high"]),
                            "replicates_to_resolve": needed,
                        }
                    )
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))


def points(value: float, sign: bool = True) -> str:
    """A fraction as percentage points with one decimal and a true minus sign."""
    return f"{100 * value:{'+' if sign else ''}.1f}".replace("-", "\u2212")


def metric_words(row: pd.Series) -> str:
    """'Δtop-1 −10.4 [−13.1, −7.7] points, resolved' (or without the interval when there is none)."""
    name = f"\u0394{METRIC_NAMES[row['metric']]}"
    if row["n_pairs"] == 0:
        return f"{name}: no paired replicates"
    interval = "" if np.isnan(row["low"]) else f" [{points(row['low'])}, {points(row['high'])}]"
    words = f"{name} {points(row['diff'])}{interval} points, {row['verdict']}"
    if row["verdict"] == "unresolved":
        needed = row["replicates_to_resolve"]
        beyond = f"more than {MAX_REPLICATES}"
        words += f" ({beyond if np.isnan(needed) else f'~{needed:.0f}'} replicates at this spread would resolve it)"
    return words


def plain_words(comparisons: pd.DataFrame) -> str:
    """One line per (reference, strategy, protocol, label budget): every metric's difference, interval, verdict."""
    if comparisons.empty:
        return "Paired comparisons: none (the results hold no strategy to compare with the reference or random_init).\n"
    confidence = float(comparisons["confidence"].iloc[0])
    sampling = set(comparisons.loc[comparisons["n_pairs"] > 1, "test_sampling"])
    notes = {
        "in_replicates": "each replicate drew its own test photos, so the interval holds test-set sampling",
        "photo_bootstrap": "replicates share one test split: a paired bootstrap over test photos is added",
        "unknown": "no per-photo records: test-set sampling is not included beyond the replicates' spread",
    }
    lines = [
        f"Paired differences, strategy minus reference, in points of test accuracy: mean over replicates "
        f"[{confidence:.0%} t interval]; resolved: the interval excludes 0.",
        *(f"  ({notes[s]})" for s in notes if s in sampling),
    ]
    keys = ["reference", "strategy", "protocol", "label_fraction"]
    for (base, strategy, protocol, label_fraction), group in comparisons.groupby(keys, sort=False):
        counts = sorted(set(group["n_pairs"]))
        n = f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}\u2013{counts[-1]}"
        if (group["n_pairs"] == 1).all():  # one verdict for all: no metric has an interval
            words = ", ".join(f"\u0394{METRIC_NAMES[m]} {points(d)}" for m, d in zip(group["metric"], group["diff"]))
            words += " points, unresolved (1 replicate)"
        else:
            words = "; ".join(metric_words(row) for _, row in group.iterrows())
        title = PROTOCOL_TITLES.get(protocol, protocol)
        lines.append(f"{strategy} vs {base}, {title}, {label_fraction:g}% labels: {words} ({n})")
    return "\n".join(lines) + "\n"


def prior_gains(results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """What the geographic prior adds to each (strategy, protocol, label budget): the per-replicate difference
    ``prior_gain_top1`` (the same model on the same test photos with and without the prior, so paired by
    construction) averaged over replicates, with its t interval (the replicates' spread only) and verdict."""
    columns = ["strategy", "protocol", "label_fraction", "n", "diff", "low", "high", "verdict"]
    if "prior_gain_top1" not in results:
        return pd.DataFrame(columns=columns)
    rows = []
    gains = results.dropna(subset=["prior_gain_top1"])
    for (strategy, protocol, pct), group in gains.groupby(["strategy", "protocol", "label_fraction"], sort=True):
        interval = paired_interval(group["prior_gain_top1"].to_numpy(), confidence)
        n, low, high = interval["n"], interval["low"], interval["high"]
        rows.append([strategy, protocol, pct, n, interval["mean"], low, high, verdict(n, low, high)])
    return pd.DataFrame(rows, columns=columns)


def prior_gain_words(gains: pd.DataFrame, confidence: float = 0.95) -> str:
    """The comparisons.txt section on the prior (:func:`prior_gains`); empty when no result has a prior."""
    if gains.empty:
        return ""
    lines = [
        "",
        f"What the geographic prior adds (calibrated combination, weight chosen on val): top-1 with the prior minus"
        f" without, same model and test photos, mean over replicates [{confidence:.0%} t interval].",
    ]
    for row in gains.itertuples(index=False):
        interval = "" if np.isnan(row.low) else f" [{points(row.low)}, {points(row.high)}]"
        title = PROTOCOL_TITLES.get(row.protocol, row.protocol)
        lines.append(
            f"{row.strategy}, {title}, {row.label_fraction:g}% labels: \u0394top-1 {points(row.diff)}{interval}"
            f" points, {row.verdict} (n={row.n})"
        )
    return "\n".join(lines) + "\n"


def read_hit_records(paths: Iterable[Path]) -> dict[HitKey, PhotoHits]:
    """The decoded ``test_hits`` of every evaluation JSON that has them, keyed by :data:`HitKey`."""
    records = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        if "test_hits" in record:
            protocol = COMPARED_AS.get(record["protocol"], record["protocol"])
            key = (record["strategy"], protocol, float(record["label_fraction"]), int(record["seed"]))
            records[key] = PhotoHits.from_record(record["test_hits"])
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.results.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, type=Path, help="results.csv")
    parser.add_argument(
        "--evaluations", nargs="*", type=Path, default=[], help="evaluation JSONs (their per-photo hit records)"
    )
    parser.add_argument("--out", required=True, type=Path, help="comparisons.csv")
    parser.add_argument("--text", type=Path, help="also write the plain-words summary here")
    parser.add_argument("--params-json", type=json_object, default="{}", help="compare settings as a JSON object")
    args = parser.parse_args(argv)
    try:
        settings = CompareSettings.from_mapping(args.params_json)
    except ValueError as error:
        parser.error(str(error))
    results = pd.read_csv(args.results)
    comparisons = compare(results, read_hit_records(args.evaluations), settings)
    with atomic_path(args.out) as partial:
        comparisons.to_csv(partial, index=False)
    confidence = settings.confidence
    text = plain_words(comparisons) + prior_gain_words(prior_gains(results, confidence), confidence)
    if args.text:
        write_text(text, args.text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
