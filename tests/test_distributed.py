"""Training on several processes (torchrun's way, here 2 CPU processes on gloo) equals one process on the global
batch."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from tiny_world import build_tiny_inputs

from geocontrast import distributed
from geocontrast.losses import NTXentLoss, SymmetricInfoNCELoss
from geocontrast.models import ProjectionHead, build_encoder
from geocontrast.strategies import PairBatch
from geocontrast.train.loop import METRIC_KEYS, train
from geocontrast.train.settings import PretrainSettings

WORLD_SIZE = 2
BATCH, EXTRA, DIM = 8, 8, 6  # global batch: 8 items (4 per process), 8 extra negatives


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_processes(worker, *args) -> None:
    """Run ``worker(rank, *args)`` in WORLD_SIZE processes joined as torchrun would (environment variables)."""
    mp.spawn(_as_rank, args=(free_port(), worker, *args), nprocs=WORLD_SIZE, join=True)


def _as_rank(rank: int, port: int, worker, *args) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD_SIZE),
            "LOCAL_WORLD_SIZE": str(WORLD_SIZE),
        }
    )
    torch.set_num_threads(1)
    try:
        worker(rank, *args)
    finally:
        distributed.leave()


def loss_inputs() -> dict[str, torch.Tensor]:
    """One global batch: projections of both views, extra negatives and the two geo masks."""
    g = torch.Generator().manual_seed(0)
    return {
        "z_a": torch.randn(BATCH, DIM, generator=g),
        "z_b": torch.randn(BATCH, DIM, generator=g),
        "extra_negatives": torch.randn(EXTRA, DIM, generator=g),
        "false_negatives": torch.rand(BATCH, BATCH, generator=g) < 0.3,
        "extra_false_negatives": torch.rand(BATCH, EXTRA, generator=g) < 0.3,
    }


def loss_and_gradients(inputs: dict[str, torch.Tensor], share=lambda rows: rows) -> tuple[float, dict]:
    """NT-Xent (gathering when a process group exists) on ``share`` of every input, and its input gradients."""
    leaves = {name: share(inputs[name]).clone().requires_grad_() for name in ("z_a", "z_b", "extra_negatives")}
    loss = NTXentLoss(temperature=0.2, gather_distributed=True)(
        leaves["z_a"],
        leaves["z_b"],
        leaves["extra_negatives"],
        false_negatives=share(inputs["false_negatives"]),
        extra_false_negatives=share(inputs["extra_false_negatives"]),
    )
    loss.backward()
    return loss.item(), {name: leaf.grad for name, leaf in leaves.items()}


def gathered_loss_worker(rank: int, out: Path) -> None:
    ranks = distributed.join(torch.device("cpu"))
    share = len(loss_inputs()["z_a"]) // ranks.world_size
    loss, grads = loss_and_gradients(loss_inputs(), lambda rows: rows[rank * share : (rank + 1) * share])
    torch.save({"loss": loss, "grads": grads}, out / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.extended
def test_gathered_ntxent_loss_and_gradients_equal_one_process_on_the_global_batch(tmp_path):
    run_processes(gathered_loss_worker, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    loss, grads = loss_and_gradients(loss_inputs())
    # each process's loss is the mean over its own anchors' views: their mean is the global mean
    assert np.mean([r["loss"] for r in ranks]) == pytest.approx(loss, rel=1e-5)
    # each process gets the gradient of its own loss plus, through the gather, of the others' (summed):
    # world_size times the global mean's, which DistributedDataParallel's averaging divides back
    for name, expected in grads.items():
        gathered = torch.cat([r["grads"][name] for r in ranks]) / WORLD_SIZE
        torch.testing.assert_close(gathered, expected, rtol=1e-4, atol=1e-6, msg=name)


def location_loss_and_gradients(share=lambda rows: rows) -> tuple[float, dict]:
    """The symmetric image-location InfoNCE on ``share`` of one global batch with 3 of 8 items unlocated."""
    g = torch.Generator().manual_seed(0)
    inputs = {"image": torch.randn(BATCH, DIM, generator=g), "location": torch.randn(BATCH, DIM, generator=g)}
    leaves = {name: share(rows).clone().requires_grad_() for name, rows in inputs.items()}
    valid = share(torch.tensor([True, False, True, True, False, False, True, True]))  # 3 and 2 per process
    loss = SymmetricInfoNCELoss(temperature=0.2, gather_distributed=True)(leaves["image"], leaves["location"], valid)
    loss.backward()
    return loss.item(), {name: leaf.grad for name, leaf in leaves.items()}


def gathered_location_loss_worker(rank: int, out: Path) -> None:
    ranks = distributed.join(torch.device("cpu"))
    share = BATCH // ranks.world_size
    loss, grads = location_loss_and_gradients(lambda rows: rows[rank * share : (rank + 1) * share])
    torch.save({"loss": loss, "grads": grads}, out / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.extended
def test_gathered_location_loss_and_gradients_equal_one_process_with_unequal_located_shares(tmp_path):
    run_processes(gathered_location_loss_worker, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    loss, grads = location_loss_and_gradients()
    assert np.mean([r["loss"] for r in ranks]) == pytest.approx(loss, rel=1e-5)
    for name, expected in grads.items():
        gathered = torch.cat([r["grads"][name] for r in ranks]) / WORLD_SIZE
        torch.testing.assert_close(gathered, expected, rtol=1e-4, atol=1e-6, msg=name)


def training_step(ranks: distributed.Ranks, batch: PairBatch, images: torch.Tensor) -> tuple[float, dict]:
    """One optimiser step of encoder + projection head on this process's share of ``batch``, as the loop does it."""
    torch.manual_seed(0)
    encoder = build_encoder("cnn5", small_input=True)
    model = torch.nn.ModuleDict(
        {
            "encoder": encoder,
            "heads": torch.nn.ModuleDict(
                {"projection": ProjectionHead(encoder.feature_dim, hidden_dim=32, out_dim=16)}
            ),
        }
    )
    # eval mode: BatchNorm with its running statistics. On CPU each process normalises with its own batch
    # statistics (SyncBatchNorm is GPU-only), which no single process can reproduce; everything else is compared.
    model.eval()
    forward = ranks.replicate(model)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)  # AdamW's first step is sign(grad): it hides errors
    batch = ranks.share(batch)
    project = model["heads"]["projection"]
    views = {name: project(forward(images[torch.as_tensor(rows)])) for name, rows in batch.views.items()}
    loss = NTXentLoss(temperature=0.2, gather_distributed=True)(
        views["anchor"],
        views["positive"],
        views["negative"],
        torch.as_tensor(batch.false_negatives),
        torch.as_tensor(batch.extra_false_negatives),
    )
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return float(ranks.average(loss.detach())), {key: value.clone() for key, value in model.state_dict().items()}


