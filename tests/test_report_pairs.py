"""The pair-diagnostics table and figure aggregate pairs.json over seeds, one row per run and pair kind."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from geocontrast.report import pairs as pairs_report
from geocontrast.results.table import read_pair_records


def summary(same_species: float, median_km: float, n: int = 10, **extra) -> dict:
    return {
        "n": n,
        **{f"same_{fact}": same_species / 2 for fact in ("genus", "family", "observer", "date")},
        "same_species": same_species,
        "distance_km": {"p5": 0.0, "p25": 0.0, "p50": median_km, "p75": 0.0, "p95": 0.0},
        **extra,
    }


def write_run(root, run: str, seed: int, species: float, fallbacks=None, negative=None) -> None:
    folder = root / "pretrain" / run / f"seed{seed}"
    folder.mkdir(parents=True)
    record = {
        "strategy": run,
        "pairs": {
            "positive": summary(species, 2.0, self_share=0.25),
            "negative": negative,
            "masked": None,
            "random": summary(0.05, 80.0),
        },
        "fallbacks": fallbacks,
    }
    (folder / "pairs.json").write_text(json.dumps(record))


def test_table_averages_seeds_per_run_and_kind_and_the_figure_is_written(tmp_path):
    causes = {"n_anchors": 100, "no_coordinates": 10, "no_neighbour_within_r": 5, "neighbours_outside_split": 2}
    write_run(tmp_path, "context_pos", 0, 0.2, fallbacks={**causes, "nearest_beyond_r": 0})
    write_run(tmp_path, "context_pos", 1, 0.4, fallbacks={**causes, "no_coordinates": 20, "nearest_beyond_r": 0})
    write_run(tmp_path, "cpn_random_negatives", 0, 0.3, negative=summary(0.1, 60.0))
    out = tmp_path / "pairs.png"
    paths = sorted(str(p) for p in tmp_path.glob("pretrain/*/seed*/pairs.json"))
    assert pairs_report.main(["--pairs", *paths, "--out", str(out), "--table", str(tmp_path / "pairs.csv")]) == 0
    assert out.exists() and out.with_suffix(".svg").exists()
    table = pd.read_csv(tmp_path / "pairs.csv").set_index(["run", "kind"])
    assert list(table.index) == [
        ("context_pos", "positive"),
        ("context_pos", "random"),
        ("cpn_random_negatives", "positive"),
        ("cpn_random_negatives", "negative"),
        ("cpn_random_negatives", "random"),
    ]
    assert table.loc[("context_pos", "positive"), "seeds"] == 2
    assert table.loc[("context_pos", "positive"), "same_species"] == pytest.approx(0.3)
    assert table.loc[("context_pos", "positive"), "fallback_no_coordinates"] == pytest.approx(0.15)
    assert table.loc[("cpn_random_negatives", "negative"), "median_km"] == pytest.approx(60.0)
    assert pd.isna(table.loc[("cpn_random_negatives", "positive"), "fallback_no_coordinates"])


def test_observation_positives_fallbacks_fill_their_own_causes(tmp_path):
    causes = {"n_anchors": 100, "single_photo": 70, "other_photos_outside_split": 0}
    write_run(tmp_path, "observation_pos", 0, 1.0)
    path = tmp_path / "pretrain" / "observation_pos" / "seed0" / "pairs.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "observation_fallbacks": causes}))
    table = pairs_report.pairs_table(read_pair_records([path])).set_index(["run", "kind"])
    assert table.loc[("observation_pos", "positive"), "fallback_single_photo"] == pytest.approx(0.7)
    assert table.loc[("observation_pos", "positive"), "fallback_no_coordinates"] == 0


def test_the_figure_draws_the_real_collections_ranges_behind_the_bars_in_the_pair_kinds_colours(tmp_path):
    from matplotlib.colors import to_rgb

    write_run(tmp_path, "context_pos", 0, 0.2)
    table = pairs_report.pairs_table(read_pair_records(sorted(tmp_path.glob("pretrain/*/seed*/pairs.json"))))
    figure = pairs_report.pairs_figure(table)
    bands = {  # each panel's shaded spans: (low, high, colour)
        axis.get_title(): sorted(
            (round(patch.get_y(), 3), round(patch.get_y() + patch.get_height(), 3), to_rgb(patch.get_facecolor()))
            for patch in axis.patches
            if pairs_report.REAL_SOURCE in patch.get_label()
        )
        for axis in figure.get_axes()
    }
    positive, random = (to_rgb(pairs_report.KIND_COLOURS[kind]) for kind in ("positive", "random"))
    assert bands["same species"] == [(0.003, 0.004, random), (0.006, 0.018, positive)]
    assert bands["same observer"] == [(0.27, 0.41, positive)]
    assert bands["same family"] == [] and bands["median distance (km)"] == []


def test_the_summary_sets_the_collections_own_context_positive_purity_beside_the_real_ranges():
    from geocontrast.results.table import context_purity, purity_text

    def record(positive: str, same_species: float, **options) -> dict:
        pairs = {"positive": summary(same_species, 2.0), "random": summary(0.05, 80.0)}
        return {"options": {"positive": positive, **options}, "pairs": pairs}

    records = [
        record("neighbour", 0.2, filter_temperature=None),
        record("neighbour", 0.4, filter_temperature=None),
        record("neighbour", 0.9, filter_temperature=0.1),  # the appearance filter's: not the collection's own
        record("augmentation", 1.0),
    ]
    text = purity_text(context_purity(records))
    assert "2 pretraining runs): 30.0 % of the anchor's species, 15.0 % of its genus" in text
    assert "random pairs 5.00 % of one species" in text and "0.6–1.8 %" in text and "0.3–0.4 %" in text
    assert context_purity(records[2:]) is None and purity_text(None) == ""


def test_the_summary_reads_the_collections_place_on_a_purity_sweep_in_log_purity():
    from geocontrast.results.table import sweep_position_text

    sweep = pd.DataFrame(
        [  # two swept levels of one curve and an extra point, which is not on the curve
            {"extra": None, "strategy": "context_pos", "protocol": "linear", "purity": 0.01, "diff": -0.02,
             "low": -0.06, "high": 0.02},
            {"extra": None, "strategy": "context_pos", "protocol": "linear", "purity": 0.1, "diff": 0.04,
             "low": 0.0, "high": 0.08},
            {"extra": "observer_style", "strategy": "context_pos", "protocol": "linear", "purity": 0.03,
             "diff": 0.5, "low": 0.4, "high": 0.6},
        ]
    ).assign(label_fraction=10.0)  # fmt: skip
    at_middle = sweep_position_text({"species": 10**-1.5}, sweep, "sweep.csv")  # halfway in log purity
    assert "context_pos (linear): +1.0 [-3.0, +5.0]" in at_middle
    assert "outside the swept purities (1.0–10.0 %)" in sweep_position_text({"species": 0.2}, sweep, "sweep.csv")
    assert sweep_position_text(None, sweep, "sweep.csv") == ""


def test_a_sweep_in_the_config_reaches_the_results_summary_and_the_sweep_figure_as_an_input(tmp_path):
    import yaml
    from test_workflow import TINY_CONFIG, shell_commands, snakemake

    config = tmp_path / "config.yaml"
    sweep = tmp_path / "sweep.csv"
    config.write_text(yaml.safe_dump({**yaml.safe_load(TINY_CONFIG.read_text()), "report": {"sweep": str(sweep)}}))
    sweep.write_text("extra,strategy,protocol,purity,diff,low,high\n")
    planned = snakemake(tmp_path, "-n", "--forceall", configfile=config)
    assert planned.returncode == 0, planned.stderr
    (table,) = shell_commands(planned, r"geocontrast\.results\.table")
    assert f"--sweep {sweep} " in table
    (position,) = shell_commands(planned, r"geocontrast\.report\.sweep_position")
    assert f"--sweep {sweep} --pairs " in position and "/seed0/pairs.json" in position
    unset = snakemake(tmp_path, "-n", "--forceall")
    (table,) = shell_commands(unset, r"geocontrast\.results\.table")
    assert "--sweep  >" in table  # no file: the summary places the collection on no sweep
    assert not shell_commands(unset, r"geocontrast\.report\.sweep_position")  # nor draws it on one
