"""Downstream-task figures: a panel per task score, ROC curves per strategy; species figures ignore task rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_report_results import STRATEGIES, bar_count, make_results

from geocontrast.report import results_figures as rf
from geocontrast.report import results_table as rt
from geocontrast.report import task_figures as tf


def with_tasks(results: pd.DataFrame) -> pd.DataFrame:
    """The results plus clustering and mislabel rows for every strategy and seed (NaN in the accuracy columns)."""
    rng = np.random.default_rng(1)
    runs = results.loc[results["strategy"] != "most_common", ["strategy", "seed"]].drop_duplicates()
    task_rows = []
    for strategy, seed in runs.itertuples(index=False):
        base = {"dataset": "tiny", "strategy": strategy, "seed": seed, "label_fraction": 10}
        task_rows.append(
            {
                **base,
                "protocol": "clustering",
                "nmi_species": rng.random(),
                "ari_species": -0.01,
                "nmi_genus": rng.random(),
                "ari_genus": rng.random(),
            }
        )
        task_rows.append(
            {
                **base,
                "protocol": "mislabel",
                "mislabel_auc": 0.5 + 0.4 * rng.random(),
                "mislabel_precision": rng.random(),
            }
        )
    return pd.concat([results, pd.DataFrame(task_rows)], ignore_index=True)


def test_task_bars_have_a_panel_per_task_score_and_a_bar_per_strategy():
    results = with_tasks(make_results())
    figure = tf.task_bars(results)
    titles = [ax.get_title() for ax in figure.get_axes()]
    assert titles == ["mislabel detection"] * 2 + ["species clusters"] * 2 + ["genus clusters"] * 2
    for ax in figure.get_axes():
        assert bar_count(ax) == len(STRATEGIES)
    auc = results[(results["protocol"] == "mislabel") & (results["strategy"] == "augmented")]["mislabel_auc"]
    heights = [patch.get_height() for patch in figure.get_axes()[0].patches]
    assert heights[STRATEGIES.index("augmented")] == pytest.approx(auc.mean() * 100)
    assert figure.get_axes()[3].get_ylim()[0] < 0  # ARI below zero stays visible


def test_task_bars_refuse_results_without_tasks():
    with pytest.raises(ValueError, match="no downstream task"):
        tf.task_bars(make_results())


def test_species_figures_and_table_ignore_task_rows():
    plain, mixed = make_results(), with_tasks(make_results())
    assert [ax.get_title() for ax in rf.accuracy_bars(mixed).get_axes()] == ["fine-tune", "linear probe"]
    assert rt.results_table(mixed).equals(rt.results_table(plain))


def test_mislabel_roc_has_a_panel_per_strategy_and_a_line_per_seed(tmp_path):
    paths = []
    for strategy in ("random_init", "triplet"):
        for seed in (0, 1):
            path = tmp_path / f"{strategy}_{seed}.json"
            path.write_text(
                json.dumps(
                    {
                        "strategy": strategy,
                        "seed": seed,
                        "protocol": "mislabel",
                        "mislabel_auc": 0.6 + 0.1 * seed,
                        "n_flipped": 5,
                        "n_labelled": 50,
                        "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.7, 1]},
                    }
                )
            )
            paths.append(path)
    figure = tf.mislabel_roc(tf.read_mislabel_records(paths))
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["random_init\nAUC 0.65 ± 0.07", "triplet\nAUC 0.65 ± 0.07"]
    assert all(len(ax.get_lines()) == 3 for ax in axes)  # two seeds and the chance diagonal
    assert "5 of 50 labelled images, 10%" in figure._suptitle.get_text()


def test_read_mislabel_records_refuses_another_protocol(tmp_path):
    path = tmp_path / "linear.json"
    path.write_text(json.dumps({"protocol": "linear"}))
    with pytest.raises(ValueError, match="not a mislabel"):
        tf.read_mislabel_records([path])
