"""The auxiliary geographic terms of the NT-Xent factorial: location_align (image-location InfoNCE) and geo_pretext
(geographic-cluster prediction) each differ from their control, augmented, by their term alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_strategy_options import differing_parts

from geocontrast.strategies import build_strategy
from geocontrast.strategies.auxiliary import geographic_clusters
from geocontrast.strategies.diagnostics import pair_diagnostics, sample_batches
from geocontrast.train.settings import PretrainSettings

FEATURE_DIM = 8
WEIGHT = {"location_align": "location_weight", "geo_pretext": "pretext_weight"}


class Encoder(torch.nn.Module):
    feature_dim = FEATURE_DIM


def features_of(anchors: np.ndarray) -> dict[str, torch.Tensor]:
    """Encoder features of both views (B, FEATURE_DIM), leaves whose .grad is the gradient the encoder receives."""
    g = torch.Generator().manual_seed(0)
    return {
        view: torch.randn(anchors.size, FEATURE_DIM, generator=g, requires_grad=True) for view in ("anchor", "positive")
    }


def loss_and_gradients(strategy, anchors: np.ndarray, eval_heads: bool = False):
    """The strategy's loss on fixed features and its gradient to each view's features (its heads seeded alike)."""
    torch.manual_seed(0)
    heads = strategy.heads(Encoder())
    heads.train(not eval_heads)
    features = features_of(anchors)
    batch = strategy.sample(anchors, np.random.default_rng(0))
    loss = strategy.loss(features, heads, batch, {})
    loss.backward()
    return loss.item(), {view: tensor.grad for view, tensor in features.items()}, heads


@pytest.mark.parametrize("name", ["location_align", "geo_pretext"])
def test_each_samples_the_batches_of_augmented_and_sends_its_images_through_the_encoder(tiny_data, name):
    _, data = tiny_data
    augmented = build_strategy("augmented", data, PretrainSettings())
    strategy = build_strategy(name, data, PretrainSettings())
    anchors = augmented.anchor_rows()[:64]
    ours, control = (
        strategy.sample(anchors, np.random.default_rng(3)),
        augmented.sample(anchors, np.random.default_rng(3)),
    )
    assert not differing_parts(ours, control)
    sizes = {view: rows.size for view, rows in ours.views.items()}
    assert strategy.encoder_images(sizes) == augmented.encoder_images(sizes) == 2 * anchors.size


@pytest.mark.parametrize("name", ["location_align", "geo_pretext"])
def test_at_weight_zero_heads_loss_and_encoder_gradients_are_augmenteds(tiny_data, name):
    _, data = tiny_data
    anchors = build_strategy("augmented", data, PretrainSettings()).anchor_rows()[:32]
    control_loss, control_grad, control_heads = loss_and_gradients(
        build_strategy("augmented", data, PretrainSettings()), anchors
    )
    zero_loss, zero_grad, zero_heads = loss_and_gradients(
        build_strategy(name, data, PretrainSettings(options={WEIGHT[name]: 0.0})), anchors
    )
    assert zero_heads.state_dict().keys() == control_heads.state_dict().keys()
    assert zero_loss == control_loss
    assert all(torch.equal(zero_grad[view], control_grad[view]) for view in control_grad)
    weighted_loss, weighted_grad, _ = loss_and_gradients(build_strategy(name, data, PretrainSettings()), anchors)
    assert weighted_loss != control_loss and not torch.equal(weighted_grad["anchor"], control_grad["anchor"])
    assert torch.equal(weighted_grad["positive"], control_grad["positive"])  # the term reads the anchor view only


@pytest.mark.parametrize("name", ["location_align", "geo_pretext"])
def test_the_term_sends_no_gradient_to_the_features_of_photos_without_coordinates(tiny_data, name):
    _, data = tiny_data
    strategy = build_strategy(name, data, PretrainSettings(options={"projection_hidden_dim": 16}))
    (term,) = strategy.auxiliary
    anchors = strategy.anchor_rows()
    located = np.isfinite(data.unit[anchors]).all(axis=1)
    assert 0 < located.sum() < anchors.size  # the tiny world has train photos without coordinates
    torch.manual_seed(0)
    heads = strategy.heads(Encoder()).eval()  # batch-norm on running statistics: rows do not mix
    features = features_of(anchors)
    term.loss(features, heads, anchors).backward()
    gradient = features["anchor"].grad.abs().sum(dim=1).numpy()
    assert (gradient[~located] == 0).all() and (gradient[located] > 0).all()


def test_location_term_encodes_place_and_day_and_marks_the_photos_without_coordinates(tiny_data):
    _, data = tiny_data
    (term,) = build_strategy("location_align", data, PretrainSettings()).auxiliary
    assert np.array_equal(term.located, np.isfinite(data.unit).all(axis=1))
    assert term.encoded.shape == (data.n_rows, 6) and np.isfinite(term.encoded).all()
    (place_only,) = build_strategy("location_align", data, PretrainSettings(options={"location_date": False})).auxiliary
    assert np.allclose(place_only.encoded, term.encoded[:, :4])


def test_geo_pretext_clusters_are_deterministic_per_seed_and_differ_across_seeds(tiny_data):
    _, data = tiny_data

    def clusters(seed):
        (term,) = build_strategy(
            "geo_pretext", data, PretrainSettings(seed=seed, options={"pretext_clusters": 8})
        ).auxiliary
        return term.clusters

    first, again, other = clusters(0), clusters(0), clusters(1)
    assert np.array_equal(first, again)
    located = first >= 0
    pairs = set(zip(first[located], other[located]))
    assert len(pairs) > len(set(first[located]))  # not one partition relabelled: the partitions differ


def test_geo_pretext_clusters_every_located_photo_and_nothing_else(tiny_data):
    _, data = tiny_data
    (term,) = build_strategy("geo_pretext", data, PretrainSettings(options={"pretext_clusters": 8})).auxiliary
    located = np.isfinite(data.unit).all(axis=1)
    assert np.array_equal(term.clusters >= 0, located)
    assert set(term.clusters[located]) == set(range(8))


def test_clusters_are_as_many_as_the_distinct_places_when_fewer_than_asked():
    unit = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [np.nan] * 3])
    clusters, n_clusters = geographic_clusters(unit, np.arange(5), k=10, seed=0)
    assert n_clusters == 3
    assert clusters[0] == clusters[1] and len({clusters[1], clusters[2], clusters[3]}) == 3 and clusters[4] == -1


@pytest.mark.parametrize(("option", "value"), [("location_weight", -1.0), ("pretext_clusters", 1)])
def test_bad_auxiliary_options_are_refused_naming_the_config_key(tiny_data, option, value):
    with pytest.raises(ValueError, match=rf"strategy_options.augmented.{option}"):
        build_strategy("augmented", tiny_data[1], PretrainSettings(options={option: value, "pretext_weight": 1.0}))


def test_pairs_json_gives_augmented_positives_and_the_reach_of_each_term(tiny_data):
    manifest, data = tiny_data
    strategy = build_strategy(
        "augmented",
        data,
        PretrainSettings(options={"location_weight": 1.0, "pretext_weight": 1.0, "pretext_clusters": 8}),
    )
    batches = sample_batches(strategy, 32, np.random.default_rng(0))
    record = pair_diagnostics(manifest, strategy, batches, np.random.default_rng(1))
    anchors = np.concatenate([batch.views["anchor"] for batch in batches])
    located = np.isfinite(data.unit[anchors]).all(axis=1).mean()
    assert record["pairs"]["positive"]["self_share"] == 1.0  # the anchor itself, as augmented
    assert record["auxiliary"]["location"]["located_share"] == pytest.approx(located)
    assert record["auxiliary"]["pretext"]["targeted_share"] == pytest.approx(located)
    assert record["auxiliary"]["pretext"]["n_clusters"] == len(record["auxiliary"]["pretext"]["sizes"]) == 8
    train = strategy.anchor_rows()
    assert sum(record["auxiliary"]["pretext"]["sizes"]) == np.isfinite(data.unit[train]).all(axis=1).sum()
    assert {note["what"] for note in record["notes"]} >= {"the image-location term", "the geographic-cluster term"}
    assert build_strategy("augmented", data, PretrainSettings()).auxiliary_diagnostics(batches) is None


@pytest.mark.parametrize("name", ["location_align", "geo_pretext"])
def test_trained_at_weight_zero_the_encoder_is_augmenteds_bit_for_bit(tiny_inputs, tmp_path, name):
    from test_train_loop import encoder_state, run

    control = run(tiny_inputs, tmp_path / "augmented", strategy="augmented", epochs=1, steps_per_epoch=2)
    zero = run(tiny_inputs, tmp_path / name, strategy=name, epochs=1, steps_per_epoch=2, options={WEIGHT[name]: 0.0})
    weighted = run(tiny_inputs, tmp_path / f"{name}_weighted", strategy=name, epochs=1, steps_per_epoch=2)
    control, zero, weighted = encoder_state(control), encoder_state(zero), encoder_state(weighted)
    assert all(torch.equal(zero[key], control[key]) for key in control)
    assert not all(torch.equal(weighted[key], control[key]) for key in control)
