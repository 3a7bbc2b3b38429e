"""Strategy registry and options: names, required tables, refused options, label budgets and the controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocontrast.geo.training_data import training_data
from geocontrast.strategies import STRATEGIES, build_strategy, required_tables
from geocontrast.train.settings import PretrainSettings


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
        build_strategy("byol", tiny_data[1], PretrainSettings(options={"momentun": 0.9}))


def test_bad_positive_source_is_refused(tiny_data):
    with pytest.raises(ValueError, match=r"triplet.positive.*augmentation"):
        build_strategy("triplet", tiny_data[1], PretrainSettings(options={"positive": "nearby"}))


def test_unknown_strategy_error_lists_the_registered_ones(tiny_data):
    with pytest.raises(ValueError, match="context_pos_neg"):
        build_strategy("simclr", tiny_data[1], PretrainSettings())


def test_geo_strategy_without_its_table_is_refused(tiny_data):
    _, data = tiny_data
    without_negatives = training_data(*_frames(tiny_data), neighbours=data.neighbours)
    with pytest.raises(ValueError, match="negatives"):
        build_strategy("context_pos_neg", without_negatives, PretrainSettings())


def _frames(tiny_data):
    manifest, data = tiny_data
    return manifest, data.splits


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
    strategy = build_strategy(name, data, PretrainSettings(label_fraction=budget))
    evaluated = eval_rows(manifest, pd.read_parquet(tiny_inputs["splits"]), budget).train
    assert np.array_equal(strategy.anchor_rows(), evaluated)
    assert strategy.label_fraction == budget


def test_label_free_strategies_record_no_training_labels_and_the_oracle_every_one(tiny_data):
    _, data = tiny_data
    assert build_strategy("augmented", data, PretrainSettings(label_fraction=50)).label_fraction == 0
    assert build_strategy("oracle", data, PretrainSettings()).label_fraction == 100


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
    anchors = build_strategy("context_pos_neg", data, PretrainSettings()).anchor_rows()[:64]
    full = build_strategy("context_pos_neg", data, PretrainSettings()).sample(anchors, np.random.default_rng(3))
    controlled = build_strategy("context_pos_neg", data, PretrainSettings(options={ingredient: control})).sample(
        anchors, np.random.default_rng(3)
    )
    assert {name: rows.shape for name, rows in full.views.items()} == {
        name: rows.shape for name, rows in controlled.views.items()
    }  # the same views, the same sizes
    assert differing_parts(full, controlled) == differs


def test_unmasked_control_masks_only_an_anchor_drawn_as_its_own_negative(tiny_data):
    _, data = tiny_data
    strategy = build_strategy("context_pos_neg", data, PretrainSettings(options={"mask": False}))
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
    named = build_strategy(name, data, PretrainSettings())
    anchors = named.anchor_rows()[:64]
    for other in ("augmented", "context_pos", "context_pos_neg"):
        point = build_strategy(other, data, PretrainSettings(options=options))
        assert not differing_parts(
            named.sample(anchors, np.random.default_rng(5)), point.sample(anchors, np.random.default_rng(5))
        )


def test_bad_extra_negatives_source_is_refused(tiny_data):
    with pytest.raises(ValueError, match=r"context_pos.extra_negatives.*geo"):
        build_strategy("context_pos", tiny_data[1], PretrainSettings(options={"extra_negatives": "far"}))


def test_smoothing_the_targets_of_dropped_items_is_refused(tiny_data):
    with pytest.raises(ValueError, match=r"context_pos_neg.near_smoothing.*near_weight > 0"):
        build_strategy("context_pos_neg", tiny_data[1], PretrainSettings(options={"near_smoothing": 0.1}))
