"""Downstream tasks on frozen features, beyond species identification: probes at higher taxonomic ranks, genus
discrimination, mislabel detection and clustering.

Every function takes arrays and returns numbers or arrays; the CLI (:mod:`geocontrast.evaluate.__main__`) reads
the embeddings and writes one record per task. As elsewhere in evaluation, only the final scoring touches test
labels; mislabel detection uses only the labelled train subset, whose labels it corrupts itself. Those are the
rows whose clean labels ``supervised`` pretrained on at the same budget (and ``supervised_full`` / ``oracle`` on
every train label), so its scores favour those encoders; the report's caption says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geocontrast.cli import exit_without_teardown
from geocontrast.evaluate import PROBE_RANKS, RANKS
from geocontrast.evaluate.settings import ClusteringSettings, GenusPairsSettings, LinearSettings, MislabelSettings

if TYPE_CHECKING:
    from geocontrast.evaluate.protocols import EvalRows


def rank_names(species_names: list[str], manifest: pd.DataFrame, rank: str) -> list[str]:
    """Sorted names at ``rank`` of the given species: the class order of
    :func:`geocontrast.metrics.ancestor_codes` at that rank."""
    lineage = manifest.dropna(subset=["species"]).drop_duplicates("species").set_index("species")
    return sorted(set(lineage.loc[species_names, rank]))


def coarser_ancestors(ancestors: dict[str, np.ndarray], rank: str) -> dict[str, np.ndarray]:
    """Ancestor maps re-indexed from species classes to ``rank`` classes, for ``rank`` and every coarser rank:
    ``result[q][c]`` is the rank-q ancestor of rank class c (a tree, so one value per class)."""
    source = ancestors[rank]
    coarser = RANKS[RANKS.index(rank) :]
    result = {}
    for q in (q for q in coarser if q in ancestors):
        mapping = np.zeros(source.max() + 1, dtype=np.int64)
        mapping[source] = ancestors[q]
        result[q] = mapping
    return result


def reference_pixels(images: np.ndarray, side: int = 8) -> np.ndarray:
    """(N, side*side*3) float32 features: uint8 (N, H, W, 3) images area-averaged to side x side pixels.

    A reference that belongs to no strategy, so the genus pairs chosen from it are the same for all of them.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    return F.adaptive_avg_pool2d(x, side).flatten(1).numpy()


def choose_genus_pairs(
    features: np.ndarray, genus: np.ndarray, names: list[str], n_pairs: int, min_images: int = 2
) -> dict[str, list[list[str]]]:
    """The ``n_pairs`` most similar and most distinct genus pairs by the cosine distance of class means.

    ``features`` (n, D) and ``genus`` (n,) codes of reference rows; only genera with at least ``min_images`` rows
    are paired. Returns {"similar": [[a, b], ...], "distinct": [...]}, genus names sorted within a pair.
    """
    codes, counts = np.unique(genus, return_counts=True)
    codes = codes[counts >= min_images]
    if codes.size < 2:
        raise ValueError(f"genus pairs need two genera with >= {min_images} reference images; found {codes.size}")
    means = np.stack([features[genus == c].mean(axis=0) for c in codes])  # (G, D)
    means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
    first, second = np.triu_indices(codes.size, k=1)
    distance = 1.0 - np.einsum("pd,pd->p", means[first], means[second])  # (G(G-1)/2,)
    order = np.lexsort((second, first, distance))  # by distance, ties by genus index: reproducible
    n = min(int(n_pairs), order.size // 2) or 1

    def named(pairs):
        return [sorted([names[codes[first[p]]], names[codes[second[p]]]]) for p in pairs]

    return {"similar": named(order[:n]), "distinct": named(order[::-1][:n])}


def inject_label_noise(
    labels: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, flipped mask): exactly ``round(fraction * n)`` rows, chosen uniformly, get a different class
    drawn uniformly from the other ``n_classes - 1``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"noise_fraction must be in (0, 1), got {fraction}")
    if n_classes < 2:
        raise ValueError("label noise needs at least two classes")
    labels = np.asarray(labels, dtype=np.int64)
    flipped = np.zeros(labels.size, dtype=bool)
    flipped[rng.choice(labels.size, size=int(round(fraction * labels.size)), replace=False)] = True
    noisy = labels.copy()
    shift = rng.integers(1, n_classes, size=int(flipped.sum()))  # 1..C-1: never the true class
    noisy[flipped] = (labels[flipped] + shift) % n_classes
    return noisy, flipped


