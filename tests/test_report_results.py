"""Result figures and the results table: each renders from a small results table with the expected panels."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, load_config
from matplotlib.patches import Rectangle
from PIL import Image

from geocontrast.evaluate import CLASSIFICATION_METRIC_COLUMNS, RANKS, RESULT_COLUMNS, TOP_K
from geocontrast.evaluate.settings import CamSettings
from geocontrast.report import panels
from geocontrast.report import results_figures as rf
from geocontrast.report import results_table as rt
from geocontrast.report.style import STRATEGY_COLOURS, save_figure
from geocontrast.results.table import pretraining_run

STRATEGIES = ("random_init", "supervised", "augmented", "context_pos", "context_pos_neg")
PROTOCOLS = ("finetune", "linear")
SEEDS = (0, 1, 2)


def make_results(label_fractions=(10,), protocols=PROTOCOLS, strategies=STRATEGIES, seeds=SEEDS) -> pd.DataFrame:
    """A results.csv-shaped table: every strategy x protocol x seed x fraction, and the most-common baseline
    (deterministic: one run per fraction, as the evaluate rules write it)."""
    rng = np.random.default_rng(0)
    runs = [(s, p, seeds) for s in strategies for p in protocols] + [("most_common", "baseline", seeds[:1])]
    rows = []
    for fraction in label_fractions:
        for strategy, protocol, run_seeds in runs:
            for seed in run_seeds:
                base = 0.05 if strategy == "most_common" else 0.2 + 0.1 * rng.random() + 0.002 * fraction
                top = np.minimum(1.0, base * np.array([1.0, 1.5, 1.8, 2.0, 2.2]))
                prior = np.minimum(1.0, top + 0.05)
                ranks = np.minimum(1.0, top[0] + 0.1 * np.arange(len(RANKS)))
                rows.append(
                    {
                        "dataset": "tiny",
                        "strategy": strategy,
                        "seed": seed,
                        "protocol": protocol,
                        "encoder": "cnn5",
                        "resolution": 32,
                        "epochs": 5,
                        "split_mode": "random",
                        "label_fraction": fraction,
                        "n_labelled": 100,
                        "n_test": 60,
                        "n_classes": 8,
                        **{f"top{k}": top[k - 1] for k in TOP_K},
                        "macro_top1": top[0] * 0.9,
                        "macro_top5": top[4] * 0.9,
                        **{f"prior_top{k}": prior[k - 1] for k in TOP_K},
                        "prior_gain_top1": prior[0] - top[0],
                        "prior_gain_top5": prior[4] - top[4],
                        **{f"acc_{rank}": ranks[i] for i, rank in enumerate(RANKS)},
                    }
                )
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def write_metrics(
    root: Path, strategies=("supervised", "augmented", "context_pos"), seeds=SEEDS, epochs: int = 4
) -> list[Path]:
    """metrics.jsonl files laid out as the pretrain rule writes them; one strategy's kNN is never recorded."""
    paths = []
    for strategy in strategies:
        for seed in seeds:
            path = root / strategy / f"seed{seed}" / "metrics.jsonl"
            path.parent.mkdir(parents=True)
            lines = [
                {
                    "epoch": e,
                    "step": 10 * e,
                    "loss": 5.0 / e + 0.1 * seed,
                    "images_per_s": 500.0,
                    "embedding_std": 0.05 + 0.01 * e,
                    "mean_pairwise_cosine": 0.5 - 0.05 * e,
                    "knn_top1": None if strategy == "supervised" else 0.1 * e + 0.01 * seed,
                }
                for e in range(1, epochs + 1)
            ]
            path.write_text("".join(json.dumps(line) + "\n" for line in lines))
            paths.append(path)
    return paths


