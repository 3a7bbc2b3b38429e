"""Choose the fine-tune protocol on val, for every strategy alike: each candidate fine-tunes every strategy's
encoder of the given seeds, early-stopped on the budget's share of the val photos (as the workflow selects), and
is scored on the other val photos, which no candidate selects on (the test photos are never read).

Reads the encoders of a run of the workflow up to pretraining (``results/<dataset>/pretrain/``; a label-trained
strategy's at the label budget) and the untrained encoder (``random_init``, seeded by the seed)::

    PYTHONPATH=src .venv/bin/python bench/measure/finetune_protocol.py --results results/synthetic_flora \\
        --seeds 0 1 [--label-fraction 10] [--workers 2] [--out bench/results/finetune_protocol.json]

Writes one row per (candidate, strategy, seed) to ``--out`` and prints the candidate × strategy table of held-out
val top-1 (mean over seeds), with the mean over strategies, the pretrained strategies' mean margin over random_init
(the criterion the protocol was chosen by) and the best encoder's margin.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CROP_FLIP = {"jitter_probability": 0.0, "greyscale": 0.0, "blur": 0.0}
CANDIDATES = {
    # the protocol before this change: every layer at lr 1e-3, SimCLR's colour jitter, greyscale p 0.2 at any strength
    "old: all layers 1e-3, colour aug": {"augment": {"greyscale": 0.4}},
    "crop+flip": {"augment": CROP_FLIP},
    "crop+flip, encoder lr 0.1x": {"augment": CROP_FLIP, "encoder_lr_scale": 0.1},
    "LP-FT, crop+flip": {"augment": CROP_FLIP, "head_init": "linear_probe"},
    "LP-FT, crop+flip, encoder lr 0.1x": {"augment": CROP_FLIP, "head_init": "linear_probe", "encoder_lr_scale": 0.1},
}
STRATEGIES = ("random_init", "augmented", "context_pos", "context_pos_neg", "supervised")
LABEL_TRAINED = ("supervised",)


def encoder_path(results: Path, strategy: str, seed: int, label_fraction: float) -> Path | None:
    if strategy == "random_init":
        return None
    folder = results / "pretrain" / strategy / f"seed{seed}"
    return folder / f"l{label_fraction:g}" / "encoder.pt" if strategy in LABEL_TRAINED else folder / "encoder.pt"


def run_one(job: tuple) -> dict:
    """Fine-tune one encoder under one candidate; held-out val top-1 and what selection chose."""
    results, candidate, strategy, seed, label_fraction, replicate = job
    import numpy as np
    import pandas as pd
    import torch

    from geocontrast.data.cache import load_image_cache
    from geocontrast.data.manifest import read_manifest
    from geocontrast.evaluate.embed import load_or_init_encoder
    from geocontrast.evaluate.protocols import _predict, eval_rows, fit_classifier
    from geocontrast.evaluate.settings import FinetuneSettings, LinearSettings
    from geocontrast.metrics import top_k_accuracy
    from geocontrast.runtime import resolve_amp

    torch.set_num_threads(1)
    manifest = read_manifest(results / "manifest.parquet")
    splits = pd.read_parquet(results / "replicates" / str(replicate) / "splits.parquet")
    rows = eval_rows(manifest, splits, label_fraction)  # val: the budget's share, as the workflow selects
    every_val = eval_rows(manifest, splits, label_fraction, val_fraction=1.0).val
    held_out = np.setdiff1d(every_val, rows.val)
    cache = load_image_cache(results / "cache" / "32px.npy")
    encoder, _ = load_or_init_encoder(encoder_path(results, strategy, seed, label_fraction), "cnn5", seed, True)
    settings = FinetuneSettings.from_mapping({**CANDIDATES[candidate], "device": "cpu"})
    device = torch.device("cpu")
    amp = resolve_amp("auto", device)
    start = time.perf_counter()
    model, selection = fit_classifier(encoder, cache, rows, 32, settings, seed, device, amp, probe=LinearSettings())
    probs = _predict(model, cache, held_out, 32, device, amp)
    return {
        "candidate": candidate,
        "strategy": strategy,
        "seed": seed,
        "held_out_val_top1": top_k_accuracy(probs, rows.codes[held_out], ks=(1,))[1],
        "selection_val_top1": selection["val_top1"],
        "best_epoch": selection["best_epoch"],
        "n_selection_val": int(rows.val.size),
        "n_held_out_val": int(held_out.size),
        "seconds": round(time.perf_counter() - start, 1),
    }


def table(rows: list[dict]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    means = frame.pivot_table(index="candidate", columns="strategy", values="held_out_val_top1", aggfunc="mean")
    means = means.reindex(index=list(CANDIDATES), columns=list(STRATEGIES)) * 100
    means["mean"] = means[list(STRATEGIES)].mean(axis=1)
    means["pretrained - random_init"] = means[list(STRATEGIES[1:])].mean(axis=1) - means["random_init"]  # criterion
    means["best - random_init"] = means[list(STRATEGIES[1:])].max(axis=1) - means["random_init"]
    header = "| candidate | " + " | ".join(means.columns) + " |"
    lines = [header, "|" + "---|" * (len(means.columns) + 1)]
    for candidate, values in means.iterrows():
        lines.append(f"| {candidate} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results/synthetic_flora"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--label-fraction", type=float, default=10)
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/finetune_protocol.json"))
    args = parser.parse_args(argv)
    jobs = [
        (args.results, candidate, strategy, seed, args.label_fraction, seed)  # splits.resample: replicate = seed
        for candidate in args.candidates
        for seed in args.seeds
        for strategy in STRATEGIES
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = []
        for row in pool.map(run_one, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
