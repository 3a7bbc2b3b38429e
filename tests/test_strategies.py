"""Strategies: which rows form a batch and how the second view, negatives and false-negative masks are drawn."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import load_config

from geocontrast.data.cache import build_image_cache
from geocontrast.data.manifest import MANIFEST_COLUMNS, read_manifest, validate_manifest, write_manifest
from geocontrast.data.splits import make_splits
from geocontrast.data.synthetic import generate_world, render_photos
from geocontrast.geo.coords import great_circle_km
from geocontrast.geo.negatives import load_negative_table, negative_table, save_negative_table
from geocontrast.geo.neighbours import load_neighbour_table, neighbour_table, save_neighbour_table
from geocontrast.geo.training_data import training_data
from geocontrast.strategies import STRATEGIES, build_strategy, required_tables

RADIUS_KM = 3.0  # small enough that the tiny world has anchors with and without neighbours
R_NEG_KM = 50.0


def build_tiny_inputs(root: Path) -> dict[str, Path]:
    """Manifest, 32 px cache, splits and geo tables of the tests' tiny world (300 photos), built under root."""
    params = load_config()["world"]
    world = generate_world(params)
    images = root / "images"
    render_photos(world, params, images, workers=1, progress=False)
    manifest = validate_manifest(world.photos[list(MANIFEST_COLUMNS)], image_root=images)
    paths = {
        name: root / file
        for name, file in (
            ("manifest", "manifest.parquet"),
            ("cache", "32px.npy"),
            ("splits", "splits.parquet"),
            ("neighbours", "neighbours.npz"),
            ("negatives", "negatives.npz"),
        )
    }
    write_manifest(manifest, paths["manifest"])
    manifest = read_manifest(paths["manifest"])
    build_image_cache([images / p for p in manifest["path"]], 32, paths["cache"], progress=False)
    make_splits(manifest, seed=0).to_parquet(paths["splits"], index=False)
    lat, lon = (
        manifest["lat"].to_numpy(np.float64, na_value=np.nan),
        manifest["lon"].to_numpy(np.float64, na_value=np.nan),
    )
    save_neighbour_table(
        neighbour_table(lat, lon, radius_km=RADIUS_KM, k=16, seed=0, observation_id=manifest["observation_id"]),
        paths["neighbours"],
    )
    save_negative_table(
        negative_table(lat, lon, m=8, rule="far", seed=0, r_neg_km=R_NEG_KM, observation_id=manifest["observation_id"]),
        paths["negatives"],
    )
    return paths


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_inputs(tmp_path_factory.mktemp("tiny_world"))


@pytest.fixture(scope="session")
def tiny_data(tiny_inputs):
    manifest = read_manifest(tiny_inputs["manifest"])
    return manifest, training_data(
        manifest,
        pd.read_parquet(tiny_inputs["splits"]),
        neighbours=load_neighbour_table(tiny_inputs["neighbours"]),
        negatives=load_negative_table(tiny_inputs["negatives"]),
    )


def coordinates(manifest):
    return manifest["lat"].to_numpy(np.float64, na_value=np.nan), manifest["lon"].to_numpy(np.float64, na_value=np.nan)


def test_registry_holds_the_design_strategies():
    assert {
        "supervised",
        "supervised_full",
        "augmented",
        "context_pos",
        "context_pos_neg",
        "classifier",
        "triplet",
        "autoencoder",
        "byol",
        "simsiam",
        "oracle",
    } <= set(STRATEGIES)


@pytest.mark.parametrize(
    ("name", "options", "tables"),
    [
        ("augmented", {}, ()),
        ("context_pos_neg", {}, ("neighbours", "negatives")),
        ("triplet", {}, ("neighbours", "negatives")),
        ("triplet", {"positive": "augmentation", "negative": "random"}, ()),
        ("augmented", {"mask": True}, ("negatives",)),
        ("context_pos_neg", {"extra_negatives": "random", "mask": False}, ("neighbours",)),
        ("context_pos", {"extra_negatives": "geo"}, ("neighbours", "negatives")),
        ("byol", {}, ()),
        ("simsiam", {"positive": "neighbour"}, ("neighbours",)),
        ("oracle", {}, ()),
    ],
)
def test_required_tables_follow_the_positive_and_negative_options(name, options, tables):
    assert required_tables(name, options) == tables


