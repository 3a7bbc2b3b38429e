"""Figure 8 (maps) on the tiny equator world of report_world.py, and every figure's CLI writing a valid PNG and SVG."""

from __future__ import annotations

import json
import shlex

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pyproj import Geod
from report_world import KM_PER_EQUATOR_DEGREE, LON, RADIUS_KM, SPECIES

from geocontrast.data.manifest import write_manifest
from geocontrast.geo.negatives import save_negative_table
from geocontrast.geo.neighbours import save_neighbour_table
from geocontrast.report import embedding, examples, maps, ranges


def assert_valid_png(path) -> None:
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG"
    assert path.with_suffix(".svg").stat().st_size > 0


# Figure 8: maps


def projected_area_km2(projection, lat_min, lat_max, lon_min, lon_max, n=200) -> float:
    """Shoelace area of a lat/lon cell's projected outline, its edges densified (parallels curve when projected)."""
    t = np.linspace(0.0, 1.0, n, endpoint=False)
    lat = np.concatenate(
        [np.full(n, lat_min), lat_min + (lat_max - lat_min) * t, np.full(n, lat_max), lat_max - (lat_max - lat_min) * t]
    )
    lon = np.concatenate(
        [lon_min + (lon_max - lon_min) * t, np.full(n, lon_max), lon_max - (lon_max - lon_min) * t, np.full(n, lon_min)]
    )
    x, y = projection(lat, lon)
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def test_map_projection_is_equal_area():
    projection = maps.EqualAreaProjection(36.0, -119.0)  # centred on the data, as for California
    equator = projected_area_km2(projection, -0.5, 0.5, -119.5, -118.5)
    forty_north = projected_area_km2(projection, 39.5, 40.5, -119.5, -118.5)
    assert forty_north / equator == pytest.approx(np.cos(np.radians(40.0)), rel=0.01)
    ellipsoid_area_km2 = (
        abs(Geod(ellps="WGS84").polygon_area_perimeter([-119.5, -118.5, -118.5, -119.5], [39.5, 39.5, 40.5, 40.5])[0])
        / 1e6
    )
    assert forty_north == pytest.approx(ellipsoid_area_km2, rel=1e-3)


def test_projection_is_centred_on_the_data_across_the_antimeridian():
    projection = maps.EqualAreaProjection.centred_on([10.0, 10.0, np.nan], [179.0, -179.0, 0.0])
    assert projection.lat0 == pytest.approx(10.0, abs=0.01)
    assert abs(projection.lon0) == pytest.approx(180.0, abs=1e-6)
    x, y = projection([10.0, 10.0], [179.0, -179.0])
    assert x[0] == pytest.approx(-x[1]) and y[0] == pytest.approx(y[1])  # symmetric about the centre
    assert abs(x[0]) == pytest.approx(KM_PER_EQUATOR_DEGREE * np.cos(np.radians(10.0)), rel=0.01)


def test_geodesic_circle_points_lie_at_the_radius():
    lat, lon = maps.geodesic_circle(40.0, -120.0, 5.0, n_points=37)
    distance_m = Geod(ellps="WGS84").inv(np.full(37, -120.0), np.full(37, 40.0), lon, lat)[2]
    np.testing.assert_allclose(distance_m, 5000.0, atol=1e-3)
    assert (lat[0], lon[0]) == pytest.approx((lat[-1], lon[-1]))


def test_observations_map_counts_rows_without_coordinates_in_the_title(manifest):
    split = np.array(["train", "val", "test"] * 4)
    figure = maps.observations_figure(manifest, split, outline=np.array([[-1, -1], [7, -1], [7, 1], [-1, 1]]))
    (ax,) = figure.axes
    assert ax.get_title() == "11 photos by split; 1 without coordinates (not shown)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train (4)", "val (3)", "test (4)"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (km)", "y (km)")
    assert len(ax.lines) == 1  # the outline
    plt.close(figure)


