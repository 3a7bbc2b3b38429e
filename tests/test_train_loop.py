"""The training loop: it learns, it resumes a killed run exactly, and it writes the metrics and encoder contracts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geocontrast import runtime
from geocontrast.data.manifest import read_manifest, write_manifest
from geocontrast.evaluate import RUN_COLUMNS
from geocontrast.models import build_encoder
from geocontrast.strategies import STRATEGIES
from geocontrast.train import __main__ as cli
from geocontrast.train import loop
from geocontrast.train.budget import epoch_batches, plan_budget
from geocontrast.train.loop import METRIC_KEYS, train
from geocontrast.train.settings import PretrainSettings
from geocontrast.train.spent import PRETRAINING_FACTS, PRETRAINING_LABELS, pretraining_facts

FAST = {
    "encoder": "cnn5",
    "resolution": 32,
    "batch_size": 32,
    "amp": "fp32",
    "device": "cpu",
    "progress": False,
    "monitor_size": 64,
    "knn_k": 5,
}


def run(inputs: dict[str, Path], out_dir: Path, strategy: str = "context_pos_neg", **params) -> Path:
    return train(
        strategy,
        inputs["cache"],
        inputs["manifest"],
        inputs["splits"],
        out_dir,
        PretrainSettings.from_mapping({**FAST, **params}),
        neighbours_path=inputs["neighbours"],
        negatives_path=inputs["negatives"],
        threads=1,
    )


def metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def encoder_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["encoder"]


@pytest.fixture(scope="module")
def two_epochs(tiny_inputs, tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("uninterrupted")
    run(tiny_inputs, out_dir, epochs=2, steps_per_epoch=3)
    return out_dir


@pytest.fixture(scope="module")
def sixteen_images(tiny_inputs, tmp_path_factory) -> dict[str, Path]:
    """A world of 16 train images (+ 8 val): every epoch's single batch is the same 16 images.

    With augment_strength 0 the views are the plain images, so the labelled batch can be memorised.
    """
    root = tmp_path_factory.mktemp("sixteen")
    manifest = read_manifest(tiny_inputs["manifest"]).iloc[:24].reset_index(drop=True)
    write_manifest(manifest, root / "manifest.parquet")
    np.save(root / "32px.npy", np.load(tiny_inputs["cache"])[:24])
    splits = pd.DataFrame({"image_id": manifest["image_id"], "split": ["train"] * 16 + ["val"] * 8})
    for column in ("labelled_1", "labelled_10", "labelled_100"):
        splits[column] = (splits["split"] == "train") & manifest["species"].notna()
    splits.to_parquet(root / "splits.parquet", index=False)
    return {
        "manifest": root / "manifest.parquet",
        "cache": root / "32px.npy",
        "splits": root / "splits.parquet",
        "neighbours": None,
        "negatives": None,
    }


def test_overfitting_a_fixed_batch_decreases_the_loss(sixteen_images, tmp_path):
    run(
        sixteen_images,
        tmp_path,
        strategy="supervised_full",
        epochs=10,
        batch_size=16,
        lr=3e-3,
        augment_strength=0.0,
        warmup_fraction=0.05,
    )
    losses = [line["loss"] for line in metrics(tmp_path)]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_trains_and_writes_a_loadable_encoder(tiny_inputs, tmp_path, strategy):
    path = run(tiny_inputs, tmp_path, strategy=strategy, epochs=1, steps_per_epoch=2)
    saved = torch.load(path, map_location="cpu", weights_only=False)
    assert saved["strategy"] == strategy and saved["params"]["encoder"] == "cnn5"
    encoder = build_encoder("cnn5", small_input=True)
    encoder.load_state_dict(saved["encoder"])  # strict: every key present, no extras
    assert math.isfinite(metrics(tmp_path)[0]["loss"])
    pairs = json.loads((tmp_path / "pairs.json").read_text())
    assert pairs["strategy"] == strategy and pairs["pairs"]["random"]["n"] == pairs["n_anchors"] > 0


def test_metrics_lines_hold_the_contract_keys(two_epochs):
    lines = metrics(two_epochs)
    assert [line["epoch"] for line in lines] == [1, 2]
    assert [line["step"] for line in lines] == [3, 6]
    for line in lines:
        assert set(METRIC_KEYS) <= set(line)
        for key in (
            "loss",
            "images_per_s",
            "seconds",
            "peak_memory_mb",
            "embedding_std",
            "mean_pairwise_cosine",
            "knn_top1",
        ):
            assert math.isfinite(line[key]), key
        assert 0.0 <= line["knn_top1"] <= 1.0 and -1.0 <= line["mean_pairwise_cosine"] <= 1.0
        assert line["memory_kind"] == "cpu_rss" and line["amp"] == "fp32"


VIEWS = {"supervised": 1, "augmented": 2, "context_pos_neg": 3, "byol": 4}
"""Images through an encoder per anchor: BYOL's two views also pass through its target encoder."""


