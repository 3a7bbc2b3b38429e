"""Each strategy family's batches on the tiny world: the rows it draws, its false-negative masks, its heads and loss."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tiny_world import R_NEG_KM, RADIUS_KM

from geocontrast.geo.coords import great_circle_km
from geocontrast.geo.neighbours import neighbour_table
from geocontrast.geo.training_data import training_data
from geocontrast.strategies import build_strategy
from geocontrast.train.settings import PretrainSettings


def coordinates(manifest):
    return manifest["lat"].to_numpy(np.float64, na_value=np.nan), manifest["lon"].to_numpy(np.float64, na_value=np.nan)


def test_anchors_are_the_train_rows(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("augmented", data, PretrainSettings())
    assert np.array_equal(strategy.anchor_rows(), np.flatnonzero(data.split == "train"))


def test_augmented_pairs_are_the_same_row(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("augmented", data, PretrainSettings())
    anchors = strategy.anchor_rows()[:32]
    batch = strategy.sample(anchors, np.random.default_rng(0))
    assert np.array_equal(batch.views["anchor"], anchors)
    assert np.array_equal(batch.views["positive"], anchors)


def test_context_positives_lie_within_radius_or_are_the_anchor_on_fallback(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    positive = batch.views["positive"]
    table = data.neighbours
    counts = table.counts()[anchors]
    no_neighbour = table.fallback[anchors] | (counts == 0)
    moved = positive != anchors
    lat, lon = coordinates(manifest)
    d = great_circle_km(lat[anchors[moved]], lon[anchors[moved]], lat[positive[moved]], lon[positive[moved]])
    assert moved.sum() > 10 and no_neighbour.sum() > 10  # both cases occur in this world
    assert (d <= RADIUS_KM * (1 + 1e-9)).all()
    assert np.array_equal(positive[no_neighbour], anchors[no_neighbour])
    observation = manifest["observation_id"].to_numpy()
    assert not (observation[positive[moved]] == observation[anchors[moved]]).any()
    assert (data.split[positive] == "train").all()  # val/test pixels never reach pretraining


def test_context_positive_is_drawn_from_the_whole_neighbour_row(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("context_pos", data, PretrainSettings())
    table = data.neighbours
    anchors = strategy.anchor_rows()
    eligible = {
        a: {r for r in table.indices[table.indptr[a] : table.indptr[a + 1]] if data.split[r] == "train"}
        for a in anchors
        if not table.fallback[a]
    }
    anchor = max(eligible, key=lambda a: len(eligible[a]))
    assert len(eligible[anchor]) >= 3
    rng = np.random.default_rng(1)
    draws = 60 * len(eligible[anchor])
    drawn = {int(strategy.sample(np.array([anchor]), rng).views["positive"][0]) for _ in range(draws)}
    assert drawn == eligible[anchor]


def test_context_negatives_lie_beyond_r_neg(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos_neg", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    negative = batch.views["negative"]
    lat, lon = coordinates(manifest)
    located = np.isfinite(lat[anchors])
    d = great_circle_km(lat[anchors[located]], lon[anchors[located]], lat[negative[located]], lon[negative[located]])
    assert (d > R_NEG_KM).all()
    assert (negative != anchors).all()
    assert set(negative) <= set(data.negatives.candidates[anchors].ravel())


def test_false_negative_masks_are_exactly_the_geo_near_pairs(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos_neg", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    assert not np.isfinite(manifest["lat"].to_numpy(np.float64, na_value=np.nan)[anchors]).all()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    lat, lon = coordinates(manifest)
    negative = batch.views["negative"]
    with np.errstate(invalid="ignore"):
        near = great_circle_km(lat[anchors][:, None], lon[anchors][:, None], lat[anchors][None], lon[anchors][None])
        expected = near <= R_NEG_KM  # NaN (no coordinates) compares False: never masked
        np.fill_diagonal(expected, False)
        near_extra = great_circle_km(
            lat[anchors][:, None], lon[anchors][:, None], lat[negative][None], lon[negative][None]
        )
        expected_extra = (near_extra <= R_NEG_KM) | (negative[None, :] == anchors[:, None])
    assert 0 < expected.sum() < expected.size - len(anchors)
    assert np.array_equal(batch.false_negatives, expected)
    assert np.array_equal(batch.extra_false_negatives, expected_extra)


@pytest.mark.parametrize(
    ("name", "params", "column"),
    [
        ("supervised", {}, "labelled_10"),
        ("supervised", {"label_fraction": 1}, "labelled_1"),
        ("supervised_full", {}, "labelled_100"),
    ],
)
def test_supervised_batches_hold_only_labelled_rows_of_the_fraction(tiny_data, name, params, column):
    manifest, data = tiny_data
    strategy = build_strategy(name, data, PretrainSettings.from_mapping(params))
    labelled = np.flatnonzero(data.splits[column].to_numpy(bool) & (data.split == "train"))
    assert np.array_equal(strategy.anchor_rows(), labelled)
    batch = strategy.sample(strategy.anchor_rows(), np.random.default_rng(0))
    assert set(batch.views) == {"anchor"}
    species = manifest["species"].to_numpy(object)[batch.views["anchor"]]
    assert [strategy.classes[t] for t in batch.targets] == list(species)


def test_pair_draws_pick_only_allowed_rows_and_fall_back_to_the_default():
    from geocontrast.strategies.base import draw_one_per_row

    values = np.arange(40)
    allowed = np.zeros(40, dtype=bool)
    allowed[[7, 25]] = True  # group 0 (rows 0-19) allows only 7; group 1 (20-39) only 25; group 2 (30-39) none
    rows, found = draw_one_per_row(
        values,
        np.array([0, 20, 30]),
        np.array([20, 20, 10]),
        np.random.default_rng(0),
        allowed,
        default=np.array([-5, -6, -7]),
        rounds=1,
    )
    assert rows.tolist() == [7, 25, -7] and found.tolist() == [True, True, False]


def test_triplet_geo_draws_neighbour_positives_and_far_negatives(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("triplet", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    context = build_strategy("context_pos_neg", data, PretrainSettings()).sample(anchors, np.random.default_rng(0))
    assert set(batch.views) == {"anchor", "positive", "negative"}
    assert np.array_equal(batch.views["positive"], context.views["positive"])  # the same draws as the context pair
    assert np.array_equal(batch.views["negative"], context.views["negative"])


def test_triplet_augmentation_pairs_the_anchor_with_itself_and_a_random_other_train_row(tiny_data):
    _, data = tiny_data
    strategy = build_strategy(
        "triplet", data, PretrainSettings(options={"positive": "augmentation", "negative": "random"})
    )
    anchors = strategy.anchor_rows()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    assert np.array_equal(batch.views["positive"], anchors)
    negative = batch.views["negative"]
    assert (negative != anchors).all() and (data.split[negative] == "train").all()
    assert np.unique(negative).size > anchors.size // 3  # spread over the train rows, not one row


def test_oracle_positive_is_another_photo_of_the_same_species(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("oracle", data, PretrainSettings())
    anchors = strategy.anchor_rows()
    species = manifest["species"].to_numpy(object)
    assert (data.split[anchors] == "train").all() and pd.notna(species[anchors]).all()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    positive = batch.views["positive"]
    assert (species[positive] == species[anchors]).all() and (data.split[positive] == "train").all()
    alone = np.array([(species[anchors] == s).sum() == 1 for s in species[anchors]])
    assert (positive[~alone] != anchors[~alone]).all()
    assert np.array_equal(positive[alone], anchors[alone])
    assert [strategy.data.species_codes()[1][t] for t in batch.targets] == list(species[anchors])


def test_byol_target_follows_the_online_network_by_the_momentum(tiny_data):
    import torch

    from geocontrast.models import build_encoder

    strategy = build_strategy("byol", tiny_data[1], PretrainSettings(options={"momentum": 0.9}))
    encoder = build_encoder("cnn5")
    heads = strategy.heads(encoder)
    assert not any(p.requires_grad for p in heads["target_encoder"].parameters())
    online = next(encoder.parameters())
    target_before = next(heads["target_encoder"].parameters()).clone()
    with torch.no_grad():
        online.add_(1.0)
    strategy.after_step(heads, encoder, progress=0.0)  # tau = momentum at the start of the cosine schedule
    expected = 0.9 * target_before + 0.1 * online
    assert torch.allclose(next(heads["target_encoder"].parameters()), expected)
    strategy.after_step(heads, encoder, progress=1.0)  # tau = 1 at the end: the target stops moving
    assert torch.allclose(next(heads["target_encoder"].parameters()), expected)


def test_random_extra_negatives_are_allowed_rows_spread_regardless_of_distance(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos_neg", data, PretrainSettings(options={"extra_negatives": "random"}))
    anchors = strategy.anchor_rows()
    negative = strategy.sample(anchors, np.random.default_rng(0)).views["negative"]
    assert (negative != anchors).all() and (data.split[negative] == "train").all()
    lat, lon = coordinates(manifest)
    located = np.isfinite(lat[anchors]) & np.isfinite(lat[negative])
    d = great_circle_km(lat[anchors[located]], lon[anchors[located]], lat[negative[located]], lon[negative[located]])
    assert (d <= R_NEG_KM).any()  # the geographic rule would never draw these


def test_nearest_fallback_gives_flagged_anchors_positives_beyond_the_radius(tiny_data):
    manifest, data = tiny_data
    lat, lon = coordinates(manifest)
    table = neighbour_table(
        lat, lon, radius_km=RADIUS_KM, k=16, seed=0, observation_id=manifest["observation_id"], fallback="nearest"
    )
    nearest = training_data(manifest, data.splits, neighbours=table)
    strategy = build_strategy("context_pos", nearest, PretrainSettings(pairs_from="all"))
    anchors = strategy.anchor_rows()
    flagged = anchors[table.fallback[anchors]]
    assert flagged.size > 10
    positive = strategy.sample(flagged, np.random.default_rng(0)).views["positive"]
    d = great_circle_km(lat[flagged], lon[flagged], lat[positive], lon[positive])
    assert (positive != flagged).all() and (d > RADIUS_KM).all()


def nt_xent_loss(strategy, batch) -> float:
    """The strategy's loss of ``batch`` on fixed random features (16-d) through freshly seeded heads."""
    import torch

    torch.manual_seed(0)
    heads = strategy.heads(SimpleNamespace(feature_dim=16))
    generator = torch.Generator().manual_seed(1)
    features = {view: torch.randn(rows.size, 16, generator=generator) for view, rows in batch.views.items()}
    return strategy.loss(features, heads, batch, views={}).item()