def neighbourhood_disagreement(
    features: np.ndarray, labels: np.ndarray, k: int, block_bytes: int | None = None
) -> np.ndarray:
    """(n,) suspicion score per row: the share of its k nearest other rows (cosine) whose label differs.

    The neighbours come in blocks of rows (:func:`geocontrast.evaluate.similarity.top_k_blocks`; ``block_bytes``
    None: its default), never as an (n, n) matrix; the scores equal the dense computation's.
    """
    import torch
    import torch.nn.functional as F

    from geocontrast.evaluate import similarity

    block_bytes = similarity.BLOCK_BYTES if block_bytes is None else block_bytes
    z = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)
    k = min(int(k), z.shape[0] - 1)
    index = similarity.top_k_indices(z, z, k, exclude_self=True, block_bytes=block_bytes).numpy()  # (n, k)
    return (labels[index] != labels[:, None]).mean(axis=1)


def detection_scores(suspicion: np.ndarray, flipped: np.ndarray) -> dict:
    """ROC-AUC of ``suspicion`` for finding the ``flipped`` rows, precision among the top ``flipped.sum()``
    suspects (precision at the true noise rate), and the ROC curve."""
    from sklearn.metrics import roc_auc_score, roc_curve

    n_noisy = int(flipped.sum())
    ranked = np.argsort(-suspicion, kind="stable")[:n_noisy]
    fpr, tpr, _ = roc_curve(flipped, suspicion)
    return {
        "mislabel_auc": float(roc_auc_score(flipped, suspicion)),
        "mislabel_precision": float(flipped[ranked].mean()),
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }


