"""Class-activation maps (Zhou et al. 2016, "Learning deep features for discriminative localization") of a
fine-tuned classifier: where in a photo the evidence for a class lies.

Every encoder ends in global average pooling and the classifier in one linear layer, so a class's logit is the
spatial mean of its map ``CAM_c = sum_k W[c, k] * A_k`` (A: the last feature maps, before pooling) plus the bias.
The *rank average* (CAM-Agg) is the mean of the maps of every class that shares the photo's ancestor at a coarser
rank (the genus of its species, say): where the model looks for the group rather than for one class.

CLI (the workflow's cam rule; one job per strategy, for the first seed at report.label_fraction)::

    python -m geocontrast.evaluate.cam --cache cache/32px.npy \\
        (--classifier finetune_l10.pt | --encoder encoder.pt | --random-init cnn5) --resolution 32 \\
        --manifest manifest.parquet --splits splits.parquet --label-fraction 10 [--val-fraction budget] \\
        --seed 0 --params-json '{...evaluate.finetune...}' --probe-json '{...evaluate.linear...}' \\
        --cam-json '{"n_photos": 6, ...}' --out cam.npz

At the species rank it draws the classifier the finetune job kept (``--classifier``: the very model whose
accuracy the results report); at a coarser ``class_rank`` it fine-tunes the encoder itself as the finetune
protocol does (same params, seed and label budget, classes of that rank). It writes, for ``n_photos`` test photos
of distinct classes chosen with ``cam.seed`` (the same photos for every strategy): ``rows`` (manifest rows),
``classes`` and ``predicted`` (class names), ``class_maps`` and ``rank_maps`` (n, h, w) float32, ``rank`` and
``class_rank`` (the two ranks), ``val_top1``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geocontrast.cli import add_encoder_arguments, add_val_fraction_argument, exit_without_teardown, json_object
from geocontrast.evaluate.settings import CamSettings, FinetuneSettings, LinearSettings


def feature_maps(encoder, images):
    """(B, K, h, w): the encoder's maps as they enter its last global average pooling."""
    from torch import nn

    pools = [module for module in encoder.modules() if isinstance(module, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise ValueError(f"{type(encoder).__name__} has no global average pooling: no class-activation maps")
    captured = []
    handle = pools[-1].register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    try:
        encoder(images)
    finally:
        handle.remove()
    return captured[-1]


def class_activation_maps(classifier, images):
    """(B, C, h, w) maps of every class for ``images`` (B, 3, H, W) from ``classifier`` = Sequential(encoder,
    Linear); their spatial mean plus the head's bias is the classifier's logits."""
    import torch

    encoder, head = classifier[0], classifier[-1]
    with torch.no_grad():
        maps = feature_maps(encoder, images).float()  # (B, K, h, w)
        return torch.einsum("ck,bkhw->bchw", head.weight.float(), maps)


def rank_average(maps: np.ndarray, classes: np.ndarray, ancestors: np.ndarray) -> np.ndarray:
    """(B, h, w): per photo the mean of ``maps`` (B, C, h, w) over the classes that share its class's ancestor
    (``classes`` (B,) class of each photo, ``ancestors`` (C,) ancestor index of each class)."""
    members = (ancestors[None, :] == ancestors[classes][:, None]).astype(np.float32)  # (B, C)
    return np.einsum("bc,bchw->bhw", members, maps) / members.sum(axis=1)[:, None, None]


def choose_photos(test_rows: np.ndarray, codes: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` test rows of distinct classes, in a seeded order: the same photos for every strategy."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(test_rows)
    _, first = np.unique(codes[shuffled], return_index=True)
    return shuffled[np.sort(first)][:n]


def photo_cams(classifier, cache, rows: np.ndarray, classes: np.ndarray, ancestors: np.ndarray, resolution, device):
    """(class maps, rank maps, predicted classes) of the photos at cache ``rows`` whose classes are ``classes``."""
    import torch.nn.functional as F

    from geocontrast.runtime import gather_rows, normalise

    classifier = classifier.to(device).eval()
    images = normalise(gather_rows(cache, rows, device))
    if images.shape[-1] != resolution:
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True)
    maps = class_activation_maps(classifier, images).cpu().numpy()  # (B, C, h, w)
    predicted = (maps.mean(axis=(2, 3)) + classifier[-1].bias.detach().cpu().numpy()).argmax(axis=1)
    return maps[np.arange(len(rows)), classes], rank_average(maps, classes, ancestors), predicted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.evaluate.cam", description=__doc__.splitlines()[0])
    add_encoder_arguments(parser, classifier=True)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--splits", required=True, type=Path)
    parser.add_argument("--label-fraction", required=True, type=float, help="percent: the labelled_<pct> subset")
    add_val_fraction_argument(parser)
    parser.add_argument("--seed", required=True, type=int, help="the run's seed, as the finetune protocol's")
    parser.add_argument("--params-json", type=json_object, default="{}", help="evaluate.finetune")
    parser.add_argument("--probe-json", type=json_object, default="{}", help="evaluate.linear: the LP-FT head's probe")
    parser.add_argument("--cam-json", type=json_object, default="{}", help="report.cam (CamSettings)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", required=True, type=Path, help="maps (.npz)")
    args = parser.parse_args(argv)
    try:
        cam = CamSettings.from_mapping(args.cam_json)
        finetune = FinetuneSettings.from_mapping(args.params_json)
        probe = LinearSettings.from_mapping(args.probe_json)
    except ValueError as error:
        parser.error(str(error))

    import pandas as pd

    from geocontrast.atomic import atomic_path
    from geocontrast.data.cache import load_image_cache
    from geocontrast.data.manifest import read_manifest
    from geocontrast.evaluate import protocols, tasks
    from geocontrast.evaluate.embed import load_or_init_encoder
    from geocontrast.runtime import resolve_amp, resolve_device, set_threads

    if args.threads:
        set_threads(args.threads)
    manifest = read_manifest(args.manifest)
    rows = protocols.eval_rows(manifest, pd.read_parquet(args.splits), args.label_fraction, args.val_fraction)
    if cam.class_rank != "species":
        rows = tasks.at_rank(rows, manifest, cam.class_rank)
    if cam.average_rank not in rows.ancestors:
        raise ValueError(f"not every {cam.class_rank} has a {cam.average_rank} in the manifest")
    device = resolve_device(finetune.device)
    cache = load_image_cache(args.cache)
    if args.classifier is not None:
        small_input = args.resolution < 96
        classifier, class_names, selection = protocols.load_classifier(args.classifier, small_input=small_input)
        if class_names != list(rows.names):
            raise ValueError(f"{args.classifier}: its classes are not the {cam.class_rank} classes of {args.splits}")
        classifier = classifier.to(device)
    else:
        encoder, _ = load_or_init_encoder(args.encoder, args.random_init, args.seed, small_input=args.resolution < 96)
        classifier, selection = protocols.fit_classifier(
            encoder, cache, rows, args.resolution, finetune, args.seed, device, resolve_amp("auto", device), probe=probe
        )
    photos = choose_photos(rows.test, rows.codes, int(cam.n_photos), int(cam.seed))
    classes = rows.codes[photos]
    class_maps, rank_maps, predicted = photo_cams(
        classifier, cache, photos, classes, rows.ancestors[cam.average_rank], args.resolution, device
    )
    names = np.asarray(rows.names)
    with atomic_path(args.out) as partial:
        np.savez(
            partial,
            rows=photos,
            classes=names[classes],
            predicted=names[predicted],
            class_maps=class_maps.astype(np.float32),
            rank_maps=rank_maps.astype(np.float32),
            class_rank=cam.class_rank,
            rank=cam.average_rank,
            val_top1=selection["val_top1"],
        )
    print(f"{args.out}: maps of {len(photos)} test photos, val top-1 {selection['val_top1']:.3f}")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
