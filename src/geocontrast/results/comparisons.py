"""The comparisons rule's CLI: ``comparisons.csv`` (:mod:`geocontrast.results.compare`) and ``comparisons.txt``
(:mod:`geocontrast.results.compare_text`) from ``results.csv`` and the evaluation JSONs; prints the text.

    python -m geocontrast.results.comparisons --results results.csv --evaluations eval/*/seed*/*.json \\
        --out comparisons.csv --text comparisons.txt [--params-json '{"reference": "augmented"}'] \\
        [--splits-summaries replicates/*/splits_summary.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from geocontrast.atomic import atomic_path, write_text
from geocontrast.cli import exit_without_teardown, json_object
from geocontrast.data.manifest import read_manifest
from geocontrast.results.compare import (
    CompareSettings,
    compare,
    observation_clusters,
    pool_ratio,
    prior_gains,
    read_hit_records,
)
from geocontrast.results.compare_text import plain_words, prior_gain_words


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geocontrast.results.comparisons", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--results", required=True, type=Path, help="results.csv")
    parser.add_argument(
        "--evaluations", nargs="*", type=Path, default=[], help="evaluation JSONs (their per-photo hit records)"
    )
    parser.add_argument("--out", required=True, type=Path, help="comparisons.csv")
    parser.add_argument("--text", type=Path, help="also write the plain-words summary here")
    parser.add_argument("--params-json", type=json_object, default="{}", help="compare settings as a JSON object")
    parser.add_argument(
        "--splits-summaries",
        nargs="*",
        type=Path,
        default=[],
        help="the replicates' splits_summary.json when they resample one photo pool (the corrected resampled t); "
        "none: independent replicates, each its own world (the plain t)",
    )
    parser.add_argument("--manifest", type=Path, help="with --shared-splits: the photos' observations")
    parser.add_argument(
        "--shared-splits", type=Path, help="the one split every replicate shares: its bootstrap resamples observations"
    )
    args = parser.parse_args(argv)
    try:
        settings = CompareSettings.from_mapping(args.params_json)
    except ValueError as error:
        parser.error(str(error))
    results = pd.read_csv(args.results)
    if (args.manifest is None) != (args.shared_splits is None):
        parser.error("--manifest and --shared-splits go together")
    rho = pool_ratio(args.splits_summaries)
    observations = None
    if args.shared_splits is not None:
        observations = observation_clusters(read_manifest(args.manifest), pd.read_parquet(args.shared_splits))
    comparisons = compare(results, read_hit_records(args.evaluations), settings, rho, observations)
    with atomic_path(args.out) as partial:
        comparisons.to_csv(partial, index=False)
    confidence = settings.confidence
    gains = prior_gains(results, confidence, rho)
    text = plain_words(comparisons, settings) + prior_gain_words(gains, confidence)
    if args.text:
        write_text(text, args.text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
