"""Figures 5-8 (example pairs, nearest neighbours, embedding map, maps) on a tiny hand-made world.

The world: 12 photos on the equator (where a degree of longitude is exactly π·a/180 km of WGS84 geodesic, a =
6378.137 km), one without coordinates, a hand-built neighbour table and negative table.
"""

from __future__ import annotations

import json
import shlex

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_rgb
from PIL import Image
from pyproj import Geod

from geocontrast.data.manifest import validate_manifest, write_manifest
from geocontrast.geo.negatives import NegativeTable, save_negative_table
from geocontrast.geo.neighbours import NeighbourTable, save_neighbour_table
from geocontrast.report import embedding, examples, maps
from geocontrast.runtime import normalise

KM_PER_EQUATOR_DEGREE = np.pi * 6378.137 / 180  # 111.3195 km: WGS84 semi-major axis, along the equator
LON = np.array([0.0, 0.03, 0.5, 0.53, 2.0, 1.0, 3.0, 3.04, 4.0, 4.02, np.nan, 6.0])
SPECIES = {"Alpha una": ("Alpha", "Aceae"), "Alpha duo": ("Alpha", "Aceae"), "Beta una": ("Beta", "Betaceae")}
ROW_SPECIES = [
    "Alpha una",
    "Alpha una",
    "Alpha duo",
    "Beta una",
    "Alpha una",
    "Beta una",
    "Alpha duo",
    None,
    "Beta una",
    "Beta una",
    "Alpha una",
    "Alpha duo",
]
RADIUS_KM = 5.0


def taxonomy_columns(species: list) -> dict:
    return {
        "species": species,
        "genus": [SPECIES[s][0] if s else None for s in species],
        "family": [SPECIES[s][1] if s else None for s in species],
    }


@pytest.fixture
def manifest(make_manifest):
    """12 rows on the equator; rows 8 and 9 are one observation, row 7 is unidentified, row 10 has no coordinates."""
    n = LON.size
    observations = [f"obs{i}" for i in range(n)]
    observations[9] = "obs8"
    return validate_manifest(
        make_manifest(
            n,
            lat=np.where(np.isnan(LON), np.nan, 0.0),
            lon=LON,
            observation_id=observations,
            **taxonomy_columns(ROW_SPECIES),
        )
    )


def neighbour_table(rows: dict[int, list[int]], n: int = LON.size) -> NeighbourTable:
    """A CSR table holding ``rows[i]`` as row i's positives; rows with coordinates and none are fallbacks."""
    counts = np.array([len(rows.get(i, [])) for i in range(n)])
    indices = np.array([j for i in range(n) for j in rows.get(i, [])], dtype=np.int32)
    has_coords = np.isfinite(LON)
    dist_km = np.abs(LON[indices] - LON[np.repeat(np.arange(n), counts)]) * KM_PER_EQUATOR_DEGREE
    return NeighbourTable(
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        indices,
        dist_km.astype(np.float32),
        has_coords & (counts == 0),
        has_coords,
        {"radius_km": RADIUS_KM, "k": 4},
    )


@pytest.fixture
def neighbours() -> NeighbourTable:
    return neighbour_table({0: [1], 1: [0], 2: [3], 3: [2], 6: [7], 7: [6], 8: [], 9: []})


@pytest.fixture
def negatives() -> NegativeTable:
    candidates = np.array([[(i + 5) % 10] for i in range(LON.size)], dtype=np.int32)  # (N, 1)
    return NegativeTable(candidates, np.zeros(LON.size, bool), 50.0, {"rule": "far"})


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (LON.size, 16, 16, 3), dtype=np.uint8)


def image_axes(figure: plt.Figure) -> list[plt.Axes]:
    return [ax for ax in figure.axes if ax.images]


def is_framed_red(ax: plt.Axes) -> bool:
    red = to_rgb(examples.WRONG_SPECIES_COLOUR)
    return all(spine.get_visible() and spine.get_edgecolor()[:3] == red for spine in ax.spines.values())


