"""Every evaluation stage that works in blocks of rows gives exactly what its dense counterpart gives.

Features are unit vectors with four entries of +-0.5, so every cosine is a multiple of 0.25, computed exactly in
any summation order: equal similarities (ties) are common, and exact equality is the right test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geocontrast.evaluate import metrics, similarity
from geocontrast.evaluate.embed import embed, open_features
from geocontrast.evaluate.metrics import ranked_classes
from geocontrast.evaluate.protocols import feature_rows, knn_probabilities, linear_probe
from geocontrast.evaluate.tasks import neighbourhood_disagreement
from geocontrast.models import build_encoder

BLOCK_ROWS = [1, 3, 7, 64]  # none divides the 10 query rows but 1; 64 holds them all in one block


def tied_features(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit rows with four entries of +-0.5 each."""
    rng = np.random.default_rng(seed)
    features = np.zeros((n, dim), dtype=np.float32)
    for row in features:
        row[rng.choice(dim, size=4, replace=False)] = rng.choice([-0.5, 0.5], size=4)
    return features


def bytes_for(rows: int, n_bank: int) -> int:
    """block_bytes that make :func:`similarity.block_rows` give ``rows`` rows per block."""
    return rows * 4 * n_bank


def test_block_rows_fit_the_byte_budget():
    assert similarity.block_rows(1000, bytes_for(7, 1000)) == 7
    assert similarity.block_rows(1000, 1) == 1  # at least one row, however small the budget
    assert similarity.block_rows(0) >= 1


@pytest.mark.parametrize("rows", BLOCK_ROWS)
def test_blocked_top_k_equals_the_dense_top_k_ties_included(rows):
    queries, bank = torch.from_numpy(tied_features(10, seed=1)), torch.from_numpy(tied_features(25, seed=2))
    dense = (queries @ bank.T).topk(5, dim=1)
    assert (dense.values[:, :-1] == dense.values[:, 1:]).any(), "the data must hold ties"
    blocks = list(similarity.top_k_blocks(queries, bank, 5, block_bytes=bytes_for(rows, 25)))
    assert [start for start, _, _ in blocks] == list(range(0, 10, rows))
    assert torch.equal(torch.cat([values for _, values, _ in blocks]), dense.values)
    assert torch.equal(torch.cat([index for _, _, index in blocks]), dense.indices)


@pytest.mark.parametrize("rows", BLOCK_ROWS)
def test_blocked_top_k_without_self_equals_the_dense_matrix_with_its_diagonal_masked(rows):
    z = torch.from_numpy(tied_features(10, seed=3))
    dense = z @ z.T
    dense.fill_diagonal_(-float("inf"))
    index = similarity.top_k_indices(z, z, 4, exclude_self=True, block_bytes=bytes_for(rows, 10))
    assert torch.equal(index, dense.topk(4, dim=1).indices)
    assert not (index == torch.arange(10)[:, None]).any()


def test_top_k_of_no_queries_is_empty():
    assert similarity.top_k_indices(torch.zeros(0, 4), torch.eye(4), 2).shape == (0, 2)


@pytest.mark.parametrize("rows", [1, 3, 7])
def test_knn_scores_are_the_same_in_blocks_as_in_one_block(rows):
    train_x, test_x = tied_features(25, seed=4), tied_features(10, seed=5)
    train_y = np.arange(25) % 4
    one_block = knn_probabilities(train_x, train_y, test_x, 6, {"k": 5}, block_bytes=bytes_for(64, 25))
    blocked = knn_probabilities(train_x, train_y, test_x, 6, {"k": 5}, block_bytes=bytes_for(rows, 25))
    np.testing.assert_array_equal(blocked, one_block)


def test_knn_scores_in_one_block_are_the_dense_formula():
    """The dense formula written out: the k most similar rows vote exp(similarity / temperature)."""
    train_x, test_x = tied_features(25, seed=6), tied_features(10, seed=7)
    train_y = np.arange(25) % 3
    probs = knn_probabilities(train_x, train_y, test_x, 3, {"k": 4, "temperature": 0.5})
    top = (torch.from_numpy(test_x) @ torch.from_numpy(train_x).T).topk(4, dim=1)
    votes = np.zeros((10, 3))
    np.add.at(votes, (np.arange(10)[:, None], train_y[top.indices.numpy()]), np.exp(top.values.double().numpy() / 0.5))
    voted = votes > 0
    np.testing.assert_allclose(probs[voted], (votes / votes.sum(axis=1, keepdims=True))[voted], rtol=1e-3)
    smallest_voted = np.where(voted, probs, np.inf).min(axis=1, keepdims=True)
    assert (np.where(voted, 0.0, probs) < smallest_voted).all()


@pytest.mark.parametrize("rows", BLOCK_ROWS)
def test_neighbourhood_disagreement_in_blocks_equals_the_dense_matrix(rows):
    features = tied_features(10, seed=8)
    labels = np.arange(10) % 3
    z = F.normalize(torch.from_numpy(features), dim=1)
    dense = z @ z.T
    dense.fill_diagonal_(-float("inf"))
    expected = (labels[dense.topk(3, dim=1).indices.numpy()] != labels[:, None]).mean(axis=1)
    np.testing.assert_array_equal(neighbourhood_disagreement(features, labels, 3, bytes_for(rows, 10)), expected)


def test_ranked_classes_in_row_blocks_equal_one_full_sort(monkeypatch):
    scores = np.random.default_rng(9).integers(0, 3, size=(10, 6)).astype(np.float32)  # many tied scores
    full = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    monkeypatch.setattr(metrics, "RANK_BLOCK_ROWS", 3)
    np.testing.assert_array_equal(ranked_classes(scores, 4), full)
    assert ranked_classes(scores[:0], 4).shape == (0, 4)


def test_embeddings_streamed_to_a_memory_mapped_file_equal_those_held_in_memory(tmp_path, monkeypatch):
    from geocontrast.evaluate import embed as embed_module

    monkeypatch.setattr(embed_module, "CHUNK_ROWS", 7)  # chunks that do not divide the 20 rows
    cache = np.random.default_rng(10).integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    torch.manual_seed(0)
    encoder = build_encoder("cnn5", small_input=True)
    in_memory = embed(encoder, cache, 16, torch.device("cpu"))
    streamed = open_features(tmp_path / "features.npy", 20, encoder.feature_dim)
    embed(encoder, cache, 16, torch.device("cpu"), out=streamed)
    streamed.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "features.npy"), in_memory)
    with pytest.raises(ValueError, match="expected"):
        embed(encoder, cache, 16, torch.device("cpu"), out=np.zeros((19, encoder.feature_dim), np.float16))


def test_probe_on_rows_read_from_float16_memory_map_equals_the_probe_on_all_features_in_memory(tmp_path):
    rng = np.random.default_rng(11)
    features = rng.normal(size=(60, 8)).astype(np.float16)
    np.save(tmp_path / "features.npy", features)
    mapped = np.load(tmp_path / "features.npy", mmap_mode="r")
    labels = np.arange(60) % 3
    train, val, test = np.arange(0, 40), np.arange(40, 50), np.arange(50, 60)
    params = {"epochs": 2, "weight_decays": [0.0]}
    in_memory = features.astype(np.float32)
    expected, _ = linear_probe(
        in_memory[train], labels[train], in_memory[val], labels[val], in_memory[test], 3, params, seed=0
    )
    from_map = [feature_rows(mapped, rows) for rows in (train, val, test)]
    probs, _ = linear_probe(from_map[0], labels[train], from_map[1], labels[val], from_map[2], 3, params, seed=0)
    np.testing.assert_array_equal(probs, expected)