def test_neighbour_radius_map_has_an_overview_and_one_zoom_per_anchor(manifest, neighbours):
    figure = maps.neighbour_radius_figure(manifest, neighbours, n_anchors=2, seed=0)
    overview, *zooms = figure.axes
    assert overview.get_title() == "anchors" and len(zooms) == 2
    for ax in zooms:
        assert ax.get_title().endswith(": 1 positive within 5 km")
        (circle,) = ax.lines
        x, y = circle.get_data()
        assert np.ptp(x) == pytest.approx(2 * RADIUS_KM, rel=0.01) and np.ptp(y) == pytest.approx(
            2 * RADIUS_KM, rel=0.01
        )
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (km)", "y (km)")
    plt.close(figure)


@pytest.fixture
def truth() -> ranges.RangeGrid:
    lat, lon = np.linspace(-1.0, 1.0, 5), np.linspace(-0.5, 6.5, 8)
    suitability = np.random.default_rng(5).random((3, 5, 8)).astype(np.float32)
    land = np.ones((5, 8), bool)
    land[0, 0] = False
    return ranges.RangeGrid(lat, lon, suitability, np.array(list(SPECIES)), "true suitability", ranges.TRUTH_UNIT, land)


def fake_prior(lat, lon):
    """(n, 3) probabilities that grow eastward (species 0), northward (1) and are flat (2)."""
    lat, lon = np.asarray(lat), np.asarray(lon)
    return np.stack([lon / 10, (lat + 1) / 2, np.full(lat.shape, 0.3)], axis=1)


def colour_bar_labels(figure: plt.Figure) -> list[str]:
    return [ax.get_ylabel() for ax in figure.axes if ax.get_label() == "<colorbar>"]


def test_prior_grid_evaluates_the_callable_at_the_cell_centres(truth):
    grid = ranges.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    assert grid.values.shape == (3, 5, 8)
    assert grid.values[0, 2, 7] == pytest.approx(truth.lon[7] / 10)
    assert grid.values[1, 4, 0] == pytest.approx(1.0)


def test_range_map_puts_the_prior_beside_the_true_range(manifest, truth):
    predicted = ranges.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    figure = maps.range_figure(manifest, predicted, ["Alpha una", "Beta una"], truth)
    panels = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == [
        "Alpha una: geo prior",
        "Alpha una: true suitability",
        "Beta una: geo prior",
        "Beta una: true suitability",
    ]
    assert colour_bar_labels(figure) == [ranges.PRIOR_UNIT, ranges.TRUTH_UNIT] * 2
    assert all((ax.get_xlabel(), ax.get_ylabel()) == ("x (km)", "y (km)") for ax in panels)
    mesh = panels[1].collections[0]
    assert np.ma.count_masked(mesh.get_array()) == 1  # the one sea cell of the truth is not drawn
    # Each layer's colours span its own drawn values (a nearly flat prior still shows where it is higher).
    assert panels[0].collections[0].get_clim() == pytest.approx((truth.lon[0] / 10, truth.lon[-1] / 10))
    land = truth.values[0][truth.mask]
    assert mesh.get_clim() == pytest.approx((land.min(), land.max()))
    plt.close(figure)


def test_range_map_without_truth_omits_the_true_range(manifest):
    lat = manifest["lat"].to_numpy(np.float64, na_value=np.nan)
    lon = manifest["lon"].to_numpy(np.float64, na_value=np.nan)
    probs = np.where(np.isfinite(lat)[:, None], fake_prior(np.nan_to_num(lat), np.nan_to_num(lon)), 1.0)
    predicted = ranges.prior_points(probs, list(SPECIES), lat, lon)
    figure = maps.range_figure(manifest, predicted, ["Alpha duo"])
    panels = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == ["Alpha duo: geo prior at observed locations"]
    assert colour_bar_labels(figure) == [ranges.PRIOR_UNIT]
    assert len(panels[0].collections[0].get_offsets()) == 11  # every row with coordinates
    plt.close(figure)


def test_range_map_refuses_a_species_the_prior_does_not_know(manifest, truth):
    predicted = ranges.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    with pytest.raises(ValueError, match="Gamma"):
        maps.range_figure(manifest, predicted, ["Gamma nova"], truth)