def step_inputs() -> tuple[PairBatch, torch.Tensor]:
    """A global batch of 8 anchors with positives and negatives among 24 random images, and both geo masks."""
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.normal(size=(24, 3, 32, 32)).astype(np.float32))
    batch = PairBatch(
        views={"anchor": np.arange(8), "positive": np.arange(8, 16), "negative": np.arange(16, 24)},
        false_negatives=rng.random((8, 8)) < 0.3,
        extra_false_negatives=rng.random((8, 8)) < 0.3,
    )
    return batch, images


def training_step_worker(rank: int, out: Path) -> None:
    ranks = distributed.join(torch.device("cpu"))
    loss, state = training_step(ranks, *step_inputs())
    torch.save({"loss": loss, "state": state}, out / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.extended
def test_two_process_training_step_equals_one_process_step_on_the_global_batch(tmp_path):
    run_processes(training_step_worker, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    loss, state = training_step(distributed.Ranks(0, 1, torch.device("cpu")), *step_inputs())
    assert ranks[0]["loss"] == ranks[1]["loss"] == pytest.approx(loss, rel=1e-5)
    for key, expected in state.items():  # encoder and head weights after the step: the same on both processes
        for rank in ranks:
            torch.testing.assert_close(rank["state"][key], expected, rtol=1e-4, atol=1e-6, msg=key)


def test_share_slices_views_and_mask_rows_and_keeps_mask_columns():
    batch, _ = step_inputs()
    share = distributed.Ranks(1, 2, torch.device("cpu")).share(batch)
    assert share.views["anchor"].tolist() == [4, 5, 6, 7] and share.views["negative"].tolist() == [20, 21, 22, 23]
    assert (share.false_negatives == batch.false_negatives[4:]).all()  # (4, 8): columns index the global batch
    assert (share.extra_false_negatives == batch.extra_false_negatives[4:]).all()


def test_global_batch_is_rounded_down_to_equal_shares():
    ranks = distributed.Ranks(0, 4, torch.device("cpu"))
    assert ranks.batch_size(130) == 128
    with pytest.raises(ValueError, match="pretrain.batch_size"):
        ranks.batch_size(3)


def train_worker(
    rank: int, inputs: dict[str, Path], out_dir: Path, params: dict, strategies: tuple[str, ...] = ("context_pos_neg",)
) -> None:
    for strategy in strategies:
        folder = out_dir if len(strategies) == 1 else out_dir / strategy
        path = train(
            strategy,
            inputs["cache"],
            inputs["manifest"],
            inputs["splits"],
            folder,
            PretrainSettings.from_mapping(params),
            neighbours_path=inputs["neighbours"],
            negatives_path=inputs["negatives"],
            threads=2,
        )
        assert path == folder / "encoder.pt"


@pytest.mark.slow
@pytest.mark.extended
def test_two_process_run_writes_the_single_process_outputs_once(tmp_path):
    inputs = build_tiny_inputs(tmp_path / "world")
    params = {
        "encoder": "cnn5",
        "batch_size": 16,
        "epochs": 1,
        "steps_per_epoch": 2,
        "amp": "fp32",
        "device": "cpu",
        "progress": False,
        "monitor_size": 32,
        "knn_k": 5,
    }
    out_dir = tmp_path / "run"
    run_processes(train_worker, inputs, out_dir, params)
    lines = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and set(METRIC_KEYS) <= set(lines[0])
    assert lines[0]["images"] == 2 * 16 and lines[0]["step"] == 2  # global anchors, not one process's share
    saved = torch.load(out_dir / "encoder.pt", map_location="cpu", weights_only=False)
    build_encoder("cnn5", small_input=True).load_state_dict(saved["encoder"])  # plain BatchNorm keys
    assert (out_dir / "last.pt").exists()


@pytest.mark.slow
@pytest.mark.extended
def test_every_family_trains_under_two_processes(tmp_path):
    """DDP needs a gradient for every trained parameter each step, and BYOL's target copy must stay out of it."""
    inputs = build_tiny_inputs(tmp_path / "world")
    params = {
        "encoder": "cnn5",
        "batch_size": 16,
        "epochs": 1,
        "steps_per_epoch": 2,
        "amp": "fp32",
        "device": "cpu",
        "progress": False,
        "monitor_size": 32,
        "knn_k": 5,
    }
    families = ("classifier", "triplet", "autoencoder", "simsiam", "byol", "oracle", "location_align", "geo_pretext")
    run_processes(train_worker, inputs, tmp_path / "run", params, families)
    for strategy in families:
        lines = (tmp_path / "run" / strategy / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 1 and (tmp_path / "run" / strategy / "encoder.pt").exists(), strategy
