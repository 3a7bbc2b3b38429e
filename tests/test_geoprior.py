"""The presence-only geographic prior: encoding, loss, fit, combination and its CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from geocontrast.data.manifest import read_manifest, validate_manifest, write_manifest
from geocontrast.prior import fit as prior_fit
from geocontrast.prior import model as prior_model
from geocontrast.prior import scores as prior_scores
from geocontrast.prior.fit import main
from geocontrast.prior.model import (
    MARGINAL_DAYS,
    PriorSettings,
    assume_negative_loss,
    batch_size,
    encode_day,
    encode_location,
    fit_location_model,
    location_bbox,
    location_probabilities,
    random_locations,
)
from geocontrast.prior.scores import choose_prior_weight, class_frequencies, combine, range_auc

# Small enough to fit in well under a second on one core; separates the two regions below for 20 of 20 seeds.
FAST = {
    "inputs": ["location"],
    "hidden": 32,
    "n_blocks": 1,
    "dropout": 0.0,
    "epochs": 100,
    "batch_size": 64,
    "lr": 1e-2,
}


def test_encoding_values_at_known_points():
    encoded = encode_location([0.0, 45.0, -90.0], [0.0, 90.0, -90.0])
    assert encoded.dtype == np.float32 and encoded.shape == (3, 4)
    # Columns: sin(pi lon/180), cos(pi lon/180), sin(pi lat/90), cos(pi lat/90).
    np.testing.assert_allclose(encoded, [[0, 1, 0, 1], [1, 0, 1, 0], [-1, 0, 0, -1]], atol=1e-7)


def test_encoding_wraps_around_the_antimeridian():
    np.testing.assert_allclose(encode_location([12.5], [-180.0]), encode_location([12.5], [180.0]), atol=1e-7)


def test_regional_encoding_is_continuous_across_the_antimeridian_and_keeps_the_box_edges_apart():
    region = location_bbox([-20.0, -10.0], [170.0, -170.0])  # 20 degrees wide, across the antimeridian
    either_side = encode_location([-15.0, -15.0], [179.9, -179.9], region)
    assert np.linalg.norm(either_side[0] - either_side[1]) < 0.05
    edges = encode_location([-20.0, -20.0], [170.0, -170.0], region)
    assert np.linalg.norm(edges[0] - edges[1]) > 1.0  # half a circle apart, not wrapped onto each other


def test_day_encoding_wraps_at_the_new_year():
    days = encode_day([365.0, 1.0, 366.0, 183.0])
    one_day = np.linalg.norm(encode_day([100.0]) - encode_day([101.0]))
    assert np.linalg.norm(days[0] - days[1]) == pytest.approx(one_day, rel=1e-3)  # 31 Dec and 1 Jan: a day apart
    np.testing.assert_allclose(days[2], days[1], atol=0.02)  # a leap year's day 366 is next to 1 January
    assert np.linalg.norm(days[3] - days[1]) > 1.9  # mid-year is across the circle
    assert np.isnan(encode_day([np.nan])).all()


def test_encoding_of_missing_coordinates_is_nan():
    assert np.isnan(encode_location([np.nan], [np.nan])).all()


def test_combine_is_the_row_normalised_product():
    image = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    location = np.array([[0.2, 1.0, 0.5], [1.0, 0.0, 0.25]])
    # Products [0.1, 0.3, 0.1] (sum 0.5) and [0.1, 0, 0.2] (sum 0.3).
    np.testing.assert_allclose(combine(image, location), [[0.2, 0.6, 0.2], [1 / 3, 0.0, 2 / 3]], rtol=1e-12)


def test_combine_in_row_blocks_equals_combine_in_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    image = rng.dirichlet(np.ones(6), size=11).astype(np.float32)
    location = rng.random((11, 6))
    location[3] = 1.0  # a row without a prior
    prior = class_frequencies(rng.integers(0, 6, 40), 6)
    whole = combine(image, location, prior, 0.75)
    monkeypatch.setattr(prior_scores, "COMBINE_BLOCK_ELEMENTS", 2 * 6)  # blocks of 2 rows
    np.testing.assert_array_equal(combine(image, location, prior, 0.75), whole)


def test_combine_with_a_row_of_ones_leaves_the_image_probabilities():
    image = np.array([[0.7, 0.2, 0.1]], dtype=np.float32)
    combined = combine(image, np.ones_like(image))
    assert combined.dtype == np.float32
    np.testing.assert_array_equal(combined, image)


def test_combine_keeps_the_image_row_when_the_prior_rules_out_every_allowed_species():
    np.testing.assert_array_equal(combine([[1.0, 0.0]], [[0.0, 1.0]]), [[1.0, 0.0]])


def test_calibrated_combination_is_bayes_rule_on_a_toy_world():
    """P(y, image, x) = P(y) P(image | y) P(x | y): the posterior given both, from the joint, equals combine() of
    P(y | image), P(y | x) (even scaled by a row constant, as presence probabilities are) and P(y)."""
    class_prior = np.array([0.6, 0.3, 0.1])
    image_given_y = np.array([[0.7, 0.2, 0.5], [0.3, 0.8, 0.5]])  # (images, y), columns sum to 1
    place_given_y = np.array([[0.1, 0.6, 0.3], [0.9, 0.4, 0.7]])  # (places, y)
    joint = class_prior[None, None] * image_given_y[:, None] * place_given_y[None]  # (image, place, y)
    for image in range(2):
        for place in range(2):
            y_given_image = class_prior * image_given_y[image] / (class_prior * image_given_y[image]).sum()
            y_given_place = class_prior * place_given_y[place] / (class_prior * place_given_y[place]).sum()
            expected = joint[image, place] / joint[image, place].sum()
            presence = 0.37 * y_given_place  # unnormalised, as a presence-only prior's output
            combined = combine(y_given_image[None], presence[None], class_prior, weight=1.0)
            np.testing.assert_allclose(combined[0], expected, rtol=1e-12)
            assert not np.allclose(combine(y_given_image[None], presence[None])[0], expected)  # P(y) twice


def test_prior_weight_zero_returns_the_image_and_rows_without_a_prior_stay():
    image = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    location = np.array([[0.9, 0.1, 0.1], [1.0, 1.0, 1.0]])
    prior = np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(combine(image, location, prior, weight=0.0), image, rtol=1e-12)
    np.testing.assert_allclose(combine(image, location, prior, weight=1.0)[1], image[1], rtol=1e-12)


def test_prior_weight_is_chosen_on_val_and_ties_go_to_bayes():
    image = np.array([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6]])
    helpful = np.array([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])
    prior = np.array([0.5, 0.5])
    # Labels 1, 1, 1: the prior turns the first two right at any weight > log(1.5)/log(9) = 0.18.
    chosen = choose_prior_weight(image, helpful, np.array([1, 1, 1]), prior)
    assert chosen["weight"] == 1.0 and chosen["val_top1"]["0"] == pytest.approx(1 / 3)
    # Labels 0, 0, 1: the prior only hurts; weight 0 (the image alone) is the best.
    assert choose_prior_weight(image, helpful, np.array([0, 0, 1]), prior)["weight"] == 0.0


def test_class_frequencies_are_add_one_smoothed():
    np.testing.assert_allclose(class_frequencies([0, 0, 0, 2], 3), [4 / 7, 1 / 7, 2 / 7])


def test_range_auc_against_hand_counts():
    predicted = np.array([[0.9, 0.8, 0.1, 0.8], [0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4]])
    present = np.array([[True, True, False, False], [True, False, False, False], [True] * 4])
    # Species 0: present {0.9, 0.8} vs absent {0.1, 0.8}: pairs won 1+1+1+0.5 of 4.
    np.testing.assert_allclose(range_auc(predicted, present), [3.5 / 4, 0.5, np.nan])


@pytest.mark.parametrize(
    ("variant", "terms"),
    [
        ("random_locations", lambda s: -3 * math.log(s(1.0)) - math.log(1 - s(2.0))),
        ("data_locations", lambda s: -3 * math.log(s(1.0)) - math.log(1 - s(0.0))),
    ],
)
def test_loss_variants_equal_a_hand_computation(variant, terms):
    logits, random_logits = torch.tensor([[0.0, 1.0]]), torch.tensor([[-1.0, 2.0]])

    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))

    loss = assume_negative_loss(logits, random_logits, torch.tensor([1]), 3.0, variant)
    assert loss.item() == pytest.approx(terms(sigmoid), rel=1e-6)


def test_loss_equals_a_hand_computation():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    random_logits = torch.tensor([[-1.0, 2.0], [0.5, 0.0]])
    targets = torch.tensor([1, 0])

    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))

    # Observation 0 (species 1): -3 log s(1) - log(1 - s(0)); random: -log(1 - s(-1)) - log(1 - s(2)).
    first = (
        -3 * math.log(sigmoid(1.0))
        - math.log(1 - sigmoid(0.0))
        - math.log(1 - sigmoid(-1.0))
        - math.log(1 - sigmoid(2.0))
    )
    # Observation 1 (species 0): -3 log s(2) - log(1 - s(-1)); random: -log(1 - s(0.5)) - log(1 - s(0)).
    second = (
        -3 * math.log(sigmoid(2.0))
        - math.log(1 - sigmoid(-1.0))
        - math.log(1 - sigmoid(0.5))
        - math.log(1 - sigmoid(0.0))
    )
    loss = assume_negative_loss(logits, random_logits, targets, pos_weight=3.0)
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_bounding_box_takes_the_short_way_across_the_antimeridian():
    lat_min, lat_max, west, width = location_bbox([-10.0, 5.0, 0.0], [170.0, -175.0, 179.0])
    assert (lat_min, lat_max, west, width) == (-10.0, 5.0, 170.0, pytest.approx(15.0))
    lat, lon = random_locations(1000, (lat_min, lat_max, west, width), np.random.default_rng(0))
    assert lat.min() >= -10.0 and lat.max() <= 5.0
    assert ((lon >= 170.0) | (lon <= -175.0)).all()


def test_unknown_or_bad_settings_are_refused_naming_the_key():
    with pytest.raises(ValueError, match="evaluate.geoprior.epoch: unknown key"):
        PriorSettings.from_mapping({"epoch": 3})
    with pytest.raises(ValueError, match=r"evaluate.geoprior.inputs: expected distinct items"):
        PriorSettings.from_mapping({"inputs": ["date", "date"]})
    assert PriorSettings.from_mapping({"inputs": ["date", "location"]}).inputs == ("location", "date")


def test_an_auto_batch_keeps_an_epoch_to_a_bounded_number_of_steps():
    assert batch_size("auto", 286) == 64 and batch_size("auto", 64 * 32) == 64
    assert batch_size("auto", 19252) == 602  # ceil(19252 / 32): 32 steps an epoch
    assert batch_size(128, 50) == 50 and batch_size(128, 500) == 128
    with pytest.raises(ValueError, match="evaluate.geoprior.batch_size: expected >= 1 or 'auto'"):
        PriorSettings.from_mapping({"batch_size": 0})


def _two_regions(n: int = 30):
    """Species 0 around (38, -122), species 1 around (34, -117), a few km of scatter."""
    rng = np.random.default_rng(1)
    lat = np.concatenate([38.0 + 0.1 * rng.standard_normal(n), 34.0 + 0.1 * rng.standard_normal(n)])
    lon = np.concatenate([-122.0 + 0.1 * rng.standard_normal(n), -117.0 + 0.1 * rng.standard_normal(n)])
    return lat, lon, np.repeat([0, 1], n)


def test_fitted_model_prefers_each_regions_species_there():
    lat, lon, labels = _two_regions()
    model = fit_location_model(lat, lon, labels, 2, PriorSettings.from_mapping(FAST), seed=0)
    probs = location_probabilities(model, [38.0, 34.0], [-122.0, -117.0])
    assert probs.dtype == np.float32 and probs.shape == (2, 2)
    assert probs[0, 0] > probs[0, 1] and probs[1, 1] > probs[1, 0]


def test_a_date_model_uses_what_a_row_has():
    lat, lon, labels = _two_regions(10)
    days = np.where(labels == 0, 100.0, 250.0)
    params = PriorSettings.from_mapping({**FAST, "epochs": 3, "inputs": ["date", "location"], "scaling": "regional"})
    model = fit_location_model(lat, lon, labels, 2, params, seed=0, day_of_year=days)
    assert model.encoding.inputs == ("location", "date") and model.encoding.region is not None
    probs = location_probabilities(
        model, [38.0, 38.0, np.nan, np.nan], [-122.0, -122.0, np.nan, np.nan], [np.nan, 100.0, 100.0, np.nan]
    )
    over_the_year = location_probabilities(
        model, np.full(MARGINAL_DAYS.size, 38.0), np.full(MARGINAL_DAYS.size, -122.0), MARGINAL_DAYS
    ).mean(axis=0)
    np.testing.assert_allclose(probs[0], over_the_year, rtol=1e-5)
    places = model.marginal_locations
    over_places = location_probabilities(model, places[:, 0], places[:, 1], np.full(len(places), 100.0)).mean(0)
    np.testing.assert_allclose(probs[2], over_places, rtol=1e-5)
    assert probs[3].tolist() == [1.0, 1.0] and not np.allclose(probs[0], probs[1])


def test_fit_is_deterministic_given_the_seed():
    lat, lon, labels = _two_regions(10)
    params = PriorSettings.from_mapping({**FAST, "epochs": 5})
    first, second = (
        location_probabilities(fit_location_model(lat, lon, labels, 2, params, seed=3), lat, lon) for _ in range(2)
    )
    np.testing.assert_array_equal(first, second)


def test_presence_in_small_blocks_equals_presence_in_one_block(monkeypatch):
    """Rows without a day (12 days each) or without a place (256 places each) and plain rows, computed a block of
    points at a time (memory flat in the photos), equal the one-block computation."""
    lat, lon, labels = _two_regions(10)
    params = PriorSettings.from_mapping({**FAST, "epochs": 2, "inputs": ["location", "date"]})
    model = fit_location_model(lat, lon, labels, 2, params, seed=0, day_of_year=np.where(labels == 0, 100.0, 250.0))
    lat_q = np.array([38.0, 34.0, np.nan, 36.0, np.nan, 38.5, np.nan])
    lon_q = np.array([-122.0, -117.0, np.nan, -119.0, np.nan, -121.0, np.nan])
    day_q = np.array([100.0, np.nan, 250.0, np.nan, 30.0, 200.0, np.nan])
    whole = location_probabilities(model, lat_q, lon_q, day_q)
    monkeypatch.setattr(prior_model, "PRESENCE_BLOCK_ELEMENTS", 5 * 2)  # 5 points of 2 species a block
    np.testing.assert_allclose(location_probabilities(model, lat_q, lon_q, day_q), whole, rtol=1e-6, atol=1e-7)


def test_the_prior_file_written_a_block_of_rows_at_a_time_holds_every_row(tmp_path, monkeypatch):
    lat, lon, labels = _two_regions(10)
    model = fit_location_model(lat, lon, labels, 2, PriorSettings.from_mapping({**FAST, "epochs": 1}), seed=0)
    lat, lon, days = np.append(lat, np.nan), np.append(lon, np.nan), np.full(lat.size + 1, np.nan)
    whole = location_probabilities(model, lat, lon, days)
    monkeypatch.setattr(prior_model, "PRESENCE_BLOCK_ELEMENTS", 3 * 2)  # blocks of 3 rows: 7 blocks
    written = prior_fit._save_probabilities(tmp_path / "probs.npy", model, lat, lon, days)
    assert written.shape == whole.shape and written.dtype == np.float32
    # A matrix product over fewer rows may round differently in the last bit; the default world fits one block.
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), whole, rtol=1e-6, atol=1e-7)


def test_missing_coordinates_get_a_uniform_prior():
    lat, lon, labels = _two_regions(10)
    model = fit_location_model(lat, lon, labels, 2, PriorSettings.from_mapping({**FAST, "epochs": 1}), seed=0)
    probs = location_probabilities(model, [np.nan, 38.0], [np.nan, -122.0])
    assert probs[0].tolist() == [1.0, 1.0] and (probs[1] < 1.0).all()


@pytest.fixture
def world(tmp_path, make_manifest):
    """A 60-row manifest of two species in two regions, rows 0 and 30 without coordinates, and its splits."""
    lat, lon, labels = _two_regions()
    lat[[0, 30]], lon[[0, 30]] = np.nan, np.nan
    species = np.where(labels == 0, "Quercus agrifolia", "Quercus lobata").tolist()
    manifest_path, splits_path = tmp_path / "manifest.parquet", tmp_path / "splits.parquet"
    write_manifest(validate_manifest(make_manifest(60, lat=lat, lon=lon, species=species)), manifest_path)
    split = np.tile(["train", "train", "train", "val", "test"], 12)
    splits = pd.DataFrame(
        {
            "image_id": [f"img{i}" for i in range(60)],
            "split": split,
            "labelled_10": split == "train",
            "labelled_100": split == "train",
        }
    )
    splits.to_parquet(splits_path)
    return manifest_path, splits_path, splits


def _run(manifest_path, splits_path, out_dir, *extra):
    return main(
        [
            "--manifest",
            str(manifest_path),
            "--splits",
            str(splits_path),
            "--label-fraction",
            "10",
            "--out-dir",
            str(out_dir),
            "--params-json",
            json.dumps(FAST),
            "--threads",
            "1",
            *extra,
        ]
    )


def test_cli_writes_probabilities_of_every_row_and_the_prior_summary(world, tmp_path):
    manifest_path, splits_path, _ = world
    assert _run(manifest_path, splits_path, tmp_path / "prior") == 0
    probs = np.load(tmp_path / "prior" / "probs.npy")
    assert probs.dtype == np.float32 and probs.shape == (60, 2)
    assert (probs[[0, 30]] == 1.0).all() and (probs[1:30] < 1.0).all()
    prior = json.loads((tmp_path / "prior" / "prior.json").read_text())
    assert prior["classes"] == ["Quercus agrifolia", "Quercus lobata"]
    assert prior["n_train"] == 34  # 36 train rows, two without coordinates
    assert prior["params"]["hidden"] == 32 and prior["n_val"] == 12 and prior["n_test"] == 12
    assert prior["val_top1"] > 0.9 and prior["test_top5"] == 1.0
    assert sorted(p.name for p in (tmp_path / "prior").iterdir()) == ["grid.npz", "prior.json", "probs.npy"]


def test_cli_writes_the_prior_on_a_grid_covering_the_observations(world, tmp_path):
    manifest_path, splits_path, _ = world
    assert _run(manifest_path, splits_path, tmp_path / "prior") == 0
    grid = np.load(tmp_path / "prior" / "grid.npz")
    manifest = read_manifest(manifest_path)
    assert grid["values"].shape == (2, grid["lat"].size, grid["lon"].size) and grid["values"].dtype == np.float32
    assert list(grid["species"]) == ["Quercus agrifolia", "Quercus lobata"]
    assert np.all(np.diff(grid["lat"]) > 0) and np.all(np.diff(grid["lon"]) > 0)
    assert grid["lat"][0] <= manifest["lat"].min() and grid["lat"][-1] >= manifest["lat"].max()
    assert grid["lon"][0] <= manifest["lon"].min() and grid["lon"][-1] >= manifest["lon"].max()


def test_cli_skips_the_prior_saying_why_when_no_labelled_row_has_coordinates(world, tmp_path, capsys):
    manifest_path, splits_path, splits = world
    splits["labelled_10"] = splits["image_id"].isin(["img0", "img30"])  # the two rows without coordinates
    splits.to_parquet(splits_path)
    assert _run(manifest_path, splits_path, tmp_path / "prior") == 0
    error = capsys.readouterr().err
    assert "skipped" in error and "none of the 2 train rows" in error and "coordinates" in error
    assert np.load(tmp_path / "prior" / "probs.npy").shape == (60, 0)
    assert np.load(tmp_path / "prior" / "grid.npz")["species"].size == 0


def test_cli_names_a_missing_label_budget(world, tmp_path, capsys):
    manifest_path, splits_path, _ = world
    assert _run(manifest_path, splits_path, tmp_path / "prior", "--label-fraction", "1") == 1
    assert "labelled_1" in capsys.readouterr().err


def test_the_combination_divides_out_the_class_frequencies_the_prior_was_trained_on(tmp_path):
    np.save(tmp_path / "probs.npy", np.full((4, 3), 1 / 3, dtype=np.float32))
    (tmp_path / "prior.json").write_text(json.dumps({"classes": ["a", "b", "c"], "class_counts": [8, 0, 1]}))
    prior, reason = prior_fit.load_prior(tmp_path / "probs.npy", "unused")
    assert reason is None and prior.shape == (4, 3)
    np.testing.assert_allclose(prior.class_prior, [9 / 12, 1 / 12, 2 / 12])  # add-one over its own records
    (tmp_path / "prior.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))  # written before the counts
    assert prior_fit.load_prior(tmp_path / "probs.npy", "unused")[0].class_prior is None
