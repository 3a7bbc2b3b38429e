"""Example figures: what a training pair looks like, and what each strategy's embedding puts next to a photo.

- :func:`example_pairs_figure` (figure 5): one row per seeded anchor (a photo with coordinates and at least one
  context positive within the radius): the anchor, its augmented view, a context positive from the neighbour
  table, a random negative and a context negative from the negative table; under each image the species and
  the WGS84 geodesic distance to the anchor.
- :func:`nearest_neighbours_figure` (figure 6): one row per seeded test query: the query and its k most
  cosine-similar photos among all other rows except the query's own observation, each with its species and
  cosine similarity; neighbours of another species get a red frame. Queries depend only on the manifest,
  splits and seed, so every strategy's figure shows the same queries.

CLI (two figures; each writes ``--out`` as PNG at 300 dpi and an SVG beside it)::

    python -m geocontrast.report.examples pairs --manifest manifest.parquet --cache cache/64px.npy \\
        --neighbours neighbours/r5_k64.npz --negatives negatives/far_m64.npz --out example_pairs.png \\
        [--n-anchors 4] [--seed 0] [--augment-strength 1.0]

    python -m geocontrast.report.examples neighbours --manifest manifest.parquet --splits splits.parquet \\
        --cache cache/64px.npy --embeddings embeddings/<strategy>/seed<seed>.npy --strategy <strategy> \\
        --run-seed <seed> --out nearest_neighbours.png [--n-queries 5] [--k 6] [--seed 0]

``--cache`` is any image cache in manifest order (the largest resolution looks best); ``--embeddings`` an (N, D)
feature file in manifest order; ``--strategy`` and ``--run-seed`` name the embedding's run in the title;
``--seed`` draws the anchors / queries and their partners (and seeds the augmentation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyproj import Geod

from geocontrast.cli import exit_without_teardown
from geocontrast.report.style import note_figure, plt, save_figure

if TYPE_CHECKING:
    import torch

PAIR_COLUMNS = ("anchor", "augmented view", "context positive", "random negative", "context negative")
UNIDENTIFIED = "unidentified"
WRONG_SPECIES_COLOUR = "#D62728"
_GEOD = Geod(ellps="WGS84")
_CELL_INCHES = 1.45  # width of one image cell; captions take the extra height of a row


def rank_names(manifest: pd.DataFrame, rank: str = "species") -> np.ndarray:
    """(N,) object array of the names at ``rank``, ``"unidentified"`` where the manifest has none."""
    return manifest[rank].astype(object).where(manifest[rank].notna(), UNIDENTIFIED).to_numpy()


def coordinates(manifest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """lat, lon (N,) float64 degrees of the manifest, NaN where the row has no usable coordinates."""
    usable = manifest["has_coords"].to_numpy(bool)
    lat = np.where(usable, manifest["lat"].to_numpy(np.float64, na_value=np.nan), np.nan)
    lon = np.where(usable, manifest["lon"].to_numpy(np.float64, na_value=np.nan), np.nan)
    return lat, lon


def split_of_rows(manifest: pd.DataFrame, splits: pd.DataFrame) -> np.ndarray:
    """(N,) str split ("train"/"val"/"test") of every manifest row; raises ValueError unless the splits list the
    manifest's image_ids in manifest order (the contract every stage relies on)."""
    if len(splits) != len(manifest) or not (splits["image_id"].to_numpy() == manifest["image_id"].to_numpy()).all():
        raise ValueError("splits must list the manifest's image_ids in manifest order")
    return splits["split"].to_numpy(str)


