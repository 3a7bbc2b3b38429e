"""Downstream tasks: label noise, mislabel detection, genus pairs, clustering, rank probes, and their CLI runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_evaluate import run_cli
from tiny_world import build_tiny_inputs

from geocontrast.data.manifest import read_manifest
from geocontrast.evaluate import METRIC_COLUMNS, RUN_COLUMNS, TASKS
from geocontrast.evaluate import tasks as tasks_cli
from geocontrast.evaluate.protocols import eval_rows
from geocontrast.evaluate.tasks import (
    at_rank,
    choose_genus_pairs,
    clustering_scores,
    detection_scores,
    inject_label_noise,
    neighbourhood_disagreement,
)
from geocontrast.train.spent import PRETRAINING_COLLAPSE, PRETRAINING_FACTS, PRETRAINING_LABELS


@pytest.mark.parametrize(("n", "fraction"), [(100, 0.1), (37, 0.2), (10, 0.05)])
def test_injected_label_noise_is_exactly_the_requested_fraction(n, fraction):
    labels = np.arange(n) % 5
    noisy, flipped = inject_label_noise(labels, fraction, 5, np.random.default_rng(0))
    assert flipped.sum() == round(fraction * n)
    assert (noisy[flipped] != labels[flipped]).all() and (noisy[~flipped] == labels[~flipped]).all()
    assert ((noisy >= 0) & (noisy < 5)).all()
    again, _ = inject_label_noise(labels, fraction, 5, np.random.default_rng(0))
    assert np.array_equal(noisy, again)  # seeded


def test_label_noise_fraction_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="noise_fraction"):
        inject_label_noise(np.zeros(4, dtype=int), 1.0, 3, np.random.default_rng(0))


def test_detection_auc_and_precision_on_a_hand_case():
    # the sklearn documentation's toy case: AUC 0.75; the top 2 suspects (0.8, 0.4) hold one flipped row
    scores = detection_scores(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    assert scores["mislabel_auc"] == pytest.approx(0.75)
    assert scores["mislabel_precision"] == pytest.approx(0.5)
    assert scores["roc"]["fpr"][-1] == 1.0 and scores["roc"]["tpr"][-1] == 1.0


def test_neighbourhood_disagreement_counts_other_labels_among_the_nearest():
    features = np.array([[1.0, 0.0], [0.99, 0.1], [0.98, -0.1], [0.0, 1.0], [0.1, 0.99]])
    labels = np.array([0, 0, 1, 1, 1])
    # row 0's 2 nearest: rows 1 (0) and 2 (1) -> 1/2; row 3's: rows 4 (1) and 1 (0) -> 1/2
    assert neighbourhood_disagreement(features, labels, k=2).tolist() == [0.5, 0.5, 1.0, 0.5, 0.5]


def test_genus_pairs_are_the_closest_and_farthest_class_means():
    features = np.array([[1, 0], [1, 0.1], [1, 0.05], [1, 0.12], [0, 1], [0.1, 1], [-1, 0.2], [-1, 0.1]], float)
    genus = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    pairs = choose_genus_pairs(features, genus, ["A", "B", "C", "D"], n_pairs=1)
    assert pairs["similar"] == [["A", "B"]]
    assert pairs["distinct"][0] in (["A", "D"], ["B", "D"])


def test_clustering_separable_blobs_scores_one_and_shuffled_labels_near_zero():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 10
    labels = np.repeat(np.arange(4), 25)
    features = centres[labels] + rng.normal(scale=0.1, size=(100, 4))
    perfect = clustering_scores(features, labels, seed=0)
    assert perfect["nmi"] == pytest.approx(1.0) and perfect["ari"] == pytest.approx(1.0)
    shuffled = clustering_scores(features, rng.permutation(labels), seed=0)
    assert shuffled["ari"] < 0.1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_inputs(tmp_path_factory.mktemp("tiny_tasks"))


def test_rank_rows_map_species_to_their_genus(tiny):
    manifest = read_manifest(tiny["manifest"])
    rows = eval_rows(manifest, pd.read_parquet(tiny["splits"]), 100)
    genus = at_rank(rows, manifest, "genus")
    names = np.array(genus.names, dtype=object)[genus.codes[rows.test]]
    assert list(names) == list(manifest["genus"].to_numpy(object)[rows.test])
    assert set(genus.ancestors) == {"genus", "family", "order", "class", "phylum", "kingdom"}
    family = np.array(sorted(set(manifest["family"].dropna())), dtype=object)
    assert list(family[genus.ancestors["family"][genus.codes[rows.test]]]) == list(
        manifest["family"].to_numpy(object)[rows.test]
    )


@pytest.fixture(scope="module")
def embeddings(tiny, tmp_path_factory):
    import torch

    from geocontrast.data.cache import load_image_cache
    from geocontrast.evaluate.embed import embed, load_or_init_encoder

    out = tmp_path_factory.mktemp("task_embeddings") / "emb.npy"
    encoder, _ = load_or_init_encoder(None, "cnn5", seed=0, small_input=True)
    np.save(out, embed(encoder, load_image_cache(tiny["cache"]), 32, torch.device("cpu")))
    return out


@pytest.mark.parametrize(
    "task", [t for t in TASKS if t in ("genus_probe", "family_probe", "mislabel", "clustering", "genus_pairs")]
)
def test_every_task_cli_writes_a_result_row_with_its_metrics(tiny, embeddings, tmp_path, task):
    extra = {"embeddings": embeddings, "label_fraction": 100}
    if task == "genus_pairs":
        pairs = tmp_path / "pairs.json"
        assert (
            tasks_cli.main(
                [
                    "--cache",
                    str(tiny["cache"]),
                    "--manifest",
                    str(tiny["manifest"]),
                    "--splits",
                    str(tiny["splits"]),
                    "--label-fraction",
                    "100",
                    "--params-json",
                    json.dumps({"n_pairs": 2}),
                    "--out",
                    str(pairs),
                ]
            )
            == 0
        )
        chosen = json.loads(pairs.read_text())
        assert len(chosen["similar"]) == len(chosen["distinct"]) == 2
        extra["pairs"] = pairs
    if task in ("mislabel", "clustering"):
        extra["params_json"] = json.dumps({"noise_fraction": 0.2} if task == "mislabel" else {"n_init": 2})
    record = run_cli(tiny, tmp_path / "out.json", task, **extra)
    from_the_workflow = {"dataset", "encoder", "epochs", "split_mode", "replicate", *PRETRAINING_FACTS.values()}
    from_the_workflow |= {PRETRAINING_LABELS, PRETRAINING_COLLAPSE}  # read from the encoder, like the spent budget
    assert record["protocol"] == task and set(RUN_COLUMNS) - from_the_workflow <= set(record)
    own = {
        "genus_probe": ["top1", "acc_genus", "acc_family"],
        "family_probe": ["top1", "acc_family"],
        "genus_pairs": ["pairs_similar_accuracy", "pairs_distinct_accuracy"],
        "mislabel": ["mislabel_auc", "mislabel_precision"],
        "clustering": ["nmi_species", "ari_species", "nmi_genus", "ari_genus"],
    }[task]
    for metric in own:
        low = -1.0 if metric.startswith("ari") else 0.0  # the adjusted Rand index can be negative
        assert metric in METRIC_COLUMNS and low <= record[metric] <= 1.0, (metric, record)
    if task == "genus_probe":
        assert record["top1"] == record["acc_genus"] and "acc_species" not in record
        assert np.isnan(record["prior_top1"])  # the geo prior is over species, not genera
