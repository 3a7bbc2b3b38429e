"""The inputs and single measurements of bench/train_throughput.py: the synthetic world and its geo tables, the
strategies as the loop builds them, and one rate each of the loop end to end, the compute-only step and lightly's
SimCLR pipeline. The script plans, interleaves and summarises these measurements.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from inspect import signature
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from geocontrast.data.cache import build_image_cache, load_image_cache
from geocontrast.data.manifest import MANIFEST_COLUMNS, read_manifest, validate_manifest, write_manifest
from geocontrast.data.splits import make_splits
from geocontrast.data.synthetic import generate_world, render_photos
from geocontrast.geo._common import manifest_coordinates
from geocontrast.geo.negatives import load_negative_table, negative_table, save_negative_table
from geocontrast.geo.neighbours import load_neighbour_table, neighbour_table, save_neighbour_table
from geocontrast.geo.training_data import training_data
from geocontrast.models import build_encoder
from geocontrast.strategies import PairBatch, Strategy, build_strategy, required_tables
from geocontrast.train.loop import METRICS, train
from geocontrast.train.settings import PretrainSettings

BATCH = 128
MONITOR_SIZE = 32  # the loop's per-epoch monitors are outside its timing, but cost wall time


@dataclass(frozen=True)
class Plan:
    steps: int  # timed optimiser steps per measurement (also the loop's steps_per_epoch cap)
    warmup: int  # untimed steps first (compute, lightly); the loop's warm-up is its whole first epoch
    reps: int
    fewer_threads: bool = False  # also try lightly with 1 worker and one compute thread fewer


@dataclass(frozen=True)
class Data:
    cache: Path
    manifest: Path
    splits: Path
    neighbours: Path
    negatives: Path


@dataclass
class Case:
    """One strategy as the loop builds it, with one sampled batch for the compute-only step."""

    name: str
    strategy: Strategy
    batch: PairBatch
    steps_per_epoch: int

    @property
    def views(self) -> int:
        return len(self.batch.views)


def synthetic_data(scratch: Path, n_images: int, resolution: int, config: dict) -> Data:
    """Render a small world and build its manifest, splits and uint8 cache at ``resolution``."""
    params = {**config["world"], "n_images": n_images}
    world = generate_world(params)
    render_photos(world, params, scratch / "images", workers=os.cpu_count() or 1, progress=False)
    manifest = validate_manifest(world.photos[list(MANIFEST_COLUMNS)], scratch / "images")
    write_manifest(manifest, scratch / "manifest.parquet")
    build_image_cache(
        [scratch / "images" / path for path in manifest["path"]],
        resolution,
        scratch / f"{resolution}px.npy",
        workers=os.cpu_count() or 1,
        progress=False,
    )
    # The splits section also holds workflow keys (resample: how replicates map to splits) make_splits does not take.
    settings = {key: value for key, value in config["splits"].items() if key in signature(make_splits).parameters}
    make_splits(manifest, **settings).to_parquet(scratch / "splits.parquet", index=False)
    return geo_tables(
        scratch / f"{resolution}px.npy", scratch / "manifest.parquet", scratch / "splits.parquet", scratch, config
    )


def geo_tables(cache: Path, manifest_path: Path, splits: Path, scratch: Path, config: dict) -> Data:
    """Neighbour and negative tables for the manifest, built as the workflow's config says."""
    manifest, lat, lon = manifest_coordinates(manifest_path)
    positives = config["neighbours"]
    neighbours = neighbour_table(
        lat,
        lon,
        positives["radius_km"],
        positives["k"],
        positives["seed"],
        observation_id=manifest["observation_id"],
        observer_id=manifest["observer_id"],
        exclude_same_observer=positives["exclude_same_observer"],
        min_km=positives["min_km"],
        fallback=positives["fallback"],
        memory_budget_gb=positives["memory_budget_gb"],
    )
    rule = config["negatives"]
    negatives = negative_table(
        lat,
        lon,
        rule["m"],
        rule["rule"],
        rule["seed"],
        r_neg_km=rule["r_neg_km"],
        band_km=tuple(rule["band_km"]),
        observation_id=manifest["observation_id"],
    )
    save_neighbour_table(neighbours, scratch / "neighbours.npz")
    save_negative_table(negatives, scratch / "negatives.npz")
    return Data(cache, manifest_path, splits, scratch / "neighbours.npz", scratch / "negatives.npz")


def resized_cache(cache: Path, resolution: int, out: Path) -> Path:
    """A copy of the cache resized to ``resolution`` px, so the loop gathers rows of the size it trains on."""
    images = load_image_cache(cache)
    resized = np.lib.format.open_memmap(
        out, mode="w+", dtype=np.uint8, shape=(images.shape[0], resolution, resolution, 3)
    )
    for start in range(0, images.shape[0], 256):
        chunk = torch.from_numpy(np.array(images[start : start + 256])).permute(0, 3, 1, 2).float()
        chunk = F.interpolate(chunk, size=(resolution, resolution), mode="bilinear", align_corners=False)
        resized[start : start + 256] = chunk.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    resized.flush()
    return out


def loop_settings(
    encoder: str, resolution: int, epochs: int = 1, steps_per_epoch: int | None = None
) -> PretrainSettings:
    """The settings of every e2e run; the rest are the loop's defaults (amp auto, channels_last)."""
    return PretrainSettings(
        encoder=encoder,
        resolution=resolution,
        batch_size=BATCH,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        monitor_size=MONITOR_SIZE,
        progress=False,
    )