def legend_texts(figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def bar_count(ax) -> int:
    return sum(isinstance(patch, Rectangle) for patch in ax.patches)


def assert_png(path: Path, min_px: int = 1000) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_px and image.height >= min_px // 4


def test_strategies_keep_results_order_with_baselines_first():
    order = panels.strategy_order(["context_pos", "augmented", "most_common", "random_init", "context_pos", "byol"])
    assert order == ["most_common", "random_init", "context_pos", "augmented", "byol"]


def test_protocols_follow_the_fixed_order_without_the_baseline():
    assert panels.protocol_order(["linear", "baseline", "knn", "finetune", "clustering"]) == [
        "finetune",
        "linear",
        "knn",
        "clustering",
    ]


def test_accuracy_bars_has_a_panel_per_protocol_and_a_bar_per_strategy_and_k(tmp_path):
    figure = rf.accuracy_bars(make_results(), top_k=(1, 5))
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["fine-tune", "linear probe"]
    for ax in axes:
        assert bar_count(ax) == len(STRATEGIES) * 2
        assert [t.get_text() for t in ax.get_xticklabels()] == list(STRATEGIES)
        assert ax.get_xlabel() == "pretraining strategy"
        assert len(ax.get_lines()) >= 2  # the most-common baseline, top-1 and top-5
    assert axes[0].get_ylabel() == "accuracy on test (%)"
    assert legend_texts(figure) == ["top-1", "top-5", "most common species, top-1", "most common species, top-5"]
    assert "mean ± std over 3 seeds" in figure.legends[0].get_title().get_text()
    written = save_figure(figure, tmp_path / "accuracy.png")
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert_png(written[0])


def test_accuracy_bars_show_percent_means_with_std_error_bars():
    results = make_results()
    figure = rf.accuracy_bars(results, top_k=(1,))
    finetune = results[(results["protocol"] == "finetune") & (results["strategy"] == "augmented")]["top1"]
    heights = [patch.get_height() for patch in figure.get_axes()[0].patches]
    assert heights[STRATEGIES.index("augmented")] == pytest.approx(finetune.mean() * 100)


def test_accuracy_bars_add_a_knn_panel_when_present():
    figure = rf.accuracy_bars(make_results(protocols=("knn", "linear", "finetune")))
    assert [ax.get_title() for ax in figure.get_axes()] == ["fine-tune", "linear probe", "kNN on frozen features"]


def test_a_narrow_figure_stacks_its_panels_and_labels_each():
    figure = rf.accuracy_bars(make_results(), figure_width_in=3.5)
    axes = figure.get_axes()
    assert figure.get_figwidth() == 3.5
    assert len({ax.get_position().x0 for ax in axes}) == 1  # one column
    assert [ax.get_ylabel() for ax in axes] == ["accuracy on test (%)"] * 2


def test_a_missing_label_fraction_names_the_ones_present():
    with pytest.raises(ValueError, match=r"label_fraction 50 .*\[.*10"):
        rf.accuracy_bars(make_results(), label_fraction=50)


def test_rank_accuracy_has_species_to_kingdom_and_a_line_per_strategy(tmp_path):
    figure = rf.rank_accuracy(make_results())
    axes = figure.get_axes()
    assert len(axes) == 2
    assert [t.get_text() for t in axes[0].get_xticklabels()] == list(RANKS)
    assert axes[0].get_xlabel() == "taxonomic rank"
    assert axes[0].get_ylabel() == "top-1 accuracy on test (%)"
    assert legend_texts(figure) == ["most common species", *STRATEGIES]
    assert len(axes[0].containers) == len(STRATEGIES) + 1  # one errorbar container per line
    assert_png(save_figure(figure, tmp_path / "ranks.png")[0])


def test_geo_prior_pairs_bars_per_strategy_for_each_k_and_protocol(tmp_path):
    figure = rf.geo_prior_comparison(make_results(), top_k=(1, 5))
    axes = figure.get_axes()
    assert len(axes) == 4  # rows top-1, top-5; columns finetune, linear
    for ax in axes:
        assert bar_count(ax) == len(STRATEGIES) * 2
        assert len(ax.texts) == len(STRATEGIES)  # the gain above each pair
        assert ax.texts[0].get_text() == "+5.0"
    assert axes[0].get_ylabel() == "top-1 accuracy on test (%)"
    assert axes[2].get_ylabel() == "top-5 accuracy on test (%)"
    assert legend_texts(figure) == ["image only", "image × geographic prior", "most common species"]
    assert_png(save_figure(figure, tmp_path / "geo_prior.png")[0])


def test_label_budget_curve_draws_fractions_on_a_log_axis(tmp_path):
    figure = rf.label_budget_curve(make_results(label_fractions=(1, 10, 100)), top_k=(1,))
    axes = figure.get_axes()
    assert len(axes) == 2
    assert axes[0].get_xscale() == "log"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["1", "10", "100"]
    assert axes[0].get_xlabel() == "labelled train images (%)"
    assert legend_texts(figure) == ["most common species", *STRATEGIES]
    line = axes[0].get_lines()[-1]
    assert list(line.get_xdata()) == [1, 10, 100]
    assert_png(save_figure(figure, tmp_path / "label_budget.png")[0])


def test_label_budget_curve_refuses_a_single_label_fraction():
    with pytest.raises(ValueError, match="needs at least two label fractions.*10 %"):
        rf.label_budget_curve(make_results(label_fractions=(10,)))


def test_training_curves_average_seeds_with_a_band(tmp_path):
    metrics = rf.read_metrics(write_metrics(tmp_path / "pretrain"))
    assert set(metrics["seed"]) == set(SEEDS)
    figure = rf.training_curves(metrics)
    axes = figure.get_axes()
    assert [ax.get_ylabel() for ax in axes] == [panel[1] for panel in rf.TRAINING_PANELS]
    assert [ax.get_xlabel() for ax in axes[2:]] == ["epoch", "epoch"]
    assert legend_texts(figure) == ["supervised (3 seeds)", "augmented (3 seeds)", "context_pos (3 seeds)"]
    loss = axes[0].get_lines()[1]  # augmented: mean over seeds of 5/e + 0.1 seed
    np.testing.assert_allclose(loss.get_ydata(), [5.0 / e + 0.1 for e in range(1, 5)])
    assert len(axes[0].collections) == 3  # one band per strategy
    knn = axes[1].get_lines()[1].get_ydata()
    np.testing.assert_allclose(knn, [10.0 * e + 1.0 for e in range(1, 5)])  # percent
    assert_png(save_figure(figure, tmp_path / "training_curves.png")[0])


def test_every_registered_strategy_and_baseline_has_a_colour_of_its_own():
    from geocontrast.registry import STRATEGIES

    names = [*STRATEGIES, "random_init", "most_common"]
    assert set(names) <= set(STRATEGY_COLOURS)
    assert len({STRATEGY_COLOURS[name] for name in names}) == len(names)


def test_a_run_pretrained_at_a_label_budget_is_its_own_curve_in_its_strategys_colour(tmp_path):
    paths = []
    for folder in ("supervised/seed0/l10", "supervised/seed0/l50", "supervised/seed1/l50", "augmented/seed1"):
        path = tmp_path / folder / "metrics.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text(
            json.dumps({"epoch": 1, "loss": 1.0, "knn_top1": 0.1, "embedding_std": 0.1, "mean_pairwise_cosine": 0.2})
            + "\n"
        )
        paths.append(path)
    metrics = rf.read_metrics(paths)
    assert list(zip(metrics["strategy"], metrics["seed"])) == [
        ("supervised_l10", 0),
        ("supervised_l50", 0),
        ("supervised_l50", 1),
        ("augmented", 1),
    ]
    figure = rf.training_curves(metrics)
    assert legend_texts(figure) == ["supervised_l10 (1 seed)", "supervised_l50 (2 seeds)", "augmented (1 seed)"]
    colours = [line.get_color() for line in figure.get_axes()[0].get_lines()]
    assert colours[0] == colours[1] == STRATEGY_COLOURS["supervised"] != colours[2]
    with pytest.raises(ValueError, match="seed<seed>"):
        pretraining_run(tmp_path / "supervised" / "l10" / "metrics.jsonl")