@pytest.fixture(scope="module")
def one_budget(tiny_inputs, tmp_path_factory) -> dict[str, Path]:
    """supervised (23 labelled train anchors on the tiny world), augmented, context_pos_neg and byol (210 train
    anchors) under one budget: 2 epochs of 3 steps at batch 16."""
    root = tmp_path_factory.mktemp("one_budget")
    for strategy in VIEWS:
        run(tiny_inputs, root / strategy, strategy=strategy, epochs=2, steps_per_epoch=3, batch_size=16)
    return {strategy: root / strategy for strategy in VIEWS}


def test_every_strategy_spends_the_same_steps_on_the_same_anchor_count(one_budget):
    for strategy, out_dir in one_budget.items():
        lines = metrics(out_dir)
        assert [line["step"] for line in lines] == [3, 6], strategy
        assert [line["anchors_seen"] for line in lines] == [48, 96], strategy
        assert lines[-1]["encoder_images"] == 96 * VIEWS[strategy], strategy
        assert 0 < lines[0]["wall_seconds"] < lines[1]["wall_seconds"], strategy


def test_encoder_and_metrics_record_the_same_budget(one_budget):
    for strategy, out_dir in one_budget.items():
        from_encoder, from_metrics = (
            pretraining_facts(out_dir / "encoder.pt"),
            pretraining_facts(out_dir / "metrics.jsonl"),
        )
        labels = from_encoder.pop(PRETRAINING_LABELS)  # only the encoder records the labels it trained on
        assert from_encoder == from_metrics, strategy
        assert from_encoder["pretrain_steps"] == 6 and from_encoder["pretrain_anchors"] == 96, strategy
        assert labels == (10 if strategy == "supervised" else 0), strategy  # supervised: loop default label_fraction


def test_results_rows_have_a_column_for_every_pretraining_fact():
    assert {*PRETRAINING_FACTS.values(), PRETRAINING_LABELS} <= set(RUN_COLUMNS)


def test_label_only_anchors_get_the_steps_of_an_epoch_over_the_train_split():
    params = PretrainSettings(batch_size=16)
    supervised, augmented = plan_budget(210, 23, params), plan_budget(210, 210, params)
    assert supervised.steps_per_epoch == augmented.steps_per_epoch == 210 // 16
    assert supervised.batch_size == augmented.batch_size == 16
    assert plan_budget(210, 10, params).batch_size == 10  # fewer anchors than one batch: a smaller batch


def test_an_epoch_cycles_over_few_anchors_in_whole_batches_of_fresh_permutations():
    anchors = np.arange(100, 105)  # 2 batches of 2 per pass; one anchor waits for the next pass
    batches = epoch_batches(anchors, batch_size=2, steps=7, rng=np.random.default_rng(3))
    assert batches.shape == (7, 2)
    for start in range(0, 6, 2):
        one_pass = batches[start : start + 2].ravel()
        assert len(set(one_pass)) == 4 and set(one_pass) <= set(anchors)
    passes = [tuple(batches[start : start + 2].ravel()) for start in range(0, 6, 2)]
    assert len(set(passes)) > 1  # each pass its own permutation
    again = epoch_batches(anchors, batch_size=2, steps=7, rng=np.random.default_rng(3))
    assert (batches == again).all()


