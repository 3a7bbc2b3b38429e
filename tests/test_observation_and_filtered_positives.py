"""observation_pos and context_filtered on the tiny world: the rows their positives come from, their fallbacks and
pair diagnostics, the filter's distribution, each one-factor control, and a training run's bank accounting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from test_strategy_options import differing_parts
from test_train_loop import Killed, encoder_state, kill_at_save, metrics, run

from geocontrast.strategies import build_strategy
from geocontrast.strategies.diagnostics import pair_diagnostics, sample_batches
from geocontrast.train.settings import PretrainSettings


def observation_ids(manifest) -> np.ndarray:
    return manifest["observation_id"].to_numpy(object)


def refreshed(strategy, features: np.ndarray):
    """``strategy`` after a bank refresh whose encoder gives row r the features ``features[r]``."""
    strategy.refresh(lambda rows: torch.as_tensor(features[rows]))
    return strategy


def random_features(data, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(data.n_rows, 8)).astype(np.float32)


def allowed_neighbours(strategy, anchor: int) -> np.ndarray:
    table = strategy.data.neighbours
    row = table.indices[table.indptr[anchor] : table.indptr[anchor + 1]].astype(np.int64)
    row = row[row >= 0]
    return row[strategy.allowed[row]]


def test_observation_positives_share_the_anchors_observation_and_never_its_photo(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("observation_pos", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    positive = strategy.sample(anchors, np.random.default_rng(0)).views["positive"]
    observation, image = observation_ids(manifest), manifest["image_id"].to_numpy(object)
    moved = positive != anchors
    assert moved.sum() > 20  # the tiny world has observations of several photos
    assert (observation[positive[moved]] == observation[anchors[moved]]).all()
    assert (image[positive[moved]] != image[anchors[moved]]).all()


def test_anchors_whose_observation_has_one_photo_fall_back_to_themselves_and_are_counted(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("observation_pos", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    observation = observation_ids(manifest)
    photos = {obs: (observation == obs).sum() for obs in set(observation)}
    alone = np.array([photos[observation[a]] == 1 for a in anchors])
    positive = strategy.sample(anchors, np.random.default_rng(0)).views["positive"]
    assert alone.any() and (~alone).any()
    assert np.array_equal(positive == anchors, alone)  # splits keep an observation's photos together
    batches = sample_batches(strategy, batch_size=len(anchors), rng=np.random.default_rng(1))
    record = pair_diagnostics(manifest, strategy, batches, np.random.default_rng(2))
    assert record["observation_fallbacks"] == {
        "n_anchors": len(anchors),
        "single_photo": int(alone.sum()),
        "other_photos_outside_split": 0,
    }
    assert record["pairs"]["positive"]["same_species"] == 1.0  # one observation, one organism
    assert any(note["what"] == "observation positives" for note in record["notes"])


def test_an_observation_positive_is_drawn_uniformly_among_the_other_photos(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("observation_pos", data, PretrainSettings())
    observation = observation_ids(manifest)
    sizes = {a: (observation == observation[a]).sum() for a in strategy.anchor_rows()}
    anchor = max(sizes, key=sizes.get)
    positive = strategy.sample(np.full(3000, anchor), np.random.default_rng(0)).views["positive"]
    others = np.flatnonzero((observation == observation[anchor]) & (np.arange(len(observation)) != anchor))
    assert set(positive) == set(others)
    assert chisquare([(positive == row).sum() for row in others]).pvalue > 1e-3


def test_the_filter_picks_the_most_similar_neighbour_as_its_temperature_goes_to_zero(tiny_data):
    _, data = tiny_data
    features = random_features(data)
    options = {"filter_temperature": 1e-9}
    strategy = refreshed(build_strategy("context_filtered", data, PretrainSettings(options=options)), features)
    anchors = strategy.anchor_rows()
    positive = strategy.sample(anchors, np.random.default_rng(0)).views["positive"]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    checked = 0
    for anchor, chosen in zip(anchors, positive):
        candidates = allowed_neighbours(strategy, anchor)
        if candidates.size < 2:
            continue
        assert chosen == candidates[np.argmax(unit[candidates] @ unit[anchor])]
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("temperature", [1e9, 0.5])
def test_the_filter_draws_neighbours_with_probability_proportional_to_exp_cosine_over_temperature(
    tiny_data, temperature
):
    """A large temperature gives context_pos's uniform draw; a finite one the softmax of cosine / temperature."""
    _, data = tiny_data
    features = random_features(data)
    options = {"filter_temperature": temperature}
    strategy = refreshed(build_strategy("context_filtered", data, PretrainSettings(options=options)), features)
    anchor = max(strategy.anchor_rows(), key=lambda a: allowed_neighbours(strategy, a).size)
    candidates = allowed_neighbours(strategy, anchor)
    assert candidates.size >= 8
    draws = 20000
    positive = strategy.sample(np.full(draws, anchor), np.random.default_rng(0)).views["positive"]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    logits = unit[candidates] @ unit[anchor] / temperature
    expected = np.exp(logits - logits.max())
    expected = draws * expected / expected.sum()
    observed = [(positive == row).sum() for row in candidates]
    assert sum(observed) == draws
    assert chisquare(observed, expected).pvalue > 1e-3
    if temperature > 1e6:
        assert np.allclose(expected, draws / candidates.size)