def clustering_scores(features: np.ndarray, labels: np.ndarray, seed: int, n_init: int = 10) -> dict[str, float]:
    """k-means on L2-normalised features with k = the number of distinct labels; NMI and ARI against them."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    z = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)
    k = np.unique(labels).size
    clusters = KMeans(n_clusters=k, n_init=int(n_init), random_state=int(seed)).fit_predict(z.astype(np.float64))
    return {
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }


def at_rank(rows: EvalRows, manifest: pd.DataFrame, rank: str) -> EvalRows:
    """The same labelled rows with their classes replaced by the ancestors at ``rank`` (genus, family, ...)."""
    from geocontrast.evaluate.protocols import EvalRows

    if rank not in PROBE_RANKS:
        raise ValueError(f"rank must be one of {list(PROBE_RANKS)}, got {rank!r}")
    species = rows.codes
    codes = np.where(species >= 0, rows.ancestors[rank][np.maximum(species, 0)], -1)
    return EvalRows(
        train=rows.train,
        val=rows.val,
        test=rows.test,
        codes=codes,
        names=rank_names(rows.names, manifest, rank),
        ancestors=coarser_ancestors(rows.ancestors, rank),
    )


def genus_pair_accuracies(
    features: np.ndarray,
    rows: EvalRows,
    pairs: dict[str, list[list[str]]],
    genus_names: list[str],
    linear: LinearSettings,
) -> dict:
    """Test accuracy of a binary linear probe (val-selected, as the linear protocol) for each genus pair.

    ``rows`` at genus rank (:func:`at_rank`); ``pairs`` from :func:`choose_genus_pairs`. A pair missing train,
    val or test images of either genus is listed under ``skipped`` with the reason, not scored.
    """
    from geocontrast.evaluate.protocols import feature_rows, linear_probe

    lookup = {name: code for code, name in enumerate(genus_names)}
    result: dict = {"pairs": [], "skipped": []}
    for kind in ("similar", "distinct"):
        scores = []
        kind_pairs = pairs[kind]
        for first, second in kind_pairs:
            roles = {}
            for role in ("train", "val", "test"):
                role_rows = getattr(rows, role)
                genus = rows.codes[role_rows]
                keep = (genus == lookup[first]) | (genus == lookup[second])
                roles[role] = (role_rows[keep], (genus[keep] == lookup[second]).astype(np.int64))
            missing = [role for role, (_, y) in roles.items() if np.unique(y).size < 2]
            if missing:
                result["skipped"].append(
                    {
                        "kind": kind,
                        "genera": [first, second],
                        "reason": f"no images of one genus in {', '.join(missing)}",
                    }
                )
                continue
            (train, train_y), (val, val_y), (test, test_y) = roles["train"], roles["val"], roles["test"]
            train_x, val_x, test_x = (feature_rows(features, r) for r in (train, val, test))
            probs, _ = linear_probe(train_x, train_y, val_x, val_y, test_x, 2, linear)
            accuracy = float((probs.argmax(axis=1) == test_y).mean())
            scores.append(accuracy)
            result["pairs"].append(
                {"kind": kind, "genera": [first, second], "accuracy": accuracy, "n_test": int(test.size)}
            )
        result[f"pairs_{kind}_accuracy"] = float(np.mean(scores)) if scores else float("nan")
    return result


def task_metrics(
    task: str,
    features: np.ndarray,
    rows: EvalRows,
    manifest: pd.DataFrame,
    settings: LinearSettings | MislabelSettings | ClusteringSettings,
    seed: int,
    pairs: dict | None = None,
) -> dict:
    """Metrics of ``genus_pairs``, ``mislabel`` or ``clustering`` on frozen ``features`` (N, D) of every manifest
    row, any float dtype (read as float32 rows; ``<rank>_probe`` is a classification protocol and scored as one).
    ``settings``: the task's config section (:data:`geocontrast.registry.TASKS`; genus_pairs: the linear probe's)."""
    if task == "genus_pairs":
        if pairs is None:
            raise ValueError("task genus_pairs needs the pairs file (--pairs)")
        genus = at_rank(rows, manifest, "genus")
        return genus_pair_accuracies(features, genus, pairs, genus.names, settings)
    from geocontrast.evaluate.protocols import feature_rows

    if task == "mislabel":
        labels = rows.codes[rows.train]
        noisy, flipped = inject_label_noise(
            labels, float(settings.noise_fraction), rows.n_classes, np.random.default_rng([seed, 1])
        )
        suspicion = neighbourhood_disagreement(feature_rows(features, rows.train), noisy, int(settings.k))
        return {**detection_scores(suspicion, flipped), "n_flipped": int(flipped.sum())}
    if task == "clustering":
        test = feature_rows(features, rows.test)
        result = {}
        for rank in (rank for rank in ("species", "genus") if rank in rows.ancestors):
            labels = rows.ancestors[rank][rows.codes[rows.test]]
            scores = clustering_scores(test, labels, seed, int(settings.n_init))
            result.update({f"nmi_{rank}": scores["nmi"], f"ari_{rank}": scores["ari"]})
        return result
    raise ValueError(f"unknown task {task!r}")


def main(argv: list[str] | None = None) -> int:
    """CLI: choose the genus pairs of the genus-discrimination task from the labelled train images' pixels::

        python -m geocontrast.evaluate.tasks --cache cache/32px.npy --manifest manifest.parquet \\
            --splits splits.parquet --label-fraction 10 [--params-json '{"n_pairs": 3}'] --out genus_pairs_l10.json
    """
    import argparse
    import json
    from pathlib import Path

    from geocontrast.cli import json_object

    parser = argparse.ArgumentParser(prog="python -m geocontrast.evaluate.tasks", description=main.__doc__)
    parser.add_argument("--cache", required=True, type=Path, help="uint8 image cache (.npy), manifest order")
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--splits", required=True, type=Path)
    parser.add_argument("--label-fraction", type=float, default=10, help="percent: the labelled_<pct> subset")
    parser.add_argument("--params-json", type=json_object, default="{}", help="n_pairs, min_images")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    from geocontrast.atomic import write_json
    from geocontrast.data.cache import load_image_cache
    from geocontrast.data.manifest import read_manifest
    from geocontrast.evaluate.protocols import eval_rows

    try:
        settings = GenusPairsSettings.from_mapping(args.params_json)
    except ValueError as error:
        parser.error(str(error))
    manifest = read_manifest(args.manifest)
    rows = at_rank(eval_rows(manifest, pd.read_parquet(args.splits), args.label_fraction), manifest, "genus")
    pixels = reference_pixels(load_image_cache(args.cache)[np.sort(rows.train)])
    pairs = choose_genus_pairs(
        pixels, rows.codes[np.sort(rows.train)], rows.names, int(settings.n_pairs), int(settings.min_images)
    )
    write_json({**pairs, "reference": "pixels 8x8, labelled train images", "params": settings.as_dict()}, args.out)
    print(json.dumps(pairs))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
