"""Collections as they come: no coordinates, a partial taxonomy, the prior switched off. Each stage runs where it
can and says what it could not compute and why."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG
from test_workflow import planned_jobs, snakemake

from geocontrast.data.manifest import read_manifest, validate_manifest, write_manifest
from geocontrast.evaluate import results
from geocontrast.evaluate.frozen import frozen_record
from geocontrast.evaluate.geoprior import load_prior
from geocontrast.evaluate.geoprior import main as geoprior_main
from geocontrast.evaluate.metrics import ancestor_codes
from geocontrast.evaluate.protocols import eval_rows
from geocontrast.geo.negatives import negative_table
from geocontrast.geo.neighbours import neighbour_table
from geocontrast.strategies.diagnostics import fallback_warnings

SPECIES = ["Quercus agrifolia", "Quercus lobata", "Pinus radiata", "Pinus contorta"]
GENUS = {"Quercus": "Fagaceae", "Pinus": "Pinaceae"}
COARSE_RANKS = ("order", "class", "phylum", "kingdom")
N = 80


@pytest.fixture
def collection(tmp_path, make_manifest):
    """A manifest of 80 photos of four species with species, genus and family only and no coordinates, and its
    splits (train, train, train, val, test, repeated; every train row labelled)."""
    species = [SPECIES[i % 4] for i in range(N)]
    genus = [name.split()[0] for name in species]
    manifest = make_manifest(
        N,
        lat=[None] * N,
        lon=[None] * N,
        species=species,
        genus=genus,
        family=[GENUS[g] for g in genus],
        observation_id=[f"obs{i}" for i in range(N)],
        **{rank: [None] * N for rank in COARSE_RANKS},
    )
    paths = {"manifest": tmp_path / "manifest.parquet", "splits": tmp_path / "splits.parquet"}
    write_manifest(validate_manifest(manifest), paths["manifest"])
    split = np.tile(["train", "train", "train", "val", "test"], N // 5)
    pd.DataFrame(
        {"image_id": [f"img{i}" for i in range(N)], "split": split, "labelled_10": split == "train"}
    ).to_parquet(paths["splits"])
    return paths


def test_tables_without_coordinates_are_empty_neighbour_rows_and_random_negatives():
    lat = np.full(6, np.nan)
    neighbours = neighbour_table(lat, lat, radius_km=5, k=4, seed=0)
    assert neighbours.indptr.tolist() == [0] * 7 and not neighbours.fallback.any()
    summary = neighbours.summary()
    assert summary["n_without_coords"] == 6 and summary["n_anchors"] == 0 and summary["n_pairs"] == 0
    negatives = negative_table(lat, lat, m=3, rule="far", seed=0, r_neg_km=50.0)
    assert negatives.candidates.shape == (6, 3)
    assert ((negatives.candidates >= 0) & (negatives.candidates != np.arange(6)[:, None])).all()


def test_a_partial_taxonomy_keeps_the_ranks_every_species_has():
    taxonomy = pd.DataFrame(
        {"species": ["a x", "a y", "b z"], "genus": ["a", "a", "b"], "family": ["F", "F", None], "order": [None] * 3}
    )
    codes = ancestor_codes(["a x", "a y", "b z"], taxonomy)
    assert set(codes) == {"species", "genus"}  # family: one species lacks it; order and the rest: nobody has them
    assert codes["genus"].tolist() == [0, 0, 1]


def test_the_prior_is_skipped_with_its_reason_when_no_train_row_has_coordinates(collection, tmp_path):
    out = tmp_path / "prior"
    argv = ["--manifest", str(collection["manifest"]), "--splits", str(collection["splits"])]
    assert geoprior_main([*argv, "--label-fraction", "10", "--out-dir", str(out)]) == 0
    assert np.load(out / "probs.npy").shape == (N, 0)
    assert "has coordinates" in json.loads((out / "prior.json").read_text())["skipped"]
    prior, reason = load_prior(out / "probs.npy", "unused")
    assert prior is None and reason.startswith("geographic prior skipped: none of the 48 train rows")
    assert load_prior(None, "evaluate.prior is false") == (None, "evaluate.prior is false")


def evaluate(collection, protocol: str, prior_reason: str = "evaluate.prior is false") -> dict:
    manifest = read_manifest(collection["manifest"])
    rows = eval_rows(manifest, pd.read_parquet(collection["splits"]), 10)
    features = np.random.default_rng(0).normal(size=(N, 8)).astype(np.float32)
    features[np.arange(N), rows.codes] += 5.0  # a direction per species: the species are told apart
    run = {"seed": 0, "strategy": "s", "label_fraction": 10}
    return frozen_record(protocol, features, manifest, rows, run, {}, prior_reason=prior_reason)


def test_evaluation_scores_the_ranks_present_and_says_why_not_the_others(collection):
    record = evaluate(collection, "knn")
    assert record["top1"] > 0.5 and {"acc_genus", "acc_family"} <= set(record)
    assert not {f"acc_{rank}" for rank in COARSE_RANKS} & set(record)
    assert np.isnan(record["prior_top1"])
    assert record["not_computed"]["prior"] == "evaluate.prior is false"
    assert record["not_computed"]["acc_order"] == "not every species has a order in the manifest"


def test_a_probe_at_a_rank_present_runs_and_one_at_a_missing_rank_says_why(collection):
    family = evaluate(collection, "family_probe")
    assert family["n_classes"] == 2 and family["top1"] > 0.5 and "prior" not in family.get("not_computed", {})
    order = evaluate(collection, "order_probe")
    assert "top1" not in order and order["not_computed"] == {
        "order_probe": "not every species has a order in the manifest"
    }


def test_the_summary_lists_what_could_not_be_computed_once_per_reason():
    records = [{"protocol": p, "not_computed": {"prior": "no coordinates"}} for p in ("knn", "linear", "knn")] + [
        {"protocol": "linear"}
    ]
    text = results.not_computed_text(records)
    assert "What could not be computed and why:" in text
    assert "- prior (knn, linear; 3 evaluations): no coordinates" in text
    assert results.not_computed_text([{"protocol": "knn"}]) == ""


def test_all_positives_falling_back_is_said_loudly_and_some_is_not():
    record = {
        "strategy": "context_pos",
        "fallbacks": {"n_anchors": 4, "no_coordinates": 3, "no_neighbour_within_r": 1, "nearest_beyond_r": 0},
        "negative_fallbacks": {"n_anchors": 4, "no_coordinates": 3, "no_candidate_under_rule": 0},
    }
    (warning,) = fallback_warnings(record)
    assert "every geographic positive" in warning and "3 no coordinates, 1 no neighbour within r" in warning
    assert fallback_warnings({**record, "fallbacks": None}) == []


def test_a_dry_run_with_the_prior_off_plans_no_prior(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["evaluate"]["prior"] = False
    path = tmp_path / "no_prior.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert "geo_prior" not in jobs and "report_geo_prior" not in jobs and jobs["evaluate_frozen"] > 0
    assert "--no-prior-reason 'evaluate.prior is false'" in result.stdout and "--prior" not in result.stdout


def test_the_prior_figure_and_the_maps_say_why_they_are_empty(make_manifest, tmp_path):
    from geocontrast.report import maps
    from geocontrast.report.results_figures import geo_prior_comparison

    no_prior = pd.DataFrame(
        {"strategy": ["s"], "protocol": ["linear"], "label_fraction": [10.0], "seed": [0], "top1": [0.5]}
        | {"top5": [0.9], "prior_top1": [np.nan], "prior_top5": [np.nan]}
    )
    (text,) = geo_prior_comparison(no_prior).axes[0].texts
    assert "no geographic prior" in text.get_text()
    manifest = tmp_path / "manifest.parquet"
    write_manifest(validate_manifest(make_manifest(4, lat=[None] * 4, lon=[None] * 4)), manifest)
    pd.DataFrame({"image_id": [f"img{i}" for i in range(4)], "split": ["train"] * 4}).to_parquet(tmp_path / "s.pq")
    out = tmp_path / "map.png"
    argv = ["splits", "--splits", str(tmp_path / "s.pq"), "--manifest", str(manifest), "--out", str(out)]
    assert maps.main(argv) == 0 and out.exists()
