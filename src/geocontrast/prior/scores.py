"""How a geographic prior's probabilities meet an image model and the truth: pure functions over arrays.

The calibrated combination P(y | image, x) ∝ P(y | image) · (P(y | x) / P(y))^w with its weight chosen on val
(:func:`combine`, :func:`choose_prior_weight`), the prior's own top-k and calibration (:func:`prior_only_scores`,
:func:`reliability`), and on the synthetic world its "limit" rows and range AUC against the world's truth
(:func:`limits`), and those scores of every replicate as one table (:func:`prior_table`). The prior itself is
fitted and written by :mod:`geocontrast.prior.fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.metrics import hits_in_ranked, ranked_classes, top_k_accuracy

TOP_K = (1, 5)
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # w in (P(y | x) / P(y))^w, chosen on val
RELIABILITY_BINS = 10
COMBINE_BLOCK_ELEMENTS = 1 << 22  # (row, class) cells combined at once: a few float64 copies of 32 MB each


def class_frequencies(train_labels, n_classes: int) -> np.ndarray:
    """(C,) add-one smoothed class frequencies of the image model's labelled train rows: the class prior it
    learned (never zero, so it can be divided out)."""
    return smoothed_frequencies(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes))


def smoothed_frequencies(counts: np.ndarray) -> np.ndarray:
    """(C,) add-one smoothed frequencies of (C,) class counts."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + 1.0) / (counts.sum() + counts.size)