def assert_valid_png(path) -> None:
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG"
    assert path.with_suffix(".svg").stat().st_size > 0


# Figure 5: example pairs


def test_example_pair_rows_are_a_positive_a_random_negative_and_a_context_negative(manifest, neighbours, negatives):
    rows = examples.example_pair_rows(manifest, neighbours, negatives, n_anchors=3, seed=1)
    assert rows.shape == (3, 4)
    for anchor, positive, random_negative, context_negative in rows:
        assert positive in neighbours.indices[neighbours.indptr[anchor] : neighbours.indptr[anchor + 1]]
        assert manifest["observation_id"][random_negative] != manifest["observation_id"][anchor]
        assert context_negative in negatives.candidates[anchor]
    assert np.array_equal(rows, examples.example_pair_rows(manifest, neighbours, negatives, 3, seed=1))


def test_anchors_need_a_positive_within_the_radius(neighbours):
    anchors = examples.seeded_anchors(neighbours, n=10, seed=0)
    assert sorted(anchors) == [0, 1, 2, 3, 6, 7]


def test_example_pairs_figure_has_five_labelled_columns_per_anchor(manifest, neighbours, negatives, images):
    figure = examples.example_pairs_figure(images, manifest, neighbours, negatives, n_anchors=3, seed=1)
    axes = image_axes(figure)
    assert len(axes) == 3 * len(examples.PAIR_COLUMNS)
    assert [ax.get_title() for ax in axes[:5]] == list(examples.PAIR_COLUMNS)
    rows = examples.example_pair_rows(manifest, neighbours, negatives, 3, seed=1)
    shown = rows[:, [0, 0, 1, 2, 3]].ravel()  # the augmented view shows the anchor
    species = examples.rank_names(manifest)
    assert [ax.get_xlabel().split("\n")[0] for ax in axes] == list(species[shown])
    assert axes[0].images[0].get_array().shape == (16, 16, 3)
    plt.close(figure)


def test_distances_under_the_images_match_a_hand_computation(manifest, negatives, images):
    only_anchor_zero = neighbour_table({0: [1]})  # every other row with coordinates is a fallback
    figure = examples.example_pairs_figure(images, manifest, only_anchor_zero, negatives, n_anchors=4, seed=0)
    axes = image_axes(figure)
    assert len(axes) == 5
    # Row 1 at 0.03°E, the context negative row 5 at 1°E, on the equator from row 0 at 0°E.
    assert axes[2].get_xlabel() == f"Alpha una\n{0.03 * KM_PER_EQUATOR_DEGREE:.1f} km" == "Alpha una\n3.3 km"
    assert axes[4].get_xlabel().endswith("\n111.3 km")
    random_negative = examples.example_pair_rows(manifest, only_anchor_zero, negatives, 1, seed=0)[0, 2]
    expected = (
        "no coordinates" if np.isnan(LON[random_negative]) else f"{LON[random_negative] * KM_PER_EQUATOR_DEGREE:.1f} km"
    )
    assert axes[3].get_xlabel().split("\n")[1] == expected
    plt.close(figure)


def test_geodesic_km_is_nan_without_coordinates():
    km = examples.geodesic_km(0.0, 0.0, [0.0, np.nan], [1.0, 0.0])
    assert km[0] == pytest.approx(KM_PER_EQUATOR_DEGREE, rel=1e-9) and np.isnan(km[1])


def test_denormalise_inverts_the_augmentation_normalisation():
    pixels = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    restored = examples.denormalise(normalise(torch.from_numpy(pixels)))
    assert restored.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(restored, pixels / 255.0, atol=1e-5)


# Figure 6: nearest neighbours


def test_nearest_rows_rank_by_cosine_and_skip_the_query_observation():
    embeddings = np.array([[1, 0], [1, 0], [10, 1], [0, 1], [1, 1], [-1, 0]], dtype=np.float16)  # (6, 2)
    observation = ["a", "a", "b", None, "c", "d"]
    rows, similarity = examples.nearest_rows(embeddings, np.array([0]), observation, k=3)
    assert rows.tolist() == [[2, 4, 3]]  # row 1 is the query's own observation; length does not matter
    np.testing.assert_allclose(similarity[0], [10 / np.sqrt(101), 1 / np.sqrt(2), 0.0], atol=1e-3)


