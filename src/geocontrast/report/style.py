"""One look for every figure, and how figures are written (PNG at print resolution plus SVG)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from types import ModuleType

from geocontrast.atomic import atomic_path

DPI = 300
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
    "svg.fonttype": "none",  # keep text as text in SVG, editable in a vector editor
}
STRATEGY_COLOURS = {  # colour-blind safe (Okabe-Ito); the same strategy has the same colour in every figure
    "most_common": "#999999",
    "random_init": "#000000",
    "supervised": "#E69F00",
    "supervised_full": "#F0E442",
    "classifier": "#AA4499",
    "augmented": "#56B4E9",
    "context_pos": "#009E73",
    "context_pos_neg": "#0072B2",
    "triplet": "#D55E00",
    "autoencoder": "#CC79A7",
    "byol": "#882255",
    "simsiam": "#44AA99",
    "swav": "#DDCC77",
    "oracle": "#332288",
    "observation_pos": "#117733",  # Paul Tol's muted scheme for the rest
    "context_filtered": "#999933",
    "location_align": "#661100",
    "geo_pretext": "#6699CC",
}


@functools.cache
def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # figures are files; never open a window (also on headless cluster nodes)
    import matplotlib.pyplot

    matplotlib.pyplot.rcParams.update(STYLE)
    return matplotlib.pyplot


class _LazyPyplot:
    """``matplotlib.pyplot`` in this style, imported at its first use: the report modules import it at their top,
    and a CLI's --help or a caller that draws nothing loads no matplotlib."""

    def __getattr__(self, name: str):
        return getattr(_pyplot(), name)


plt = _LazyPyplot()


def strategy_colour(strategy: str) -> str:
    """The strategy's colour; a pretraining run at a label budget (``supervised_l50``) has its strategy's."""
    return STRATEGY_COLOURS.get(re.sub(r"_l\d+(\.\d+)?$", "", strategy), "#777777")


def save_figure(figure: plt.Figure, png_path: Path) -> list[Path]:
    """Write ``png_path`` (DPI dots per inch) and the same figure as SVG beside it; returns both paths.

    Each file is written to a temporary name and renamed, so a killed job never leaves a half figure.
    """
    png_path = Path(png_path)
    written = []
    for path in (png_path, png_path.with_suffix(".svg")):
        with atomic_path(path) as partial:
            figure.savefig(partial, dpi=DPI, format=path.suffix.lstrip("."))
        written.append(path)
    plt.close(figure)
    return written


def note_figure(note: str) -> plt.Figure:
    """A figure that only says why the figure it stands in for was not drawn (a rule's output must exist)."""
    figure, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True)
    return figure