def test_soft_geo_mask_spans_the_hard_mask_and_plain_ntxent(tiny_data):
    _, data = tiny_data
    anchors = build_strategy("context_pos_neg", data, PretrainSettings()).anchor_rows()[:64]

    def loss(options):
        strategy = build_strategy("context_pos_neg", data, PretrainSettings(options=options))
        return nt_xent_loss(strategy, strategy.sample(anchors, np.random.default_rng(3)))

    hard, plain = loss({}), loss({"mask": False})
    assert loss({"near_scale_km": 1e9}) == pytest.approx(hard, rel=1e-5)  # no fading within 50 km: the hard mask
    assert loss({"near_weight": 1.0}) == pytest.approx(plain, rel=1e-6)  # full weight: no mask
    assert hard < loss({"near_weight": 0.5}) < plain  # every denominator term grows with its weight
    assert np.isfinite(loss({"near_weight": 0.5, "near_smoothing": 0.1}))


def test_soft_geo_mask_degrees_are_one_minus_the_near_weight_on_the_geo_near_pairs(tiny_data):
    _, data = tiny_data
    anchors = build_strategy("context_pos_neg", data, PretrainSettings()).anchor_rows()[:64]
    hard = build_strategy("context_pos_neg", data, PretrainSettings()).sample(anchors, np.random.default_rng(3))
    soft = build_strategy("context_pos_neg", data, PretrainSettings(options={"near_weight": 0.25})).sample(
        anchors, np.random.default_rng(3)
    )
    np.testing.assert_array_equal(soft.false_negatives, 0.75 * hard.false_negatives)
    itself = hard.views["negative"][None, :] == anchors[:, None]
    np.testing.assert_array_equal(soft.extra_false_negatives, np.where(itself, 1.0, 0.75 * hard.extra_false_negatives))