@pytest.mark.parametrize(
    ("strategy", "control"), [("observation_pos", "augmented"), ("context_filtered", "context_pos")]
)
def test_each_new_strategy_differs_from_its_control_in_the_positive_view_alone(tiny_data, strategy, control):
    _, data = tiny_data
    built = refreshed(build_strategy(strategy, data, PretrainSettings()), random_features(data))
    baseline = build_strategy(control, data, PretrainSettings())
    anchors = built.anchor_rows()[:64]
    first, second = built.sample(anchors, np.random.default_rng(3)), baseline.sample(anchors, np.random.default_rng(3))
    assert {name: rows.shape for name, rows in first.views.items()} == {
        name: rows.shape for name, rows in second.views.items()
    }
    assert differing_parts(first, second) == {"positive"}


def test_context_filtered_without_a_temperature_is_context_pos(tiny_data):
    _, data = tiny_data
    unfiltered = build_strategy("context_filtered", data, PretrainSettings(options={"filter_temperature": None}))
    context_pos = build_strategy("context_pos", data, PretrainSettings())
    anchors = context_pos.anchor_rows()[:64]
    assert not unfiltered.follows_encoder
    assert not differing_parts(
        unfiltered.sample(anchors, np.random.default_rng(4)), context_pos.sample(anchors, np.random.default_rng(4))
    )


def test_the_filter_refreshes_its_bank_at_each_epochs_start_and_evenly_after(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("context_filtered", data, PretrainSettings(options={"bank_refreshes_per_epoch": 3}))
    assert strategy.refresh_steps(22) == (0, 7, 14)
    assert strategy.refresh_steps(2) == (0, 1)
    assert build_strategy("context_pos", data, PretrainSettings()).refresh_steps(22) == ()


def test_the_filters_bank_holds_the_train_photos_and_counts_them_as_encoded(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("context_filtered", data, PretrainSettings())
    encoded = strategy.refresh(lambda rows: torch.as_tensor(random_features(data)[rows]))
    assert np.array_equal(strategy.bank_rows(), data.rows_of("train"))  # pairs_from train: anchors and neighbours
    assert encoded == data.rows_of("train").size


def test_the_filter_draws_nothing_before_its_bank_is_built(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("context_filtered", data, PretrainSettings())
    with pytest.raises(RuntimeError, match="refresh"):
        strategy.sample(strategy.anchor_rows()[:8], np.random.default_rng(0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"positive": "observation"}, "needs positive neighbour"),
        ({"filter_temperature": 0}, "must be > 0"),
        ({"bank_refreshes_per_epoch": 0}, "integer >= 1"),
    ],
)
def test_a_filter_it_cannot_apply_is_refused_naming_the_option(tiny_data, options, message):
    with pytest.raises(ValueError, match=rf"context_filtered\..*{message}"):
        build_strategy("context_filtered", tiny_data[1], PretrainSettings(options=options))


def test_training_counts_the_banks_images_and_writes_the_pairs_drawn_after_training(tiny_inputs, tiny_data, tmp_path):
    _, data = tiny_data
    run(tiny_inputs, tmp_path, strategy="context_filtered", epochs=2, steps_per_epoch=3, batch_size=16)
    n_train = data.rows_of("train").size
    assert [line["encoder_images"] for line in metrics(tmp_path)] == [48 * 2 + n_train, 96 * 2 + 2 * n_train]
    pairs = json.loads((tmp_path / "pairs.json").read_text())
    assert pairs["drawn_after_training"] and pairs["pairs"]["positive"]["n"] > 0


def test_a_killed_context_filtered_run_resumes_to_the_uninterrupted_weights(tiny_inputs, tmp_path, monkeypatch):
    """The bank is rebuilt at every epoch's start from the weights the checkpoint holds, so resuming draws the
    same positives."""
    settings = {"strategy": "context_filtered", "epochs": 2, "steps_per_epoch": 2, "batch_size": 16}
    run(tiny_inputs, tmp_path / "whole", **settings)
    kill_at_save(monkeypatch, 1, before_writing=False)
    with pytest.raises(Killed):
        run(tiny_inputs, tmp_path / "killed", **settings)
    monkeypatch.undo()
    run(tiny_inputs, tmp_path / "killed", **settings)
    resumed, whole = encoder_state(tmp_path / "killed" / "encoder.pt"), encoder_state(tmp_path / "whole" / "encoder.pt")
    for key in resumed:
        assert torch.equal(resumed[key], whole[key]), key
    assert (tmp_path / "killed" / "pairs.json").read_text() == (tmp_path / "whole" / "pairs.json").read_text()


def test_the_other_photos_of_each_observation_are_listed_in_manifest_order(make_manifest):
    from geocontrast.data.manifest import validate_manifest
    from geocontrast.geo.training_data import training_data

    manifest = validate_manifest(make_manifest(5, observation_id=["a", "b", "a", None, "a"]))
    splits = manifest[["image_id"]].assign(split="train")
    indptr, indices = training_data(manifest, splits).observation_photos
    others = [sorted(indices[indptr[row] : indptr[row + 1]]) for row in range(5)]
    assert others == [[2, 4], [], [0, 4], [], [0, 2]]  # a photo without observation_id is its own observation