def test_an_epoch_over_enough_anchors_is_one_permutation_as_before():
    anchors = np.arange(50)
    batches = epoch_batches(anchors, batch_size=8, steps=6, rng=np.random.default_rng(1))
    assert (batches.ravel() == np.random.default_rng(1).permutation(anchors)[:48]).all()


class Killed(Exception):
    """Stands in for SIGKILL: raised from inside the loop at a chosen checkpoint."""


def kill_at_save(monkeypatch, n: int, before_writing: bool) -> None:
    """Make the loop die at its n-th checkpoint write, before it or just after it."""
    real = loop.save_last
    calls = []

    def save_last(*args, **kwargs):
        calls.append(1)
        if len(calls) == n and before_writing:
            raise Killed
        path = real(*args, **kwargs)
        if len(calls) == n:
            raise Killed
        return path

    monkeypatch.setattr(loop, "save_last", save_last)


@pytest.mark.parametrize(
    ("n", "before_writing"),
    [(1, False), (2, True)],
    ids=["killed-after-epoch-1-checkpoint", "killed-between-epoch-2-metrics-and-checkpoint"],
)
def test_killed_run_resumes_to_the_uninterrupted_weights(
    tiny_inputs, two_epochs, tmp_path, monkeypatch, n, before_writing
):
    kill_at_save(monkeypatch, n, before_writing)
    with pytest.raises(Killed):
        run(tiny_inputs, tmp_path, epochs=2, steps_per_epoch=3)
    assert (tmp_path / "last.pt").exists() and not (tmp_path / "encoder.pt").exists()
    monkeypatch.undo()
    run(tiny_inputs, tmp_path, epochs=2, steps_per_epoch=3)
    resumed, uninterrupted = encoder_state(tmp_path / "encoder.pt"), encoder_state(two_epochs / "encoder.pt")
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    assert [line["epoch"] for line in metrics(tmp_path)] == [1, 2]
    assert [line["loss"] for line in metrics(tmp_path)] == [line["loss"] for line in metrics(two_epochs)]


def test_killed_label_only_run_resumes_to_the_uninterrupted_weights(tiny_inputs, one_budget, tmp_path, monkeypatch):
    kill_at_save(monkeypatch, 1, before_writing=False)
    with pytest.raises(Killed):
        run(tiny_inputs, tmp_path, strategy="supervised", epochs=2, steps_per_epoch=3, batch_size=16)
    monkeypatch.undo()
    run(tiny_inputs, tmp_path, strategy="supervised", epochs=2, steps_per_epoch=3, batch_size=16)
    resumed, uninterrupted = (
        encoder_state(tmp_path / "encoder.pt"),
        encoder_state(one_budget["supervised"] / "encoder.pt"),
    )
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    assert pretraining_facts(tmp_path / "metrics.jsonl")["pretrain_anchors"] == 96


def test_finished_run_is_not_trained_again(tiny_inputs, two_epochs, tmp_path):
    run(tiny_inputs, tmp_path, epochs=1, steps_per_epoch=2)
    before = encoder_state(tmp_path / "encoder.pt")
    run(tiny_inputs, tmp_path, epochs=1, steps_per_epoch=2)
    after = encoder_state(tmp_path / "encoder.pt")
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert len(metrics(tmp_path)) == 1


def test_pretraining_starts_from_init_weights(tiny_inputs, two_epochs, tmp_path):
    """pretrain.init_weights reaches the encoder: at lr 0 the saved weights are the file's, not a random init's."""
    start = two_epochs / "encoder.pt"
    run(tiny_inputs, tmp_path / "init", epochs=1, steps_per_epoch=1, lr=0.0, init_weights=str(start))
    run(tiny_inputs, tmp_path / "random", epochs=1, steps_per_epoch=1, lr=0.0)
    initial, loaded, random = (
        encoder_state(path) for path in (start, tmp_path / "init" / "encoder.pt", tmp_path / "random" / "encoder.pt")
    )
    weights = [key for key in initial if key.endswith("weight")]  # BN running statistics move in train mode
    assert all(torch.equal(loaded[key], initial[key]) for key in weights)
    assert not any(torch.equal(random[key], initial[key]) for key in weights if initial[key].ndim == 4)


