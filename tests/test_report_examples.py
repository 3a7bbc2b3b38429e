"""Figures 5-7 (example pairs, nearest neighbours, embedding map) on the tiny equator world of report_world.py."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_rgb
from report_world import KM_PER_EQUATOR_DEGREE, LON, SPECIES, neighbour_table, taxonomy_columns

from geocontrast.data.manifest import validate_manifest
from geocontrast.report import embedding, examples
from geocontrast.runtime import normalise


def image_axes(figure: plt.Figure) -> list[plt.Axes]:
    return [ax for ax in figure.axes if ax.images]


def is_framed_red(ax: plt.Axes) -> bool:
    red = to_rgb(examples.WRONG_SPECIES_COLOUR)
    return all(spine.get_visible() and spine.get_edgecolor()[:3] == red for spine in ax.spines.values())


# Figure 5: example pairs


def test_example_pair_rows_are_a_positive_a_random_negative_and_a_context_negative(manifest, neighbours, negatives):
    rows = examples.example_pair_rows(manifest, neighbours, negatives, n_anchors=3, seed=1)
    assert rows.shape == (3, 4)
    for anchor, positive, random_negative, context_negative in rows:
        assert positive in neighbours.indices[neighbours.indptr[anchor] : neighbours.indptr[anchor + 1]]
        assert manifest["observation_id"][random_negative] != manifest["observation_id"][anchor]
        assert context_negative in negatives.candidates[anchor]
    assert np.array_equal(rows, examples.example_pair_rows(manifest, neighbours, negatives, 3, seed=1))


def test_anchors_need_a_positive_within_the_radius(neighbours):
    anchors = examples.seeded_anchors(neighbours, n=10, seed=0)
    assert sorted(anchors) == [0, 1, 2, 3, 6, 7]


def test_example_pairs_figure_has_five_labelled_columns_per_anchor(manifest, neighbours, negatives, images):
    figure = examples.example_pairs_figure(images, manifest, neighbours, negatives, n_anchors=3, seed=1)
    axes = image_axes(figure)
    assert len(axes) == 3 * len(examples.PAIR_COLUMNS)
    assert [ax.get_title() for ax in axes[:5]] == list(examples.PAIR_COLUMNS)
    rows = examples.example_pair_rows(manifest, neighbours, negatives, 3, seed=1)
    shown = rows[:, [0, 0, 1, 2, 3]].ravel()  # the augmented view shows the anchor
    species = examples.rank_names(manifest)
    assert [ax.get_xlabel().split("\n")[0] for ax in axes] == list(species[shown])
    assert axes[0].images[0].get_array().shape == (16, 16, 3)
    plt.close(figure)


def test_distances_under_the_images_match_a_hand_computation(manifest, negatives, images):
    only_anchor_zero = neighbour_table({0: [1]})  # every other row with coordinates is a fallback
    figure = examples.example_pairs_figure(images, manifest, only_anchor_zero, negatives, n_anchors=4, seed=0)
    axes = image_axes(figure)
    assert len(axes) == 5
    # Row 1 at 0.03°E, the context negative row 5 at 1°E, on the equator from row 0 at 0°E.
    assert axes[2].get_xlabel() == f"Alpha una\n{0.03 * KM_PER_EQUATOR_DEGREE:.1f} km" == "Alpha una\n3.3 km"
    assert axes[4].get_xlabel().endswith("\n111.3 km")
    random_negative = examples.example_pair_rows(manifest, only_anchor_zero, negatives, 1, seed=0)[0, 2]
    expected = (
        "no coordinates" if np.isnan(LON[random_negative]) else f"{LON[random_negative] * KM_PER_EQUATOR_DEGREE:.1f} km"
    )
    assert axes[3].get_xlabel().split("\n")[1] == expected
    plt.close(figure)


def test_geodesic_km_is_nan_without_coordinates():
    km = examples.geodesic_km(0.0, 0.0, [0.0, np.nan], [1.0, 0.0])
    assert km[0] == pytest.approx(KM_PER_EQUATOR_DEGREE, rel=1e-9) and np.isnan(km[1])


def test_denormalise_inverts_the_augmentation_normalisation():
    pixels = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    restored = examples.denormalise(normalise(torch.from_numpy(pixels)))
    assert restored.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(restored, pixels / 255.0, atol=1e-5)


# Figure 6: nearest neighbours


def test_nearest_rows_rank_by_cosine_and_skip_the_query_observation():
    embeddings = np.array([[1, 0], [1, 0], [10, 1], [0, 1], [1, 1], [-1, 0]], dtype=np.float16)  # (6, 2)
    observation = ["a", "a", "b", None, "c", "d"]
    rows, similarity = examples.nearest_rows(embeddings, np.array([0]), observation, k=3)
    assert rows.tolist() == [[2, 4, 3]]  # row 1 is the query's own observation; length does not matter
    np.testing.assert_allclose(similarity[0], [10 / np.sqrt(101), 1 / np.sqrt(2), 0.0], atol=1e-3)


def test_wrong_species_neighbours_get_a_red_frame_exactly(manifest, images):
    embeddings = np.random.default_rng(3).normal(size=(LON.size, 4))
    queries = np.array([0, 8])
    figure = examples.nearest_neighbours_figure(embeddings, images, manifest, queries, k=5, title="augmented, seed 0")
    axes = np.array(image_axes(figure)).reshape(2, 6)
    rows, _ = examples.nearest_rows(embeddings, queries, manifest["observation_id"], 5)
    species = manifest["species"].to_numpy(object)
    for i, query in enumerate(queries):
        assert not is_framed_red(axes[i, 0])
        for j, row in enumerate(rows[i], start=1):
            wrong = pd.notna(species[row]) and species[row] != species[query]
            assert is_framed_red(axes[i, j]) == wrong, (query, row)
            assert axes[i, j].get_xlabel().split("\n")[0] == examples.rank_names(manifest)[row]
    assert 9 not in rows[1]  # row 9 shares query 8's observation
    assert figure._suptitle.get_text().startswith("augmented, seed 0: 5 nearest neighbours")
    plt.close(figure)


def test_retrieval_queries_are_labelled_test_rows_whatever_the_embedding(manifest):
    rows = np.arange(LON.size)
    split = np.where((rows % 2 == 0) | (rows == 7), "test", "train")
    splits = pd.DataFrame({"image_id": manifest["image_id"], "split": split})
    queries = examples.retrieval_queries(manifest, splits, n_queries=20, seed=0)
    assert sorted(queries) == [0, 2, 4, 6, 8, 10]  # not row 7: it has no species
    with pytest.raises(ValueError, match="manifest order"):
        examples.retrieval_queries(manifest, splits.iloc[::-1], 2, 0)


# Figure 7: embedding


@pytest.fixture
def labelled_world(make_manifest):
    """40 rows cycling through three species; rows 0-29 are test rows."""
    species = [list(SPECIES)[i % 3] for i in range(40)]
    manifest = validate_manifest(make_manifest(40, **taxonomy_columns(species)))
    splits = pd.DataFrame({"image_id": manifest["image_id"], "split": ["test"] * 30 + ["train"] * 10})
    codes = np.arange(40) % 3
    embeddings = np.eye(3)[codes] * 5 + np.random.default_rng(0).normal(size=(40, 3))  # (40, 3) clustered
    return manifest, splits, embeddings.astype(np.float16)


def test_embedding_figure_has_a_genus_and_a_family_panel_with_legends(labelled_world):
    manifest, splits, features = labelled_world
    figure = embedding.embedding_figure(features, manifest, splits, "context_pos, seed 1", max_points=20)
    assert len(figure.axes) == 2
    genus_ax, family_ax = figure.axes
    assert genus_ax.get_title() == "coloured by genus (2 taxa)"
    assert family_ax.get_title() == "coloured by family (2 taxa)"
    assert [t.get_text() for t in genus_ax.get_legend().get_texts()] == ["Alpha", "Beta"]
    assert [t.get_text() for t in family_ax.get_legend().get_texts()] == ["Aceae", "Betaceae"]
    assert sum(len(c.get_offsets()) for c in genus_ax.collections) == 20  # at most max_points test rows
    assert genus_ax.get_xlabel() == "t-SNE 1" and genus_ax.get_ylabel() == "t-SNE 2"
    assert "context_pos, seed 1: t-SNE of 20 test images" in figure._suptitle.get_text()
    plt.close(figure)


def test_rare_and_unidentified_taxa_share_the_grey_colour():
    names = np.array(["a"] * 3 + ["b"] * 2 + ["c"] + [examples.UNIDENTIFIED] * 4)
    colours = embedding.category_colours(names, max_named=2)
    assert colours["a"] != colours["b"]
    assert colours["c"] == colours[examples.UNIDENTIFIED] == embedding.OTHER_COLOUR
    assert embedding.OTHER_COLOUR not in (colours["a"], colours["b"])


def test_tsne_is_seeded(labelled_world):
    _, _, features = labelled_world
    first = embedding.tsne_coordinates(features[:12], seed=4)
    assert first.shape == (12, 2)
    np.testing.assert_array_equal(first, embedding.tsne_coordinates(features[:12], seed=4))
