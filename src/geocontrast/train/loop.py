"""The pretraining loop shared by every strategy: data, device, AMP, optimiser, checkpoint/resume, metrics.

A strategy (:mod:`geocontrast.strategies`) says which rows form a batch and which loss; this loop gathers those
rows from the uint8 image cache (a memmap), moves them to the device, augments them there
(:class:`~geocontrast.train.augment.BatchAugment`), runs the encoder once over all views, and steps AdamW with a
linear warm-up then cosine schedule. Every strategy gets the same budget of optimiser steps at the same batch size
(:mod:`geocontrast.train.budget`): an epoch is measured over the whole train split, and a strategy with fewer
anchors cycles over them.

:func:`train` reads as its steps: start the process, load the inputs, plan the budget, build the model and its
schedule, resume, then per epoch run the epoch and record it; at the end save the encoder.

Per epoch it rewrites ``metrics.jsonl`` (one line per epoch so far, see :data:`METRIC_KEYS`) and then writes
``last.pt``, which holds those lines too; a run that finds ``last.pt`` in ``out_dir`` resumes from it and rewrites
``metrics.jsonl`` from the checkpoint, so lines past the checkpoint are dropped and a metrics file deleted since
(Snakemake removes the outputs of an incomplete job before running it again) comes back whole. The end result is
``encoder.pt`` (:func:`geocontrast.train.checkpoint.save_encoder`), with what the job spent as its ``budget``.
Before training it writes ``pairs.json``, the pair diagnostics of one epoch's worth of the strategy's batches
(:mod:`geocontrast.strategies.diagnostics`), drawn from a stream of their own so the training draws are unchanged.

Determinism: the batch order and pair draws of epoch e come from ``numpy.random.default_rng([seed, e])`` and
the augmentations from a torch Generator seeded from (seed, e), so an interrupted and resumed run reproduces
an uninterrupted one exactly on CPU in fp32; ``deterministic`` also makes it independent of the thread count
(:mod:`geocontrast.determinism`).

Under torchrun (``pretrain.gpus`` > 1) every process runs this loop on its share of each global batch
(:mod:`geocontrast.distributed`); only rank 0 writes the outputs, in the same format.
"""

from __future__ import annotations

import math
import resource
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from geocontrast import distributed
from geocontrast.atomic import write_json, write_jsonl
from geocontrast.data.cache import load_image_cache
from geocontrast.data.manifest import read_manifest
from geocontrast.determinism import make_deterministic
from geocontrast.geo.negatives import load_negative_table
from geocontrast.geo.neighbours import load_neighbour_table
from geocontrast.geo.training_data import TrainingData, training_data
from geocontrast.models import build_encoder, load_initial_weights
from geocontrast.runtime import gather_rows, keep_freed_memory, resolve_amp, resolve_device, set_threads
from geocontrast.strategies import STRATEGIES, Strategy, build_strategy
from geocontrast.strategies.diagnostics import fallback_warnings, pair_diagnostics, sample_batches
from geocontrast.train.augment import AugmentRecipe, BatchAugment
from geocontrast.train.budget import SPENT_KEYS, Budget, epoch_batches, plan_budget
from geocontrast.train.checkpoint import ENCODER, load_last, save_encoder, save_last
from geocontrast.train.monitor import Monitor