def test_unknown_param_is_refused(tiny_inputs, tmp_path):
    with pytest.raises(ValueError, match="batchsize"):
        run(tiny_inputs, tmp_path, batchsize=8)


def test_cli_refuses_an_unknown_strategy_listing_the_registered_ones(tiny_inputs, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            [
                "--strategy",
                "simclr",
                "--cache",
                str(tiny_inputs["cache"]),
                "--manifest",
                str(tiny_inputs["manifest"]),
                "--splits",
                str(tiny_inputs["splits"]),
                "--out-dir",
                str(tmp_path),
            ]
        )
    assert "context_pos_neg" in capsys.readouterr().err


def test_cli_names_the_missing_table_of_a_geo_strategy(tiny_inputs, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            [
                "--strategy",
                "context_pos_neg",
                "--cache",
                str(tiny_inputs["cache"]),
                "--manifest",
                str(tiny_inputs["manifest"]),
                "--splits",
                str(tiny_inputs["splits"]),
                "--out-dir",
                str(tmp_path),
                "--neighbours",
                str(tiny_inputs["neighbours"]),
            ]
        )
    assert "--negatives" in capsys.readouterr().err


def test_cli_trains_from_params_json(tiny_inputs, tmp_path):
    params = json.dumps({**FAST, "epochs": 1, "steps_per_epoch": 1})
    assert (
        cli.main(
            [
                "--strategy",
                "augmented",
                "--cache",
                str(tiny_inputs["cache"]),
                "--manifest",
                str(tiny_inputs["manifest"]),
                "--splits",
                str(tiny_inputs["splits"]),
                "--out-dir",
                str(tmp_path),
                "--params-json",
                params,
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (tmp_path / "encoder.pt").exists() and len(metrics(tmp_path)) == 1


@pytest.mark.parametrize(
    "flags, expected", [("fpu sse avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_tile amx_bf16", True)]
)
def test_auto_amp_uses_bf16_only_on_native_bf16_cpus(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert runtime.cpu_supports_bf16(cpuinfo) is expected
    assert runtime.cpu_supports_bf16(tmp_path / "absent") is False


def test_allocator_keeps_freed_memory_on_glibc():
    import platform

    assert runtime.keep_freed_memory() is (platform.libc_ver()[0] == "glibc")


def test_autoencoder_reconstructs_a_tiny_batch_better_after_a_few_steps(sixteen_images, tmp_path):
    run(
        sixteen_images,
        tmp_path,
        strategy="autoencoder",
        epochs=8,
        batch_size=16,
        lr=3e-3,
        augment_strength=0.0,
        warmup_fraction=0.05,
    )
    losses = [line["loss"] for line in metrics(tmp_path)]
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize("strategy", ["byol", "simsiam"])
def test_non_contrastive_strategies_do_not_collapse_on_the_tiny_world(tiny_inputs, tmp_path, strategy):
    run(tiny_inputs, tmp_path, strategy=strategy, epochs=2)
    for line in metrics(tmp_path):
        assert not line["collapsed"] and line["embedding_std"] > 0.002, line


def test_swav_trains_on_the_tiny_world_without_collapsing(tiny_inputs, tmp_path):
    run(tiny_inputs, tmp_path, strategy="swav", epochs=2, options={"freeze_prototypes_steps": 3})
    lines = metrics(tmp_path)
    assert all(math.isfinite(line["loss"]) for line in lines)
    assert lines[-1]["loss"] < lines[0]["loss"], lines
    assert not lines[-1]["collapsed"] and lines[-1]["embedding_std"] > 0.002, lines[-1]
