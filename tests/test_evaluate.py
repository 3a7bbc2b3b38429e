"""Evaluation: the protocols' val-only model selection and the CLIs on the tiny world (the arithmetic on hand-made
inputs is in test_evaluate_metrics.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_world import build_tiny_inputs

from geocontrast.data.manifest import read_manifest, write_manifest
from geocontrast.evaluate import RESULT_COLUMNS, TASK_METRIC_COLUMNS
from geocontrast.evaluate import __main__ as cli
from geocontrast.evaluate import frozen as frozen_cli
from geocontrast.evaluate.protocols import eval_rows, score
from geocontrast.evaluate.settings import FinetuneSettings, KnnSettings, LinearSettings
from geocontrast.prior.fit import load_prior
from geocontrast.results import table as results_cli
from geocontrast.results.table import collect, summarise
from geocontrast.train.spent import PRETRAINING_COLLAPSE, PRETRAINING_FACTS, PRETRAINING_LABELS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_inputs(tmp_path_factory.mktemp("tiny_eval"))


def run_cli(tiny, out, protocol, **extra) -> dict:
    argv = [
        "--protocol",
        protocol,
        "--manifest",
        str(extra.pop("manifest", tiny["manifest"])),
        "--splits",
        str(tiny["splits"]),
        "--run-json",
        json.dumps({"seed": 0, "strategy": "s", "resolution": 32}),
        "--out",
        str(out),
    ]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert cli.main(argv) == 0
    return json.loads(out.read_text())


def embed_random_init(tiny, out, *protocols: str) -> int:
    """The frozen-evaluation CLI on the untrained cnn5: embeddings to ``out``, results beside them."""
    return frozen_cli.main(
        [
            *("--cache", str(tiny["cache"]), "--random-init", "cnn5", "--resolution", "32"),
            *("--manifest", str(tiny["manifest"]), "--splits", str(tiny["splits"]), "--label-fractions", "10", "100"),
            *("--protocols", *protocols, "--run-json", json.dumps({"seed": 0, "strategy": "s", "resolution": 32})),
            *("--embeddings-out", str(out), "--out-dir", str(out.parent)),
        ]
    )


def test_embeddings_cover_every_manifest_row(tiny, tmp_path):
    out = tmp_path / "emb.npy"
    assert embed_random_init(tiny, out) == 0
    features = np.load(out)
    assert features.shape == (len(read_manifest(tiny["manifest"])), 256) and features.dtype == np.float16
    assert np.isfinite(features).all() and features.std(axis=0).max() > 0


def relabel_test_rows(tiny, tmp_path):
    """A copy of the manifest whose test rows carry other (wrong) species: val and train untouched."""
    manifest = read_manifest(tiny["manifest"])
    test = (pd.read_parquet(tiny["splits"])["split"] == "test").to_numpy() & manifest["species"].notna().to_numpy()
    ranks = ["taxon_id", "species", "genus", "family", "order", "class", "phylum", "kingdom"]
    shifted = manifest.loc[test, ranks].sample(frac=1.0, random_state=1).to_numpy()
    manifest.loc[test, ranks] = shifted
    path = tmp_path / "relabelled.parquet"
    write_manifest(manifest, path)
    return path


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_model_selection_never_reads_test_labels(tiny, tmp_path, protocol):
    extra = (
        {"embeddings": tmp_path / "emb.npy"}
        if protocol == "linear"
        else {
            "cache": tiny["cache"],
            "random_init": "cnn5",
            "params_json": json.dumps({"max_epochs": 3, "patience": 2}),
        }
    )
    if protocol == "linear":
        embed_random_init(tiny, extra["embeddings"])
    honest = run_cli(tiny, tmp_path / "a.json", protocol, **extra)
    relabelled = run_cli(tiny, tmp_path / "b.json", protocol, manifest=relabel_test_rows(tiny, tmp_path), **extra)
    assert relabelled["selection"] == honest["selection"]  # same choice, whatever the test labels say
    assert relabelled["confused_pairs"] != honest["confused_pairs"]  # ... while the test scores did change


def test_frozen_job_writes_each_protocol_at_each_budget_as_the_single_protocol_cli_would(tiny, tmp_path):
    assert embed_random_init(tiny, tmp_path / "emb.npy", "linear", "knn", "clustering") == 0
    written = sorted(path.name for path in tmp_path.glob("*.json"))
    assert written == [f"{p}_l{pct}.json" for p in ("clustering", "knn", "linear") for pct in (10, 100)]
    alone = run_cli(tiny, tmp_path / "alone.json", "knn", embeddings=tmp_path / "emb.npy", label_fraction=100)
    together = json.loads((tmp_path / "knn_l100.json").read_text())
    assert together == alone and together["label_fraction"] == 100 and together["n_labelled"] > 0


def test_result_record_holds_every_result_column(tiny, tmp_path):
    record = run_cli(tiny, tmp_path / "baseline.json", "baseline")
    from_the_workflow = {"dataset", "encoder", "epochs", "split_mode", "replicate", *PRETRAINING_FACTS.values()}
    from_the_workflow |= {PRETRAINING_LABELS, PRETRAINING_COLLAPSE}  # read from the encoder, like the spent budget
    missing = set(RESULT_COLUMNS) - set(record) - from_the_workflow - set(TASK_METRIC_COLUMNS)  # tasks: own scores
    assert not missing
    assert np.isnan(record["prior_top1"])  # no prior given
    labelled = read_manifest(tiny["manifest"])["species"].notna()
    assert record["n_classes"] == read_manifest(tiny["manifest"])["species"][labelled].nunique()


def test_selection_uses_no_more_val_photos_than_the_budget_gives_train(tiny):
    manifest, splits = read_manifest(tiny["manifest"]), pd.read_parquet(tiny["splits"])
    every = eval_rows(manifest, splits, 10, val_fraction=1.0).val
    capped = eval_rows(manifest, splits, 10)  # val_fraction "budget": 10 % of val at 10 % labels
    assert capped.val.size == max(1, round(0.1 * every.size)) and set(capped.val) <= set(every)
    assert eval_rows(manifest, splits, 100).val.tolist() == every.tolist()
    assert eval_rows(manifest, splits, 10).val.tolist() == capped.val.tolist()  # the same photos every time
    half = eval_rows(manifest, splits, 10, val_fraction=0.5).val
    assert set(capped.val) <= set(half)  # nested: a smaller share keeps a subset of a larger one's photos
    species = capped.codes[half]  # stratified: every species keeps its share, up to rounding
    for code in np.unique(capped.codes[every]):
        assert abs((species == code).sum() - 0.5 * (capped.codes[every] == code).sum()) <= 1


def test_the_evaluation_record_gives_the_val_photos_selection_used(tiny, tmp_path):
    embed_random_init(tiny, tmp_path / "emb.npy")
    record = run_cli(tiny, tmp_path / "a.json", "knn", embeddings=tmp_path / "emb.npy", val_fraction=0.5)
    manifest, splits = read_manifest(tiny["manifest"]), pd.read_parquet(tiny["splits"])
    assert record["n_val"] == eval_rows(manifest, splits, 10, val_fraction=0.5).val.size


def test_score_combines_the_prior_and_reports_the_gain(tiny):
    manifest = read_manifest(tiny["manifest"])
    rows = eval_rows(manifest, pd.read_parquet(tiny["splits"]), 10)
    uniform = np.full((rows.test.size, rows.n_classes), 1.0 / rows.n_classes)
    oracle_prior = np.full((len(manifest), rows.n_classes), 1e-3)
    oracle_prior[rows.test, rows.codes[rows.test]] = 1.0  # a prior that knows the test species
    result = score(uniform, rows, oracle_prior)
    assert result["prior_top1"] == 1.0 and result["prior_gain_top1"] == pytest.approx(1.0 - result["top1"])
    assert score(uniform, rows, np.ones_like(oracle_prior))["prior_gain_top5"] == 0.0


def test_cli_names_what_a_protocol_is_missing(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            [
                "--protocol",
                "finetune",
                "--manifest",
                str(tiny["manifest"]),
                "--splits",
                str(tiny["splits"]),
                "--cache",
                str(tiny["cache"]),
                "--run-json",
                '{"seed": 0}',
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
    assert "--encoder or --random-init" in capsys.readouterr().err


def test_results_collects_and_summarises_over_seeds(tmp_path):
    records = [
        {"strategy": "a", "protocol": "linear", "label_fraction": 10, "seed": seed, "top1": top1}
        for seed, top1 in ((0, 0.2), (1, 0.4), (2, 0.6))
    ]
    results = collect(records)
    assert list(results.columns) == list(RESULT_COLUMNS)
    summary = summarise(results)
    assert summary.loc[0, "n_seeds"] == 3
    assert summary.loc[0, "top1_mean"] == pytest.approx(0.4) and summary.loc[0, "top1_std"] == pytest.approx(0.2)
    paths = []
    for i, record in enumerate(records):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(record))
    assert (
        results_cli.main(
            [
                *map(str, paths),
                "--out",
                str(tmp_path / "r.csv"),
                "--summary",
                str(tmp_path / "s.csv"),
                "--text",
                str(tmp_path / "s.txt"),
            ]
        )
        == 0
    )
    assert "40.0 ± 20.0" in (tmp_path / "s.txt").read_text()
    assert len(pd.read_csv(tmp_path / "r.csv")) == 3


def test_finetune_is_deterministic_on_cpu(tiny, tmp_path):
    extra = {"cache": tiny["cache"], "random_init": "cnn5", "params_json": json.dumps({"max_epochs": 2})}
    first = run_cli(tiny, tmp_path / "a.json", "finetune", **extra)
    second = run_cli(tiny, tmp_path / "b.json", "finetune", **extra)
    assert first["top1"] == second["top1"] and first["selection"] == second["selection"]


def test_finetune_validates_every_few_epochs_and_after_the_last(tiny, tmp_path):
    params = {"max_epochs": 5, "patience": 10, "val_every": 2, "head_init": "random"}
    extra = {"cache": tiny["cache"], "random_init": "cnn5", "params_json": json.dumps(params)}
    selection = run_cli(tiny, tmp_path / "a.json", "finetune", **extra)["selection"]
    assert list(selection["val_top1_by_epoch"]) == ["2", "4", "5"]
    assert selection["best_epoch"] in (2, 4, 5)
    assert selection["val_top1"] == max(selection["val_top1_by_epoch"].values())


def test_the_lp_ft_head_starts_from_the_probe_of_the_configured_linear_settings(tiny, tmp_path):
    extra = {"cache": tiny["cache"], "random_init": "cnn5", "params_json": json.dumps({"max_epochs": 1})}
    probe = {"penalties": [0.5, 0.05], "max_iter": 20}  # evaluate.linear, not LinearSettings' defaults
    selection = run_cli(tiny, tmp_path / "a.json", "finetune", probe_json=json.dumps(probe), **extra)["selection"]
    assert selection["probe"]["penalties"] == [0.5, 0.05] and selection["probe"]["penalty"] in (0.5, 0.05)
    default = run_cli(tiny, tmp_path / "b.json", "finetune", **extra)["selection"]["probe"]["penalties"]
    assert default == sorted(LinearSettings().penalties, reverse=True)


def test_only_the_finetune_takes_a_probe(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_cli(tiny, tmp_path / "a.json", "baseline", probe_json=json.dumps({"max_iter": 20}))
    assert "--probe-json is for the finetune protocol" in capsys.readouterr().err


@pytest.fixture(scope="module")
def supervised_encoder(tiny, tmp_path_factory):
    """An encoder made good cheaply: supervised on every labelled train photo of the tiny world."""
    from geocontrast.train.loop import train
    from geocontrast.train.settings import PretrainSettings

    settings = PretrainSettings.from_mapping(
        {"encoder": "cnn5", "resolution": 32, "batch_size": 32, "epochs": 15, "lr": 3e-3, "label_fraction": 100}
        | {"amp": "fp32", "device": "cpu", "progress": False, "monitor_size": 64, "knn_k": 5, "deterministic": True}
    )
    out = tmp_path_factory.mktemp("supervised")
    return train("supervised", tiny["cache"], tiny["manifest"], tiny["splits"], out, settings, threads=1)


def test_the_finetune_of_a_good_encoder_beats_the_untrained_one(tiny, supervised_encoder, tmp_path):
    params = json.dumps({"deterministic": True})  # the default protocol (evaluate.finetune)
    scores = {
        source: run_cli(
            tiny,
            tmp_path / f"{source}.json",
            "finetune",
            cache=tiny["cache"],
            label_fraction=100,
            params_json=params,
            **{source: value},
        )["top1"]
        for source, value in (("encoder", supervised_encoder), ("random_init", "cnn5"))
    }
    assert scores["encoder"] > scores["random_init"] + 0.1, scores


def test_lp_ft_starts_from_the_linear_probe_and_validates_it_as_epoch_0(tiny, supervised_encoder, tmp_path):
    params = json.dumps({"head_init": "linear_probe", "max_epochs": 1, "deterministic": True})
    selection = run_cli(
        tiny, tmp_path / "a.json", "finetune", cache=tiny["cache"], encoder=supervised_encoder, params_json=params
    )["selection"]
    assert list(selection["val_top1_by_epoch"]) == ["0", "1"]
    assert selection["val_top1_by_epoch"]["0"] == selection["probe"]["val_top1"]  # the probe's own model


def test_protocol_params_are_resolved_over_defaults_and_typos_refused():
    assert KnnSettings.from_mapping({"k": 5}) == KnnSettings(k=5, temperature=0.07)
    with pytest.raises(ValueError, match=r"evaluate.finetune.max_epoch: unknown key"):
        FinetuneSettings.from_mapping({"max_epoch": 3})


def test_cli_refuses_params_that_are_not_a_json_object(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            [
                "--protocol",
                "baseline",
                "--manifest",
                str(tiny["manifest"]),
                "--splits",
                str(tiny["splits"]),
                "--run-json",
                '{"seed": 0}',
                "--params-json",
                "[1]",
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
    assert "--params-json: must be a JSON object" in capsys.readouterr().err


def test_the_summary_states_what_each_pretraining_job_spent_and_on_which_labels():
    from geocontrast.results.table import budget_text

    spent = {"pretrain_steps": 110, "pretrain_anchors": 14080}
    rows = [
        {"strategy": "supervised", "pretrain_label_fraction": 10, **spent, "pretrain_images": 14080},
        {"strategy": "supervised", "pretrain_label_fraction": 50, **spent, "pretrain_images": 14080},
        {"strategy": "augmented", "pretrain_label_fraction": 0, **spent, "pretrain_images": 28160},
        {"strategy": "augmented", "pretrain_label_fraction": 0, **spent, "pretrain_images": 28160},
        {"strategy": "random_init", "pretrain_steps": float("nan")},
    ]
    results = pd.DataFrame(rows).assign(pretrain_seconds=[30.0, 40.0, 70.0, 80.0, float("nan")])
    lines = budget_text(results).strip().splitlines()[1:]
    # random_init spent nothing; supervised has one encoder per label budget, each its own line
    assert [line.split()[:3] for line in lines] == [
        ["supervised", "labels", "10"],
        ["supervised", "labels", "50"],
        ["augmented", "labels", "0"],
    ]
    assert "images     28160" in lines[2] and "75.0 s" in lines[2] and "steps     110" in lines[0]
    assert "30.0 s" in lines[0] and "40.0 s" in lines[1]
    assert budget_text(results.iloc[4:]) == ""


def test_score_divides_out_the_class_frequencies_the_prior_was_trained_on(tiny, tmp_path):
    """A location prior with no information (every row the same, 0.5: a row of ones would mean no prior) leaves the
    image model's uniform scores ranked by 1 / P(y) alone: the class the prior's own records hold least comes
    first, not the labelled photos'."""
    manifest = read_manifest(tiny["manifest"])
    rows = eval_rows(manifest, pd.read_parquet(tiny["splits"]), 10)
    labels = rows.codes[rows.test]
    uniform = np.full((rows.test.size, rows.n_classes), 1.0 / rows.n_classes)
    shares = np.bincount(labels, minlength=rows.n_classes) / labels.size
    train_rarest = np.argmin(np.bincount(rows.codes[rows.train], minlength=rows.n_classes))
    rarest = int(np.argmax(np.where(shares != shares[train_rarest], shares, -1)))  # another share of the test set
    np.save(tmp_path / "probs.npy", np.full((len(manifest), rows.n_classes), 0.5, dtype=np.float32))
    counts = np.full(rows.n_classes, 50)
    counts[rarest] = 0
    (tmp_path / "prior.json").write_text(json.dumps({"class_counts": counts.tolist()}))
    trained_on, _ = load_prior(tmp_path / "probs.npy", "unused")
    assert score(uniform, rows, trained_on)["prior_top1"] == pytest.approx(shares[rarest])
    plain = score(uniform, rows, np.full((len(manifest), rows.n_classes), 0.5))  # the labelled photos' instead
    assert plain["prior_top1"] == pytest.approx(shares[train_rarest]) != pytest.approx(shares[rarest])
