"""The evaluation's arithmetic on hand-made inputs: top-k, macro and per-rank accuracy, the most common species,
confusions, kNN votes and the L2 linear probe (its penalty grid, the choice on val, classes without train rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocontrast.evaluate.protocols import knn_probabilities, linear_probe
from geocontrast.evaluate.settings import KnnSettings, LinearSettings
from geocontrast.metrics import (
    ancestor_codes,
    confused_pairs,
    macro_top_k_accuracy,
    most_common_scores,
    rank_accuracy,
    ranked_classes,
    top_k_accuracy,
)

SCORES = np.array(
    [
        [0.5, 0.3, 0.2],  # label 0: top-1 hit
        [0.1, 0.2, 0.7],  # label 1: second -> top-2 hit
        [0.6, 0.3, 0.1],  # label 2: third -> top-3 hit
        [0.2, 0.2, 0.6],
    ]
)  # label 1: tie with class 0 at rank 2, lower index wins -> top-3 hit
LABELS = np.array([0, 1, 2, 1])


def test_top_k_accuracy_matches_a_hand_count():
    assert top_k_accuracy(SCORES, LABELS, ks=(1, 2, 3)) == {1: 0.25, 2: 0.5, 3: 1.0}


def test_macro_accuracy_weighs_every_class_equally():
    # top-1 hits per class: class 0 1/1, class 1 0/2, class 2 0/1 -> mean of (1, 0, 0)
    assert macro_top_k_accuracy(SCORES, LABELS, ks=(1, 2)) == {1: pytest.approx(1 / 3), 2: pytest.approx(1 / 2)}


def test_metrics_refuse_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        top_k_accuracy(SCORES, np.array([0, 1, 2, 3]))


def test_most_common_baseline_scores_the_majority_share():
    train = np.array([2, 2, 2, 0, 1, 1])
    test = np.array([2, 1, 0, 2, 2])
    scores = most_common_scores(train, n_classes=3, n_rows=test.size)
    assert top_k_accuracy(scores, test, ks=(1, 2)) == {1: 3 / 5, 2: 4 / 5}  # class 2, then class 1


def test_rank_accuracy_maps_predictions_and_labels_to_their_ancestors():
    taxonomy = pd.DataFrame(
        {
            "species": ["a x", "a y", "b z"],
            "genus": ["a", "a", "b"],
            "family": ["F", "F", "F"],
            "order": ["O", "O", "O"],
            "class": ["C", "C", "C"],
            "phylum": ["P", "P", "P"],
            "kingdom": ["K", "K", "K"],
        }
    )
    ancestors = ancestor_codes(["a x", "a y", "b z"], taxonomy)
    assert ancestors["genus"].tolist() == [0, 0, 1]
    accuracy = rank_accuracy(np.array([1, 2, 0]), np.array([0, 2, 2]), ancestors)
    assert accuracy["species"] == pytest.approx(1 / 3)
    assert accuracy["genus"] == pytest.approx(2 / 3)  # a y for a x is right at genus level
    assert accuracy["family"] == 1.0


def test_a_species_with_two_lineages_is_refused():
    taxonomy = pd.DataFrame(
        {
            "species": ["s", "s"],
            "genus": ["g1", "g2"],
            **{rank: ["r", "r"] for rank in ("family", "order", "class", "phylum", "kingdom")},
        }
    )
    with pytest.raises(ValueError, match="two lineages"):
        ancestor_codes(["s"], taxonomy)


def test_confused_pairs_count_the_wrong_predictions():
    pairs = confused_pairs(np.array([1, 1, 0, 2]), np.array([0, 0, 0, 1]), ["a", "b", "c"])
    assert pairs == [{"true": "a", "predicted": "b", "count": 2}, {"true": "b", "predicted": "c", "count": 1}]


def test_knn_votes_with_exponential_similarity_weights():
    train_x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    train_y = np.array([0, 1, 1])
    probs = knn_probabilities(
        train_x, train_y, np.array([[2.0, 0.0]]), n_classes=3, settings=KnnSettings(k=2, temperature=1.0)
    )
    w0, w2 = np.exp(1.0), np.exp(1 / np.sqrt(2))  # cosine similarities 1 and 1/sqrt(2)
    np.testing.assert_allclose(probs, [[w0 / (w0 + w2), w2 / (w0 + w2), 0.0]], rtol=1e-6)


def test_knn_ranks_classes_without_votes_by_labelled_frequency_not_index():
    # the query's 2 nearest are class 3; classes 0, 1, 2 get no vote and have 1, 4 and 2 labelled rows
    train_x = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], *([[-1.0, 0.1]] * 4), [-0.1, -1.0], [-0.2, -1.0]])
    train_y = np.array([3, 3, 0, 1, 1, 1, 1, 2, 2])
    probs = knn_probabilities(train_x, train_y, np.array([[1.0, 0.05]]), n_classes=5, settings=KnnSettings(k=2))
    assert ranked_classes(probs, 5)[0].tolist() == [3, 1, 2, 0, 4]  # class 4: never labelled, last
    assert probs[0, 3] == pytest.approx(1.0, abs=1e-3) and probs.sum() == pytest.approx(1.0)


def separable_features(seed: int = 0, n_per_class: int = 20, n_classes: int = 3):
    centres = np.random.default_rng(100).normal(size=(n_classes, 8)) * 3  # the same classes in every split
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(size=(labels.size, 8)), labels


def test_linear_probe_selects_on_val_and_ignores_the_test_inputs():
    train_x, train_y = separable_features(0)
    val_x, val_y = separable_features(1)
    test_x, test_y = separable_features(2)
    params = LinearSettings(penalties=(1e-3, 1.0))
    probs, selection = linear_probe(train_x, train_y, val_x, val_y, test_x, 3, params)
    assert top_k_accuracy(probs, test_y, ks=(1,))[1] > 0.9
    _, with_noise = linear_probe(
        train_x, train_y, val_x, val_y, np.random.default_rng(3).normal(size=test_x.shape), 3, params
    )
    assert with_noise == selection
    assert set(selection["val_top1_by_penalty"]) == {"0.001", "1.0"} and selection["penalties"] == [1.0, 1e-3]


def signal_in_noise(seed: int, per_class: tuple[int, ...], noise_dims: int = 40):
    """Unbalanced classes told apart by two features among ``noise_dims`` pure-noise ones: with few rows a weak
    penalty fits the noise, and the strongest leaves only the bias, i.e. the majority class."""
    centres = np.random.default_rng(100).normal(size=(len(per_class), 2)) * 2.0
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(per_class)), per_class)
    noise = rng.normal(size=(labels.size, noise_dims))
    return np.concatenate([centres[labels] + rng.normal(size=(labels.size, 2)), noise], axis=1), labels


def test_the_probes_penalty_shrinks_its_weights_monotonically_across_the_grid():
    (train_x, train_y), (val_x, val_y) = signal_in_noise(5, (12, 4, 4)), signal_in_noise(100, (30, 10, 10))
    _, selection = linear_probe(train_x, train_y, val_x, val_y, val_x, 3, LinearSettings())
    norms = [selection["weight_norm_by_penalty"][str(p)] for p in sorted(LinearSettings().penalties)]
    assert all(weaker > stronger for weaker, stronger in zip(norms, norms[1:]))
    assert norms[0] > 100 * norms[-1]  # the grid spans a real range of fits, not near-identical ones


@pytest.mark.parametrize("seed", [5, 7])
def test_val_picks_an_interior_penalty_where_weak_overfits_and_strong_underfits(seed):
    (train_x, train_y), (val_x, val_y) = signal_in_noise(seed, (12, 4, 4)), signal_in_noise(100, (300, 100, 100))
    penalties = LinearSettings().penalties
    _, selection = linear_probe(train_x, train_y, val_x, val_y, val_x, 3, LinearSettings())
    by_penalty = selection["val_top1_by_penalty"]
    assert min(penalties) < selection["penalty"] < max(penalties)
    assert selection["val_top1"] > max(by_penalty[str(min(penalties))], by_penalty[str(max(penalties))])


def test_classes_without_train_rows_rank_below_every_fitted_class():
    train_x, train_y = separable_features(0)
    val_x, val_y = separable_features(1)
    probs, _ = linear_probe(train_x, train_y, val_x, val_y, val_x, 5, LinearSettings(penalties=(0.1,)))
    assert probs.shape == (val_x.shape[0], 5) and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs[:, 3:].max(axis=1) < probs[:, :3].min(axis=1)).all() and (probs[:, 3:] > 0).all()