def test_wrong_species_neighbours_get_a_red_frame_exactly(manifest, images):
    embeddings = np.random.default_rng(3).normal(size=(LON.size, 4))
    queries = np.array([0, 8])
    figure = examples.nearest_neighbours_figure(embeddings, images, manifest, queries, k=5, title="augmented, seed 0")
    axes = np.array(image_axes(figure)).reshape(2, 6)
    rows, _ = examples.nearest_rows(embeddings, queries, manifest["observation_id"], 5)
    species = manifest["species"].to_numpy(object)
    for i, query in enumerate(queries):
        assert not is_framed_red(axes[i, 0])
        for j, row in enumerate(rows[i], start=1):
            wrong = pd.notna(species[row]) and species[row] != species[query]
            assert is_framed_red(axes[i, j]) == wrong, (query, row)
            assert axes[i, j].get_xlabel().split("\n")[0] == examples.rank_names(manifest)[row]
    assert 9 not in rows[1]  # row 9 shares query 8's observation
    assert figure._suptitle.get_text().startswith("augmented, seed 0: 5 nearest neighbours")
    plt.close(figure)


def test_retrieval_queries_are_labelled_test_rows_whatever_the_embedding(manifest):
    rows = np.arange(LON.size)
    split = np.where((rows % 2 == 0) | (rows == 7), "test", "train")
    splits = pd.DataFrame({"image_id": manifest["image_id"], "split": split})
    queries = examples.retrieval_queries(manifest, splits, n_queries=20, seed=0)
    assert sorted(queries) == [0, 2, 4, 6, 8, 10]  # not row 7: it has no species
    with pytest.raises(ValueError, match="manifest order"):
        examples.retrieval_queries(manifest, splits.iloc[::-1], 2, 0)


# Figure 7: embedding


@pytest.fixture
def labelled_world(make_manifest):
    """40 rows cycling through three species; rows 0-29 are test rows."""
    species = [list(SPECIES)[i % 3] for i in range(40)]
    manifest = validate_manifest(make_manifest(40, **taxonomy_columns(species)))
    splits = pd.DataFrame({"image_id": manifest["image_id"], "split": ["test"] * 30 + ["train"] * 10})
    codes = np.arange(40) % 3
    embeddings = np.eye(3)[codes] * 5 + np.random.default_rng(0).normal(size=(40, 3))  # (40, 3) clustered
    return manifest, splits, embeddings.astype(np.float16)


def test_embedding_figure_has_a_genus_and_a_family_panel_with_legends(labelled_world):
    manifest, splits, features = labelled_world
    figure = embedding.embedding_figure(features, manifest, splits, "context_pos, seed 1", max_points=20)
    assert len(figure.axes) == 2
    genus_ax, family_ax = figure.axes
    assert genus_ax.get_title() == "coloured by genus (2 taxa)"
    assert family_ax.get_title() == "coloured by family (2 taxa)"
    assert [t.get_text() for t in genus_ax.get_legend().get_texts()] == ["Alpha", "Beta"]
    assert [t.get_text() for t in family_ax.get_legend().get_texts()] == ["Aceae", "Betaceae"]
    assert sum(len(c.get_offsets()) for c in genus_ax.collections) == 20  # at most max_points test rows
    assert genus_ax.get_xlabel() == "t-SNE 1" and genus_ax.get_ylabel() == "t-SNE 2"
    assert "context_pos, seed 1: t-SNE of 20 test images" in figure._suptitle.get_text()
    plt.close(figure)