DEFAULTS: dict = {
    "encoder": "cnn5",
    "init_weights": None,  # a weights file or torchvision weights name, from local files only (models.weights)
    "resolution": 32,
    "epochs": 5,  # epochs over the train split, whatever the strategy's anchors (geocontrast.train.budget)
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "temperature": 0.1,
    "augment_strength": 1.0,
    "augment": {},  # AugmentRecipe settings over its defaults (config pretrain.augment)
    "seed": 0,
    "steps_per_epoch": None,  # cap on optimiser steps per epoch (None: train rows // batch_size)
    "warmup_fraction": 0.1,  # share of all steps spent in linear warm-up
    "knn_k": 20,
    "label_fraction": 10,  # percent; labelled_<pct> rows supervised trains on and the kNN monitor's train bank
    "monitor_size": 512,  # at most this many val and labelled train images in the per-epoch monitors
    "pairs_from": "train",  # rows positives/negatives may come from: train, or all
    "device": "auto",  # auto: cuda if available, else cpu
    "amp": "auto",  # auto: bf16 autocast on CUDA or on CPUs with bf16 support; bf16; fp32
    "channels_last": True,
    "compile": False,
    "progress": True,  # tqdm bar on stderr
    "options": {},  # the strategy's own settings (its OPTIONS; config pretrain.strategy_options.<strategy>)
    "deterministic": False,  # geocontrast.determinism.make_deterministic: one CPU thread, deterministic kernels
}
METRIC_KEYS = (
    "epoch",
    "step",
    "anchors_seen",
    "encoder_images",
    "wall_seconds",
    "loss",
    "lr",
    "images",
    "images_per_s",
    "seconds",
    "peak_memory_mb",
    "memory_kind",
    "embedding_std",
    "mean_pairwise_cosine",
    "collapsed",
    "knn_top1",
    "knn_k",
    "device",
    "amp",
)
"""Keys of a metrics.jsonl line: epoch (1-based, completed); step, anchors_seen, encoder_images, wall_seconds:
what the job spent so far (:data:`geocontrast.train.budget.SPENT_KEYS`); loss (epoch mean), lr (after the epoch),
images (anchors seen this epoch; each has 2-3 augmented views), images_per_s (anchors/s, gather + augment + step,
monitors excluded), seconds, peak_memory_mb with memory_kind (cpu_rss: process peak RSS; cuda_allocated:
torch.cuda.max_memory_allocated), embedding_std, mean_pairwise_cosine, collapsed (True when mean_pairwise_cosine
exceeds :data:`geocontrast.train.monitor.COLLAPSE_COSINE`), knn_top1 (null when no labelled val image), knn_k,
device, amp."""
METRICS = "metrics.jsonl"
PAIRS = "pairs.json"
PAIRS_STREAM = 2**31 - 2  # second seed word of the pair diagnostics' rng (epochs use 0, 1, ...)
SYNC_EVERY = 20  # steps between host syncs (loss check and progress bar); every sync stalls a GPU


def resolve_params(params: dict) -> dict:
    """``params`` over :data:`DEFAULTS`; unknown keys are refused (a typo would silently use a default)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown training params {unknown}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **params}


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
    params: dict
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


@dataclass
class Progress:
    """Where a job stands: epochs done, what they spent (:data:`~geocontrast.train.budget.SPENT_KEYS`) and their
    metrics lines."""

    epoch: int = 0
    spent: dict = field(default_factory=lambda: dict.fromkeys(SPENT_KEYS, 0))
    records: list = field(default_factory=list)


@dataclass(frozen=True)
class EpochRun:
    """One epoch's steps: mean loss, anchors and encoder images (global), and seconds."""

    steps: int
    loss: float
    anchors: int
    encoder_images: int
    seconds: float


def train(
    strategy_name: str,
    cache_path: Path,
    manifest_path: Path,
    splits_path: Path,
    out_dir: Path,
    params: dict,
    neighbours_path: Path | None = None,
    negatives_path: Path | None = None,
    threads: int | None = None,
) -> Path:
    """Pretrain one encoder with strategy ``strategy_name``; returns the path of ``encoder.pt`` in ``out_dir``.

    ``params``: see :data:`DEFAULTS`. ``neighbours_path`` / ``negatives_path``: geo tables (.npz), required by
    the strategies that use them. ``threads``: torch intra-op threads (default: torch's choice).
    Resumes from ``out_dir/last.pt`` when present.
    """
    if strategy_name not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy_name!r}; registered: {', '.join(STRATEGIES)}")
    params = resolve_params(params)
    ranks = start_process(params, threads)
    cache, manifest, data = load_inputs(cache_path, manifest_path, splits_path, neighbours_path, negatives_path)
    job = build_job(strategy_name, params, Path(out_dir), ranks, cache, data)
    progress = resume(job)
    if ranks.is_main:
        write_pair_diagnostics(job, manifest)
    monitor = Monitor(cache, data, params, int(params["resolution"]), ranks.device, job.amp_dtype, job.memory_format)
    for epoch in range(progress.epoch, job.budget.epochs):
        started = time.perf_counter()
        run = run_epoch(job, epoch, progress.spent["step"])
        progress = record_epoch(job, progress, run, monitor, started)
    if not ranks.is_main:
        return job.out_dir / ENCODER
    budget = {
        **progress.spent,
        "anchor_pool": job.budget.anchor_pool,
        "batch_size": job.budget.batch_size,
        "label_fraction": job.strategy.label_fraction,
    }
    return save_encoder(job.out_dir, job.model["encoder"], strategy_name, params, budget)