def test_read_metrics_refuses_a_path_without_strategy_and_seed(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n')
    with pytest.raises(ValueError, match="seed<seed>"):
        rf.read_metrics([path])


def test_results_table_has_mean_and_std_per_strategy_and_protocol(tmp_path):
    results = make_results()
    table = rt.results_table(results)
    assert len(table) == len(STRATEGIES) * len(PROTOCOLS) + 1
    assert list(table["strategy"][:3]) == ["most_common", "random_init", "random_init"]
    assert list(table.columns[:4]) == ["strategy", "protocol", "labels (%)", "seeds"]
    assert list(table["seeds"]) == [1] + [3] * (len(table) - 1)
    assert "±" not in table["top-1 (%)"].iloc[0]  # the baseline's single run has no spread
    row = table[(table["strategy"] == "augmented") & (table["protocol"] == "linear")].iloc[0]
    runs = results[(results["strategy"] == "augmented") & (results["protocol"] == "linear")]["top1"] * 100
    assert row["top-1 (%)"] == f"{runs.mean():.1f} ± {runs.std():.1f}"
    written = rt.write_table(table, tmp_path / "results_table.md")
    markdown = written[0].read_text()
    assert "| strategy | protocol | labels (%) | seeds | top-1 (%) |" in markdown
    assert f"| {runs.mean():.1f} ± {runs.std():.1f} |" in markdown
    assert pd.read_csv(written[1])["top-1 (%)"].iloc[1:].str.contains("±").all()
    assert "<table" in written[2].read_text()


def test_results_table_shows_one_seed_without_spread_and_absent_metrics_as_dash():
    results = make_results(seeds=(0,))
    results.loc[results["strategy"] == "most_common", ["prior_top1", "prior_top5"]] = np.nan
    table = rt.results_table(results, metrics=("top1", "prior_top1", "prior_gain_top1"))
    baseline = table.iloc[0]
    assert "±" not in baseline["top-1 (%)"]
    assert baseline["with geo prior top-1 (%)"] == "–"
    assert table.iloc[1]["geo-prior gain top-1 (%)"] == "+5.0"


def test_cli_writes_png_and_svg_and_refuses_unknown_params(tmp_path, capsys):
    results_csv = tmp_path / "results.csv"
    make_results().to_csv(results_csv, index=False)
    out = tmp_path / "report" / "accuracy.png"
    assert (
        rf.main(
            [
                "accuracy",
                "--results",
                str(results_csv),
                "--out",
                str(out),
                "--params-json",
                json.dumps({"top_k": [1], "error_bar": "sem"}),
            ]
        )
        == 0
    )
    assert out.exists() and out.with_suffix(".svg").exists()
    with pytest.raises(SystemExit):
        rf.main(["accuracy", "--results", str(results_csv), "--out", str(out), "--params-json", '{"metrics": []}'])
    assert "does not take ['metrics']" in capsys.readouterr().err


def test_cli_builds_training_curves_and_the_table(tmp_path):
    metrics = write_metrics(tmp_path / "pretrain", strategies=("augmented",), seeds=(0,))
    assert rf.main(["training_curves", "--metrics", *map(str, metrics), "--out", str(tmp_path / "t.png")]) == 0
    results_csv = tmp_path / "results.csv"
    make_results().to_csv(results_csv, index=False)
    assert (
        rf.main(
            [
                "table",
                "--results",
                str(results_csv),
                "--out",
                str(tmp_path / "table.md"),
                "--params-json",
                '{"metrics": ["top1"]}',
            ]
        )
        == 0
    )
    assert (tmp_path / "table.csv").exists() and (tmp_path / "table.html").exists()


def test_every_report_config_key_is_a_keyword_of_the_cli():
    report = load_config()["report"]
    keywords = {name for function in rf.FIGURES.values() for name in inspect.signature(function).parameters}
    assert set(report) - {"table", "cam", "sweep"} <= keywords  # sweep: read by results_summary.txt (--sweep)
    assert set(report["table"]) <= set(inspect.signature(rt.results_table).parameters)
    assert report["cam"] == CamSettings().as_dict()  # the cam section is the maps' own stage's parameters


def test_the_schema_offers_every_result_metric_for_the_table():
    schema = json.loads((REPO / "workflow" / "schemas" / "config.schema.json").read_text())
    table = schema["properties"]["report"]["properties"]["table"]["properties"]["metrics"]
    assert table["items"]["enum"] == list(CLASSIFICATION_METRIC_COLUMNS)
    assert set(table["default"]) == set(rt.TABLE_METRICS)