def test_rare_and_unidentified_taxa_share_the_grey_colour():
    names = np.array(["a"] * 3 + ["b"] * 2 + ["c"] + [examples.UNIDENTIFIED] * 4)
    colours = embedding.category_colours(names, max_named=2)
    assert colours["a"] != colours["b"]
    assert colours["c"] == colours[examples.UNIDENTIFIED] == embedding.OTHER_COLOUR
    assert embedding.OTHER_COLOUR not in (colours["a"], colours["b"])


def test_tsne_is_seeded(labelled_world):
    _, _, features = labelled_world
    first = embedding.tsne_coordinates(features[:12], seed=4)
    assert first.shape == (12, 2)
    np.testing.assert_array_equal(first, embedding.tsne_coordinates(features[:12], seed=4))


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
def truth() -> maps.RangeGrid:
    lat, lon = np.linspace(-1.0, 1.0, 5), np.linspace(-0.5, 6.5, 8)
    suitability = np.random.default_rng(5).random((3, 5, 8)).astype(np.float32)
    land = np.ones((5, 8), bool)
    land[0, 0] = False
    return maps.RangeGrid(lat, lon, suitability, np.array(list(SPECIES)), "true suitability", maps.TRUTH_UNIT, land)


def fake_prior(lat, lon):
    """(n, 3) probabilities that grow eastward (species 0), northward (1) and are flat (2)."""
    lat, lon = np.asarray(lat), np.asarray(lon)
    return np.stack([lon / 10, (lat + 1) / 2, np.full(lat.shape, 0.3)], axis=1)


def colour_bar_labels(figure: plt.Figure) -> list[str]:
    return [ax.get_ylabel() for ax in figure.axes if ax.get_label() == "<colorbar>"]


def test_prior_grid_evaluates_the_callable_at_the_cell_centres(truth):
    grid = maps.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    assert grid.values.shape == (3, 5, 8)
    assert grid.values[0, 2, 7] == pytest.approx(truth.lon[7] / 10)
    assert grid.values[1, 4, 0] == pytest.approx(1.0)


def test_range_map_puts_the_prior_beside_the_true_range(manifest, truth):
    predicted = maps.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    figure = maps.range_figure(manifest, predicted, ["Alpha una", "Beta una"], truth)
    panels = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == [
        "Alpha una: geo prior",
        "Alpha una: true suitability",
        "Beta una: geo prior",
        "Beta una: true suitability",
    ]
    assert colour_bar_labels(figure) == [maps.PRIOR_UNIT, maps.TRUTH_UNIT] * 2
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
    predicted = maps.prior_points(probs, list(SPECIES), lat, lon)
    figure = maps.range_figure(manifest, predicted, ["Alpha duo"])
    panels = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == ["Alpha duo: geo prior at observed locations"]
    assert colour_bar_labels(figure) == [maps.PRIOR_UNIT]
    assert len(panels[0].collections[0].get_offsets()) == 11  # every row with coordinates
    plt.close(figure)


def test_range_map_refuses_a_species_the_prior_does_not_know(manifest, truth):
    predicted = maps.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    with pytest.raises(ValueError, match="Gamma"):
        maps.range_figure(manifest, predicted, ["Gamma nova"], truth)


def test_default_range_species_are_the_most_observed_known_ones(manifest):
    known = np.array(["Alpha una", "Alpha duo", "Beta una"])
    assert maps.default_range_species(manifest, [known, known[1:]], n=2) == ["Beta una", "Alpha duo"]


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
    maps.save_range_grid(maps.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon), paths["grid.npz"])
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
    grid, outline = maps.load_truth(files["truth"])
    assert grid.unit == maps.TRUTH_UNIT and grid.values.shape == (3, 5, 8) and outline.shape == (4, 2)
    np.testing.assert_array_equal(grid.mask, truth.mask)


def test_range_grid_file_round_trips(files, truth):
    grid = maps.load_range_grid(files["grid"])
    expected = maps.prior_grid(fake_prior, list(SPECIES), truth.lat, truth.lon)
    np.testing.assert_allclose(grid.values, expected.values)
    assert grid.species.tolist() == list(SPECIES) and grid.mask is None
