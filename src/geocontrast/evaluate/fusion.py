"""Feature fusion: a linear probe on the concatenated frozen features of two strategies of one seed, which tells
whether the two encoders learnt complementary features (the fused probe beats both) or redundant ones (it matches
the better one).

CLI (the workflow's evaluate_fusion rule; one job per fused pair x seed, every label budget)::

    python -m geocontrast.evaluate.fusion --embeddings embeddings/augmented/seed0.npy \\
        embeddings/context_pos_neg/seed0.npy --manifest manifest.parquet --splits splits.parquet \\
        --label-fractions 10 1 [--val-fraction budget] \\
        (--priors geoprior/l10/probs.npy geoprior/l1/probs.npy | --no-prior-reason WHY) \\
        --params-json '{"max_iter": 100}' --run-json '{"strategy": "augmented+context_pos_neg", "seed": 0, ...}' \\
        --out-dir eval/augmented+context_pos_neg/seed0

Writes ``<out-dir>/fusion_l<pct>.json`` per budget: a result record like the linear protocol's, with protocol
``fusion`` and ``feature_dims`` (the dimension each strategy contributed). ``--params-json``: ``evaluate.linear``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geocontrast.cli import add_evaluation_rows_arguments, exit_without_teardown, json_object
from geocontrast.evaluate.settings import LinearSettings
from geocontrast.registry import FUSION, FUSION_SEPARATOR


def fused_name(strategies: list[str]) -> str:
    """The strategy name of a fused pair's rows: ``augmented+context_pos_neg``."""
    return FUSION_SEPARATOR.join(strategies)


def fuse(*features: np.ndarray) -> np.ndarray:
    """(N, D1 + D2 + ...) float32: the strategies' (N, Di) features of the same rows side by side. The linear probe
    standardises every column with the labelled train mean and std, so neither part outweighs the other by scale."""
    rows = {f.shape[0] for f in features}
    if len(rows) != 1:
        raise ValueError(f"features to fuse must cover the same rows, got {[f.shape for f in features]}")
    return np.concatenate([np.asarray(f, dtype=np.float32) for f in features], axis=1)


def fusion_record(
    features: list[np.ndarray], manifest, rows, run: dict, linear: LinearSettings, prior=None, prior_reason=None
):
    """The result record of the linear probe on the fused ``features`` (one (N, Di) array per strategy)."""
    from geocontrast.evaluate.frozen import frozen_record

    record = frozen_record("linear", fuse(*features), manifest, rows, run, linear, prior, None, prior_reason)
    return {**record, "protocol": FUSION.name, "feature_dims": [int(f.shape[1]) for f in features]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.evaluate.fusion", description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", required=True, type=Path, nargs=2, help="(N, D) features of each strategy")
    add_evaluation_rows_arguments(parser)
    parser.add_argument("--params-json", type=json_object, default="{}", help="the linear probe's params")
    parser.add_argument("--run-json", required=True, type=json_object, help="the run's facts as a JSON object")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.priors is not None and len(args.priors) != len(args.label_fractions):
        parser.error(f"--priors needs one path per label fraction ({len(args.label_fractions)})")
    if "seed" not in args.run_json:
        parser.error("--run-json must hold the seed")
    try:
        linear = LinearSettings.from_mapping(args.params_json)
    except ValueError as error:
        parser.error(str(error))

    import pandas as pd

    from geocontrast.atomic import write_json
    from geocontrast.data.manifest import read_manifest
    from geocontrast.evaluate.frozen import result_path
    from geocontrast.evaluate.protocols import eval_rows
    from geocontrast.prior.fit import load_prior
    from geocontrast.runtime import set_threads

    if args.threads:
        set_threads(args.threads)
    manifest, splits = read_manifest(args.manifest), pd.read_parquet(args.splits)
    features = [np.load(path) for path in args.embeddings]
    for path, part in zip(args.embeddings, features):
        if part.shape[0] != len(manifest):
            raise ValueError(f"{path}: {part.shape[0]} rows, the manifest {len(manifest)}")
    for budget, label_fraction in enumerate(args.label_fractions):
        rows = eval_rows(manifest, splits, label_fraction, args.val_fraction)
        prior, prior_reason = load_prior(None if args.priors is None else args.priors[budget], args.no_prior_reason)
        run = {**args.run_json, "label_fraction": label_fraction}
        record = fusion_record(features, manifest, rows, run, linear, prior, prior_reason)
        out = result_path(args.out_dir, FUSION.name, label_fraction)
        write_json(record, out)
        print(out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