def start_process(params: dict, threads: int | None) -> distributed.Ranks:
    """Join the training processes (one without torchrun), then set threads, seeds and the deterministic switch."""
    ranks = distributed.join(resolve_device(params["device"]))
    keep_freed_memory()
    if threads is not None:
        set_threads(ranks.threads(int(threads)))
    seed = int(params["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if params["deterministic"]:
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
    name: str, params: dict, out_dir: Path, ranks: distributed.Ranks, cache: np.ndarray, data: TrainingData
) -> Job:
    """The strategy, its budget, the model (encoder + the strategy's heads) and its optimiser and schedule."""
    strategy = build_strategy(name, data, params)
    anchors = strategy.anchor_rows()
    if anchors.size < 2:
        raise ValueError(f"strategy {name!r} has {anchors.size} anchor rows; at least 2 are needed")
    budget = plan_budget(data.rows_of("train").size, anchors.size, params, ranks.batch_size)
    if budget.batch_size < min(int(params["batch_size"]), data.rows_of("train").size):
        warnings.warn(
            f"{name}: its {anchors.size} anchors fill batches of {budget.batch_size} only, "
            f"not pretrain.batch_size {params['batch_size']}",
            stacklevel=3,
        )
    resolution = int(params["resolution"])
    encoder = build_encoder(params["encoder"], small_input=resolution < 96)
    if params["init_weights"]:
        load_initial_weights(encoder, params["init_weights"])
    memory_format = torch.channels_last if params["channels_last"] else torch.contiguous_format
    model = nn.ModuleDict({"encoder": encoder, "heads": strategy.heads(encoder)})
    model = model.to(ranks.device).to(memory_format=memory_format)
    forward = ranks.replicate(model)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
    )
    warmup_steps = round(float(params["warmup_fraction"]) * budget.total_steps)
    return Job(
        name=name,
        params=params,
        out_dir=out_dir,
        ranks=ranks,
        cache=cache,
        strategy=strategy,
        anchors=anchors,
        budget=budget,
        model=model,
        forward=torch.compile(forward) if params["compile"] else forward,
        augment=BatchAugment(
            resolution,
            strength=float(params["augment_strength"]),
            recipe=AugmentRecipe.from_config(params["augment"]),
        ).to(ranks.device),
        amp_dtype=resolve_amp(params["amp"], ranks.device),
        memory_format=memory_format,
        optimiser=optimiser,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimiser, warmup_cosine(budget.total_steps, warmup_steps)),
    )


def resume(job: Job) -> Progress:
    """The progress saved in ``last.pt`` (model, optimiser, schedule and RNG states restored), or a fresh start;
    rank 0 rewrites ``metrics.jsonl`` to match it."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress()
    resumed = load_last(job.out_dir, job.model, job.optimiser, job.scheduler)
    if resumed is not None:
        records = resumed["metrics"]  # one line per epoch done, the last holding what they spent
        progress = Progress(int(resumed["epoch"]), {key: records[-1][key] for key in SPENT_KEYS}, records)
        if resumed.get("params") != job.params or resumed.get("strategy") != job.name:
            warnings.warn(
                f"{job.out_dir / 'last.pt'} was written with other params or strategy; resuming anyway", stacklevel=3
            )
    if job.ranks.is_main:
        write_jsonl(progress.records, job.out_dir / METRICS)
    return progress


def write_pair_diagnostics(job: Job, manifest: pd.DataFrame) -> None:
    """``pairs.json``: what the strategy's pairs share, over one epoch's worth of batches from their own stream."""
    rng = np.random.default_rng([int(job.params["seed"]), PAIRS_STREAM])
    batches = sample_batches(job.strategy, job.budget.batch_size, rng)
    record = pair_diagnostics(manifest, job.strategy, batches, rng)
    for warning in fallback_warnings(record):
        warnings.warn(warning, stacklevel=2)
    for note in record["notes"]:
        if not note["every"]:
            print(f"{job.name}: {note['what']}: {note['why']}", file=sys.stderr)
    write_json(record, job.out_dir / PAIRS)


def run_epoch(job: Job, epoch: int, step: int) -> EpochRun:
    """Epoch ``epoch`` (0-based) of the job's budget, its steps numbered from ``step``."""
    seed = int(job.params["seed"])
    rng = np.random.default_rng([seed, epoch])
    generator = torch.Generator(device=job.device).manual_seed(job.ranks.augment_seed(seed * 1_000_003 + epoch))
    batches = epoch_batches(job.anchors, job.budget.batch_size, job.budget.steps_per_epoch, rng)
    job.model.train()
    loss_sum, anchors, encoder_images = torch.zeros((), device=job.device), 0, 0
    started = time.perf_counter()
    bar = tqdm(
        total=len(batches),
        desc=f"{job.name} epoch {epoch + 1}/{job.budget.epochs}",
        file=sys.stderr,
        disable=not (job.params["progress"] and job.ranks.is_main),
        leave=False,
    )
    for index, rows in enumerate(batches):
        loss, images = optimiser_step(job, rows, rng, generator)
        step += 1
        job.strategy.after_step(job.model["heads"], job.model["encoder"], step / job.budget.total_steps)
        loss_sum += loss  # stays on the device: no host sync per step
        anchors += rows.size
        encoder_images += images
        bar.update(1)
        if (index + 1) % SYNC_EVERY == 0 or index + 1 == len(batches):
            mean_loss = job.ranks.average(loss_sum).item() / (index + 1)
            if not math.isfinite(mean_loss):
                raise FloatingPointError(
                    f"{job.name}: loss {mean_loss} in epoch {epoch + 1} by step {step}; lower lr or check the inputs"
                )
            bar.set_postfix(loss=f"{mean_loss:.3f}")
    bar.close()
    if job.device.type == "cuda":
        torch.cuda.synchronize()
    return EpochRun(len(batches), mean_loss, anchors, encoder_images, time.perf_counter() - started)


