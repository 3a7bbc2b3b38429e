"""Collections as they come: no coordinates, a partial taxonomy, the prior switched off. Each stage runs where it
can and says what it could not compute and why."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG
from shapes import SHAPES, shape_config, shape_manifest
from test_workflow import planned_jobs, snakemake, snakemake_command

from geocontrast import registry
from geocontrast.data.manifest import TAXONOMIC_RANKS, read_manifest, validate_manifest, write_manifest
from geocontrast.data.splits import SplitError, make_splits
from geocontrast.evaluate.frozen import frozen_record
from geocontrast.evaluate.protocols import eval_rows
from geocontrast.evaluate.settings import KnnSettings, section_settings
from geocontrast.geo.negatives import negative_table
from geocontrast.geo.neighbours import neighbour_table
from geocontrast.metrics import ancestor_codes
from geocontrast.prior.fit import load_prior
from geocontrast.prior.fit import main as geoprior_main
from geocontrast.results import table as results
from geocontrast.strategies.diagnostics import fallback_notes, fallback_warnings

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
    settings = section_settings({**registry.PROTOCOLS, **registry.TASKS}[protocol].section, {})
    return frozen_record(protocol, features, manifest, rows, run, settings, prior_reason=prior_reason)


def test_evaluation_scores_the_ranks_present_and_says_why_not_the_others(collection):
    record = evaluate(collection, "knn")
    assert record["top1"] > 0.5 and {"acc_genus", "acc_family"} <= set(record)
    assert not {f"acc_{rank}" for rank in COARSE_RANKS} & set(record)
    assert np.isnan(record["prior_top1"])
    assert record["not_computed"]["prior"] == "evaluate.prior is false"
    assert record["not_computed"]["acc_order"] == "not every species has its order in the manifest"


def test_a_probe_at_a_rank_present_runs_and_one_at_a_missing_rank_says_why(collection):
    family = evaluate(collection, "family_probe")
    assert family["n_classes"] == 2 and family["top1"] > 0.5 and "prior" not in family.get("not_computed", {})
    order = evaluate(collection, "order_probe")
    assert "top1" not in order and order["not_computed"] == {
        "order_probe": "not every species has its order in the manifest"
    }


def test_the_summary_lists_what_could_not_be_computed_once_per_reason_and_each_runs_fallbacks():
    records = [{"protocol": p, "not_computed": {"prior": "no coordinates"}} for p in ("knn", "linear", "knn")] + [
        {"protocol": "linear"}
    ]
    notes = [{"what": "geographic negatives", "why": "100 % fell back", "every": True}]
    pairs = [{"run": "context_pos_neg", "seed": "0", "notes": notes}, {"run": "supervised", "seed": "0", "notes": []}]
    text = results.not_computed_text(results.not_computed_table(records, pairs))
    assert "What could not be computed and why:" in text
    assert "- prior (knn, linear; 3 evaluations): no coordinates" in text
    assert "- WARNING geographic negatives (context_pos_neg seed 0): 100 % fell back" in text
    assert results.not_computed_text(results.not_computed_table([{"protocol": "knn"}], pairs[1:])) == ""


def test_all_positives_falling_back_is_said_loudly_and_some_is_not():
    record = {
        "strategy": "context_pos",
        "pairs": {"random": {"distance_km": {"p50": 12.0}}},
        "fallbacks": {"n_anchors": 4, "no_coordinates": 3, "no_neighbour_within_r": 1, "nearest_beyond_r": 0},
        "negative_fallbacks": {"n_anchors": 4, "no_coordinates": 3, "no_candidate_under_rule": 0},
    }
    (warning,) = fallback_warnings(record)
    assert warning.startswith("context_pos: geographic positives: 100 % of the 4 sampled anchors fell back")
    assert "(3 without coordinates, 1 with no neighbour within the radius): its geographic positives carry" in warning
    (positives, negatives) = fallback_notes(record)
    assert negatives == {
        "what": "geographic negatives",
        "why": "75 % of the 4 sampled anchors fell back to random photos (3 without coordinates)",
        "every": False,
    }
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


# --- the corpus of collection shapes (tests/shapes.py): what each one's stages decide, cheaply -------------------


def shape_diagnostics(shape: str) -> dict:
    """The pairs.json record of context_pos_neg on the shape with the tiny config's tables (radius 5 km, far
    negatives beyond 50 km, the same mask radius), over one epoch of batches of 16."""
    from geocontrast.geo.training_data import training_data
    from geocontrast.strategies import build_strategy
    from geocontrast.strategies.diagnostics import pair_diagnostics, sample_batches
    from geocontrast.train.settings import PretrainSettings

    manifest = shape_manifest(shape)
    lat, lon = (manifest[c].to_numpy(np.float64, na_value=np.nan) for c in ("lat", "lon"))
    observations = manifest["observation_id"]
    data = training_data(
        manifest,
        make_splits(manifest, seed=0),
        neighbours=neighbour_table(lat, lon, radius_km=5, k=64, seed=0, observation_id=observations),
        negatives=negative_table(lat, lon, m=64, rule="far", seed=0, r_neg_km=50.0, observation_id=observations),
    )
    strategy = build_strategy("context_pos_neg", data, PretrainSettings())
    rng = np.random.default_rng(0)
    return pair_diagnostics(manifest, strategy, sample_batches(strategy, 16, rng), rng)


EVERY_FALLBACK = {
    "no_coordinates": {"geographic positives", "geographic negatives"},
    "few_coordinates": set(),
    "one_site": {"geographic negatives", "negatives left by the geo-near mask"},
    "one_cell": {"geographic negatives", "negatives left by the geo-near mask"},
    "two_clusters": set(),
    "partial_taxonomy": set(),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_says_which_geographic_pairs_all_fell_back(shape):
    record = shape_diagnostics(shape)
    assert {note["what"] for note in record["notes"] if note["every"]} == EVERY_FALLBACK[shape]
    assert len(fallback_warnings(record)) == len(EVERY_FALLBACK[shape])


def test_one_site_masks_every_pair_and_says_the_loss_contrasts_nothing():
    record = shape_diagnostics("one_site")
    assert record["mask"]["masked_share"] == 1.0 and record["mask"]["without_negatives"] == record["n_anchors"]
    mask = next(note for note in record["notes"] if note["what"] == "negatives left by the geo-near mask")
    assert "(within 50 km; its photos lie a median 0 km apart)" in mask["why"]
    assert mask["why"].endswith("the loss contrasts nothing, no gradient")
    negatives = next(note for note in record["notes"] if note["what"] == "geographic negatives")
    assert "with no photo under rule far (beyond 50 km)" in negatives["why"]


def test_two_far_apart_clusters_take_positives_inside_and_negatives_across():
    record = shape_diagnostics("two_clusters")
    assert record["pairs"]["positive"]["distance_km"]["p95"] < 5.0
    assert record["pairs"]["negative"]["distance_km"]["p5"] > 10_000.0  # San Francisco - Sydney: 11,900 km
    assert record["mask"]["without_negatives"] == 0


def test_a_few_coordinates_fall_back_for_the_unlocated_anchors_only():
    record = shape_diagnostics("few_coordinates")
    located = record["n_anchors"] - record["fallbacks"]["no_coordinates"]
    assert 0 < located < record["n_anchors"] / 5  # one photo in ten has coordinates
    positives = next(note for note in record["notes"] if note["what"] == "geographic positives")
    assert not positives["every"] and "without coordinates" in positives["why"]


@pytest.mark.parametrize(
    "shape, error",
    [
        ("no_coordinates", "needs coordinates, and none of the 120 labelled observations has them"),
        ("one_site", "lie in 1 block(s) of 50 km, too few to fill train, val and test (val and test would be"),
        ("one_cell", "lie in 1 block(s) of 50 km, too few to fill train, val and test (val and test would be"),
        ("two_clusters", "block(s) of 50 km, too few to fill train, val and test"),  # two to four blocks
        ("few_coordinates", "block(s) of 50 km, too few to fill train, val and test"),  # two sites
        ("partial_taxonomy", None),  # spread over California
    ],
)
def test_a_spatial_split_needs_located_photos_in_enough_blocks_or_says_what_to_change(shape, error):
    manifest = shape_manifest(shape)
    if error is None:
        splits = make_splits(manifest, mode="spatial", block_km=50)
        assert set(splits.loc[manifest["has_coords"].to_numpy(), "split"]) == {"train", "val", "test"}
        return
    with pytest.raises(SplitError, match=re.escape(error)) as raised:
        make_splits(manifest, mode="spatial", block_km=50)
    assert "splits.mode random" in str(raised.value)
    assert make_splits(manifest, mode="random")["split"].nunique() == 3  # a random split is always possible


@pytest.mark.parametrize(
    "ranks", [("species",), ("species", "family"), ("species", "genus", "family"), ("species", "order", "kingdom")]
)
def test_any_subset_of_ranks_scores_the_ranks_every_species_has(ranks):
    manifest = shape_manifest("partial_taxonomy")
    for rank in TAXONOMIC_RANKS:
        if rank not in ranks:
            manifest[rank] = pd.NA
    manifest["order"] = manifest["order"].fillna("Fagales") if "order" in ranks else manifest["order"]
    manifest["kingdom"] = manifest["kingdom"].fillna("Plantae") if "kingdom" in ranks else manifest["kingdom"]
    rows = eval_rows(manifest, make_splits(manifest, seed=0, label_fractions=(0.1,)), 10)
    features = np.eye(rows.n_classes, dtype=np.float32)[rows.codes] + 0.01
    run = {"seed": 0, "strategy": "s", "label_fraction": 10}
    record = frozen_record("knn", features, manifest, rows, run, KnnSettings(), prior_reason="evaluate.prior is false")
    assert {key.removeprefix("acc_") for key in record if key.startswith("acc_")} == set(ranks)
    assert record["acc_species"] == 1.0  # a feature per species: every test photo is told apart
    assert set(record["not_computed"]) == {"prior", *(f"acc_{rank}" for rank in TAXONOMIC_RANKS if rank not in ranks)}


def test_a_shape_plans_from_its_csv_and_hands_the_pair_notes_to_the_results_and_the_report(tmp_path):
    result = snakemake(tmp_path / "work", "-n", configfile=shape_config("one_site", tmp_path / "collection"))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["csv"] == 1 and "synthetic_world" not in jobs and jobs["pretrain"] == jobs["pretrain_at_budget"] == 1
    results = re.search(r"^Shell command: python -m geocontrast.results.table .*$", result.stdout, re.M)[0]
    assert "--pairs results/one_site/pretrain/supervised/seed0/l10/pairs.json" in results
    assert "--not-computed results/one_site/not_computed.csv" in results
    assert (
        "--not-computed results/one_site/not_computed.csv"
        in re.search(r"^Shell command: .*table --results .*$", result.stdout, re.M)[0]
    )


# --- the shapes through the tiny workflow to results.csv and the report -----------------------------------------

SHAPE_RUN_TIMEOUT_S = 3600  # a shape takes 2-4 min on an idle 2-core machine; much longer on a shared one


def run_shape(shape: str, tmp_path, strategies=("supervised", "context_pos_neg")):
    """The shape's collection through the tiny workflow and `snakemake --report`: its results folder and the
    report's HTML."""
    config = shape_config(shape, tmp_path / "collection", strategies)
    workdir = tmp_path / "work"
    for args in ((), ("--report", str(tmp_path / "report.html"))):
        command, env = snakemake_command(workdir, *args, configfile=config)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SHAPE_RUN_TIMEOUT_S)
        assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "results" / shape, (tmp_path / "report.html").read_text(errors="replace")