def test_default_range_species_are_the_most_observed_known_ones(manifest):
    known = np.array(["Alpha una", "Alpha duo", "Beta una"])
    assert ranges.default_range_species(manifest, [known, known[1:]], n=2) == ["Beta una", "Alpha duo"]


# CLIs: every figure renders to a valid PNG (and SVG)


@pytest.fixture
def files(tmp_path, manifest, neighbours, negatives, images, truth):
    paths = {
        name: tmp_path / name
        for name in (
            "manifest.parquet",
            "splits.parquet",
            "cache.npy",
            "neighbours.npz",
            "negatives.npz",
            "embeddings.npy",
            "truth.npz",
            "grid.npz",
            "probs.npy",
            "prior.json",
        )
    }
    write_manifest(manifest, paths["manifest.parquet"])
    pd.DataFrame({"image_id": manifest["image_id"], "split": ["test", "train"] * 6}).to_parquet(paths["splits.parquet"])
    np.save(paths["cache.npy"], images)
    save_neighbour_table(neighbours, paths["neighbours.npz"])
    save_negative_table(negatives, paths["negatives.npz"])
    np.save(paths["embeddings.npy"], np.random.default_rng(0).normal(size=(LON.size, 8)).astype(np.float16))
    np.savez(
        paths["truth.npz"],
        lat=truth.lat,
        lon=truth.lon,
        land=truth.mask,
        suitability=truth.values,
        species=truth.species,
        outline=np.array([[-1.0, -1.0], [7.0, -1.0], [7.0, 1.0], [-1.0, 1.0]]),
    )
    ranges.save_range_grid(ranges.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon), paths["grid.npz"])
    probs = np.where(np.isfinite(LON)[:, None], fake_prior(np.zeros(LON.size), np.nan_to_num(LON)), 1.0)  # (N, 3)
    np.save(paths["probs.npy"], probs.astype(np.float32))
    paths["prior.json"].write_text(json.dumps({"classes": list(SPECIES)}))
    return {name.split(".")[0]: str(path) for name, path in paths.items()}


@pytest.mark.parametrize(
    "module, argv",
    [
        (
            examples,
            (
                "pairs --manifest {manifest} --cache {cache} --neighbours {neighbours} --negatives {negatives} "
                "--n-anchors 2"
            ),
        ),
        (
            examples,
            (
                "neighbours --manifest {manifest} --splits {splits} --cache {cache} --embeddings {embeddings} "
                "--strategy augmented --run-seed 0 --n-queries 2 --k 3"
            ),
        ),
        (
            embedding,
            ("--manifest {manifest} --splits {splits} --embeddings {embeddings} --strategy augmented --run-seed 0"),
        ),
        (maps, "splits --manifest {manifest} --splits {splits} --truth {truth}"),
        (maps, "radius --manifest {manifest} --neighbours {neighbours} --n-anchors 2"),
        (maps, "ranges --manifest {manifest} --prior-grid {grid} --truth {truth} --n-species 2"),
        (maps, "ranges --manifest {manifest} --prior-probs {probs} --prior-json {prior} --species 'Beta una'"),
    ],
    ids=["pairs", "neighbours", "embedding", "map-splits", "map-radius", "map-ranges-grid", "map-ranges-points"],
)
def test_cli_writes_a_valid_png_and_svg(files, tmp_path, module, argv):
    out = tmp_path / "figure.png"
    assert module.main([*shlex.split(argv.format(**files)), "--out", str(out)]) == 0
    assert_valid_png(out)


def test_truth_loads_as_a_range_grid_with_its_outline(files, truth):
    grid, outline = ranges.load_truth(files["truth"])
    assert grid.unit == ranges.TRUTH_UNIT and grid.values.shape == (3, 5, 8) and outline.shape == (4, 2)
    np.testing.assert_array_equal(grid.mask, truth.mask)


def test_range_grid_file_round_trips(files, truth):
    grid = ranges.load_range_grid(files["grid"])
    expected = ranges.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    np.testing.assert_allclose(grid.values, expected.values)
    assert grid.species.tolist() == list(SPECIES) and grid.mask is None
