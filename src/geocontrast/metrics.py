"""Accuracy metrics on class scores: top-k (micro and per-class macro), taxonomic ranks, the majority baseline.

``scores`` are (N, C) arrays (probabilities or logits; only their order per row matters), ``labels`` (N,) int
class indices in [0, C). Ties are broken towards the lower class index, so results never depend on sort
stability.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pandas as pd

from geocontrast.registry import RANKS

TOP_K = (1, 2, 3, 4, 5)
"""The k of every top-k accuracy a result records."""

RANK_BLOCK_ROWS = 4096
"""Rows sorted at a time: a full (N, C) argsort would hold N x C int64 (100,000 test photos x 10,000 species: 8 GB)."""


def ranked_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """(N, k) class indices of the k highest scores per row, best first (ties: lower index first)."""
    scores = np.asarray(scores)
    k = min(int(k), scores.shape[1])
    blocks = [
        _top_k_block(scores[start : start + RANK_BLOCK_ROWS], k) for start in range(0, scores.shape[0], RANK_BLOCK_ROWS)
    ]
    return np.concatenate(blocks) if blocks else np.zeros((0, k), dtype=np.int64)


def _top_k_block(block: np.ndarray, k: int) -> np.ndarray:
    """What ``np.argsort(-block, axis=1, kind="stable")[:, :k]`` gives, without sorting whole rows: each row's
    k-th best score by a partition, then the scores above it and, of those equal to it, the lowest indices; only
    those k are sorted. A full sort of 3,000 classes per test photo, repeated for every k, was most of the
    evaluation's time at 100,000 test photos. Rows with NaN (which a sort puts last) are sorted whole."""
    worse = -block  # ascending: the best class first, as the full sort orders it
    if k == worse.shape[1] or (np.issubdtype(worse.dtype, np.floating) and np.isnan(worse).any()):
        return np.argsort(worse, axis=1, kind="stable")[:, :k].copy()  # a copy: the view would keep the sort alive
    if k == 1:
        return np.argmin(worse, axis=1)[:, None]  # the first of the tied best
    kth = np.partition(worse, k - 1, axis=1)[:, k - 1 : k]
    better, tied = worse < kth, worse == kth
    taken = better | (tied & (np.cumsum(tied, axis=1) <= k - better.sum(axis=1, keepdims=True)))
    columns = np.nonzero(taken)[1].reshape(-1, k)  # k per row, in index order
    order = np.argsort(np.take_along_axis(worse, columns, axis=1), axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1)


