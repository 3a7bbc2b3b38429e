"""Figure 7: a 2-D t-SNE map of one strategy's embedding of test photos, coloured by genus and by family.

The features are L2-normalised first (so Euclidean t-SNE distances order pairs as cosine similarity does, the
similarity the retrieval figure and the kNN probe use), and at most ``max_points`` test rows are drawn, with a
seed, because t-SNE grows as N log N and a few thousand points are already hard to read.

CLI (one figure per strategy and seed; writes ``--out`` as PNG at 300 dpi and an SVG beside it)::

    python -m geocontrast.report.embedding --manifest manifest.parquet --splits splits.parquet \\
        --embeddings embeddings/<strategy>/seed<seed>.npy --strategy <strategy> --run-seed <seed> \\
        --out embedding.png [--max-points 1000] [--perplexity 30] [--seed 0] [--threads 1]

``--embeddings``: (N, D) features in manifest order; ``--strategy`` and ``--run-seed`` name the run in the
title; ``--seed`` draws the test rows and seeds t-SNE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from geocontrast.cli import exit_without_teardown
from geocontrast.report.examples import UNIDENTIFIED, rank_names, split_of_rows
from geocontrast.report.style import plt, save_figure

RANKS = ("genus", "family")
MAX_NAMED = 20  # legend entries per panel; rarer taxa share one grey "other" entry
OTHER_COLOUR = "#BBBBBB"


def tsne_coordinates(features: np.ndarray, seed: int, perplexity: float = 30.0, threads: int = 1) -> np.ndarray:
    """(n, 2) t-SNE coordinates of (n, D) features (L2-normalised first), seeded, PCA-initialised.

    The perplexity is capped at (n - 1) / 3 so that small sets still work. ``threads`` caps OpenMP: on a busy
    2-core machine two spinning OpenMP threads ran 800 points 8x slower than one.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype=np.float32)
    if features.shape[0] < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {features.shape[0]}")
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    perplexity = min(perplexity, (features.shape[0] - 1) / 3)
    with threadpool_limits(threads):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def category_colours(names: np.ndarray, max_named: int = MAX_NAMED) -> dict[str, str]:
    """Colour per name: the ``max_named`` most frequent (ties by name) get distinct colours, the rest and
    "unidentified" the grey :data:`OTHER_COLOUR`."""
    counts = pd.Series(names).value_counts()
    counts = counts.drop(UNIDENTIFIED, errors="ignore")
    ordered = sorted(counts.index, key=lambda name: (-counts[name], name))
    named = ordered[:max_named]
    # tab10's colours are the most distinct; tab20 adds a lighter shade of each for up to 20.
    palette = plt.get_cmap("tab10" if len(named) <= 10 else "tab20").colors
    colours = {name: OTHER_COLOUR for name in (*ordered, UNIDENTIFIED)}
    colours.update({name: palette[i % len(palette)] for i, name in enumerate(named)})
    return colours


def _scatter_by(ax: plt.Axes, xy: np.ndarray, names: np.ndarray, rank: str) -> None:
    """Points coloured by taxon at ``rank``, named taxa in the legend (most frequent first), the rest as one entry."""
    colours = category_colours(names)
    named = [name for name, colour in colours.items() if colour != OTHER_COLOUR]
    other = np.array([colours[name] == OTHER_COLOUR for name in names])
    for name in named:
        at = names == name
        ax.scatter(xy[at, 0], xy[at, 1], s=6, color=colours[name], label=name, linewidths=0)
    if other.any():
        ax.scatter(
            xy[other, 0],
            xy[other, 1],
            s=6,
            color=OTHER_COLOUR,
            linewidths=0,
            label=f"other or unidentified ({other.sum()})",
        )
    ax.set_title(f"coloured by {rank} ({len(set(names) - {UNIDENTIFIED})} taxa)")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        markerscale=2,
        fontsize=6,
        title=rank,
        title_fontsize=7,
    )


def embedding_figure(
    embeddings: np.ndarray,
    manifest: pd.DataFrame,
    splits: pd.DataFrame,
    title: str,
    max_points: int = 1000,
    seed: int = 0,
    perplexity: float = 30.0,
    threads: int = 1,
) -> plt.Figure:
    """Figure 7: t-SNE of up to ``max_points`` seeded test rows; one panel per rank in :data:`RANKS`.

    ``embeddings``: (N, D) features in manifest order; ``splits``: the splits frame in manifest order;
    ``title``: names the run (e.g. "context_pos, seed 0").
    """
    test = np.flatnonzero(split_of_rows(manifest, splits) == "test")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(test, size=min(max_points, test.size), replace=False))
    xy = tsne_coordinates(np.asarray(embeddings)[rows], seed, perplexity, threads)  # (n, 2)
    figure, axes = plt.subplots(1, len(RANKS), figsize=(4.6 * len(RANKS), 3.8))
    for ax, rank in zip(axes, RANKS):
        _scatter_by(ax, xy, rank_names(manifest, rank)[rows], rank)
    figure.suptitle(f"{title}: t-SNE of {rows.size} test images (cosine geometry)")
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> int:
    from geocontrast.data.manifest import read_manifest

    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.embedding", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--splits", type=Path, required=True, help="splits (.parquet), manifest order")
    parser.add_argument("--embeddings", type=Path, required=True, help="(N, D) features (.npy), manifest order")
    parser.add_argument("--strategy", required=True, help="strategy name, for the title")
    parser.add_argument("--run-seed", type=int, required=True, help="pretraining seed, for the title")
    parser.add_argument("--max-points", type=int, default=1000, help="test rows drawn at most")
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0, help="draws the rows and seeds t-SNE")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads of t-SNE")
    parser.add_argument("--out", type=Path, required=True, help="figure (.png; an .svg is written beside)")
    args = parser.parse_args(argv)

    manifest = read_manifest(args.manifest)
    embeddings = np.load(args.embeddings, mmap_mode="r")
    try:
        if embeddings.shape[0] != len(manifest):
            raise ValueError(f"{args.embeddings}: {embeddings.shape[0]} rows, the manifest {len(manifest)}")
        figure = embedding_figure(
            embeddings,
            manifest,
            pd.read_parquet(args.splits),
            f"{args.strategy}, seed {args.run_seed}",
            args.max_points,
            args.seed,
            args.perplexity,
            args.threads,
        )
    except ValueError as error:
        print(f"embedding: {error}", file=sys.stderr)
        return 1
    save_figure(figure, args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
