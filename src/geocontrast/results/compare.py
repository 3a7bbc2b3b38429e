"""Paired comparisons: every strategy against a reference and against ``random_init``, with intervals.

Replicate r (the ``seed`` column of ``results.csv``: with ``splits.resample`` seed r also draws replicate r's data,
the ``replicate`` column, and on the synthetic source with ``world.per_replicate`` its own world; without
``splits.resample`` every seed shares replicate 0) trains and evaluates every strategy; within a replicate all
strategies share the photos, the split, the label subset, the geo tables and the prior, so the paired difference
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
  needs no seed. Given the photos' observations (:func:`observation_clusters`), it resamples whole observations,
  since the 2-3 photos of one plant are not independent (``test_sampling = observation_bootstrap``; without them
  ``photo_bootstrap``).
- no records (JSONs not given, or written before records existed), or under two replicates:
  ``v_photo = 0`` and ``test_sampling = unknown``; with a fixed split the interval then covers initialisation
  and training only.

A fused pair's rows (strategy ``a+b``, protocol ``fusion``: :mod:`geocontrast.evaluate.fusion`) are compared as
linear probes: with the reference, random_init, ``a`` and ``b``.

**What the interval covers.** Replicates that each drew their own world (the synthetic source's default,
``world.per_replicate``) share nothing but the config: their differences are independent draws and the plain t
interval (``rho`` 0) covers a new world, its photos and its splits. **Replicates that resample one photo pool** (a
real collection, or one fixed world) train and test on overlapping photos, so their differences are correlated
and the spread of a few of them understates the variance of their mean; their interval is Nadeau and Bengio's
corrected resampled t, with ``rho`` = n_test / n_train read from the replicates' split summaries, and it covers
new splits of this pool, not new collections. ``interval`` says which interval a line carries
(:func:`interval_kind`: ``t``, ``corrected resampled t``, ``t + photo bootstrap`` or ``t + observation
bootstrap``), and so does every line of ``comparisons.txt``.

**One primary comparison** (``compare.primary``, :data:`PRIMARY`) is declared before the run and judged at the
nominal level; every other line is exploratory, its p-value adjusted by Holm's method over all of them, and it is
resolved only when the adjusted p is below 1 - confidence. A comparison with one replicate, or whose replicates
all gave the same difference with no photo term, has no interval and is never resolved. An unresolved comparison
with two or more pairs gets the replicates that would resolve a difference of its size with 80 % power
(:func:`~geocontrast.results.intervals.replicates_to_resolve`, a planning aid).

``comparisons.csv`` columns (differences and means are fractions, like ``results.csv``):
``reference``, ``strategy``, ``protocol``, ``label_fraction`` (percent), ``metric`` (top1, top5, macro_top1);
``n_pairs`` (replicates with both values), ``n_unpaired`` (replicates with only one, or a NaN);
``strategy_mean``, ``reference_mean`` (over the paired replicates); ``diff`` (mean paired difference);
``low``, ``high`` (the interval; NaN below two pairs or without spread); ``sd`` (of the differences); ``se``,
``replicate_se`` (sqrt(s2 (1 / n + rho))), ``photo_se`` (sqrt(v_photo)); ``df`` (n - 1, of the t quantile);
``rho``; ``confidence``; ``test_sampling``; ``interval``; ``role`` (primary or exploratory); ``p_value``,
``p_adjusted`` (Holm over the exploratory lines; the primary's own p); ``resolved`` (bool); ``verdict``
(``resolved``, ``unresolved``, ``unresolved (1 replicate)``, ``unresolved (no spread)`` or ``no pairs``);
``replicates_to_resolve`` (unresolved comparisons only; inf when more than
:data:`~geocontrast.results.intervals.MAX_REPLICATES` or no number would do), planned at ``planning_confidence``
(the primary's confidence; for an exploratory line the Bonferroni level over its family, the strictest Holm uses).

``comparisons.txt`` opens with the primary comparison in one sentence, then one line per exploratory comparison of
the first metric, then what the geographic prior adds to each strategy (:func:`prior_gains`): its words are
:mod:`geocontrast.results.compare_text`'s, the CLI is :mod:`geocontrast.results.comparisons`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from geocontrast.data.manifest import species_classes
from geocontrast.evaluate import PROTOCOL_TITLES, TASKS
from geocontrast.metrics import read_hits, rows_digest
from geocontrast.registry import FUSION, FUSION_SEPARATOR
from geocontrast.results.intervals import (
    holm,
    paired_interval,
    photo_variance,
    replicates_to_resolve,
    verdict,
)
from geocontrast.settings import Settings

RANDOM_INIT = "random_init"
METRICS = {"top1": (1, "micro"), "top5": (5, "micro"), "macro_top1": (1, "macro")}
"""Compared metrics: the top-k of their per-photo hits, and how photos are weighed (micro: each photo the same;
macro: each species the same)."""
METRIC_NAMES = {"top1": "top-1", "top5": "top-5", "macro_top1": "macro top-1"}
PRIMARY = {
    "strategy": "context_pos_neg",
    "reference": "augmented",
    "protocol": "linear",
    "label_fraction": 10,
    "metric": "top1",
}
"""The one headline comparison, declared before any result: the full geographic recipe against augmentation-only
SimCLR, linear probe at 10 % labels, top-1 (a reviewer's question: does the study's method beat the baseline it
modifies?). Not the best-looking strategy picked after the run, which would select on noise. Every other line is
exploratory and Holm-adjusted."""


@dataclass(frozen=True)
class CompareSettings(Settings):
    """What is compared, which comparison is the primary one, and at what confidence (config ``compare``)."""

    section: ClassVar[str] = "compare"

    reference: str = "augmented"  # every strategy is compared with it (and with random_init)
    confidence: float = 0.95  # coverage of the intervals
    metrics: tuple[Literal["top1", "top5", "macro_top1"], ...] = tuple(METRICS)
    contrasts: tuple[tuple[str, ...], ...] = (("context_pos_neg", "context_pos"),)  # further [strategy, against]
    primary: Mapping[str, Any] | None = field(default_factory=lambda: PRIMARY)  # None: every line exploratory

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.confidence < 1:
            raise ValueError(f"compare.confidence: expected a number in (0, 1), got {self.confidence}")
        if any(len(pair) != 2 for pair in self.contrasts):
            pairs = self.as_dict()["contrasts"]
            raise ValueError(f"compare.contrasts: expected [strategy, against] pairs, got {pairs}")
        if self.primary is not None and (set(self.primary) != set(PRIMARY) or self.primary["metric"] not in METRICS):
            raise ValueError(f"compare.primary: expected the keys {sorted(PRIMARY)} (metric one of {list(METRICS)})")

    def is_primary(self, strategy: str, reference: str, protocol: str, label_fraction: float, metric: str) -> bool:
        primary = self.primary
        return primary is not None and (strategy, reference, protocol, float(label_fraction), metric) == (
            primary["strategy"],
            primary["reference"],
            primary["protocol"],
            float(primary["label_fraction"]),
            primary["metric"],
        )


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
    "sd",
    "se",
    "replicate_se",
    "photo_se",
    "df",
    "rho",
    "confidence",
    "test_sampling",
    "interval",
    "role",
    "p_value",
    "p_adjusted",
    "resolved",
    "verdict",
    "replicates_to_resolve",
    "planning_confidence",
)
INTERVALS = {
    "photo_bootstrap": "t + photo bootstrap",
    "observation_bootstrap": "t + observation bootstrap",
    "unknown": "t",
}
"""The interval of a comparison whose replicates shared their test photos or whose test sampling is unknown
(:func:`test_sampling`); replicates that drew their own test photos: :func:`interval_kind`."""


def interval_kind(sampling: str, rho: float) -> str:
    """Which interval a comparison carries: where the replicates drew their own test photos, the corrected
    resampled t when they resampled one photo pool (``rho`` > 0, its n_test / n_train), the plain t when they are
    independent (each its own world: ``rho`` 0); else by how test sampling enters it (:data:`INTERVALS`)."""
    if sampling == "in_replicates":
        return "corrected resampled t" if rho else "t"
    return INTERVALS[sampling]


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
    rho: float = 0.0,
    observations: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per (reference, strategy, protocol, label budget, metric) with the columns :data:`COLUMNS`.

    ``results``: ``results.csv``; ``hits``: hit records (:func:`read_hit_records`), keyed by :data:`HitKey`;
    ``rho``: n_test / n_train of the photo pool, the Nadeau-Bengio correction of replicates that resampled it (0:
    independent replicates, each its own world); ``observations``: the scored photos' observations by the records'
    ``rows_sha1`` (:func:`observation_clusters`), which the bootstrap over a shared test split resamples.
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
                        clusters = (observations or {}).get(pairs[0][0].rows_sha1)
                        variance = photo_variance(per_photo, pairs[0][0].labels, weighting, clusters)
                        if clusters is not None:
                            sampling = "observation_bootstrap"
                    correction = rho if sampling == "in_replicates" else 0.0
                    interval = paired_interval((both["s"] - both["r"]).to_numpy(), confidence, variance, correction)
                    is_primary = settings.is_primary(strategy, base, protocol, label_fraction, metric)
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
                            **{c: interval[c] for c in ("low", "high", "sd", "se", "replicate_se", "photo_se", "df")},
                            "confidence": confidence,
                            "test_sampling": sampling,
                            "interval": interval_kind(sampling, correction),
                            "role": "primary" if is_primary else "exploratory",
                            "p_value": interval["p"],
                            "rho": correction,
                        }
                    )
    decided = ("p_adjusted", "resolved", "verdict", "replicates_to_resolve", "planning_confidence")  # below
    comparisons = pd.DataFrame.from_records(records, columns=[c for c in COLUMNS if c not in decided])
    exploratory = comparisons["role"] == "exploratory"
    comparisons["p_adjusted"] = comparisons["p_value"]
    comparisons.loc[exploratory, "p_adjusted"] = holm(comparisons.loc[exploratory, "p_value"].to_numpy())
    verdicts, needed = [], []
    # An exploratory line is planned at the Bonferroni level over its family, the strictest level Holm applies:
    # at the nominal level a count would come out that the adjusted verdict then does not resolve.
    family = max(1, int(comparisons.loc[exploratory, "p_value"].notna().sum()))
    comparisons["planning_confidence"] = np.where(exploratory, 1 - (1 - confidence) / family, confidence)
    for row in comparisons.itertuples(index=False):
        adjusted = row.p_adjusted if row.role == "exploratory" else None
        verdicts.append(verdict(row.n_pairs, row.low, row.high, adjusted, confidence))
        needed.append(
            replicates_to_resolve(row.diff, row.sd, row.n_pairs, row.photo_se, row.rho, row.planning_confidence)
            if verdicts[-1] == "unresolved"
            else np.nan
        )
    comparisons["verdict"] = verdicts
    comparisons["resolved"] = comparisons["verdict"] == "resolved"
    comparisons["replicates_to_resolve"] = needed
    return comparisons[list(COLUMNS)]


def prior_gains(results: pd.DataFrame, confidence: float = 0.95, rho: float = 0.0) -> pd.DataFrame:
    """What the geographic prior adds to each (strategy, protocol, label budget): the per-replicate difference
    ``prior_gain_top1`` (the same model on the same test photos with and without the prior, so paired by
    construction) averaged over replicates, with its t interval (corrected by ``rho`` as the comparisons are; which
    one in ``interval``), its p-value and Holm's adjustment over the gains (a family of their own), and the verdict."""
    columns = [
        *("strategy", "protocol", "label_fraction", "n", "diff", "low", "high", "interval"),
        *("p_value", "p_adjusted", "verdict"),
    ]
    if "prior_gain_top1" not in results:
        return pd.DataFrame(columns=columns)
    rows = []
    gains = results.dropna(subset=["prior_gain_top1"])
    for (strategy, protocol, pct), group in gains.groupby(["strategy", "protocol", "label_fraction"], sort=True):
        interval = paired_interval(group["prior_gain_top1"].to_numpy(), confidence, rho=rho)
        rows.append([strategy, protocol, pct, interval["n"], interval["mean"], interval["low"], interval["high"]])
        rows[-1] += ["corrected resampled t" if rho else "t", interval["p"]]
    table = pd.DataFrame(rows, columns=columns[:-2])
    table["p_adjusted"] = holm(table["p_value"].to_numpy()) if len(table) else []
    table["verdict"] = [
        verdict(row.n, row.low, row.high, row.p_adjusted, confidence) for row in table.itertuples(index=False)
    ]
    return table[columns]