def test_unknown_strategy_option_is_refused_naming_the_config_key(tiny_data):
    with pytest.raises(ValueError, match=r"strategy_options.byol.*momentum"):
        build_strategy("byol", tiny_data[1], {"options": {"momentun": 0.9}})


def test_bad_positive_source_is_refused(tiny_data):
    with pytest.raises(ValueError, match=r"triplet.positive.*augmentation"):
        build_strategy("triplet", tiny_data[1], {"options": {"positive": "nearby"}})


def test_unknown_strategy_error_lists_the_registered_ones(tiny_data):
    with pytest.raises(ValueError, match="context_pos_neg"):
        build_strategy("simclr", tiny_data[1], {})


def test_geo_strategy_without_its_table_is_refused(tiny_data):
    _, data = tiny_data
    without_negatives = training_data(*_frames(tiny_data), neighbours=data.neighbours)
    with pytest.raises(ValueError, match="negatives"):
        build_strategy("context_pos_neg", without_negatives, {})


def _frames(tiny_data):
    manifest, data = tiny_data
    return manifest, data.splits


def test_anchors_are_the_train_rows(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("augmented", data, {})
    assert np.array_equal(strategy.anchor_rows(), np.flatnonzero(data.split == "train"))


def test_augmented_pairs_are_the_same_row(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("augmented", data, {})
    anchors = strategy.anchor_rows()[:32]
    batch = strategy.sample(anchors, np.random.default_rng(0))
    assert np.array_equal(batch.views["anchor"], anchors)
    assert np.array_equal(batch.views["positive"], anchors)


def test_context_positives_lie_within_radius_or_are_the_anchor_on_fallback(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos", data, {})
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
    strategy = build_strategy("context_pos", data, {})
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
    strategy = build_strategy("context_pos_neg", data, {})
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
    strategy = build_strategy("context_pos_neg", data, {})
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
    strategy = build_strategy(name, data, params)
    labelled = np.flatnonzero(data.splits[column].to_numpy(bool) & (data.split == "train"))
    assert np.array_equal(strategy.anchor_rows(), labelled)
    batch = strategy.sample(strategy.anchor_rows(), np.random.default_rng(0))
    assert set(batch.views) == {"anchor"}
    species = manifest["species"].to_numpy(object)[batch.views["anchor"]]
    assert [strategy.classes[t] for t in batch.targets] == list(species)


@pytest.mark.parametrize("name", ["supervised", "classifier"])
@pytest.mark.parametrize("budget", [1, 10, 100])
def test_a_label_trained_strategy_at_a_budget_trains_on_exactly_the_rows_the_evaluation_labels(
    tiny_data, tiny_inputs, name, budget
):
    """The workflow pretrains supervised once per evaluated label budget (params label_fraction = the budget): its
    anchors are the labelled train rows that the evaluation at that budget trains its probes on, and the encoder
    records the budget."""
    from geocontrast.evaluate.protocols import eval_rows

    manifest, data = tiny_data
    strategy = build_strategy(name, data, {"label_fraction": budget})
    evaluated = eval_rows(manifest, pd.read_parquet(tiny_inputs["splits"]), budget).train
    assert np.array_equal(strategy.anchor_rows(), evaluated)
    assert strategy.label_fraction == budget


def test_label_free_strategies_record_no_training_labels_and_the_oracle_every_one(tiny_data):
    _, data = tiny_data
    assert build_strategy("augmented", data, {"label_fraction": 50}).label_fraction == 0
    assert build_strategy("oracle", data, {}).label_fraction == 100


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
    strategy = build_strategy("triplet", data, {})
    anchors = strategy.anchor_rows()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    context = build_strategy("context_pos_neg", data, {}).sample(anchors, np.random.default_rng(0))
    assert set(batch.views) == {"anchor", "positive", "negative"}
    assert np.array_equal(batch.views["positive"], context.views["positive"])  # the same draws as the context pair
    assert np.array_equal(batch.views["negative"], context.views["negative"])


def test_triplet_augmentation_pairs_the_anchor_with_itself_and_a_random_other_train_row(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("triplet", data, {"options": {"positive": "augmentation", "negative": "random"}})
    anchors = strategy.anchor_rows()
    batch = strategy.sample(anchors, np.random.default_rng(0))
    assert np.array_equal(batch.views["positive"], anchors)
    negative = batch.views["negative"]
    assert (negative != anchors).all() and (data.split[negative] == "train").all()
    assert np.unique(negative).size > anchors.size // 3  # spread over the train rows, not one row


def test_oracle_positive_is_another_photo_of_the_same_species(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("oracle", data, {})
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

    strategy = build_strategy("byol", tiny_data[1], {"options": {"momentum": 0.9}})
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


def differing_parts(first, second) -> set[str]:
    """Names of the views and masks whose rows differ between two batches (a missing part differs)."""
    assert set(first.views) == set(second.views)
    parts = {name: (first.views[name], second.views[name]) for name in first.views}
    parts["false_negatives"] = (first.false_negatives, second.false_negatives)
    parts["extra_false_negatives"] = (first.extra_false_negatives, second.extra_false_negatives)
    return {
        name
        for name, (a, b) in parts.items()
        if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b))
    }


@pytest.mark.parametrize(
    ("ingredient", "control", "differs"),
    [
        # (a) extra negatives by the geographic rule vs at random: the negative view (and its own-anchor mask)
        ("extra_negatives", "random", {"negative", "extra_false_negatives"}),
        # (b) the geo-near false-negative mask on vs off: the masks only
        ("mask", False, {"false_negatives", "extra_false_negatives"}),
        # (c) a context positive vs an augmented positive: the positive view only
        ("positive", "augmentation", {"positive"}),
    ],
)
def test_each_control_differs_from_context_pos_neg_in_its_ingredient_alone(tiny_data, ingredient, control, differs):
    _, data = tiny_data
    anchors = build_strategy("context_pos_neg", data, {}).anchor_rows()[:64]
    full = build_strategy("context_pos_neg", data, {}).sample(anchors, np.random.default_rng(3))
    controlled = build_strategy("context_pos_neg", data, {"options": {ingredient: control}}).sample(
        anchors, np.random.default_rng(3)
    )
    assert {name: rows.shape for name, rows in full.views.items()} == {
        name: rows.shape for name, rows in controlled.views.items()
    }  # the same views, the same sizes
    assert differing_parts(full, controlled) == differs


def test_random_extra_negatives_are_allowed_rows_spread_regardless_of_distance(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy("context_pos_neg", data, {"options": {"extra_negatives": "random"}})
    anchors = strategy.anchor_rows()
    negative = strategy.sample(anchors, np.random.default_rng(0)).views["negative"]
    assert (negative != anchors).all() and (data.split[negative] == "train").all()
    lat, lon = coordinates(manifest)
    located = np.isfinite(lat[anchors]) & np.isfinite(lat[negative])
    d = great_circle_km(lat[anchors[located]], lon[anchors[located]], lat[negative[located]], lon[negative[located]])
    assert (d <= R_NEG_KM).any()  # the geographic rule would never draw these


def test_unmasked_control_masks_only_an_anchor_drawn_as_its_own_negative(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("context_pos_neg", data, {"options": {"mask": False}})
    batch = strategy.sample(strategy.anchor_rows(), np.random.default_rng(0))
    anchors, negative = batch.views["anchor"], batch.views["negative"]
    assert batch.false_negatives is None
    assert np.array_equal(batch.extra_false_negatives, negative[None, :] == anchors[:, None])


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("augmented", {"positive": "augmentation", "extra_negatives": "none", "mask": False}),
        ("context_pos", {"positive": "neighbour", "extra_negatives": "none", "mask": False}),
        ("context_pos_neg", {"positive": "neighbour", "extra_negatives": "geo", "mask": True}),
    ],
)
def test_named_contrastive_strategies_are_points_of_one_factorial(tiny_data, name, options):
    _, data = tiny_data
    named = build_strategy(name, data, {})
    anchors = named.anchor_rows()[:64]
    for other in ("augmented", "context_pos", "context_pos_neg"):
        point = build_strategy(other, data, {"options": options})
        assert not differing_parts(
            named.sample(anchors, np.random.default_rng(5)), point.sample(anchors, np.random.default_rng(5))
        )


def test_bad_extra_negatives_source_is_refused(tiny_data):
    with pytest.raises(ValueError, match=r"context_pos.extra_negatives.*geo"):
        build_strategy("context_pos", tiny_data[1], {"options": {"extra_negatives": "far"}})


def test_nearest_fallback_gives_flagged_anchors_positives_beyond_the_radius(tiny_data):
    manifest, data = tiny_data
    lat, lon = coordinates(manifest)
    table = neighbour_table(
        lat, lon, radius_km=RADIUS_KM, k=16, seed=0, observation_id=manifest["observation_id"], fallback="nearest"
    )
    nearest = training_data(manifest, data.splits, neighbours=table)
    strategy = build_strategy("context_pos", nearest, {"pairs_from": "all"})
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
    anchors = build_strategy("context_pos_neg", data, {}).anchor_rows()[:64]

    def loss(options):
        strategy = build_strategy("context_pos_neg", data, {"options": options})
        return nt_xent_loss(strategy, strategy.sample(anchors, np.random.default_rng(3)))

    hard, plain = loss({}), loss({"mask": False})
    assert loss({"near_scale_km": 1e9}) == pytest.approx(hard, rel=1e-5)  # no fading within 50 km: the hard mask
    assert loss({"near_weight": 1.0}) == pytest.approx(plain, rel=1e-6)  # full weight: no mask
    assert hard < loss({"near_weight": 0.5}) < plain  # every denominator term grows with its weight
    assert np.isfinite(loss({"near_weight": 0.5, "near_smoothing": 0.1}))


def test_soft_geo_mask_degrees_are_one_minus_the_near_weight_on_the_geo_near_pairs(tiny_data):
    _, data = tiny_data
    anchors = build_strategy("context_pos_neg", data, {}).anchor_rows()[:64]
    hard = build_strategy("context_pos_neg", data, {}).sample(anchors, np.random.default_rng(3))
    soft = build_strategy("context_pos_neg", data, {"options": {"near_weight": 0.25}}).sample(
        anchors, np.random.default_rng(3)
    )
    np.testing.assert_array_equal(soft.false_negatives, 0.75 * hard.false_negatives)
    itself = hard.views["negative"][None, :] == anchors[:, None]
    np.testing.assert_array_equal(soft.extra_false_negatives, np.where(itself, 1.0, 0.75 * hard.extra_false_negatives))


def test_smoothing_the_targets_of_dropped_items_is_refused(tiny_data):
    with pytest.raises(ValueError, match=r"context_pos_neg.near_smoothing.*near_weight > 0"):
        build_strategy("context_pos_neg", tiny_data[1], {"options": {"near_smoothing": 0.1}})


def test_swav_prototypes_stay_frozen_for_the_first_steps_and_on_the_unit_sphere(tiny_data):
    import torch

    strategy = build_strategy("swav", tiny_data[1], {"options": {"freeze_prototypes_steps": 2, "extra_crops": 1}})
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
