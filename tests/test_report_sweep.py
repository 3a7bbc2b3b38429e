"""The purity sweep: its points and Snakemake calls, its table from finished points, and the crossover finder."""

from __future__ import annotations

import json
import math
import sys

import pandas as pd
import pytest

from geocontrast.report.sweep import (
    TABLE_COLUMNS,
    crossover,
    crossovers,
    read_sweep_table,
    summarise,
    sweep_figure,
    sweep_table,
)
from geocontrast.report.sweep_points import parse_sweep, snakemake_command
from geocontrast.results.compare import COLUMNS

SPEC = {
    "name": "purity",
    "configfiles": ["config/realistic.yaml"],
    "config": {"world": {"aggregation_km": 20}, "pretrain": {"seeds": [0, 1, 2]}},
    "vary": "world.aggregation",
    "levels": [0, 0.5],
    "extras_at": 0,
    "extras": {"observer_style": {"world": {"observer_style": 1}}},
}


def test_each_level_and_extra_is_its_own_dataset_with_its_overrides():
    points = parse_sweep(SPEC).points
    assert [p.dataset for p in points] == ["purity_aggregation0", "purity_aggregation0.5", "purity_observer_style"]
    assert points[1].config["world"] == {"aggregation_km": 20, "aggregation": 0.5}
    assert points[2].config["world"] == {"aggregation_km": 20, "aggregation": 0, "observer_style": 1}
    assert points[2].config["dataset"] == {"name": "purity_observer_style"}
    assert points[2].config["pretrain"] == {"seeds": [0, 1, 2]}


def test_an_extra_that_sets_the_knob_itself_sits_at_its_own_level():
    spec = {**SPEC, "extras": {"year_round": {"world": {"aggregation": 0.5, "season_length": 100}}}}
    extra = parse_sweep(spec).points[-1]
    assert (extra.dataset, extra.level, extra.extra) == ("purity_year_round", 0.5, "year_round")
    assert extra.config["world"] == {"aggregation_km": 20, "aggregation": 0.5, "season_length": 100}


def test_a_points_snakemake_call_layers_its_config_file_over_the_sweeps_and_builds_its_comparisons(tmp_path):
    sweep = parse_sweep(SPEC)
    point = sweep.points[1]
    command = snakemake_command(sweep, point, tmp_path / "p.yaml", cores="2", extra_args=["-n"])
    assert command == [
        sys.executable, "-m", "snakemake", "results/purity_aggregation0.5/comparisons.csv",
        "--configfile", "config/realistic.yaml", str(tmp_path / "p.yaml"),
        "--cores", "2", "-n",
    ]  # fmt: skip


def comparison(strategy, diff, *, reference="augmented", protocol="linear", metric="top1", label_fraction=10.0):
    row = dict.fromkeys(COLUMNS, math.nan)
    row |= {"reference": reference, "strategy": strategy, "protocol": protocol, "metric": metric}
    row |= {"label_fraction": label_fraction, "n_pairs": 3, "diff": diff, "low": diff - 0.02, "high": diff + 0.02}
    return row | {"verdict": "unresolved"}


def write_point(folder, rows, purity):
    """A finished point: its comparisons.csv and, per strategy, two seeds' pairs.json with the given purities."""
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(folder / "comparisons.csv", index=False)
    for strategy, shares in purity.items():
        for seed, share in enumerate(shares):
            path = folder / "pretrain" / strategy / f"seed{seed}" / "pairs.json"
            path.parent.mkdir(parents=True)
            pairs = {"positive": {"same_species": share, "self_share": 0.1}, "random": {"same_species": 0.004}}
            path.write_text(json.dumps({"pairs": pairs}))


