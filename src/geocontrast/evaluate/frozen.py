"""Frozen-encoder evaluation of one (strategy, seed): embed every image once, then run every frozen protocol and
downstream task at every label budget from those features, one result record per (protocol, budget).

CLI (the workflow's evaluate_frozen rule: one job per strategy x seed; evaluate_frozen_at_budget: one job per
strategy x seed x label budget of a strategy pretrained at each budget, with its encoder of that budget)::

    python -m geocontrast.evaluate.frozen --cache cache/32px.npy \\
        (--encoder pretrain/augmented/seed0/encoder.pt | --random-init cnn5) --resolution 32 [--deterministic] \\
        --manifest manifest.parquet --splits splits.parquet --label-fractions 10 1 [--val-fraction budget] \\
        (--priors geoprior/l10/probs.npy geoprior/l1/probs.npy | --no-prior-reason WHY) \\
        [--pairs tasks/genus_pairs_l10.json ...] \\
        --protocols linear knn mislabel --params-json '{"linear": {...}, "knn": {...}}' \\
        --run-json '{"dataset": ..., "strategy": ..., "seed": 0, ...}' \\
        --embeddings-out embeddings/augmented/seed0.npy --out-dir eval/augmented/seed0

Writes ``<out-dir>/<protocol>_l<pct>.json`` for every protocol and budget (``pct`` as ``%g``: 10, 0.5) and the
(N, D) float16 features to ``--embeddings-out`` (the report's retrieval and embedding figures read them), streamed
there chunk by chunk and read back memory-mapped, so the job never holds all features in memory at once.
``--params-json`` holds each protocol's ``evaluate.<section>`` config (:data:`geocontrast.registry.PROTOCOLS`,
:data:`~geocontrast.registry.TASKS`), read into its settings (:mod:`geocontrast.evaluate.settings`) once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geocontrast import registry
from geocontrast.cli import add_encoder_arguments, add_evaluation_rows_arguments, exit_without_teardown, json_object
from geocontrast.evaluate.settings import section_settings
from geocontrast.settings import Settings

FROZEN = (*(name for name, spec in registry.PROTOCOLS.items() if spec.frozen), *registry.TASKS)
"""Every protocol and task that reads frozen features."""


def result_header(run: dict, protocol: str, rows) -> dict:
    """What a result record says about its run (``run``: the facts of :data:`geocontrast.evaluate.RUN_COLUMNS`
    the workflow knows, label_fraction included) and its evaluation rows."""
    return {
        **run,
        "protocol": protocol,
        "n_labelled": int(rows.train.size),
        "n_val": int(rows.val.size),
        "n_test": int(rows.test.size),
        "n_classes": rows.n_classes,
    }


def frozen_record(
    protocol: str, features, manifest, rows, run: dict, settings: Settings, prior=None, pairs=None, prior_reason=None
) -> dict:
    """The result record of one frozen protocol or task on ``features`` (N, D) of every manifest row (any float
    dtype, e.g. the float16 memory-mapped embeddings; the rows used are read as float32).

    ``rows``: the evaluation rows of the label budget (:func:`geocontrast.evaluate.protocols.eval_rows`);
    ``run``: the run's facts, with the seed and label_fraction; ``settings``: those of the protocol's config
    section (:func:`geocontrast.evaluate.settings.section_settings`; the linear probe's for ``<rank>_probe`` and
    genus_pairs);
    ``prior``: (N, C) geographic prior (species protocols only), or None and ``prior_reason``, why there is none;
    ``pairs``: the genus pairs (genus_pairs only).
    """
    import numpy as np

    from geocontrast.evaluate import protocols, tasks

    seed = int(run["seed"])
    header = result_header(run, protocol, rows)
    probe_rank = protocol.removesuffix("_probe") if protocol.endswith("_probe") else None
    params = settings.as_dict()
    if protocol in registry.TASKS and probe_rank is None:
        record = tasks.task_metrics(protocol, features, rows, manifest, settings, seed, pairs=pairs)
        return {**header, **record, "params": {"linear": params} if protocol == "genus_pairs" else params}
    if probe_rank is not None and probe_rank not in rows.ancestors:
        reason = f"not every species has its {probe_rank} in the manifest"
        print(f"{protocol}: not computed: {reason}", file=sys.stderr)
        return with_reasons({**header, "params": params}, {protocol: reason})
    if probe_rank is not None:
        rows = tasks.at_rank(rows, manifest, probe_rank)
        header["n_classes"] = rows.n_classes
        prior = None  # the prior is over species
    train_x, val_x, test_x = (protocols.feature_rows(features, r) for r in (rows.train, rows.val, rows.test))
    train_y, val_y = rows.codes[rows.train], rows.codes[rows.val]
    selection: dict = {}
    val_and_test = np.concatenate([val_x, test_x])  # val predictions choose the prior's weight
    if protocol == "knn":
        probs = protocols.knn_probabilities(train_x, train_y, val_and_test, rows.n_classes, settings)
    else:
        probs, selection = protocols.linear_probe(
            train_x, train_y, val_x, val_y, val_and_test, rows.n_classes, settings
        )
    val_probs, test_probs = probs[: rows.val.size], probs[rows.val.size :]
    if prior is not None and prior.shape != (len(manifest), rows.n_classes):
        raise ValueError(f"the prior has shape {prior.shape}, expected {(len(manifest), rows.n_classes)}")
    scores = protocols.score(test_probs, rows, prior, val_probs)
    record = {**header, **scores, "selection": selection, "params": params}
    return with_reasons(record, {"prior": None if probe_rank else prior_reason, **rows.missing_ranks})


def with_reasons(record: dict, reasons: dict) -> dict:
    """``record`` with ``not_computed``: what it could not compute and why (``reasons`` without the None ones),
    when there is any; results_summary.txt lists them."""
    reasons = {what: why for what, why in reasons.items() if why}
    return {**record, "not_computed": reasons} if reasons else record


def result_path(out_dir: Path, protocol: str, label_fraction: float) -> Path:
    return out_dir / f"{protocol}_l{label_fraction:g}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.evaluate.frozen", description=__doc__.splitlines()[0])
    add_encoder_arguments(parser)
    parser.add_argument("--deterministic", action="store_true", help="one CPU thread, deterministic kernels")
    parser.add_argument("--device", default="auto")
    add_evaluation_rows_arguments(parser)
    parser.add_argument("--pairs", type=Path, nargs="+", help="genus pairs per budget (.json), for genus_pairs")
    parser.add_argument("--protocols", nargs="*", default=[], choices=FROZEN, metavar="PROTOCOL")
    parser.add_argument("--params-json", type=json_object, default="{}", help="config sections by name")
    parser.add_argument("--run-json", required=True, type=json_object, help="the run's facts as a JSON object")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--embeddings-out", required=True, type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    budgets = len(args.label_fractions)
    for name in ("priors", "pairs"):
        if getattr(args, name) is not None and len(getattr(args, name)) != budgets:
            parser.error(f"--{name} needs one path per label fraction ({budgets})")
    if "genus_pairs" in args.protocols and args.pairs is None:
        parser.error("protocol genus_pairs needs --pairs")
    if "seed" not in args.run_json:
        parser.error("--run-json must hold the seed")
    specs = {**registry.PROTOCOLS, **registry.TASKS}
    sections = {*(specs[protocol].section for protocol in args.protocols), *args.params_json}
    try:
        settings = {section: section_settings(section, args.params_json.get(section, {})) for section in sections}
    except ValueError as error:
        parser.error(str(error))

    import numpy as np
    import pandas as pd

    from geocontrast.atomic import atomic_path, write_json
    from geocontrast.data.cache import load_image_cache
    from geocontrast.data.manifest import read_manifest
    from geocontrast.determinism import make_deterministic
    from geocontrast.evaluate.embed import embed, load_or_init_encoder, open_features
    from geocontrast.evaluate.protocols import eval_rows
    from geocontrast.prior.fit import load_prior
    from geocontrast.runtime import resolve_amp, resolve_device, set_threads
    from geocontrast.train.spent import pretraining_facts

    if args.threads:
        set_threads(args.threads)
    seed = int(args.run_json["seed"])
    spent = pretraining_facts(args.encoder) if args.encoder is not None else {}
    encoder, _ = load_or_init_encoder(args.encoder, args.random_init, seed, small_input=args.resolution < 96)
    device = resolve_device(args.device)
    if args.deterministic:
        make_deterministic(device)
    cache = load_image_cache(args.cache)
    with atomic_path(args.embeddings_out) as partial:
        streamed = open_features(partial, len(cache), encoder.feature_dim)
        embed(encoder, cache, args.resolution, device, resolve_amp("auto", device), out=streamed)
        streamed.flush()
        del streamed
    # Unmap the photos: every page the embedding read stays part of the job's memory while the map is open (1.5 GB
    # at 500,000 photos of 32 px), and the protocols below read only the features.
    del cache
    features = np.load(args.embeddings_out, mmap_mode="r")  # float16; each protocol reads its rows as float32
    print(f"{args.embeddings_out}: {features.shape[0]} x {features.shape[1]} features")

    manifest, splits = read_manifest(args.manifest), pd.read_parquet(args.splits)
    if features.shape[0] != len(manifest):
        raise ValueError(f"{args.cache}: {features.shape[0]} rows, the manifest {len(manifest)}")
    for budget, label_fraction in enumerate(args.label_fractions):
        rows = eval_rows(manifest, splits, label_fraction, args.val_fraction)
        prior, prior_reason = load_prior(None if args.priors is None else args.priors[budget], args.no_prior_reason)
        pairs = None if args.pairs is None else json.loads(args.pairs[budget].read_text())
        run = {**args.run_json, **spent, "label_fraction": label_fraction}
        for protocol in args.protocols:
            chosen = settings[specs[protocol].section]
            record = frozen_record(protocol, features, manifest, rows, run, chosen, prior, pairs, prior_reason)
            out = result_path(args.out_dir, protocol, label_fraction)
            write_json(record, out)
            print(out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