def seeded_anchors(neighbours, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` distinct rows, drawn with ``seed``, that have a context positive within the radius.

    ``neighbours``: a :class:`~geocontrast.geo.neighbours.NeighbourTable`. Fallback rows are skipped: their
    partner (if any) lies beyond the radius and is not what a context positive means.
    """
    eligible = np.flatnonzero((neighbours.counts() > 0) & ~neighbours.fallback)
    rng = np.random.default_rng(seed)
    return rng.choice(eligible, size=min(n, eligible.size), replace=False)


def geodesic_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """WGS84 geodesic distance in km between degree coordinates (broadcasting); NaN where a point is missing."""
    lat1, lon1, lat2, lon2 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (lat1, lon1, lat2, lon2)))
    finite = np.isfinite(lat1) & np.isfinite(lon1) & np.isfinite(lat2) & np.isfinite(lon2)
    km = np.full(lat1.shape, np.nan)
    km[finite] = _GEOD.inv(lon1[finite], lat1[finite], lon2[finite], lat2[finite])[2] / 1000.0
    return km


def distance_label(km: float) -> str:
    """How a distance to the anchor is written under an image."""
    return "no coordinates" if not np.isfinite(km) else f"{km:.1f} km"


def example_pair_rows(manifest: pd.DataFrame, neighbours, negatives, n_anchors: int, seed: int) -> np.ndarray:
    """(n, 4) int manifest rows per example: anchor, context positive, random negative, context negative.

    Anchors come from :func:`seeded_anchors` (restricted to rows with a context-negative candidate); the
    positive is a uniform pick from the anchor's neighbour-table row, the random negative a uniform row of
    another observation (rows without observation_id are their own observation), the context negative a
    uniform pick among the anchor's negative-table candidates. Deterministic for ``seed``.
    """
    has_negative = (negatives.candidates >= 0).any(axis=1)
    anchors = seeded_anchors(neighbours, len(manifest), seed)
    anchors = anchors[has_negative[anchors]][:n_anchors]
    observation = manifest["observation_id"].to_numpy(object)
    rng = np.random.default_rng(seed)
    examples = []
    for anchor in anchors:
        positive = rng.choice(neighbours.indices[neighbours.indptr[anchor] : neighbours.indptr[anchor + 1]])
        own = np.arange(len(manifest)) == anchor
        if pd.notna(observation[anchor]):
            own |= observation == observation[anchor]
        random_negative = rng.choice(np.flatnonzero(~own))
        candidates = negatives.candidates[anchor]
        context_negative = rng.choice(candidates[candidates >= 0])
        examples.append((anchor, positive, random_negative, context_negative))
    return np.array(examples, dtype=np.int64).reshape(-1, 4)


def denormalise(views: torch.Tensor) -> np.ndarray:
    """Undo :func:`~geocontrast.runtime.normalise`: float (B, 3, R, R) -> (B, R, R, 3) RGB in [0, 1]."""
    import torch

    from geocontrast.runtime import MEAN, STD

    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (views.cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def _show(ax: plt.Axes, image: np.ndarray, caption: str, title: str | None = None) -> None:
    """An image without ticks or frame, ``caption`` below it and ``title`` (if any) above."""
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(caption, fontsize=7)
    if title is not None:
        ax.set_title(title, fontsize=8)


def _frame(ax: plt.Axes, colour: str) -> None:
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(2.5)


def example_pairs_figure(
    images: np.ndarray,
    manifest: pd.DataFrame,
    neighbours,
    negatives,
    n_anchors: int = 4,
    seed: int = 0,
    augment_strength: float = 1.0,
) -> plt.Figure:
    """Figure 5: rows of (anchor, augmented view, context positive, random negative, context negative).

    ``images``: uint8 (N, R, R, 3) cache in manifest order; ``neighbours`` / ``negatives``: the geo tables
    (:class:`~geocontrast.geo.neighbours.NeighbourTable`, :class:`~geocontrast.geo.negatives.NegativeTable`).
    The augmented view is :class:`~geocontrast.train.augment.BatchAugment` at resolution R and
    ``augment_strength``, with a torch Generator seeded by ``seed``. When no row has a context positive (no
    coordinates, every photo alone within its radius) the figure says so instead.
    """
    import torch

    from geocontrast.train.augment import BatchAugment

    rows = example_pair_rows(manifest, neighbours, negatives, n_anchors, seed)
    if rows.size == 0:
        return note_figure("no example pairs: no photo has a context positive within the radius")
    species = rank_names(manifest)
    lat, lon = coordinates(manifest)
    anchors = rows[:, 0]
    augment = BatchAugment(resolution=images.shape[1], strength=augment_strength)
    views = denormalise(augment(torch.from_numpy(np.array(images[anchors])), torch.Generator().manual_seed(seed)))
    km = geodesic_km(lat[anchors, None], lon[anchors, None], lat[rows], lon[rows])  # (n, 4)

    figure, axes = plt.subplots(
        len(rows),
        len(PAIR_COLUMNS),
        squeeze=False,
        figsize=(len(PAIR_COLUMNS) * _CELL_INCHES, len(rows) * (_CELL_INCHES + 0.35)),
    )
    for i, (anchor, positive, random_negative, context_negative) in enumerate(rows):
        cells = (  # (image, row whose species is named, second caption line), in PAIR_COLUMNS order
            (images[anchor], anchor, f"{lat[anchor]:.3f}°, {lon[anchor]:.3f}°"),
            (views[i], anchor, "same photo"),
            (images[positive], positive, distance_label(km[i, 1])),
            (images[random_negative], random_negative, distance_label(km[i, 2])),
            (images[context_negative], context_negative, distance_label(km[i, 3])),
        )
        for j, (image, row, where) in enumerate(cells):
            _show(axes[i, j], image, f"{species[row]}\n{where}", PAIR_COLUMNS[j] if i == 0 else None)
    figure.suptitle(
        f"Training pairs: context positives within {neighbours.params['radius_km']:g} km, context "
        f"negatives by rule '{negatives.params['rule']}'; distance to the anchor (WGS84 geodesic)",
        fontsize=9,
    )
    figure.tight_layout()
    return figure


def retrieval_queries(manifest: pd.DataFrame, splits: pd.DataFrame, n_queries: int, seed: int) -> np.ndarray:
    """Up to ``n_queries`` distinct test rows with a species, drawn with ``seed`` (independent of any embedding)."""
    candidates = np.flatnonzero((split_of_rows(manifest, splits) == "test") & manifest["species"].notna().to_numpy())
    rng = np.random.default_rng(seed)
    return rng.choice(candidates, size=min(n_queries, candidates.size), replace=False)


def nearest_rows(embeddings: np.ndarray, queries: np.ndarray, observation_id, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar rows to each query, excluding the query's own observation.

    ``embeddings``: (N, D) features in manifest order; ``queries``: (Q,) rows; ``observation_id``: (N,) ids
    (missing: the row is its own observation). Returns rows (Q, k) int64 and their cosine similarities (Q, k)
    float32, most similar first. Raises ValueError when fewer than k rows are eligible.
    """
    features = np.asarray(embeddings, dtype=np.float32)
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)  # (N, D)
    similarity = features[queries] @ features.T  # (Q, N)
    codes = pd.factorize(pd.Series(observation_id, dtype=object))[0]  # (N,), -1 where missing
    queries = np.asarray(queries)
    own = (codes[None, :] == codes[queries, None]) & (codes[queries, None] >= 0)  # (Q, N)
    own[np.arange(queries.size), queries] = True
    if (~own).sum(axis=1).min(initial=k) < k:
        raise ValueError(f"fewer than k={k} rows outside a query's own observation")
    similarity[own] = -np.inf
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]  # (Q, k)
    return top, np.take_along_axis(similarity, top, axis=1)


def nearest_neighbours_figure(
    embeddings: np.ndarray, images: np.ndarray, manifest: pd.DataFrame, queries: np.ndarray, k: int = 6, title: str = ""
) -> plt.Figure:
    """Figure 6: one row per query: the query, then its ``k`` nearest rows by cosine similarity.

    ``embeddings``: (N, D); ``images``: uint8 (N, R, R, 3) cache; both in manifest order. ``queries``: (Q,)
    rows (see :func:`retrieval_queries`). A neighbour whose species differs from the query's gets a red frame;
    one without a species is not judged (no frame).
    """
    neighbours, similarity = nearest_rows(embeddings, queries, manifest["observation_id"], k)
    species = rank_names(manifest)
    labelled = manifest["species"].notna().to_numpy()
    figure, axes = plt.subplots(
        len(queries), k + 1, squeeze=False, figsize=((k + 1) * _CELL_INCHES, len(queries) * (_CELL_INCHES + 0.3))
    )
    for i, query in enumerate(queries):
        _show(axes[i, 0], images[query], species[query], "query" if i == 0 else None)
        for j, (row, cosine) in enumerate(zip(neighbours[i], similarity[i]), start=1):
            ax = axes[i, j]
            _show(ax, images[row], f"{species[row]}\ncos {cosine:.2f}", f"neighbour {j}" if i == 0 else None)
            if labelled[row] and species[row] != species[query]:
                _frame(ax, WRONG_SPECIES_COLOUR)
    prefix = f"{title}: " if title else ""
    figure.suptitle(f"{prefix}{k} nearest neighbours by cosine similarity (red frame: another species)", fontsize=9)
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> int:
    from geocontrast.data.cache import load_image_cache
    from geocontrast.data.manifest import read_manifest
    from geocontrast.geo.negatives import load_negative_table
    from geocontrast.geo.neighbours import load_neighbour_table

    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.examples", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="figure", required=True)
    pairs = commands.add_parser("pairs", help="figure 5: example training pairs")
    pairs.add_argument("--neighbours", type=Path, required=True, help="neighbour table (.npz)")
    pairs.add_argument("--negatives", type=Path, required=True, help="negative table (.npz)")
    pairs.add_argument("--n-anchors", type=int, default=4)
    pairs.add_argument("--augment-strength", type=float, default=1.0, help="BatchAugment strength")
    retrieval = commands.add_parser("neighbours", help="figure 6: nearest-neighbour retrieval of one embedding")
    retrieval.add_argument("--splits", type=Path, required=True, help="splits (.parquet), manifest order")
    retrieval.add_argument("--embeddings", type=Path, required=True, help="(N, D) features (.npy), manifest order")
    retrieval.add_argument("--strategy", required=True, help="strategy name, for the title")
    retrieval.add_argument("--run-seed", type=int, required=True, help="pretraining seed, for the title")
    retrieval.add_argument("--n-queries", type=int, default=5)
    retrieval.add_argument("--k", type=int, default=6, help="neighbours per query")
    for command in (pairs, retrieval):
        command.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
        command.add_argument("--cache", type=Path, required=True, help="image cache (.npy), manifest order")
        command.add_argument("--seed", type=int, default=0, help="draws the rows shown")
        command.add_argument("--out", type=Path, required=True, help="figure (.png; an .svg is written beside)")
    args = parser.parse_args(argv)

    manifest = read_manifest(args.manifest)
    images = load_image_cache(args.cache)
    try:
        if len(images) != len(manifest):
            raise ValueError(f"{args.cache}: {len(images)} rows, the manifest {len(manifest)}")
        if args.figure == "pairs":
            figure = example_pairs_figure(
                images,
                manifest,
                load_neighbour_table(args.neighbours),
                load_negative_table(args.negatives),
                args.n_anchors,
                args.seed,
                args.augment_strength,
            )
        else:
            embeddings = np.load(args.embeddings, mmap_mode="r")
            if embeddings.shape[0] != len(manifest):
                raise ValueError(f"{args.embeddings}: {embeddings.shape[0]} rows, the manifest {len(manifest)}")
            queries = retrieval_queries(manifest, pd.read_parquet(args.splits), args.n_queries, args.seed)
            figure = nearest_neighbours_figure(
                embeddings, images, manifest, queries, args.k, f"{args.strategy}, seed {args.run_seed}"
            )
    except ValueError as error:
        print(f"examples {args.figure}: {error}", file=sys.stderr)
        return 1
    save_figure(figure, args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