def test_the_table_has_each_finished_points_geographic_deltas_beside_the_measured_purity(tmp_path):
    others = [
        comparison("context_pos", 0.5, reference="random_init"),
        comparison("context_pos", 0.5, metric="top5"),
        comparison("context_pos", 0.5, label_fraction=100.0),
    ]
    write_point(
        tmp_path / "purity_aggregation0",
        [comparison("context_pos", -0.1), comparison("context_pos", -0.08, protocol="knn"), *others],
        {"context_pos": [0.01, 0.02]},
    )
    write_point(
        tmp_path / "purity_aggregation0.5",
        [comparison("context_pos", 0.03), comparison("context_pos_neg", 0.05)],
        {"context_pos": [0.3, 0.5], "context_pos_neg": [0.4, 0.4]},
    )
    table, missing = sweep_table(parse_sweep(SPEC), tmp_path)
    assert missing == ["purity_observer_style"]
    assert list(zip(table["dataset"], table["strategy"], table["protocol"])) == [
        ("purity_aggregation0", "context_pos", "linear"),
        ("purity_aggregation0", "context_pos", "knn"),
        ("purity_aggregation0.5", "context_pos", "linear"),
        ("purity_aggregation0.5", "context_pos_neg", "linear"),
    ]
    assert table["purity"].tolist() == pytest.approx([0.015, 0.015, 0.4, 0.4])
    assert table["diff"].tolist() == pytest.approx([-0.1, -0.08, 0.03, 0.05])
    assert table["pair_seeds"].tolist() == [2, 2, 2, 2]


def test_summarise_writes_the_table_and_figure_of_what_has_finished(tmp_path):
    write_point(tmp_path / "purity_aggregation0", [comparison("context_pos", -0.1)], {"context_pos": [0.01]})
    write_point(tmp_path / "purity_aggregation0.5", [comparison("context_pos", 0.1)], {"context_pos": [0.4]})
    written = summarise(parse_sweep(SPEC), tmp_path)
    assert all(path.exists() for path in written)
    assert {path.name for path in written} == {"sweep.csv", "sweep.md", "sweep.png", "sweep.svg"}
    assert "Not finished yet: purity_observer_style" in (tmp_path / "sweeps" / "purity" / "sweep.md").read_text()


def test_a_sweep_of_two_label_budgets_has_a_curve_and_a_panel_row_for_each(tmp_path):
    from geocontrast.results.table import sweep_position_text

    spec = {**SPEC, "label_fractions": [10, 100]}
    rows = [comparison("context_pos", -0.1), comparison("context_pos", 0.02, label_fraction=100.0)]
    write_point(tmp_path / "purity_aggregation0", rows, {"context_pos": [0.01]})
    rows = [comparison("context_pos", 0.1), comparison("context_pos", 0.04, label_fraction=100.0)]
    write_point(tmp_path / "purity_aggregation0.5", rows, {"context_pos": [0.4]})
    sweep = parse_sweep(spec)
    assert sweep.label_fractions == [10.0, 100.0] and parse_sweep(SPEC).label_fractions == [10.0]
    table, _ = sweep_table(sweep, tmp_path)
    assert sorted(zip(table["label_fraction"], table["diff"])) == [(10, -0.1), (10, 0.1), (100, 0.02), (100, 0.04)]
    found = crossovers(table)
    assert found.set_index("label_fraction")["crossings"].to_dict() == {10.0: 1, 100.0: 0}
    figure = sweep_figure(table, found)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["linear probe, 10 % labels", "linear probe, 100 % labels"]
    assert "Δ top-1 at 10 and 100 % labels" in figure.get_suptitle()
    text = sweep_position_text({"species": 0.1}, table.assign(extra=math.nan), "sweep.csv")
    assert "context_pos (linear, 10 % labels):" in text and "context_pos (linear, 100 % labels):" in text


def test_extras_on_a_curve_points_purity_are_nudged_apart_and_one_of_its_own_is_drawn_where_it_is():
    from geocontrast.report.sweep import EXTRA_NUDGE, extra_nudges

    table = pd.DataFrame(
        {
            "extra": ["", "", "observer_style", "background_uncoupled", "year_round"],
            "purity": [0.008, 0.36, 0.0082, 0.0082, 0.78],
        }
    )
    assert extra_nudges(table) == {
        "": 1.0,
        "observer_style": EXTRA_NUDGE,
        "background_uncoupled": EXTRA_NUDGE**2,
        "year_round": 1.0,
    }


def collection_pairs(folder, positive):
    """A collection's pretraining records: a context_pos run with ``positive`` purity, an augmented run."""
    records = {
        "context_pos": {
            "options": {"positive": "neighbour"},
            "pairs": {"positive": {"same_species": positive, "same_genus": positive}},
        },
        "augmented": {"options": {}, "pairs": {"positive": None}},
    }
    paths = []
    for strategy, record in records.items():
        paths.append(folder / "pretrain" / strategy / "seed0" / "pairs.json")
        paths[-1].parent.mkdir(parents=True)
        paths[-1].write_text(json.dumps({**record, "pairs": {**record["pairs"], "random": {"same_species": 0.01}}}))
    return paths


