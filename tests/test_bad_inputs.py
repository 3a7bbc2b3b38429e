"""Bad inputs real collections contain, from broken photos to impossible configs: each fails naming the file, row
or key, or (photos that are valid, only unusual) is cached as correct RGB. The photos and CSV files are the
committed corpus in tests/data/bad/ (tests/data/bad/make_corpus.py wrote them and describes each); tables,
splits and configs are built here, a few rows each."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from test_sources_api_csv import csv_config
from test_workflow import snakemake

from geocontrast.data import csv_source
from geocontrast.data.cache import CorruptImageError, build_image_cache
from geocontrast.data.manifest import ManifestError, summarise_manifest, validate_manifest
from geocontrast.data.splits import make_splits
from geocontrast.evaluate.protocols import eval_rows, knn_probabilities, linear_probe, score
from geocontrast.evaluate.settings import KnnSettings, LinearSettings
from geocontrast.geo.neighbours import neighbour_table

BAD = REPO / "tests" / "data" / "bad"
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.json")


def cached(tmp_path, name: str, resolution: int = 24) -> np.ndarray:
    """The corpus photo ``name`` as the image cache stores it."""
    build_image_cache([BAD / name], resolution, tmp_path / "cache.npy", progress=False)
    return np.load(tmp_path / "cache.npy")[0].astype(np.int16)


# --- photos that cannot be decoded: the error names the row and the file ----------------------------------------


@pytest.mark.parametrize("name", ["truncated.jpg", "empty.jpg", "error_page.jpg"])
def test_undecodable_photo_fails_naming_its_row_and_file(tmp_path, name):
    with pytest.raises(CorruptImageError, match=rf"1 of 2 images could not be decoded:\n  row 1: \S*{name}"):
        build_image_cache([BAD / "good.jpg", BAD / name], 8, tmp_path / "cache.npy", progress=False)


# --- valid photos in unusual encodings: cached as the RGB a viewer shows -----------------------------------------


def test_cmyk_jpeg_is_cached_as_its_rgb_colour(tmp_path):
    assert np.abs(cached(tmp_path, "cmyk.jpg") - (200, 40, 90)).max() <= 3


def test_greyscale_jpeg_is_cached_with_three_equal_channels(tmp_path):
    assert np.abs(cached(tmp_path, "grey.jpg") - 77).max() <= 1


def test_16_bit_greyscale_png_keeps_its_tones_instead_of_clipping_to_white(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 24).astype(np.uint16), (24, 1))
    image = cached(tmp_path, "grey16.png")
    np.testing.assert_array_equal(image, np.repeat((ramp >> 8)[..., None], 3, axis=2))


def test_48_bit_rgb_png_is_cached_as_its_8_bit_colour(tmp_path):
    assert np.all(cached(tmp_path, "rgb16.png") == (200, 40, 90))


def test_exif_rotated_photo_is_cached_upright(tmp_path):
    image = cached(tmp_path, "exif_rotated.jpg")  # stored red on top; orientation 6 turns it to the right
    assert image[:, :10, 0].max() < 30 and image[:, 14:, 0].min() > 225


# --- coordinates, ids and labels of a user's CSV: errors name the file, row and column --------------------------


def csv_error(tmp_path, name: str) -> str:
    with pytest.raises(csv_source.CsvSourceError) as error:
        csv_source.csv_photos(csv_config(BAD / name), tmp_path / "images", progress=False)
    message = str(error.value)
    assert message.startswith(f"{BAD / name}: ")
    return message


def test_csv_nan_coordinates_are_kept_as_a_photo_without_coordinates(tmp_path):
    photos = csv_source.csv_photos(csv_config(BAD / "coords_nan.csv"), tmp_path / "images", progress=False)
    assert validate_manifest(photos, tmp_path / "images")["has_coords"].tolist() == [True, False]


def test_csv_nan_in_one_coordinate_names_row_and_column(tmp_path):
    assert "row 3, column 'lat': 'NaN' while lon is given; give both or neither" in csv_error(
        tmp_path, "coords_half_nan.csv"
    )


def test_csv_infinite_coordinates_name_row_and_column(tmp_path):
    message = csv_error(tmp_path, "coords_inf.csv")
    assert "row 2, column 'lat': inf is outside [-90, 90]" in message
    assert "row 3, column 'lon': -inf is outside [-180, 180]" in message


def test_csv_out_of_range_coordinates_name_row_and_column(tmp_path):
    message = csv_error(tmp_path, "coords_out_of_range.csv")
    assert "row 2, column 'lat': 91 is outside [-90, 90]" in message
    assert "row 3, column 'lon': -181 is outside [-180, 180]" in message


def test_csv_swapped_coordinates_name_the_row_with_a_hint(tmp_path):
    assert "row 3, column 'lat': -122.4 is outside [-90, 90]; lat and lon look swapped (lon is 37.8)" in csv_error(
        tmp_path, "coords_swapped.csv"
    )


def test_csv_duplicate_image_ids_name_both_rows(tmp_path):
    assert "row 4, column 'image_id': 'p1' is already the id of row 2" in csv_error(tmp_path, "duplicate_ids.csv")


def test_csv_blank_species_are_unlabelled_photos_not_a_species_named_blank(tmp_path):
    photos = csv_source.csv_photos(csv_config(BAD / "empty_species.csv"), tmp_path / "images", progress=False)
    manifest = validate_manifest(photos, tmp_path / "images")
    assert manifest["species"].isna().tolist() == [False, True, True]
    assert summarise_manifest(manifest)["n_species"] == 1


# --- the same problems in a source table (any source): the manifest names the row and image_id ------------------


@pytest.mark.parametrize(
    ("column", "value", "named"),
    [
        ("lat", np.inf, "lat outside [-90, 90] in 1 row: row 1 (image_id 'img1', lat inf)"),
        ("lon", -np.inf, "lon outside [-180, 180] in 1 row: row 1 (image_id 'img1', lon -inf)"),
        ("lat", -122.4, "lat outside [-90, 90] in 1 row: row 1 (image_id 'img1', lat -122.4)"),
    ],
)
def test_manifest_impossible_coordinate_names_row_and_image_id(make_manifest, column, value, named):
    table = make_manifest(3)
    table.loc[1, column] = value
    with pytest.raises(ManifestError) as error:
        validate_manifest(table)
    assert named in str(error.value)


def test_manifest_nan_coordinates_are_kept_and_flagged(make_manifest):
    manifest = validate_manifest(make_manifest(2, lat=[37.0, np.nan], lon=[-122.0, np.nan]))
    assert manifest["has_coords"].tolist() == [True, False]


def test_manifest_duplicate_ids_name_the_rows(make_manifest):
    with pytest.raises(ManifestError, match=r"duplicate image_id: 'a' at rows \[0, 2\]"):
        validate_manifest(make_manifest(3, image_id=["a", "b", "a"]))


def test_manifest_empty_species_strings_are_unlabelled(make_manifest):
    assert validate_manifest(make_manifest(3, species=["Quercus agrifolia", "", "  "]))["species"].notna().sum() == 1


# --- label structure: rare species and small label budgets are placed, never a crash -----------------------------


def flora(make_manifest, images_per_species: dict[str, int]) -> pd.DataFrame:
    """One image per observation, species sharing one genus, scattered over California."""
    species = [name for name, n in images_per_species.items() for _ in range(n)]
    rng = np.random.default_rng(0)
    return validate_manifest(
        make_manifest(
            len(species),
            species=species,
            lat=rng.uniform(33, 41, len(species)),
            lon=rng.uniform(-123, -115, len(species)),
        )
    )


def evaluate_knn(manifest: pd.DataFrame, splits: pd.DataFrame, pct: float) -> dict:
    rows = eval_rows(manifest, splits, pct)
    features = np.random.default_rng(0).normal(size=(len(manifest), 8))
    probs = knn_probabilities(
        features[rows.train], rows.codes[rows.train], features[rows.test], rows.n_classes, KnnSettings()
    )
    return score(probs, rows)


def test_species_with_one_image_goes_to_train_and_evaluation_still_scores(make_manifest):
    manifest = flora(make_manifest, {"Quercus agrifolia": 20, "Quercus lobata": 20, "Quercus rara": 1})
    splits = make_splits(manifest)
    assert splits["split"][manifest["species"] == "Quercus rara"].tolist() == ["train"]
    assert splits["labelled_1"][manifest["species"] == "Quercus rara"].all()  # min_labelled_per_species
    result = evaluate_knn(manifest, splits, 10)
    assert 0 <= result["top1"] <= 1 and 0 <= result["macro_top1"] <= 1


def test_label_budget_smaller_than_the_number_of_species_still_trains_the_probes(make_manifest):
    manifest = flora(make_manifest, {"Quercus agrifolia": 40, **{f"Quercus s{i}": 6 for i in range(5)}})
    splits = make_splits(manifest, label_fractions=[0.05], min_labelled_per_species=0)
    rows = eval_rows(manifest, splits, 5)
    assert 0 < rows.train.size < rows.n_classes
    features = np.random.default_rng(0).normal(size=(len(manifest), 8)).astype(np.float32)
    probs, _ = linear_probe(
        features[rows.train],
        rows.codes[rows.train],
        features[rows.val],
        rows.codes[rows.val],
        features[rows.test],
        rows.n_classes,
        LinearSettings(max_iter=5),
    )
    assert probs.shape == (rows.test.size, rows.n_classes)
    assert 0 <= evaluate_knn(manifest, splits, 5)["top1"] <= 1


def test_empty_label_budget_is_refused_naming_the_budget(make_manifest):
    manifest = flora(make_manifest, {f"Quercus s{i}": 6 for i in range(5)})
    splits = make_splits(manifest, label_fractions=[0.01], min_labelled_per_species=0)
    with pytest.raises(ValueError, match="no labelled train rows at label fraction 1 %"):
        eval_rows(manifest, splits, 1)


# --- geographic context: a radius of 0 is refused, a K above every neighbourhood takes each one whole ------------


def test_radius_zero_is_refused_naming_the_parameter():
    with pytest.raises(ValueError, match="radius_km must be > 0, got 0"):
        neighbour_table([37.0, 37.001], [-122.0, -122.0], radius_km=0, k=4, seed=0)


def test_k_larger_than_every_neighbourhood_takes_each_ball_whole():
    lat = 37.0 + 0.001 * np.arange(5)  # five photos within 0.5 km, each its own observation
    table = neighbour_table(lat, np.full(5, -122.0), radius_km=5, k=1000, seed=0)
    assert table.counts().tolist() == [4] * 5 and not table.fallback.any()
    assert all(
        sorted(table.indices[table.indptr[i] : table.indptr[i + 1]]) == [j for j in range(5) if j != i]
        for i in range(5)
    )


# --- configs: a wrong type or range, an unknown name, is refused before anything runs, naming the key -----------


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"pretrain": {"epochs": "ten"}}, "['pretrain']['epochs']"),
        ({"pretrain": {"batch_size": 1}}, "['pretrain']['batch_size']"),
        ({"pretrain": {"strategies": ["Sim-CLR"]}}, "['pretrain']['strategies'][0]"),
        ({"neighbours": {"radius_km": 0}}, "['neighbours']['radius_km']"),
        ({"neighbours": {"k": 2.5}}, "['neighbours']['k']"),
        ({"negatives": {"rule": "near"}}, "['negatives']['rule']"),
        ({"splits": {"fractions": [0.7, 0.3]}}, "['splits']['fractions']"),
        ({"evaluate": {"protocols": ["svm"]}}, "['evaluate']['protocols'][0]"),
        ({"image_cache": {"resolutions": [0]}}, "['image_cache']['resolutions'][0]"),
        ({"deterministic": "yes"}, "['deterministic']"),
    ],
)
def test_bad_config_value_is_refused_naming_the_key(section, named):
    with pytest.raises(WorkflowError, match=r"On instance" + re.escape(named)):
        validate(section, SCHEMA)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"neighbours": {"radius_km": "five"}}, "On instance['neighbours']['radius_km']"),
        ({"splits": {"mode": "by_moon_phase"}}, "by_moon_phase"),
    ],
)
def test_workflow_dry_run_with_a_bad_config_fails_naming_the_key(tmp_path, config, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=bad)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