def optimiser_step(
    job: Job, anchors: np.ndarray, rng: np.random.Generator, generator: torch.Generator
) -> tuple[torch.Tensor, int]:
    """One optimiser step on the global batch of ``anchors``: this process draws the strategy's pairs, encodes its
    share of every view in one forward pass and steps. Returns the loss (detached, on the device) and the number
    of images the encoders of all processes saw."""
    batch = job.ranks.share(job.strategy.sample(anchors, rng))  # this process's share (all of it on one process)
    views = {
        name: job.augment(gather_rows(job.cache, rows, job.device), generator=generator)
        for name, rows in batch.views.items()
    }  # (b_view, 3, R, R) each
    sizes = [view.shape[0] for view in views.values()]
    x = torch.cat(list(views.values())).contiguous(memory_format=job.memory_format)
    with torch.autocast(job.device.type, dtype=job.amp_dtype or torch.float32, enabled=job.amp_dtype is not None):
        features = dict(zip(views, torch.split(job.forward(x), sizes)))  # (b_view, D) each
        loss = job.strategy.loss(features, job.model["heads"], batch, views)
    job.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    job.optimiser.step()
    job.scheduler.step()
    return loss.detach().float(), sum(sizes) * job.ranks.world_size


def record_epoch(job: Job, progress: Progress, run: EpochRun, monitor: Monitor, started: float) -> Progress:
    """Add ``run`` (an epoch that began at ``started``, perf_counter) to ``progress``; rank 0 also runs the
    monitors, appends the epoch's metrics line and writes ``metrics.jsonl`` then ``last.pt``."""
    spent = {
        "step": progress.spent["step"] + run.steps,
        "anchors_seen": progress.spent["anchors_seen"] + run.anchors,
        "encoder_images": progress.spent["encoder_images"] + run.encoder_images,
        "wall_seconds": progress.spent["wall_seconds"],
    }
    epoch = progress.epoch + 1
    if not job.ranks.is_main:
        return Progress(epoch, spent, progress.records)
    record = {
        "epoch": epoch,
        **spent,
        "loss": run.loss,
        "lr": float(job.scheduler.get_last_lr()[0]),
        "images": run.anchors,
        "images_per_s": run.anchors / run.seconds,
        "seconds": run.seconds,
        **_peak_memory(job.device),
        **monitor(job.model["encoder"]),
        "device": job.device.type,
        "amp": "bf16" if job.amp_dtype is not None else "fp32",
    }
    record["wall_seconds"] += time.perf_counter() - started
    if record["collapsed"]:
        warnings.warn(
            f"{job.name}: representation collapse in epoch {epoch} (embedding_std {record['embedding_std']:.4f}, "
            f"mean pairwise cosine {record['mean_pairwise_cosine']:.3f})",
            stacklevel=3,
        )
    records = [*progress.records, record]
    write_jsonl(records, job.out_dir / METRICS)
    save_last(
        job.out_dir,
        job.model,
        job.optimiser,
        job.scheduler,
        epoch,
        spent["step"],
        extra={"params": job.params, "strategy": job.name, "metrics": records},
    )
    return Progress(epoch, {key: record[key] for key in SPENT_KEYS}, records)


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "memory_kind": "cuda_allocated"}
    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory_kind": "cpu_rss"}
