"""Class-activation maps of every strategy's fine-tuned classifier on the same test photos (figure ``cam.png``).

The top row shows the photos (their class); below it each strategy has two rows: the map of the photo's own class
(``class_maps``) and the mean over the classes of its group at the coarser rank (CAM-Agg, ``rank_maps``), from the
``cam/<strategy>/seed<s>_l<pct>.npz`` files of :mod:`geocontrast.evaluate.cam`. Each map is upsampled to the
displayed photo, less its minimum, and divided by the largest range in its row (bright: the most evidence for the
class; a flat map stays dark); the prediction under each class map is in red where the classifier got it wrong.

CLI (the workflow's report_cam rule)::

    python -m geocontrast.report.cam --cams cam/augmented/seed0_l10.npz ... --strategies augmented ... \\
        --cache cache/64px.npy --out report/cam.png [--figure-width-in 7]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geocontrast.cli import exit_without_teardown
from geocontrast.report.style import plt, save_figure

ALPHA = 0.55  # the map over the photo: enough of both to see what lies under the bright part


def upsampled(maps: np.ndarray, size: int) -> np.ndarray:
    """(n, h, w) maps bilinearly upsampled to (n, size, size), each less its minimum and divided by the largest
    range of the n maps: the row's strongest contrast spans [0, 1], a flat map stays 0 (dark) instead of being
    stretched into a false hot spot."""
    import torch
    import torch.nn.functional as F

    large = F.interpolate(torch.from_numpy(maps[:, None]).float(), size=(size, size), mode="bilinear")[:, 0].numpy()
    low = large.min(axis=(1, 2), keepdims=True)
    span = (large.max(axis=(1, 2), keepdims=True) - low).max()
    return (large - low) / span if span > 0 else np.zeros_like(large)


def cam_figure(cams: dict[str, dict], photos: np.ndarray, figure_width_in: float = 7.0) -> plt.Figure:
    """``cams``: per strategy its loaded npz; ``photos``: (n, S, S, 3) uint8 display images of their ``rows``."""
    first = next(iter(cams.values()))
    n, size = len(photos), photos.shape[1]
    panel = figure_width_in / n
    rows = 1 + 2 * len(cams)
    figure, axes = plt.subplots(rows, n, figsize=(figure_width_in, panel * rows * 1.08), squeeze=False)
    for column, photo in enumerate(photos):
        axes[0, column].imshow(photo)
        axes[0, column].set_title(str(first["classes"][column]), fontsize=6)
    axes[0, 0].set_ylabel("photo", fontsize=7)
    for i, (strategy, record) in enumerate(cams.items()):
        labels = (f"{strategy}\n{record['class_rank']}", f"{strategy}\n{record['rank']} mean")
        for offset, (key, label) in enumerate(zip(("class_maps", "rank_maps"), labels)):
            row = 1 + 2 * i + offset
            for column, heat in enumerate(upsampled(record[key], size)):
                ax = axes[row, column]
                ax.imshow(photos[column])
                ax.imshow(heat, cmap="inferno", alpha=ALPHA, vmin=0, vmax=1)
                if offset == 0:  # inside the panel, so that it cannot be read as the row above's
                    right = record["predicted"][column] == record["classes"][column]
                    ax.text(
                        0.5,
                        0.02,
                        f"predicted {record['predicted'][column]}",
                        transform=ax.transAxes,
                        ha="center",
                        va="bottom",
                        fontsize=4.5,
                        color="black" if right else "red",
                        bbox={"facecolor": "white", "alpha": 0.75, "pad": 0.6, "linewidth": 0},
                    )
            axes[row, 0].set_ylabel(label, fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    figure.tight_layout(pad=0.2, h_pad=0.3, w_pad=0.1)
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.cam", description=__doc__.splitlines()[0])
    parser.add_argument("--cams", required=True, type=Path, nargs="+", help="maps of each strategy (.npz)")
    parser.add_argument("--strategies", required=True, nargs="+", help="the strategy of each --cams file")
    parser.add_argument("--cache", required=True, type=Path, help="image cache of the displayed photos (.npy)")
    parser.add_argument("--out", required=True, type=Path, help="figure .png (an .svg is written beside it)")
    parser.add_argument("--figure-width-in", type=float, default=7.0)
    args = parser.parse_args(argv)
    if len(args.cams) != len(args.strategies):
        parser.error("--strategies needs one name per --cams file")
    cams = {strategy: dict(np.load(path)) for strategy, path in zip(args.strategies, args.cams)}
    rows = next(iter(cams.values()))["rows"]
    if any(not np.array_equal(record["rows"], rows) for record in cams.values()):
        raise ValueError("the strategies' maps are of different photos: their cam jobs ran with other splits or seeds")
    photos = np.load(args.cache, mmap_mode="r")[rows]
    save_figure(cam_figure(cams, photos, args.figure_width_in), args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