def observation_clusters(manifest: pd.DataFrame, splits: pd.DataFrame) -> dict[str, np.ndarray]:
    """The observation of each scored test photo of a shared split ({rows_sha1: (n,) codes}): the test rows with a
    species in manifest order, as every protocol scores them, keyed by the digest their hit records carry (a
    record whose digest differs, e.g. scored on other photos, finds none). A photo without observation_id is its
    own observation."""
    codes, _ = species_classes(manifest["species"])
    rows = np.flatnonzero((splits["split"].to_numpy() == "test") & (codes >= 0))
    clusters = pd.factorize(manifest["observation_id"].iloc[rows])[0]  # -1: no observation_id
    alone = clusters < 0
    clusters[alone] = clusters.max(initial=-1) + 1 + np.arange(alone.sum())
    return {rows_digest(rows, codes[rows]): clusters} if rows.size else {}


def pool_ratio(summaries: Iterable[Path]) -> float:
    """n_test / n_train of the photo pool, averaged over the replicates' ``splits_summary.json`` (0: none given):
    the Nadeau-Bengio correction of replicates that resample one pool."""
    ratios = []
    for path in summaries:
        splits = json.loads(Path(path).read_text())["splits"]
        if splits["train"]["n_images"]:
            ratios.append(splits["test"]["n_images"] / splits["train"]["n_images"])
    return float(np.mean(ratios)) if ratios else 0.0


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
