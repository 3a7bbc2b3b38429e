"""Every evaluation stage that works in blocks of rows gives exactly what its dense counterpart gives.

Features are unit vectors with four entries of +-0.5, so every cosine is a multiple of 0.25, computed exactly in
any summation order: equal similarities (ties) are common, and exact equality is the right test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geocontrast import metrics
from geocontrast.evaluate import similarity
from geocontrast.evaluate.embed import embed, open_features
from geocontrast.evaluate.protocols import feature_rows, knn_probabilities, linear_probe
from geocontrast.evaluate.settings import KnnSettings, LinearSettings
from geocontrast.evaluate.tasks import neighbourhood_disagreement
from geocontrast.metrics import ranked_classes
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
    one_block = knn_probabilities(train_x, train_y, test_x, 6, KnnSettings(k=5), block_bytes=bytes_for(64, 25))
    blocked = knn_probabilities(train_x, train_y, test_x, 6, KnnSettings(k=5), block_bytes=bytes_for(rows, 25))
    np.testing.assert_array_equal(blocked, one_block)


def test_knn_scores_in_one_block_are_the_dense_formula():
    """The dense formula written out: the k most similar rows vote exp(similarity / temperature)."""
    train_x, test_x = tied_features(25, seed=6), tied_features(10, seed=7)
    train_y = np.arange(25) % 3
    probs = knn_probabilities(train_x, train_y, test_x, 3, KnnSettings(k=4, temperature=0.5))
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
    params = LinearSettings(max_iter=5, penalties=(0.01,))
    in_memory = features.astype(np.float32)
    expected, _ = linear_probe(in_memory[train], labels[train], in_memory[val], labels[val], in_memory[test], 3, params)
    from_map = [feature_rows(mapped, rows) for rows in (train, val, test)]
    probs, _ = linear_probe(from_map[0], labels[train], from_map[1], labels[val], from_map[2], 3, params)
    np.testing.assert_array_equal(probs, expected)


def test_softmax_written_over_the_logits_in_row_blocks_equals_the_softmax_of_all_rows(monkeypatch):
    from geocontrast.evaluate import protocols

    logits = torch.randn(10, 6, generator=torch.Generator().manual_seed(12)) * 5
    expected = logits.softmax(dim=1)
    monkeypatch.setattr(protocols, "SOFTMAX_BLOCK_ROWS", 3)
    result = protocols.softmax_in_place(logits)
    assert result.data_ptr() == logits.data_ptr()  # no second (n, C) tensor
    assert torch.equal(result, expected)


def test_rows_encoded_into_one_tensor_equal_each_batch_encoded_alone():
    from geocontrast.runtime import encode_rows, gather_rows, normalise

    cache = np.random.default_rng(13).integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    torch.manual_seed(0)
    encoder = build_encoder("cnn5", small_input=True).eval()
    rows = np.array([19, 0, 3, 3, 7, 11, 12, 5, 2])  # batches of 4 that do not divide the 9 rows
    with torch.no_grad():
        batches = [encoder(normalise(gather_rows(cache, rows[s : s + 4], torch.device("cpu")))) for s in (0, 4, 8)]
    encoded = encode_rows(encoder, cache, rows, 16, torch.device("cpu"), batch_size=4)
    assert torch.equal(encoded, torch.cat(batches))
    assert encode_rows(encoder, cache, rows[:0], 16, torch.device("cpu")).shape == (0, encoder.feature_dim)


def test_combine_reading_its_location_rows_in_blocks_equals_combine_on_the_rows_copied_out(monkeypatch):
    from geocontrast.prior import scores as prior_scores

    rng = np.random.default_rng(14)
    location = rng.random((30, 6))  # every photo's prior
    rows = rng.choice(30, size=11, replace=False)
    image = rng.dirichlet(np.ones(6), size=11).astype(np.float32)
    prior = prior_scores.class_frequencies(rng.integers(0, 6, 40), 6)
    expected = prior_scores.combine(image, location[rows], prior, 0.5)
    monkeypatch.setattr(prior_scores, "COMBINE_BLOCK_ELEMENTS", 3 * 6)  # blocks of 3 rows
    np.testing.assert_array_equal(prior_scores.combine(image, location, prior, 0.5, location_rows=rows), expected)
    labels = rng.integers(0, 6, 11)
    chosen = prior_scores.choose_prior_weight(image, location, labels, prior, location_rows=rows)
    assert chosen == prior_scores.choose_prior_weight(image, location[rows], labels, prior)
    with pytest.raises(ValueError, match="must be equal"):
        prior_scores.combine(image, location, prior, 0.5, location_rows=rows[:5])


def test_most_common_scores_are_one_shared_row_not_a_copy_per_photo():
    scores = metrics.most_common_scores(np.array([2, 2, 1]), n_classes=3, n_rows=100_000)
    np.testing.assert_array_equal(scores, np.tile([0.0, 1 / 3, 2 / 3], (100_000, 1)))
    assert scores.strides[0] == 0 and not scores.flags.writeable


def test_prior_scores_and_reliability_read_in_row_blocks_equal_those_of_the_rows_copied_out(tmp_path, monkeypatch):
    from geocontrast.npy_rows import NpyRows
    from geocontrast.prior import scores as prior_scores

    rng = np.random.default_rng(15)
    probs = rng.dirichlet(np.ones(6), size=30).astype(np.float32)
    np.save(tmp_path / "probs.npy", probs)
    rows = np.sort(rng.choice(30, size=11, replace=False))
    labels = rng.integers(0, 6, 11)
    scores = prior_scores.prior_only_scores(probs[rows], labels)
    calibration = prior_scores.reliability(probs[rows], labels)
    assert scores == {f"top{k}": prior_scores.top_k_accuracy(probs[rows], labels)[k] for k in (1, 5)}
    monkeypatch.setattr(prior_scores, "COMBINE_BLOCK_ELEMENTS", 2 * 6)  # blocks of 2 rows
    on_disk = NpyRows(tmp_path / "probs.npy")
    assert prior_scores.prior_only_scores(on_disk, labels, rows) == scores
    assert json.dumps(prior_scores.reliability(on_disk, labels, rows=rows)) == json.dumps(calibration)  # NaN too
    assert prior_scores.prior_only_scores(on_disk, labels[:0], rows[:0]) == {"top1": None, "top5": None}


def test_npy_rows_reads_the_rows_asked_for_and_keeps_no_map_open(tmp_path):
    import gc

    from geocontrast.npy_rows import NpyRows

    array = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(tmp_path / "a.npy", array)
    rows = NpyRows(tmp_path / "a.npy")
    assert (rows.shape, rows.dtype, rows.ndim, len(rows)) == ((10, 4), np.float32, 2, 10)
    np.testing.assert_array_equal(rows[np.array([7, 2, 2])], array[[7, 2, 2]])
    block = rows[3:5]
    np.testing.assert_array_equal(block, array[3:5])
    assert type(block) is np.ndarray and block.base is None  # a copy, not a view of a map
    gc.collect()
    assert str(tmp_path / "a.npy") not in Path("/proc/self/maps").read_text()  # no map of the file is left open


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_top_k_by_partition_equals_the_first_k_of_a_stable_full_sort_ties_and_nan_included(dtype):
    rng = np.random.default_rng(16)
    tied = rng.integers(0, 3, size=(40, 9))  # many ties at every k
    spread = rng.normal(size=(40, 9)) if dtype != np.int64 else rng.integers(-50, 50, size=(40, 9))
    for scores in (tied.astype(dtype), spread.astype(dtype)):
        if np.issubdtype(dtype, np.floating):
            scores[3, [1, 4]] = np.nan  # a sort puts NaN last
            scores[5] = [0.0, -0.0, np.inf, -np.inf, 0.0, 1.0, -0.0, np.inf, 2.0]
        for k in range(1, 10):
            expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            np.testing.assert_array_equal(ranked_classes(scores, k), expected)