def hits_in_ranked(ranked: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: the label is among the first k of ``ranked`` (:func:`ranked_classes` with at least k)."""
    return (ranked[:, :k] == np.asarray(labels)[:, None]).any(axis=1)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, ks=TOP_K) -> dict[int, float]:
    """Micro top-k accuracy (share of rows) for each k in ``ks``."""
    _check(scores, labels)
    ranked = ranked_classes(scores, max(ks))  # ranked once for every k
    return {int(k): float(hits_in_ranked(ranked, labels, k).mean()) for k in ks}


def macro_top_k_accuracy(scores: np.ndarray, labels: np.ndarray, ks=TOP_K) -> dict[int, float]:
    """Top-k accuracy averaged over the classes present in ``labels`` (each species weighs the same)."""
    _check(scores, labels)
    labels = np.asarray(labels)
    present = np.unique(labels)
    ranked = ranked_classes(scores, max(ks))
    result = {}
    for k in ks:
        hits = hits_in_ranked(ranked, labels, k)
        result[int(k)] = float(np.mean([hits[labels == c].mean() for c in present]))
    return result


def most_common_scores(train_labels: np.ndarray, n_classes: int, n_rows: int) -> np.ndarray:
    """(n_rows, C) scores of the most-common-species baseline: every row ranks classes by their train frequency.

    Its top-1 is the majority class of ``train_labels``; top-k takes the k most frequent. Every row is the same
    one: a read-only broadcast view, no (n_rows, C) copy (100,000 test photos x 3,000 species would take 2.4 GB).
    """
    counts = np.bincount(np.asarray(train_labels), minlength=n_classes).astype(np.float64)
    return np.broadcast_to(counts / max(1.0, counts.sum()), (n_rows, n_classes))


HIT_KS = (1, 5)
"""The top-k whose per-photo hits :func:`hit_record` keeps (what the paired test-photo bootstrap needs)."""


def hit_record(scores: np.ndarray, labels: np.ndarray, test_rows: np.ndarray) -> dict:
    """Which test photos each top-k got right, compactly, for paired statistics over test photos.

    Photos are the scored test rows in splits-file (= manifest) order. ``top<k>``: base64 of the packed bits of
    :func:`hits_in_ranked` (``np.packbits``, big bit order); ``labels``: base64 of the class indices (``label_dtype``);
    ``rows_sha1``: digest of the manifest row numbers and labels, equal exactly when two records scored the same
    photos. :func:`read_hits` decodes.
    """
    labels = np.asarray(labels)
    label_dtype = np.min_scalar_type(max(int(labels.max()), 0)).newbyteorder("<")
    packed_labels = labels.astype(label_dtype)
    record = {"n": int(labels.size), "rows_sha1": rows_digest(test_rows, labels), "label_dtype": label_dtype.str}
    record["labels"] = base64.b64encode(packed_labels.tobytes()).decode("ascii")
    ranked = ranked_classes(scores, max(HIT_KS))
    for k in HIT_KS:
        record[f"top{k}"] = base64.b64encode(np.packbits(hits_in_ranked(ranked, labels, k)).tobytes()).decode("ascii")
    return record


def rows_digest(test_rows: np.ndarray, labels: np.ndarray) -> str:
    """The ``rows_sha1`` of a hit record: a digest of the scored photos' manifest rows and class indices."""
    labels = np.asarray(labels)
    label_dtype = np.min_scalar_type(max(int(labels.max()), 0)).newbyteorder("<")
    rows = np.asarray(test_rows, dtype=np.int64).astype("<i8")
    return hashlib.sha1(rows.tobytes() + labels.astype(label_dtype).tobytes()).hexdigest()


def read_hits(record: dict) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Inverse of :func:`hit_record`: ({k: (n,) bool hits}, (n,) int64 labels)."""
    n = int(record["n"])
    hits = {
        k: np.unpackbits(np.frombuffer(base64.b64decode(record[f"top{k}"]), np.uint8), count=n).astype(bool)
        for k in HIT_KS
    }
    labels = np.frombuffer(base64.b64decode(record["labels"]), np.dtype(record["label_dtype"])).astype(np.int64)
    return hits, labels


def ancestor_codes(species_names: list[str], taxonomy: pd.DataFrame) -> dict[str, np.ndarray]:
    """For each rank of :data:`RANKS` at which every species has an ancestor, a (C,) int array mapping a species
    class index to its ancestor's index; a rank that some species lack (a partial taxonomy: species, genus and
    family only, say) is left out, and the accuracy at it is not computed.

    ``taxonomy``: one row per image (the manifest) or per species, with a ``species`` column and a column per
    rank it knows. A species with two different ancestors at one rank is refused (the taxonomy must be a tree).
    """
    ranks = [rank for rank in RANKS[1:] if rank in taxonomy.columns]
    known = taxonomy.dropna(subset=["species"]).drop_duplicates(subset=["species", *ranks])
    clashes = known["species"][known["species"].duplicated()]
    if len(clashes):
        raise ValueError(f"species with two lineages in the taxonomy: {sorted(set(clashes))[:5]}")
    lineage = known.set_index("species").reindex(species_names)
    codes = {"species": np.arange(len(species_names))}
    for rank in ranks:
        if lineage[rank].notna().all():
            codes[rank] = pd.factorize(lineage[rank], sort=True)[0].astype(np.int64)
    return codes


def rank_accuracy(predicted: np.ndarray, labels: np.ndarray, ancestors: dict[str, np.ndarray]) -> dict[str, float]:
    """Top-1 accuracy at each rank: prediction and label both mapped to their ancestor at that rank."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    return {rank: float((codes[predicted] == codes[labels]).mean()) for rank, codes in ancestors.items()}


def confused_pairs(predicted: np.ndarray, labels: np.ndarray, names: list[str], top: int = 10) -> list[dict]:
    """The ``top`` most frequent (true, predicted) confusions, as dicts with species names and counts."""
    wrong = np.asarray(predicted) != np.asarray(labels)
    pairs = pd.DataFrame({"true": np.asarray(labels)[wrong], "predicted": np.asarray(predicted)[wrong]})
    counts = pairs.value_counts().head(top)
    return [{"true": names[t], "predicted": names[p], "count": int(n)} for (t, p), n in counts.items()]


def _check(scores: np.ndarray, labels: np.ndarray) -> None:
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (N, C) and labels (N,), got {scores.shape} and {labels.shape}")
    if labels.size == 0:
        raise ValueError("no labelled rows to score")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got [{labels.min()}, {labels.max()}]")