def check_shape_run(shape: str, results_dir, report_html: str, strategies) -> str:
    """What every shape's run must show: a results row with a top-1 for every strategy and protocol, the
    report's figures, and each run whose geographic pairs all fell back named as a warning in
    results_summary.txt and in the report's results table; returns the summary's not-computed section."""
    table = pd.read_csv(results_dir / "results.csv")
    assert set(table["strategy"]) == {*strategies, "random_init", "most_common"}
    assert table["top1"].notna().all() and table["acc_species"].notna().all()
    report = results_dir / "report"
    for figure in ("accuracy", "ranks", "geo_prior", "pairs", "example_pairs", "map_splits", "map_radius"):
        assert (report / f"{figure}.png").stat().st_size > 0, figure
    assert "example_pairs.png" in report_html
    summary = (results_dir / "results_summary.txt").read_text()
    warned = set(re.findall(r"^- WARNING (.+?) \(context_pos_neg seed 0\)", summary, re.M))
    assert warned == EVERY_FALLBACK[shape], summary
    assert (report / "results_table.html").read_text().count("<b>WARNING") == len(warned)
    _, _, section = summary.partition("What could not be computed and why:")
    return section


@pytest.mark.slow
@pytest.mark.extended
def test_a_collection_without_coordinates_runs_to_the_report_saying_what_could_not_be_computed(tmp_path):
    results_dir, report_html = run_shape("no_coordinates", tmp_path, strategies=("context_pos_neg",))
    section = check_shape_run("no_coordinates", results_dir, report_html, ("context_pos_neg",))
    table = pd.read_csv(results_dir / "results.csv")
    assert table["prior_top1"].isna().all() and table["acc_kingdom"].notna().all()
    assert "- prior (baseline, knn, linear; 5 evaluations): geographic prior skipped: none of the" in section
    assert "fell back to the anchor itself" in section and "fell back to random photos" in section
    assert "What could not be computed and why" in (results_dir / "report" / "results_table.md").read_text()


PRIOR_SKIPPED = {"no_coordinates", "few_coordinates"}  # few: none of the 6 labelled train photos is located


@pytest.mark.slow
@pytest.mark.shapes
@pytest.mark.parametrize("shape", SHAPES)
def test_each_collection_shape_runs_to_results_and_the_report(shape, tmp_path):
    strategies = ("supervised", "context_pos_neg")
    results_dir, report_html = run_shape(shape, tmp_path, strategies)
    section = check_shape_run(shape, results_dir, report_html, strategies)
    print(f"{shape}: what could not be computed and why:{section}")
    table = pd.read_csv(results_dir / "results.csv")
    skipped = shape in PRIOR_SKIPPED
    assert table["prior_top1"].isna().all() == skipped and ("geographic prior skipped" in section) == skipped
    if shape == "partial_taxonomy":
        assert table["acc_family"].notna().all() and table["acc_order"].isna().all()
        assert "- acc_order (" in section and "not every species has its order in the manifest" in section