def test_the_collection_is_drawn_across_every_panel_of_the_sweep_at_its_own_purity(tmp_path):
    from geocontrast.report import sweep_position

    write_point(tmp_path / "purity_aggregation0", [comparison("context_pos", -0.1)], {"context_pos": [0.01]})
    write_point(
        tmp_path / "purity_aggregation0.5",
        [comparison("context_pos", 0.1), comparison("context_pos", 0.05, protocol="knn")],
        {"context_pos": [0.4]},
    )
    summarise(parse_sweep(SPEC), tmp_path)
    table = read_sweep_table(tmp_path / "sweeps" / "purity" / "sweep.csv")
    assert table.loc[0, "extra"] == "" and set(table["reference"]) == {"augmented"}
    figure = sweep_figure(table, crossovers(table), mark=(0.05, "this collection"))
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert len(panels) == 2
    for ax in panels:
        marks = [line for line in ax.get_lines() if line.get_color() == "black"]
        assert [line.get_xdata()[0] for line in marks] == [pytest.approx(5.0)]  # percent
    out = tmp_path / "report" / "sweep_position.png"
    sweep_csv = str(tmp_path / "sweeps" / "purity" / "sweep.csv")
    pairs = [str(path) for path in collection_pairs(tmp_path, 0.05)]
    assert sweep_position.main(["--sweep", sweep_csv, "--pairs", *pairs, "--out", str(out)]) == 0
    assert out.exists() and out.with_suffix(".svg").exists()


def test_a_collection_without_context_positives_is_drawn_unmarked_and_an_empty_sweep_is_an_error(tmp_path, capsys):
    from geocontrast.report import sweep_position

    write_point(tmp_path / "purity_aggregation0", [comparison("context_pos", -0.1)], {"context_pos": [0.01]})
    summarise(parse_sweep(SPEC), tmp_path)
    record = tmp_path / "pretrain" / "augmented" / "seed0" / "pairs.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"options": {}, "pairs": {"positive": None, "random": {"same_species": 0.01}}}))
    out = tmp_path / "position.png"
    sweep_csv = tmp_path / "sweeps" / "purity" / "sweep.csv"
    assert sweep_position.main(["--sweep", str(sweep_csv), "--pairs", str(record), "--out", str(out)]) == 0
    assert "not marked" in capsys.readouterr().err and out.exists()
    sweep_csv.write_text(",".join(TABLE_COLUMNS) + "\n")
    with pytest.raises(SystemExit):
        sweep_position.main(["--sweep", str(sweep_csv), "--pairs", str(record), "--out", str(out)])
    assert "no finished sweep point" in capsys.readouterr().err


def test_a_delta_that_crosses_once_gives_its_purity_and_where_its_interval_covers_zero():
    # log10 purity -2, -1, 0; Δ reaches 0 halfway between the last two, the bounds a quarter either side
    found = crossover([0.01, 0.1, 1.0], [-0.04, -0.02, 0.02], [-0.05, -0.03, 0.01], [-0.03, -0.01, 0.03])
    assert found.purity == pytest.approx(10**-0.5)
    assert found.low == pytest.approx(10**-0.75)
    assert found.high == pytest.approx(10**-0.25)
    assert found.crossings == 1


def test_the_points_are_joined_in_order_of_purity():
    found = crossover([1.0, 0.01, 0.1], [0.02, -0.04, -0.02], [0.01, -0.05, -0.03], [0.03, -0.03, -0.01])
    assert found.purity == pytest.approx(10**-0.5)


def test_a_delta_of_one_sign_has_no_crossover():
    assert crossover([0.01, 0.1, 1.0], [-0.1, -0.05, -0.01], [-0.2, -0.1, -0.03], [0.0, 0.02, 0.01]) is None


def test_an_interval_that_covers_zero_everywhere_leaves_the_crossover_unbounded():
    found = crossover([0.01, 0.1, 1.0], [-0.01, 0.01, 0.02], [-0.1, -0.1, -0.1], [0.1, 0.1, 0.1])
    assert found.purity == pytest.approx(10**-1.5)
    assert math.isnan(found.low) and math.isnan(found.high)
