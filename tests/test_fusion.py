"""Feature fusion: the linear probe on two strategies' concatenated frozen features (protocol ``fusion``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_compare import results_frame

from geocontrast.evaluate import fusion
from geocontrast.evaluate.frozen import frozen_record
from geocontrast.evaluate.protocols import EvalRows
from geocontrast.evaluate.settings import LinearSettings
from geocontrast.results import compare as cmp

LINEAR = LinearSettings(penalties=(0.0,))  # no penalty: duplicated columns would halve its effective strength


def test_fused_features_are_the_parts_side_by_side():
    first, second = np.arange(12.0).reshape(3, 4), -np.arange(6.0).reshape(3, 2)
    fused = fusion.fuse(first, second)
    assert fused.shape == (3, 4 + 2) and fused.dtype == np.float32
    assert (fused[:, :4] == first).all() and (fused[:, 4:] == second).all()


def test_features_of_different_rows_are_not_fused():
    with pytest.raises(ValueError, match="same rows"):
        fusion.fuse(np.zeros((3, 4)), np.zeros((4, 4)))


def noisy_species(codes: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """An 'encoder' whose features are its own noisy centre of each row's species."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(codes.max() + 1, dim))[codes] + 1.5 * rng.normal(size=(codes.size, dim))


def species_rows(n_classes: int = 5, per_class: tuple[int, int, int] = (40, 20, 40)) -> EvalRows:
    """Evaluation rows of ``n_classes`` species: train, val and test rows one after the other."""
    codes = np.concatenate([np.repeat(np.arange(n_classes), n) for n in per_class])
    ends = np.cumsum([n * n_classes for n in per_class])
    train, val, test = np.split(np.arange(codes.size), ends[:-1])
    names = [f"s{i}" for i in range(n_classes)]
    return EvalRows(train, val, test, codes, names, {"species": np.arange(n_classes)})


def probe(rows: EvalRows, *features: np.ndarray) -> dict:
    run = {"seed": 0, "strategy": "a+b"}
    return fusion.fusion_record(list(features), pd.DataFrame(index=rows.codes), rows, run, LINEAR)


def test_fusing_an_encoder_with_itself_scores_as_its_linear_probe():
    rows = species_rows()
    features = noisy_species(rows.codes, dim=6, seed=0)
    alone = frozen_record("linear", features, None, rows, {"seed": 0, "strategy": "a"}, LINEAR)
    fused = probe(rows, features, features)
    assert fused["protocol"] == "fusion" and fused["feature_dims"] == [6, 6]
    assert 0.3 < alone["top1"] < 0.95  # neither trivial nor hopeless, so a difference could show
    assert fused["top1"] == pytest.approx(alone["top1"], abs=0.05)


def test_complementary_features_fuse_into_a_better_probe():
    rows = species_rows()
    first, second = noisy_species(rows.codes, 3, seed=1), noisy_species(rows.codes, 3, seed=2)  # own noise each
    assert probe(rows, first, second)["top1"] > probe(rows, first, np.zeros_like(second))["top1"] + 0.05


def test_a_fused_pair_is_compared_with_each_part_as_a_linear_probe():
    parts = results_frame({"a": [0.5, 0.6, 0.55], "b": [0.4, 0.5, 0.45]})
    results = pd.concat([parts, results_frame({"a+b": [0.6, 0.7, 0.6]}, "fusion")])
    table = cmp.compare(results, settings=cmp.CompareSettings(reference="a", metrics=("top1",)))
    fused = table[table["strategy"] == "a+b"]
    assert sorted(fused["reference"]) == ["a", "b"]
    assert set(fused["protocol"]) == {"linear"}
    assert fused.set_index("reference")["diff"]["b"] == pytest.approx(np.mean([0.2, 0.2, 0.15]))
