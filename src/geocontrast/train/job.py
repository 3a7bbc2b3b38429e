"""A pretraining job's setup: the process, its inputs, and the model with its optimiser and schedule.

:func:`geocontrast.train.loop.train` calls these in order (:func:`start_process`, :func:`load_inputs`,
:func:`build_job`) with the job's :class:`~geocontrast.train.settings.PretrainSettings` and runs its epochs on
the :class:`Job` they make.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from geocontrast import distributed
from geocontrast.data.cache import load_image_cache
from geocontrast.data.manifest import read_manifest
from geocontrast.determinism import make_deterministic
from geocontrast.geo.negatives import load_negative_table
from geocontrast.geo.neighbours import load_neighbour_table
from geocontrast.geo.training_data import TrainingData, training_data
from geocontrast.models import build_encoder, load_initial_weights
from geocontrast.runtime import keep_freed_memory, resolve_amp, resolve_device, set_threads
from geocontrast.strategies import Strategy, build_strategy
from geocontrast.train.augment import AugmentRecipe, BatchAugment
from geocontrast.train.budget import Budget, plan_budget
from geocontrast.train.settings import PretrainSettings


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LR multiplier: linear from 1/(warmup+1) to 1 over ``warmup_steps``, then cosine down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class Job:
    """What every epoch of one pretraining job works with."""

    name: str
    settings: PretrainSettings
    out_dir: Path
    ranks: distributed.Ranks
    cache: np.ndarray
    strategy: Strategy
    anchors: np.ndarray
    budget: Budget
    model: nn.ModuleDict  # {"encoder", "heads"}
    forward: nn.Module  # the encoder, or its DistributedDataParallel replica
    augment: BatchAugment
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @property
    def device(self) -> torch.device:
        return self.ranks.device


def start_process(settings: PretrainSettings, threads: int | None) -> distributed.Ranks:
    """Join the training processes (one without torchrun), then set threads, seeds and the deterministic switch."""
    ranks = distributed.join(resolve_device(settings.device))
    keep_freed_memory()
    if threads is not None:
        set_threads(ranks.threads(int(threads)))
    seed = int(settings.seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if settings.deterministic:
        make_deterministic(ranks.device)
    return ranks


def load_inputs(
    cache_path: Path,
    manifest_path: Path,
    splits_path: Path,
    neighbours_path: Path | None,
    negatives_path: Path | None,
) -> tuple[np.ndarray, pd.DataFrame, TrainingData]:
    """The image cache (a memmap), the manifest and the per-row facts strategies draw from, checked to share one
    row order."""
    cache = load_image_cache(Path(cache_path))
    manifest = read_manifest(Path(manifest_path))
    if cache.shape[0] != len(manifest):
        raise ValueError(f"{cache_path}: {cache.shape[0]} rows, but the manifest has {len(manifest)}")
    data = training_data(
        manifest,
        pd.read_parquet(splits_path),
        neighbours=None if neighbours_path is None else load_neighbour_table(neighbours_path),
        negatives=None if negatives_path is None else load_negative_table(negatives_path),
    )
    return cache, manifest, data


def build_job(
    name: str,
    settings: PretrainSettings,
    out_dir: Path,
    ranks: distributed.Ranks,
    cache: np.ndarray,
    data: TrainingData,
) -> Job:
    """The strategy, its budget, the model (encoder + the strategy's heads) and its optimiser and schedule."""
    strategy = build_strategy(name, data, settings)
    anchors = strategy.anchor_rows()
    if anchors.size < 2:
        raise ValueError(f"strategy {name!r} has {anchors.size} anchor rows; at least 2 are needed")
    budget = plan_budget(data.rows_of("train").size, anchors.size, settings, ranks.batch_size)
    if budget.batch_size < min(int(settings.batch_size), data.rows_of("train").size):
        warnings.warn(
            f"{name}: its {anchors.size} anchors fill batches of {budget.batch_size} only, "
            f"not pretrain.batch_size {settings.batch_size}",
            stacklevel=3,
        )
    resolution = int(settings.resolution)
    encoder = build_encoder(settings.encoder, small_input=resolution < 96)
    if settings.init_weights:
        load_initial_weights(encoder, settings.init_weights)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = nn.ModuleDict({"encoder": encoder, "heads": strategy.heads(encoder)})
    model = model.to(ranks.device).to(memory_format=memory_format)
    forward = ranks.replicate(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=float(settings.lr), weight_decay=float(settings.weight_decay))
    warmup_steps = round(float(settings.warmup_fraction) * budget.total_steps)
    return Job(
        name=name,
        settings=settings,
        out_dir=out_dir,
        ranks=ranks,
        cache=cache,
        strategy=strategy,
        anchors=anchors,
        budget=budget,
        model=model,
        forward=torch.compile(forward) if settings.compile else forward,
        augment=BatchAugment(
            resolution,
            strength=float(settings.augment_strength),
            recipe=AugmentRecipe.from_config(settings.augment),
        ).to(ranks.device),
        amp_dtype=resolve_amp(settings.amp, ranks.device),
        memory_format=memory_format,
        optimiser=optimiser,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimiser, warmup_cosine(budget.total_steps, warmup_steps)),
    )
