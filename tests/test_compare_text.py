"""The comparisons in words (geocontrast.results.compare_text) and the comparisons rule's CLI
(geocontrast.results.comparisons): the primary sentence first, Holm-adjusted exploratory lines, each naming its
interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_compare import hit_records, results_frame

from geocontrast.results import compare as cmp
from geocontrast.results import compare_text as text
from geocontrast.results import comparisons as comparisons_cli
from geocontrast.results import intervals


def test_plain_words_open_with_the_primary_comparison_then_the_holm_adjusted_exploratory_lines():
    results = results_frame(
        {
            "augmented": [0.50, 0.52, 0.55],
            "context_pos_neg": [0.48, 0.48, 0.46],  # differences -0.02, -0.04, -0.09
            "context_pos": [0.40, 0.41, 0.42],  # differences -0.10, -0.11, -0.13
        }
    )
    settings = cmp.CompareSettings(metrics=("top1",))
    comparisons = cmp.compare(results, settings=settings)
    lines = text.plain_words(comparisons, settings).splitlines()
    # -0.05 -/+ 0.0895675: t(2) 4.303 x 0.036056 / sqrt(3)
    needed = intervals.replicates_to_resolve(-0.05, np.std([-0.02, -0.04, -0.09], ddof=1), 3)
    assert lines[0] == (
        "Primary comparison (context_pos_neg minus augmented, linear probe, 10% labels, top-1): "
        f"\u22125.0 [\u221214.0, +4.0] points (95% t interval, n=3 replicates): unresolved (~{needed:.0f} replicates "
        "for 80% power)."
    )
    # the exploratory family: context_pos - augmented and (the default contrast) context_pos_neg - context_pos
    p_pos = 2 * stats.t.sf(0.11333333 / (np.std([-0.10, -0.11, -0.13], ddof=1) / np.sqrt(3)), 2)
    p_neg = 2 * stats.t.sf(0.06333333 / (np.std([0.08, 0.07, 0.04], ddof=1) / np.sqrt(3)), 2)
    adjusted = intervals.holm([p_pos, p_neg])
    assert "over all 2 exploratory tests" in lines[2]
    table = {line.split("  ")[1]: line for line in lines[3:]}
    assert table["context_pos \u2212 augmented"].split()[-7:] == [
        "10%",
        "\u221211.3",
        "[\u221215.1,",
        "\u22127.5]",
        f"{adjusted[0]:.3f}",
        "resolved",
        "n=3",
    ]
    assert f"{adjusted[1]:.3f}" in table["context_pos_neg \u2212 context_pos"]
    primary = comparisons.set_index(["strategy", "reference"]).loc[("context_pos_neg", "augmented")]
    assert primary["role"] == "primary" and primary["p_adjusted"] == primary["p_value"]
    assert list(comparisons.columns) == list(cmp.COLUMNS)


def test_a_primary_comparison_that_did_not_run_is_said_so():
    results = results_frame({"augmented": [0.50, 0.52, 0.55], "byol": [0.60, 0.5, 0.4]})
    words = text.plain_words(cmp.compare(results))
    assert words.startswith("Primary comparison (context_pos_neg minus augmented, linear probe, 10% labels, top-1):")
    assert "not in this run" in words.splitlines()[0]
    none = cmp.CompareSettings.from_mapping({"primary": None})
    assert text.plain_words(cmp.compare(results, settings=none), none).startswith("No primary comparison")


def test_cli_writes_table_and_text(tmp_path, capsys):
    results = results_frame({"augmented": [0.50, 0.52, 0.55], "context_pos": [0.40, 0.41, 0.45]})
    results.to_csv(tmp_path / "results.csv", index=False)
    args = [
        "--results",
        str(tmp_path / "results.csv"),
        "--out",
        str(tmp_path / "c.csv"),
        "--text",
        str(tmp_path / "c.txt"),
    ]
    assert comparisons_cli.main([*args, "--params-json", '{"confidence": 0.9}']) == 0
    table = pd.read_csv(tmp_path / "c.csv")
    assert len(table) == 3 and (table["confidence"] == 0.9).all()
    assert (tmp_path / "c.txt").read_text() == capsys.readouterr().out
    with pytest.raises(SystemExit):
        comparisons_cli.main([*args, "--params-json", '{"bootstrap": 10}'])


def test_independent_worlds_carry_the_plain_t_and_resamples_of_one_pool_the_corrected_one():
    results = results_frame({"augmented": [0.50, 0.52, 0.55], "context_pos": [0.40, 0.43, 0.44]})
    results["prior_gain_top1"] = [0.01, 0.02, 0.04, 0.0, 0.01, 0.01]
    records = hit_records(results, [0, 100, 200])  # each replicate scored its own test photos
    settings = cmp.CompareSettings(metrics=("top1",))
    worlds = cmp.compare(results, records, settings, rho=0.0)  # each replicate its own world: independent
    pool = cmp.compare(results, records, settings, rho=0.2 / 0.7)  # resampled splits of one photo pool
    assert set(worlds["interval"]) == {"t"} and (worlds["rho"] == 0).all()
    assert set(pool["interval"]) == {"corrected resampled t"}
    assert ((pool["high"] - pool["low"]) > (worlds["high"] - worlds["low"])).all()
    assert "[95% interval: t]" in text.plain_words(worlds, settings)
    assert "[95% interval: corrected resampled t]" in text.plain_words(pool, settings)
    assert "[95% interval: t];" in text.prior_gain_words(cmp.prior_gains(results, rho=0.0))
    assert "[95% interval: corrected resampled t];" in text.prior_gain_words(cmp.prior_gains(results, rho=0.29))


def test_lines_that_carry_different_intervals_each_name_their_own():
    results = results_frame({"augmented": [0.50, 0.52, 0.55], "context_pos": [0.40, 0.43, 0.44], "byol": [0.4] * 3})
    comparisons = cmp.compare(results, settings=cmp.CompareSettings(metrics=("top1",)))
    comparisons.loc[0, "interval"] = "t + photo bootstrap"
    header, first, second = text.plain_words(comparisons).splitlines()[-3:]
    assert header.split()[-1] == "interval"
    assert first.endswith("  t + photo bootstrap") and second.endswith("  t")
    assert "interval" not in text.plain_words(comparisons.iloc[1:]).splitlines()[-2]