def random_features(rows: np.ndarray) -> torch.Tensor:
    """(len(rows), 256) seeded random features: an embedding bank good enough to draw a batch's rows from."""
    return torch.randn(len(rows), 256, generator=torch.Generator().manual_seed(0))


def build_cases(data: Data, strategies: list[str], plan: Plan) -> list[Case]:
    tables = training_data(
        read_manifest(data.manifest),
        pd.read_parquet(data.splits),
        neighbours=load_neighbour_table(data.neighbours),
        negatives=load_negative_table(data.negatives),
    )
    rng = np.random.default_rng(0)
    cases = []
    for name in strategies:
        strategy = build_strategy(name, tables, loop_settings("cnn5", 64))  # rows: any encoder
        if strategy.follows_encoder:  # its pairs come from an embedding bank: any features give rows to time
            strategy.refresh(random_features)
        anchors = strategy.anchor_rows()
        batch_size = min(BATCH, anchors.size)
        batch = strategy.sample(rng.permutation(anchors)[:batch_size], rng)
        cases.append(Case(name, strategy, batch, min(plan.steps, anchors.size // batch_size)))
    return cases


def timed_steps(step, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    synchronise(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise(device)
    return time.perf_counter() - started


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def e2e_rate(data: Data, case: Case, encoder: str, resolution: int, plan: Plan, threads: int, out_dir: Path) -> dict:
    """Anchors/s of ``train()`` over its epochs after the first, and what AMP it resolved to."""
    epochs = 1 + math.ceil(plan.steps / case.steps_per_epoch)  # >= plan.steps timed steps after the warm-up
    required = required_tables(case.name)
    train(
        case.name,
        data.cache,
        data.manifest,
        data.splits,
        out_dir,
        loop_settings(encoder, resolution, epochs, case.steps_per_epoch),
        neighbours_path=data.neighbours if "neighbours" in required else None,
        negatives_path=data.negatives if "negatives" in required else None,
        threads=threads,
    )
    records = [json.loads(line) for line in (out_dir / METRICS).read_text().splitlines() if line.strip()][1:]
    shutil.rmtree(out_dir)  # checkpoints of large encoders would pile up in the scratch folder
    return {
        "anchors_per_s": sum(r["images"] for r in records) / sum(r["seconds"] for r in records),
        "epoch_anchors_per_s": [r["images_per_s"] for r in records],
        "amp": records[0]["amp"],
    }


def compute_rate(
    case: Case, encoder_name: str, resolution: int, plan: Plan, device: torch.device, amp_dtype: torch.dtype | None
) -> float:
    """Anchors/s of the loop's step (encoder once over all views, the strategy's heads and loss, AdamW) on
    random tensors already on the device."""
    torch.manual_seed(0)
    encoder = build_encoder(encoder_name, small_input=resolution < 96)
    heads = case.strategy.heads(encoder)
    model = nn.ModuleDict({"encoder": encoder, "heads": heads}).to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sizes = [rows.size for rows in case.batch.views.values()]
    x = torch.randn(sum(sizes), 3, resolution, resolution, device=device).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            views = dict(zip(case.batch.views, torch.split(x, sizes)))
            features = dict(zip(case.batch.views, torch.split(encoder(x), sizes)))
            loss = case.strategy.loss(features, heads, case.batch, views)
        case.strategy.after_step(heads, encoder, 0.5)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return sizes[0] * plan.steps / timed_steps(step, plan.warmup, plan.steps, device)


class PILImages(torch.utils.data.Dataset):
    """The cache's uint8 rows as PIL images through a per-image transform, as a torchvision-style dataset."""

    def __init__(self, cache: Path, transform) -> None:
        self.images = load_image_cache(cache)
        self.transform = transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(np.asarray(self.images[index])))


def lightly_rate(
    cache: Path,
    encoder_name: str,
    resolution: int,
    plan: Plan,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    workers: int,
    threads: int,
) -> float:
    """Anchors/s of lightly's SimCLR pipeline (per-image PIL augmentation in a DataLoader) with ``workers``
    DataLoader workers and ``threads`` compute threads."""
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    dataset = PILImages(cache, SimCLRTransform(input_size=resolution))
    if len(dataset) < (plan.warmup + plan.steps) * BATCH:
        raise ValueError(f"{cache}: {len(dataset)} images, fewer than {plan.warmup + plan.steps} batches")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=workers, pin_memory=device.type == "cuda"
    )
    torch.manual_seed(0)
    encoder = build_encoder(encoder_name, small_input=resolution < 96)
    head = SimCLRProjectionHead(encoder.feature_dim, 512, 128)
    model = nn.Sequential(encoder, head).to(device).to(memory_format=torch.channels_last)
    criterion = NTXentLoss(temperature=0.1)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    batches = iter(loader)

    def step() -> None:
        view_a, view_b = next(batches)
        x = torch.cat([view_a, view_b]).to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = criterion(*model(x).float().chunk(2))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # the loader's worker stops when its iterator is freed, on return
        return BATCH * plan.steps / timed_steps(step, plan.warmup, plan.steps, device)
    finally:
        torch.set_num_threads(previous)
