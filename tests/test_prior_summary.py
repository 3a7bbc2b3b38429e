"""The geographic prior's own scores across replicates: the results_summary section, the pooled reliability
diagram and the prior figure, from hand-made prior.json contents."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from geocontrast.prior.scores import LEARNED, MOST_COMMON, prior_table, reliability
from geocontrast.report import prior as prior_report
from geocontrast.results.table import prior_text, read_priors

ORACLE_X, ORACLE_XT = "limit: oracle P(y | x)", "limit: oracle P(y | x, date)"


def prior_record(replicate: int, top1: float, *, limits: bool = True, **extra) -> dict:
    record = {
        "label_fraction": 10.0,
        "replicate": replicate,
        "params": {"inputs": ["location", "date"]},
        "sources": {"labelled_photos": {"read": 286}, "occurrences": {"read": 19000}},
        "n_train": 19286,
        "test_top1": top1,
        "test_top5": 0.5,
        "test_most_common_top1": 0.15,
        "test_most_common_top5": 0.43,
        "reliability_test": reliability(np.eye(4)[[0, 1, 2, 3]] + 0.1, np.array([0, 1, 2, 0])),
        **extra,
    }
    if limits:
        record["range_auc_mean"] = 0.8
        record["prior_only_test"] = [
            {"model": LEARNED, "top1": top1, "top5": 0.5},
            {"model": ORACLE_X, "top1": 0.16, "top5": 0.55, "n": 743},
            {"model": ORACLE_XT, "top1": 0.36, "top5": 0.71, "n": 743},
        ]
    return record


def test_the_prior_table_has_the_learned_prior_the_baseline_and_the_limits_of_each_replicate():
    table = prior_table([prior_record(0, 0.2), prior_record(1, 0.3), {"skipped": "no coordinates", "replicate": 2}])
    assert list(table["model"]) == [LEARNED, MOST_COMMON, ORACLE_X, ORACLE_XT] * 2
    learned = table[table["model"] == LEARNED]
    assert learned["top1"].tolist() == [0.2, 0.3] and learned["range_auc"].tolist() == [0.8, 0.8]
    assert set(table["inputs"]) == {"location+date"}
    assert set(table["trained_on"]) == {"labelled photos + occurrences"}
    assert table.loc[table["model"] == ORACLE_XT, "top1"].tolist() == [0.36, 0.36]


def test_the_summary_section_gives_mean_and_std_over_replicates_beside_the_limits():
    text = prior_text(prior_table([prior_record(0, 0.2), prior_record(1, 0.3)]))
    assert "labels 10 %, inputs location+date, trained on labelled photos + occurrences:" in text
    learned = next(line for line in text.splitlines() if LEARNED in line)
    assert "top1  25.0 ±  7.1" in learned and "range AUC 0.800" in learned and "(2 replicates)" in learned
    assert "top1  36.0 ±  0.0" in next(line for line in text.splitlines() if ORACLE_XT in line)


def test_a_prior_without_truth_has_no_limit_rows_and_no_range_auc():
    table = prior_table([prior_record(0, 0.2, limits=False)])
    assert list(table["model"]) == [LEARNED, MOST_COMMON]
    assert "range AUC -" in prior_text(table)


def test_no_fitted_prior_means_no_section():
    assert prior_text(prior_table([{"skipped": "no coordinates", "replicate": 0}])) == ""


def test_pooled_reliability_weights_each_bin_by_its_counts():
    first = {"bin_edges": [0, 0.5, 1], "count": [1, 3], "confidence": [0.2, 0.9], "accuracy": [0.0, 1.0]}
    second = {
        "bin_edges": [0, 0.5, 1],
        "count": [0, 1],
        "confidence": [float("nan"), 0.7],
        "accuracy": [float("nan"), 0],
    }
    pooled = prior_report.pooled_reliability([first, second])
    assert pooled["count"].tolist() == [1, 4]
    assert pooled["confidence"] == pytest.approx([0.2, (3 * 0.9 + 0.7) / 4])
    assert pooled["accuracy"] == pytest.approx([0.0, 0.75])
    assert pooled["ece"] == pytest.approx((1 * 0.2 + 4 * abs(0.85 - 0.75)) / 5)


def test_read_priors_takes_the_replicate_from_the_folder_and_refuses_other_layouts(tmp_path):
    path = tmp_path / "replicates" / "2" / "geoprior" / "l10" / "prior.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"label_fraction": 10.0}))
    assert read_priors([path]) == [{"label_fraction": 10.0, "replicate": 2}]
    with pytest.raises(ValueError, match="expected replicates/<replicate>/geoprior"):
        read_priors([tmp_path / "prior.json"])


def test_the_prior_figure_is_drawn_from_prior_json_files(tmp_path):
    paths = []
    for replicate, top1 in enumerate((0.2, 0.3)):
        path = tmp_path / "replicates" / str(replicate) / "geoprior" / "l10" / "prior.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({k: v for k, v in prior_record(replicate, top1).items() if k != "replicate"}))
        paths.append(str(path))
    out = tmp_path / "prior.png"
    assert prior_report.main(["--priors", *paths, "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 1000 and out.with_suffix(".svg").exists()