def combine(image_probs, location_probs, class_prior=None, weight: float = 1.0, location_rows=None) -> np.ndarray:
    """(N, C) P(y | image, x) ∝ P(y | image) · (P(y | x) / P(y))^weight, each row normalised (float64 products).

    With ``class_prior`` P(y) (C,), the image model's training class frequencies, and weight 1 this is Bayes'
    rule for an image and a location independent given the species: the product would count P(y) twice.
    ``class_prior`` None divides by nothing (the plain product at weight 1); weight 0 returns the image row.
    A row of ones in ``location_probs`` (no prior for that row) returns the image probabilities unchanged. A row
    whose product is zero everywhere (the prior rules out every species the image allows) also keeps the image
    row. ``location_rows``: which rows of ``location_probs`` (e.g. the test rows of every photo's memory-mapped
    prior) pair with the image rows, read a block at a time instead of copied out whole; None: row for row.
    Returns ``image_probs``' float dtype (float64 for integer input).
    """
    image = np.asarray(image_probs)
    if not hasattr(location_probs, "shape"):
        location_probs = np.asarray(location_probs)  # arrays, memory maps and NpyRows are read a block at a time
    paired = location_probs.shape if location_rows is None else (len(location_rows), *location_probs.shape[1:])
    if image.shape != paired or image.ndim != 2:
        raise ValueError(f"image_probs {image.shape} and location_probs {paired} must be equal (N, C)")
    combined = np.empty(image.shape, dtype=image.dtype if np.issubdtype(image.dtype, np.floating) else np.float64)
    rows = max(1, COMBINE_BLOCK_ELEMENTS // max(1, image.shape[1]))  # each row is computed alone: same result
    for start in range(0, image.shape[0], rows):
        block = slice(start, start + rows)
        location = location_probs[block] if location_rows is None else location_probs[location_rows[block]]
        combined[block] = _combine_rows(image[block], location, class_prior, weight)
    return combined


def _combine_rows(image: np.ndarray, location_probs, class_prior, weight: float) -> np.ndarray:
    location = np.asarray(location_probs, dtype=np.float64)
    ratio = location if class_prior is None else location / np.asarray(class_prior, dtype=np.float64)[None]
    ratio = np.where((location == 1.0).all(axis=1, keepdims=True), 1.0, ratio)  # no prior: leave the row
    product = image.astype(np.float64) * ratio**weight  # (n, C)
    total = product.sum(axis=1, keepdims=True)  # (n, 1)
    image_total = image.sum(axis=1, keepdims=True, dtype=np.float64)
    return np.where(total > 0, product / np.where(total > 0, total, 1.0), image / image_total)


def choose_prior_weight(
    val_probs, val_location, val_labels, class_prior, weights=PRIOR_WEIGHTS, location_rows=None
) -> dict:
    """The prior's weight w in :func:`combine` with the best val top-1 (ties: the w nearest 1, Bayes' rule),
    as the record written beside the results: ``weight``, ``class_prior``, ``rule`` and ``val_top1`` per w.
    ``location_rows``: the val rows of ``val_location`` (as in :func:`combine`)."""
    by_weight = {
        f"{w:g}": top_k_accuracy(combine(val_probs, val_location, class_prior, w, location_rows), val_labels, ks=(1,))[
            1
        ]
        for w in weights
    }
    best = max(weights, key=lambda w: (by_weight[f"{w:g}"], -abs(w - 1.0)))
    return {
        "weight": float(best),
        "class_prior": "the class frequencies the prior was trained on (add-one), divided out",
        "rule": "best val top-1 over weights; ties to the weight nearest 1 (Bayes' rule)",
        "val_top1": by_weight,
    }


# How the weight is set when there are no val predictions to choose it on (the most-common baseline).
WEIGHT_WITHOUT_VAL = {
    "weight": 1.0,
    "class_prior": "the class frequencies the prior was trained on (add-one), divided out",
    "rule": "no val predictions: weight 1 (Bayes' rule)",
}


def range_auc(predicted: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(C,) per species, the ROC AUC of ``predicted`` (C, M) presence scores against ``present`` (C, M) bool
    cells (Mann-Whitney, ties counted half); NaN for a species with no presence or no absence cell."""
    from scipy.stats import rankdata

    aucs = np.full(predicted.shape[0], np.nan)
    for c, (scores, truth) in enumerate(zip(predicted, present)):
        n_present, n_absent = int(truth.sum()), int((~truth).sum())
        if n_present and n_absent:
            ranks = rankdata(scores)
            aucs[c] = (ranks[truth].sum() - n_present * (n_present + 1) / 2) / (n_present * n_absent)
    return aucs


def reliability(probs, labels: np.ndarray, bins: int = RELIABILITY_BINS, rows=None) -> dict:
    """Calibration of the normalised prior as a classifier: per confidence bin (max probability, equal widths on
    [0, 1]) its count, mean confidence and accuracy, and the expected calibration error (count-weighted gap).
    ``rows``: which rows of ``probs`` pair with ``labels`` (as in :func:`prior_only_scores`)."""
    labels = np.asarray(labels)
    confidence, correct = [], []
    for block in _row_blocks(labels.size, probs.shape[1]):
        part = _read_rows(probs, rows, block)
        normalised = part / part.sum(axis=1, keepdims=True)
        confidence.append(normalised.max(axis=1))
        correct.append(normalised.argmax(axis=1) == labels[block])
    confidence, correct = np.concatenate(confidence), np.concatenate(correct)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_confidence = np.bincount(which, confidence, bins) / np.maximum(count, 1)
    accuracy = np.bincount(which, correct.astype(float), bins) / np.maximum(count, 1)
    filled = count > 0
    return {
        "bin_edges": np.linspace(0, 1, bins + 1).round(6).tolist(),
        "count": count.tolist(),
        "confidence": np.where(filled, mean_confidence, np.nan).tolist(),
        "accuracy": np.where(filled, accuracy, np.nan).tolist(),
        "ece": float((count * np.abs(mean_confidence - accuracy)).sum() / max(count.sum(), 1)),
    }


def prior_only_scores(probs, labels: np.ndarray, rows=None) -> dict[str, float | None]:
    """top<k> of the prior alone on rows (None: no row). ``probs``: (n, C) scores of the labelled rows, or with
    ``rows``, every photo's (an array, a memory map, :class:`~geocontrast.npy_rows.NpyRows`), of which ``rows``
    pair with ``labels``; either is read a block of rows at a time."""
    labels = np.asarray(labels)
    blocks = _row_blocks(labels.size, probs.shape[1])
    return top_k_of_blocks((_read_rows(probs, rows, block), labels[block]) for block in blocks)


def top_k_of_blocks(blocks: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float | None]:
    """top<k> over (scores, labels) blocks of rows, the same as over the blocks joined (None: no row)."""
    hits: dict[int, list[np.ndarray]] = {k: [] for k in TOP_K}
    for scores, labels in blocks:
        ranked = ranked_classes(scores, max(TOP_K))
        for k in TOP_K:
            hits[k].append(hits_in_ranked(ranked, labels, k))
    joined = {k: np.concatenate(parts) if parts else np.zeros(0, bool) for k, parts in hits.items()}
    return {f"top{k}": float(joined[k].mean()) if joined[k].size else None for k in TOP_K}


def _row_blocks(n_rows: int, n_classes: int) -> Iterable[slice]:
    step = max(1, COMBINE_BLOCK_ELEMENTS // max(1, n_classes))
    return (slice(start, start + step) for start in range(0, n_rows, step))


def _read_rows(probs, rows, block: slice) -> np.ndarray:
    return np.asarray(probs[block] if rows is None else probs[rows[block]])


def limits(oracle_path: Path, classes: list[str], rows, labels, learned: dict, grid_of_model: Callable) -> dict:
    """What the world's truth says of the prior on the test ``rows`` (manifest rows, with their ``labels``), read
    from the replicate's ``oracle.npz`` (:mod:`geocontrast.data.synthetic.oracle`): the prior-only table (the
    learned prior's ``learned`` top-k beside the oracles P(y | x) and P(y | x, date), the "limit" rows) and each
    species' range AUC over the world's land cells (``grid_of_model(lat, lon)``: the prior's (M, C) presence)."""
    oracle = np.load(oracle_path)
    if oracle["classes"].tolist() != list(classes):
        raise ValueError(f"{oracle_path}: its classes are not the manifest's species")
    if not np.array_equal(oracle["rows"], rows):
        raise ValueError(f"{oracle_path}: its test photos are not this replicate's (made from other splits?)")
    labels = np.asarray(labels)
    table = [{"model": "learned prior", **learned}]
    for name, key in (("limit: oracle P(y | x)", "location"), ("limit: oracle P(y | x, date)", "location_date")):
        usable = oracle[f"{key}_usable"]
        ranked, kept = oracle[f"{key}_ranked"][usable], labels[usable]
        hits = {k: hits_in_ranked(ranked, kept, k) for k in TOP_K}
        scores = {f"top{k}": float(hits[k].mean()) if kept.size else None for k in TOP_K}
        table.append({"model": name, **scores, "n": int(usable.sum())})
    predicted = grid_of_model(oracle["cell_lat"], oracle["cell_lon"]).T  # (C, M)
    aucs = range_auc(predicted, oracle["present"])
    return {
        "prior_only_test": table,
        "range_auc": {name: (None if np.isnan(auc) else round(float(auc), 4)) for name, auc in zip(classes, aucs)},
        "range_auc_mean": None if np.isnan(aucs).all() else float(np.nanmean(aucs)),
        "range_presence": (
            f"world land cells with suitability >= {float(oracle['present_fraction']):g} x the species' maximum"
        ),
    }


LEARNED, MOST_COMMON = "learned prior", "most common species"
PRIOR_TABLE_COLUMNS = (
    "label_fraction",
    "replicate",
    "inputs",
    "trained_on",
    "model",
    "top1",
    "top5",
    "range_auc",
    "ece",
    "n_train",
)


def prior_table(priors: Iterable[dict]) -> pd.DataFrame:
    """The prior alone on the test photos with coordinates, one row per (prior, model) of ``priors`` (prior.json
    contents, each with its ``replicate``): the learned prior (with its mean range AUC and ECE when scored), the
    most-common-species baseline and, on the synthetic world, the oracle "limit" rows. ``inputs`` and
    ``trained_on`` say what the prior saw; a skipped prior has no row (results_summary says why)."""
    rows = []
    for prior in priors:
        if "skipped" in prior:
            continue
        key = {
            "label_fraction": prior["label_fraction"],
            "replicate": prior["replicate"],
            "inputs": "+".join(prior["params"]["inputs"]),
            "trained_on": " + ".join(name.replace("_", " ") for name in prior["sources"]),
        }
        rows.append(
            {
                **key,
                "model": LEARNED,
                **{f"top{k}": prior[f"test_top{k}"] for k in TOP_K},
                "range_auc": prior.get("range_auc_mean"),
                "ece": prior.get("reliability_test", {}).get("ece"),
                "n_train": prior["n_train"],
            }
        )
        rows.append({**key, "model": MOST_COMMON, **{f"top{k}": prior[f"test_most_common_top{k}"] for k in TOP_K}})
        for limit in prior.get("prior_only_test", []):
            if limit["model"] != LEARNED:
                rows.append({**key, "model": limit["model"], **{f"top{k}": limit[f"top{k}"] for k in TOP_K}})
    return pd.DataFrame(rows, columns=list(PRIOR_TABLE_COLUMNS)).astype({f"top{k}": float for k in TOP_K})