def test_swav_prototypes_stay_frozen_for_the_first_steps_and_on_the_unit_sphere(tiny_data):
    import torch

    strategy = build_strategy(
        "swav", tiny_data[1], PretrainSettings(options={"freeze_prototypes_steps": 2, "extra_crops": 1})
    )
    anchors = strategy.anchor_rows()[:16]
    batch = strategy.sample(anchors, np.random.default_rng(0))
    assert list(batch.views) == ["anchor", "positive", "crop1"]
    assert all(np.array_equal(rows, anchors) for rows in batch.views.values())  # augmentation positives
    torch.manual_seed(0)
    heads = strategy.heads(SimpleNamespace(feature_dim=16))
    features = {view: torch.randn(16, 16) for view in batch.views}
    prototype_gradients = []
    for _ in range(3):
        heads.zero_grad()
        strategy.loss(features, heads, batch, views={}).backward()
        prototype_gradients.append(heads["prototypes"].weight.grad.abs().sum().item())
        with torch.no_grad():
            heads["prototypes"].weight.mul_(2.0)  # an optimiser step that leaves the sphere
        strategy.after_step(heads, encoder=None, progress=0.5)
    assert prototype_gradients[:2] == [0.0, 0.0] and prototype_gradients[2] > 0
    assert int(heads["prototypes"].steps) == 3
    torch.testing.assert_close(heads["prototypes"].weight.norm(dim=1), torch.ones(128))
    assert heads["projection"].layers[0].weight.grad.abs().sum() > 0  # the projection trains while they are frozen
