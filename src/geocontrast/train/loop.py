"""The pretraining loop shared by every strategy: data, device, AMP, optimiser, checkpoint/resume, metrics.

A strategy (:mod:`geocontrast.strategies`) says which rows form a batch and which loss; this loop gathers those
rows from the uint8 image cache (a memmap), moves them to the device, augments them there
(:class:`~geocontrast.train.augment.BatchAugment`), runs the encoder once over all views, and steps AdamW with a
linear warm-up then cosine schedule. Every strategy gets the same budget of optimiser steps at the same batch size
(:mod:`geocontrast.train.budget`): an epoch is measured over the whole train split, and a strategy with fewer
anchors cycles over them.

:func:`train` reads as its steps: start the process, load the inputs, plan the budget, build the model and its
schedule (those four in :mod:`geocontrast.train.job`), resume, then per epoch run the epoch and record it; at the
end save the encoder.

Per epoch it rewrites ``metrics.jsonl`` (one line per epoch so far, see :data:`METRIC_KEYS`) and then writes
``last.pt``, which holds those lines too; a run that finds ``last.pt`` in ``out_dir`` resumes from it and rewrites
``metrics.jsonl`` from the checkpoint, so lines past the checkpoint are dropped and a metrics file deleted since
(Snakemake removes the outputs of an incomplete job before running it again) comes back whole. The end result is
``encoder.pt`` (:func:`geocontrast.train.checkpoint.save_encoder`), with what the job spent as its ``budget``.
Before training it writes ``pairs.json``, the pair diagnostics of one epoch's worth of the strategy's batches
(:mod:`geocontrast.strategies.diagnostics`), drawn from a stream of their own so the training draws are unchanged;
a strategy whose pairs follow the encoder (:attr:`~geocontrast.strategies.Strategy.follows_encoder`) has them
drawn after training instead, from its bank re-embedded by the final encoder (outside the budget, like the
monitors). Such a strategy's bank is re-embedded before the steps it names (:func:`refresh_bank`), always at an
epoch's start, and those images count in ``encoder_images``.

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
from tqdm import tqdm

from geocontrast.atomic import write_json, write_jsonl
from geocontrast.runtime import encode_rows, gather_rows
from geocontrast.strategies import STRATEGIES
from geocontrast.strategies.diagnostics import fallback_warnings, pair_diagnostics, sample_batches
from geocontrast.train.budget import epoch_batches
from geocontrast.train.checkpoint import ENCODER, load_last, save_encoder, save_last
from geocontrast.train.job import Job, build_job, load_inputs, start_process
from geocontrast.train.monitor import Monitor, collapse_note
from geocontrast.train.settings import PretrainSettings
from geocontrast.train.spent import SPENT_KEYS

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
    "effective_rank",
    "mean_pairwise_cosine",
    "collapsed",
    "knn_top1",
    "knn_k",
    "start",
    "collapse",
    "device",
    "amp",
)
"""Keys of a metrics.jsonl line: epoch (1-based, completed); step, anchors_seen, encoder_images, wall_seconds:
what the job spent so far (:data:`geocontrast.train.spent.SPENT_KEYS`); loss (epoch mean), lr (after the epoch),
images (anchors seen this epoch; each has 2-3 augmented views), images_per_s (anchors/s, gather + augment + step,
monitors excluded), seconds, peak_memory_mb with memory_kind (cpu_rss: process peak RSS; cuda_allocated:
torch.cuda.max_memory_allocated), embedding_std, mean_pairwise_cosine, collapsed (True when mean_pairwise_cosine
exceeds :data:`geocontrast.train.monitor.COLLAPSE_COSINE`), knn_top1 (null when no labelled val image), knn_k,
effective_rank, start (the monitors of the untrained encoder, before the first step), collapse ("" or how the
representation collapsed, totally or partly: :func:`geocontrast.train.monitor.collapse_note`), device, amp."""
METRICS = "metrics.jsonl"
PAIRS = "pairs.json"
PAIRS_STREAM = 2**31 - 2  # second seed word of the pair diagnostics' rng (epochs use 0, 1, ...)
SYNC_EVERY = 20  # steps between host syncs (loss check and progress bar); every sync stalls a GPU


@dataclass
class Progress:
    """Where a job stands: epochs done, what they spent (:data:`~geocontrast.train.spent.SPENT_KEYS`) and their
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
    settings: PretrainSettings,
    neighbours_path: Path | None = None,
    negatives_path: Path | None = None,
    threads: int | None = None,
) -> Path:
    """Pretrain one encoder with strategy ``strategy_name``; returns the path of ``encoder.pt`` in ``out_dir``.

    ``settings``: the job's :class:`~geocontrast.train.settings.PretrainSettings`. ``neighbours_path`` /
    ``negatives_path``: geo tables (.npz), required by the strategies that use them. ``threads``: torch intra-op
    threads (default: torch's choice). Resumes from ``out_dir/last.pt`` when present.
    """
    if strategy_name not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy_name!r}; registered: {', '.join(STRATEGIES)}")
    ranks = start_process(settings, threads)
    cache, manifest, data = load_inputs(cache_path, manifest_path, splits_path, neighbours_path, negatives_path)
    job = build_job(strategy_name, settings, Path(out_dir), ranks, cache, data)
    progress = resume(job)
    if ranks.is_main and not job.strategy.follows_encoder:
        write_pair_diagnostics(job, manifest)
    monitor = Monitor(cache, data, settings, int(settings.resolution), ranks.device, job.amp_dtype, job.memory_format)
    start = None
    if ranks.is_main:  # the untrained encoder's monitors: what a partial collapse falls below
        start = progress.records[0]["start"] if progress.records else monitor(job.model["encoder"])
    for epoch in range(progress.epoch, job.budget.epochs):
        started = time.perf_counter()
        run = run_epoch(job, epoch, progress.spent["step"])
        progress = record_epoch(job, progress, run, monitor, started, start)
    if not ranks.is_main:
        return job.out_dir / ENCODER
    if job.strategy.follows_encoder:
        refresh_bank(job)
        write_pair_diagnostics(job, manifest)
    budget = {
        **progress.spent,
        "anchor_pool": job.budget.anchor_pool,
        "batch_size": job.budget.batch_size,
        "label_fraction": job.strategy.label_fraction,
        "collapse": progress.records[-1]["collapse"] if progress.records else "",
    }
    return save_encoder(job.out_dir, job.model["encoder"], strategy_name, settings.as_dict(), budget)


