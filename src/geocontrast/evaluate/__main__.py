"""CLI of one evaluation at one label budget (the workflow's finetune and most_common_baseline rules)::

    python -m geocontrast.evaluate --protocol finetune --manifest manifest.parquet --splits splits.parquet \\
        --label-fraction 10 [--val-fraction budget] --cache cache/32px.npy \\
        (--encoder encoder.pt | --random-init cnn5) \\
        [--prior geoprior/probs.npy | --no-prior-reason WHY] \\
        --run-json '{"dataset": ..., "strategy": ..., "seed": 0, ...}' \\
        [--params-json '{...}'] [--probe-json '{...}'] --out finetune_l10.json [--classifier-out finetune_l10.pt]

Protocols and what they read: ``finetune`` the image cache plus ``--encoder`` or ``--random-init``;
``baseline`` (most common species) neither; the frozen protocols and tasks (``linear``, ``knn``, ``<rank>_probe``,
``genus_pairs`` with ``--pairs``, ``mislabel``, ``clustering``) saved ``--embeddings`` (the workflow runs those
all from one embedding, :mod:`geocontrast.evaluate.frozen`). ``--classifier-out`` keeps the fine-tuned classifier
(:func:`geocontrast.evaluate.protocols.save_classifier`; the CAM job draws it). ``--params-json``: the
protocol's config section (:data:`geocontrast.registry.PROTOCOLS`); ``--probe-json``: the fine-tune's
``evaluate.linear`` section, the settings of the linear probe its LP-FT head starts from. ``--run-json`` carries
what the row records about its run (:data:`geocontrast.evaluate.RUN_COLUMNS`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geocontrast import registry
from geocontrast.cli import add_val_fraction_argument, exit_without_teardown, json_object
from geocontrast.evaluate.frozen import FROZEN, frozen_record, result_header, with_reasons
from geocontrast.evaluate.settings import LinearSettings, section_settings
from geocontrast.settings import Settings

PROTOCOLS = ("finetune", "baseline", *FROZEN)


def evaluate(args: argparse.Namespace, run: dict, settings: Settings | None) -> dict:
    """Run one protocol with the ``settings`` of its config section (None: the baseline, which has none) and return
    its result record (run facts, metrics, selection, params)."""
    import numpy as np
    import pandas as pd
    import torch

    from geocontrast.data.cache import load_image_cache
    from geocontrast.data.manifest import read_manifest
    from geocontrast.evaluate import protocols
    from geocontrast.evaluate.embed import load_or_init_encoder
    from geocontrast.metrics import most_common_scores
    from geocontrast.prior.fit import load_prior
    from geocontrast.runtime import resolve_amp, resolve_device

    manifest = read_manifest(args.manifest)
    rows = protocols.eval_rows(manifest, pd.read_parquet(args.splits), args.label_fraction, args.val_fraction)
    run = {**run, "label_fraction": args.label_fraction}
    prior, prior_reason = load_prior(args.prior, args.no_prior_reason)  # (N, C) over species, or why none
    if args.protocol in FROZEN:
        features = np.load(args.embeddings, mmap_mode="r")
        if features.shape[0] != len(manifest):
            raise ValueError(f"{args.embeddings}: {features.shape[0]} rows, the manifest {len(manifest)}")
        pairs = None if args.pairs is None else json.loads(args.pairs.read_text())
        return frozen_record(args.protocol, features, manifest, rows, run, settings, prior, pairs, prior_reason)
    selection: dict = {}
    val_probs = None  # the baseline has none: the prior's weight is then 1
    if args.protocol == "baseline":
        test_probs = most_common_scores(rows.codes[rows.train], rows.n_classes, rows.test.size)
    else:
        resolution = int(run["resolution"])
        encoder, trained = load_or_init_encoder(
            args.encoder, args.random_init, int(run["seed"]), small_input=resolution < 96
        )
        device = resolve_device(settings.device)
        classifier, test_probs, selection, val_probs = protocols.finetune(
            encoder,
            load_image_cache(args.cache),
            rows,
            resolution,
            settings,
            seed=int(run["seed"]),
            device=device,
            amp_dtype=resolve_amp("auto", device),
            probe=args.probe,
        )
        if args.classifier_out is not None:
            protocols.save_classifier(args.classifier_out, classifier, trained["encoder"], rows.names, selection)
        torch.cuda.empty_cache()
    if prior is not None and prior.shape != (len(manifest), rows.n_classes):
        raise ValueError(f"{args.prior}: shape {prior.shape}, expected {(len(manifest), rows.n_classes)}")
    header = result_header(run, args.protocol, rows)
    scores = protocols.score(test_probs, rows, prior, val_probs)
    params = {} if settings is None else settings.as_dict()
    record = {**header, **scores, "selection": selection, "params": params}
    return with_reasons(record, {"prior": prior_reason, **rows.missing_ranks})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--splits", required=True, type=Path)
    parser.add_argument("--label-fraction", type=float, default=10, help="percent: the labelled_<pct> subset")
    add_val_fraction_argument(parser)
    parser.add_argument("--embeddings", type=Path, help="(N, D) features (.npy), for the frozen protocols")
    parser.add_argument("--cache", type=Path, help="uint8 image cache (.npy), for finetune")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--encoder", type=Path, help="encoder.pt to fine-tune")
    source.add_argument("--random-init", help="encoder name to fine-tune from random weights")
    prior = parser.add_mutually_exclusive_group()
    prior.add_argument("--prior", type=Path, help="(N, C) geographic prior (.npy); omitted: prior columns NaN")
    prior.add_argument("--no-prior-reason", default="no geographic prior given", help="why there is no --prior")
    parser.add_argument("--pairs", type=Path, help="genus pairs (.json), for genus_pairs")
    parser.add_argument("--run-json", required=True, type=json_object, help="the run's facts as a JSON object")
    parser.add_argument("--params-json", type=json_object, default="{}", help="protocol params as a JSON object")
    parser.add_argument(
        "--probe-json", type=json_object, default="{}", help="finetune: evaluate.linear, the LP-FT head's probe"
    )
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--classifier-out", type=Path, help="finetune: where to keep the fine-tuned classifier (.pt)")
    args = parser.parse_args(argv)

    needs = {"finetune": ["cache"], "baseline": [], "genus_pairs": ["embeddings", "pairs"]}.get(
        args.protocol, ["embeddings"]
    )
    missing = [f"--{name}" for name in needs if getattr(args, name) is None]
    if args.protocol == "finetune" and args.encoder is None and args.random_init is None:
        missing.append("--encoder or --random-init")
    if args.classifier_out is not None and args.protocol != "finetune":
        parser.error("--classifier-out is for the finetune protocol")
    if args.probe_json and args.protocol != "finetune":
        parser.error("--probe-json is for the finetune protocol (the linear protocol takes --params-json)")
    if missing:
        parser.error(f"protocol {args.protocol} needs {' and '.join(missing)}")
    run = args.run_json
    if "seed" not in run:
        parser.error("--run-json must hold the seed")
    if args.protocol == "baseline" and args.params_json:
        parser.error(f"protocol baseline takes no params, got {sorted(args.params_json)}")
    try:
        section = {**registry.PROTOCOLS, **registry.TASKS}.get(args.protocol)
        settings = None if section is None else section_settings(section.section, args.params_json)
        args.probe = LinearSettings.from_mapping(args.probe_json)
    except ValueError as error:
        parser.error(str(error))
    if args.threads:
        from geocontrast.runtime import set_threads

        set_threads(args.threads)
    if getattr(args, "encoder", None) is not None:
        from geocontrast.train.spent import pretraining_facts

        run = {**run, **pretraining_facts(args.encoder)}
    from geocontrast.atomic import write_json

    write_json(evaluate(args, run, settings), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
