"""The maps' backdrop: land, lakes, coastlines and borders from package data, projected and clipped to the view."""

from __future__ import annotations

import socket

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from geocontrast.report import backdrop, maps


def drawn(ax: plt.Axes, gid: str):
    (collection,) = [c for c in ax.collections if c.get_gid() == gid]
    return collection


def on_land(ax: plt.Axes, projection: maps.EqualAreaProjection, lat: float, lon: float) -> bool:
    """Whether the rendered pixel at a point has the land colour rather than the water colour."""
    ax.figure.canvas.draw()
    pixels = np.asarray(ax.figure.canvas.buffer_rgba())[..., :3] / 255.0
    x, y = ax.transData.transform(np.column_stack(projection(lat, lon)))[0]
    colour = pixels[pixels.shape[0] - 1 - int(round(y)), int(round(x))]
    land, water = to_rgb(backdrop.LAND_COLOUR), to_rgb(backdrop.WATER_COLOUR)
    assert min(np.abs(colour - land).max(), np.abs(colour - water).max()) < 0.02, f"neither land nor water: {colour}"
    return bool(np.abs(colour - land).max() < np.abs(colour - water).max())


def backdrop_axes(lat0: float, lon0: float, half_km: float) -> tuple[plt.Axes, maps.EqualAreaProjection]:
    projection = maps.EqualAreaProjection(lat0, lon0)
    _, ax = plt.subplots()
    ax.set_xlim(-half_km, half_km)
    ax.set_ylim(-half_km, half_km)
    backdrop.draw_backdrop(ax, projection)
    return ax, projection


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test; the shape caches are emptied so that the files are read again."""

    def refuse(*args, **kwargs):
        raise AssertionError("the backdrop tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    backdrop.shorelines.cache_clear()
    backdrop.borders.cache_clear()


def test_backdrop_loads_without_network_and_draws_land_coast_and_borders(no_network):
    ax, projection = backdrop_axes(37.0, -119.0, 600.0)  # California and Nevada, the Pacific to the west
    assert len(drawn(ax, "land").get_paths()) > 0
    assert len(drawn(ax, "coastline").get_segments()) > 0 and len(drawn(ax, "borders").get_segments()) > 0
    assert on_land(ax, projection, 37.0, -119.0)  # the Sierra Nevada
    assert not on_land(ax, projection, 35.0, -124.0)  # the Pacific
    assert not on_land(ax, projection, 39.1, -120.03)  # Lake Tahoe: a lake drawn over the land
    plt.close("all")


def test_shapes_stay_inside_the_view_and_leave_the_axes_limits_alone():
    ax, _ = backdrop_axes(37.0, -119.0, 600.0)
    assert ax.get_xlim() == (-600.0, 600.0) and ax.get_ylim() == (-600.0, 600.0)
    limit = backdrop.VIEW_MARGIN * 600.0 + 1e-6
    for gid in ("land", "coastline", "borders"):
        collection = drawn(ax, gid)
        points = np.vstack([p.vertices for p in collection.get_paths()])
        assert np.abs(points).max() <= limit
    plt.close("all")


def test_polygons_cut_at_the_antimeridian_show_no_seam():
    # Chukotka, split at lon 180 in the data: the map's central meridian is that cut (x = 0).
    ax, projection = backdrop_axes(66.0, 180.0, 400.0)
    assert on_land(ax, projection, 66.5, 179.5) and on_land(ax, projection, 66.5, -179.5)
    for line in drawn(ax, "coastline").get_segments():
        along_the_cut = (np.abs(line[:-1, 0]) < 1e-6) & (np.abs(line[1:, 0]) < 1e-6)
        assert not along_the_cut.any()
    plt.close("all")


def test_land_around_the_antipode_fills_its_own_side_of_the_coast():
    # Centred on New Zealand, the antipode lies in Spain: Eurasia turns inside out unless the rim is added.
    ax, projection = backdrop_axes(-41.9, 173.2, 800.0)
    assert on_land(ax, projection, -43.5, 171.0)  # the South Island
    assert not on_land(ax, projection, -40.0, 165.0)  # the Tasman Sea
    assert not on_land(ax, projection, -41.9, 173.2 + 4.0)  # the Pacific east of Cook Strait
    plt.close("all")


def test_observation_map_of_an_antimeridian_set_draws_land_under_the_points():
    lat = np.array([-18.1, -16.6, 51.8, 52.0, -21.2])  # Fiji, the Aleutians, Tonga
    lon = np.array([178.4, 179.3, -176.6, 177.5, -175.2])
    manifest = pd.DataFrame({"lat": lat, "lon": lon, "has_coords": True, "species": "x"})
    figure = maps.observations_figure(manifest, np.array(["train"] * 5))
    (ax,) = figure.axes
    points = ax.collections[0]
    assert points.get_zorder() > drawn(ax, "land").get_zorder() and len(drawn(ax, "land").get_paths()) > 0
    projection = maps.EqualAreaProjection.centred_on(lat, lon)
    assert on_land(ax, projection, -17.8, 178.0)  # inland Viti Levu, away from the points
    plt.close(figure)