def resume(job: Job) -> Progress:
    """The progress saved in ``last.pt`` (model, optimiser, schedule and RNG states restored), or a fresh start;
    rank 0 rewrites ``metrics.jsonl`` to match it."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress()
    resumed = load_last(job.out_dir, job.model, job.optimiser, job.scheduler)
    if resumed is not None:
        records = resumed["metrics"]  # one line per epoch done, the last holding what they spent
        progress = Progress(int(resumed["epoch"]), {key: records[-1][key] for key in SPENT_KEYS}, records)
        if resumed.get("params") != job.settings.as_dict() or resumed.get("strategy") != job.name:
            warnings.warn(
                f"{job.out_dir / 'last.pt'} was written with other params or strategy; resuming anyway", stacklevel=3
            )
    if job.ranks.is_main:
        write_jsonl(progress.records, job.out_dir / METRICS)
    return progress


def write_pair_diagnostics(job: Job, manifest: pd.DataFrame) -> None:
    """``pairs.json``: what the strategy's pairs share, over one epoch's worth of batches from their own stream."""
    rng = np.random.default_rng([int(job.settings.seed), PAIRS_STREAM])
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
    seed = int(job.settings.seed)
    rng = np.random.default_rng([seed, epoch])
    generator = torch.Generator(device=job.device).manual_seed(job.ranks.augment_seed(seed * 1_000_003 + epoch))
    batches = epoch_batches(job.anchors, job.budget.batch_size, job.budget.steps_per_epoch, rng)
    refreshes = set(job.strategy.refresh_steps(len(batches)))
    job.model.train()
    loss_sum, anchors, encoder_images = torch.zeros((), device=job.device), 0, 0
    started = time.perf_counter()
    bar = tqdm(
        total=len(batches),
        desc=f"{job.name} epoch {epoch + 1}/{job.budget.epochs}",
        file=sys.stderr,
        disable=not (job.settings.progress and job.ranks.is_main),
        leave=False,
    )
    for index, rows in enumerate(batches):
        if index in refreshes:
            encoder_images += refresh_bank(job)
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


def refresh_bank(job: Job) -> int:
    """Let the strategy re-embed its bank with the current encoder (eval mode, no augmentation, no gradient; no
    random stream is drawn, so the training draws are unchanged). Returns the images the encoders of all
    processes saw (each process encodes the whole bank)."""
    encoder = job.model["encoder"]
    resolution = int(job.settings.resolution)

    def encode(rows: np.ndarray) -> torch.Tensor:
        return encode_rows(encoder, job.cache, rows, resolution, job.device, job.amp_dtype, job.memory_format)

    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            return job.strategy.refresh(encode) * job.ranks.world_size
    finally:
        encoder.train(was_training)


def optimiser_step(
    job: Job, anchors: np.ndarray, rng: np.random.Generator, generator: torch.Generator
) -> tuple[torch.Tensor, int]:
    """One optimiser step on the global batch of ``anchors``: this process draws the strategy's pairs, encodes its
    share of every view in one forward pass and steps. Returns the loss (detached, on the device) and the number
    of images the encoders of all processes saw (a target network's passes included: Strategy.encoder_images)."""
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
    return loss.detach().float(), job.strategy.encoder_images(dict(zip(views, sizes))) * job.ranks.world_size


def record_epoch(
    job: Job, progress: Progress, run: EpochRun, monitor: Monitor, started: float, start: dict | None
) -> Progress:
    """Add ``run`` (an epoch that began at ``started``, perf_counter) to ``progress``; rank 0 also runs the
    monitors (against ``start``, the untrained encoder's), appends the epoch's metrics line and writes
    ``metrics.jsonl`` then ``last.pt``."""
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
    peak_rank = max([start["effective_rank"], *(line["effective_rank"] for line in progress.records)])
    record.update(start=start, collapse=collapse_note(record, start, peak_rank))
    record["wall_seconds"] += time.perf_counter() - started
    if record["collapse"]:
        warnings.warn(f"{job.name}: representation collapse in epoch {epoch}, {record['collapse']}", stacklevel=3)
    records = [*progress.records, record]
    write_jsonl(records, job.out_dir / METRICS)
    save_last(
        job.out_dir,
        job.model,
        job.optimiser,
        job.scheduler,
        epoch,
        spent["step"],
        extra={"params": job.settings.as_dict(), "strategy": job.name, "metrics": records},
    )
    return Progress(epoch, {key: record[key] for key in SPENT_KEYS}, records)


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "memory_kind": "cuda_allocated"}
    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory_kind": "cpu_rss"}
