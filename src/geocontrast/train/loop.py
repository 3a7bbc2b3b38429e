"""The pretraining loop shared by every strategy: data, device, AMP, optimiser, checkpoint/resume, metrics.

A strategy (:mod:`geocontrast.strategies`) says which rows form a batch and which loss; this loop gathers those
rows from the uint8 image cache (a memmap), moves them to the device, augments them there
(:class:`~geocontrast.train.augment.BatchAugment`), runs the encoder once over all views, and steps AdamW with a
linear warm-up then cosine schedule.

Per epoch it rewrites ``metrics.jsonl`` (one line per epoch so far, see :data:`METRIC_KEYS`) and then writes
``last.pt``, which holds those lines too; a run that finds ``last.pt`` in ``out_dir`` resumes from it and rewrites
``metrics.jsonl`` from the checkpoint, so lines past the checkpoint are dropped and a metrics file deleted since
(Snakemake removes the outputs of an incomplete job before running it again) comes back whole. The end result is
``encoder.pt`` (:func:`geocontrast.train.checkpoint.save_encoder`). Before training it writes ``pairs.json``, the
pair diagnostics of one epoch's worth of the strategy's batches (:mod:`geocontrast.strategies.diagnostics`),
drawn from a stream of their own so the training draws are unchanged.

Determinism: the batch order and pair draws of epoch e come from ``numpy.random.default_rng([seed, e])`` and
the augmentations from a torch Generator seeded from (seed, e), so an interrupted and resumed run reproduces
an uninterrupted one exactly on CPU in fp32; ``deterministic`` also makes it independent of the thread count
(:mod:`geocontrast.determinism`).

Under torchrun (``pretrain.gpus`` > 1) every process runs this loop on its share of each global batch
(:mod:`geocontrast.train.distributed`); only rank 0 writes the outputs, in the same format.
"""

from __future__ import annotations

import ctypes
import math
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from geocontrast.atomic import write_json, write_jsonl
from geocontrast.data.cache import load_image_cache
from geocontrast.data.manifest import read_manifest
from geocontrast.determinism import make_deterministic
from geocontrast.geo.negatives import load_negative_table
from geocontrast.geo.neighbours import load_neighbour_table
from geocontrast.models import build_encoder
from geocontrast.strategies import STRATEGIES, build_strategy, training_data
from geocontrast.strategies.diagnostics import pair_diagnostics, sample_batches
from geocontrast.train import distributed
from geocontrast.train.augment import AugmentRecipe, BatchAugment, normalise
from geocontrast.train.checkpoint import ENCODER, load_last, save_encoder, save_last

DEFAULTS: dict = {
    "encoder": "cnn5",
    "resolution": 32,
    "epochs": 5,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "temperature": 0.1,
    "augment_strength": 1.0,
    "augment": {},  # AugmentRecipe settings over its defaults (config pretrain.augment)
    "seed": 0,
    "steps_per_epoch": None,  # cap on optimiser steps per epoch (None: one pass over the anchors)
    "warmup_fraction": 0.1,  # share of all steps spent in linear warm-up
    "knn_k": 20,
    "label_fraction": 10,  # percent; labelled_<pct> column for supervised and the kNN monitor's train bank
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
"""Keys of a metrics.jsonl line: epoch (1-based, completed), step (optimiser steps so far), loss (epoch mean),
lr (after the epoch), images (anchors seen this epoch; each has 2-3 augmented views), images_per_s (anchors/s,
gather + augment + step, monitors excluded), seconds, peak_memory_mb with memory_kind (cpu_rss: process peak RSS;
cuda_allocated: torch.cuda.max_memory_allocated), embedding_std, mean_pairwise_cosine, collapsed (True when
mean_pairwise_cosine exceeds :data:`COLLAPSE_COSINE`), knn_top1 (null when no labelled val image), knn_k, device,
amp."""
COLLAPSE_COSINE = 0.999
"""All holdout features point the same way: the representation has collapsed. Post-ReLU features of an untrained
or briefly trained cnn5 already reach a mean pairwise cosine of 0.98 (embedding_std ~0.006, far below 1/sqrt(D))
while their kNN accuracy is well above chance, so neither 1/sqrt(D) nor a looser cosine marks collapse."""
METRICS = "metrics.jsonl"
PAIRS = "pairs.json"
PAIRS_STREAM = 2**31 - 2  # second seed word of the pair diagnostics' rng (epochs use 0, 1, ...)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
SYNC_EVERY = 20  # steps between host syncs (loss check and progress bar); every sync stalls a GPU


def resolve_params(params: dict) -> dict:
    """``params`` over :data:`DEFAULTS`; unknown keys are refused (a typo would silently use a default)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown training params {unknown}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **params}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU")
    return torch.device(device)


def cpu_supports_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where the CPU has native bf16 instructions (AMX-BF16 or AVX512-BF16 in the Linux CPU flags).

    oneDNN also reports bf16 "support" on plain AVX-512, where it is emulated and measured 2x slower than fp32
    (cnn5, 32 px, batch 256, 2 cores), so its answer is not used. Unknown (no cpuinfo): False, i.e. fp32.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (bf16) or None for fp32."""
    if amp not in ("auto", "bf16", "fp32"):
        raise ValueError(f"amp must be auto, bf16 or fp32, got {amp!r}")
    if amp == "fp32":
        return None
    if amp == "bf16":
        return torch.bfloat16
    supported = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    return torch.bfloat16 if supported else None


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory instead of returning it to the kernel after every step.

    By default each large activation buffer is a fresh mmap, zero-filled page by page on first touch: ~290,000
    page faults per cnn5 step here. Raising the mmap and trim thresholds (M_MMAP_THRESHOLD 1 GiB, M_TRIM_THRESHOLD
    2 GiB) reuses the heap instead (measured, cnn5 batch 256 at 32 px, 2 threads: 25,000-31,000 -> 1,400 faults
    and 0.19-0.21 -> 0.17 s per step). Returns False where the C library is not glibc (macOS, musl): nothing
    changes there.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LR multiplier: linear from 1/(warmup+1) to 1 over ``warmup_steps``, then cosine down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


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
    ranks = distributed.join(resolve_device(params["device"]))
    keep_freed_memory()
    if threads is not None:
        torch.set_num_threads(ranks.threads(int(threads)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = int(params["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    device = ranks.device
    if params["deterministic"]:
        make_deterministic(device)
    amp_dtype = resolve_amp(params["amp"], device)

    cache = load_image_cache(Path(cache_path))
    manifest = read_manifest(Path(manifest_path))
    splits = pd.read_parquet(splits_path)
    if cache.shape[0] != len(manifest):
        raise ValueError(f"{cache_path}: {cache.shape[0]} rows, but the manifest has {len(manifest)}")
    data = training_data(
        manifest,
        splits,
        neighbours=None if neighbours_path is None else load_neighbour_table(neighbours_path),
        negatives=None if negatives_path is None else load_negative_table(negatives_path),
    )
    strategy = build_strategy(strategy_name, data, params)
    anchors = strategy.anchor_rows()
    if anchors.size < 2:
        raise ValueError(f"strategy {strategy_name!r} has {anchors.size} anchor rows; at least 2 are needed")

    resolution = int(params["resolution"])
    encoder = build_encoder(params["encoder"], small_input=resolution < 96)
    heads = strategy.heads(encoder)
    model = nn.ModuleDict({"encoder": encoder, "heads": heads}).to(device)
    memory_format = torch.channels_last if params["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    forward = ranks.replicate(model)
    forward = torch.compile(forward) if params["compile"] else forward
    recipe = AugmentRecipe.from_config(params["augment"])
    augment = BatchAugment(resolution, strength=float(params["augment_strength"]), recipe=recipe)
    if isinstance(augment, nn.Module):
        augment = augment.to(device)

    batch_size = ranks.batch_size(min(int(params["batch_size"]), int(anchors.size)))
    steps_per_epoch = max(1, anchors.size // batch_size)
    if params["steps_per_epoch"] is not None:
        steps_per_epoch = min(steps_per_epoch, int(params["steps_per_epoch"]))
    epochs = int(params["epochs"])
    total_steps = epochs * steps_per_epoch
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
    )
    warmup_steps = round(float(params["warmup_fraction"]) * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, warmup_cosine(total_steps, warmup_steps))

    start_epoch, step, records = 0, 0, []
    resumed = load_last(out_dir, model, optimiser, scheduler)
    if resumed is not None:
        start_epoch, step, records = int(resumed["epoch"]), int(resumed["step"]), resumed.get("metrics", [])
        if resumed.get("params") != params or resumed.get("strategy") != strategy_name:
            warnings.warn(
                f"{out_dir / 'last.pt'} was written with other params or strategy; resuming anyway", stacklevel=2
            )
    if ranks.is_main:
        write_jsonl(records, out_dir / METRICS)
        pairs_rng = np.random.default_rng([seed, PAIRS_STREAM])
        batches = sample_batches(strategy, batch_size, pairs_rng)
        write_json(pair_diagnostics(manifest, strategy, batches, pairs_rng), out_dir / PAIRS)
    monitor = _Monitor(cache, data, params, resolution, device, amp_dtype, memory_format)

    for epoch in range(start_epoch, epochs):
        rng = np.random.default_rng([seed, epoch])
        generator = torch.Generator(device=device).manual_seed(ranks.augment_seed(seed * 1_000_003 + epoch))
        order = rng.permutation(anchors)
        model.train()
        loss_sum, images, started = torch.zeros((), device=device), 0, time.perf_counter()
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"{strategy_name} epoch {epoch + 1}/{epochs}",
            file=sys.stderr,
            disable=not (params["progress"] and ranks.is_main),
            leave=False,
        )
        for index in range(steps_per_epoch):
            batch = strategy.sample(order[index * batch_size : (index + 1) * batch_size], rng)
            batch = ranks.share(batch)  # this process's share of the global batch (all of it on one process)
            views = {
                name: _augment(augment, gather_rows(cache, rows, device), generator)
                for name, rows in batch.views.items()
            }
            sizes = [view.shape[0] for view in views.values()]
            x = torch.cat(list(views.values())).contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                features = dict(zip(views, torch.split(forward(x), sizes)))
                loss = strategy.loss(features, heads, batch, views)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            step += 1
            strategy.after_step(heads, encoder, step / total_steps)
            loss_sum += loss.detach().float()  # stays on the device: no host sync per step
            images += sizes[0] * ranks.world_size
            bar.update(1)
            if (index + 1) % SYNC_EVERY == 0 or index + 1 == steps_per_epoch:
                mean_loss = ranks.average(loss_sum).item() / (index + 1)
                if not math.isfinite(mean_loss):
                    raise FloatingPointError(
                        f"{strategy_name}: loss {mean_loss} in epoch {epoch + 1} "
                        f"by step {step}; lower lr or check the inputs"
                    )
                bar.set_postfix(loss=f"{mean_loss:.3f}")
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        if not ranks.is_main:
            continue
        record = {
            "epoch": epoch + 1,
            "step": step,
            "loss": mean_loss,
            "lr": float(scheduler.get_last_lr()[0]),
            "images": images,
            "images_per_s": images / seconds,
            "seconds": seconds,
            **_peak_memory(device),
            **monitor(encoder),
            "device": device.type,
            "amp": "bf16" if amp_dtype is not None else "fp32",
        }
        if record["collapsed"]:
            warnings.warn(
                f"{strategy_name}: representation collapse in epoch {epoch + 1} (embedding_std "
                f"{record['embedding_std']:.4f}, mean pairwise cosine {record['mean_pairwise_cosine']:.3f})",
                stacklevel=2,
            )
        records.append(record)
        write_jsonl(records, out_dir / METRICS)
        save_last(
            out_dir,
            model,
            optimiser,
            scheduler,
            epoch + 1,
            step,
            extra={"params": params, "strategy": strategy_name, "metrics": records},
        )
    return save_encoder(out_dir, encoder, strategy_name, params) if ranks.is_main else out_dir / ENCODER


def gather_rows(cache: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 rows of the memmap, on ``device``."""
    images = torch.from_numpy(np.ascontiguousarray(np.take(cache, rows, axis=0)))
    return images.to(device, non_blocking=True)


@torch.no_grad()
def encode_rows(
    encoder: nn.Module,
    cache: np.ndarray,
    rows: np.ndarray,
    resolution: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    memory_format=torch.channels_last,
    batch_size: int = 256,
) -> torch.Tensor:
    """(n, D) float32 features of cache ``rows`` (normalised, resized to ``resolution``, no augmentation).

    The caller chooses train/eval mode; this only runs forward passes.
    """
    chunks = []
    for start in range(0, len(rows), batch_size):
        images = normalise(gather_rows(cache, rows[start : start + batch_size], device))
        if images.shape[-1] != resolution:
            images = F.interpolate(
                images, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
            )
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            chunks.append(encoder(images.contiguous(memory_format=memory_format)).float())
    if not chunks:
        return torch.zeros(0, getattr(encoder, "feature_dim", 0), device=device)
    return torch.cat(chunks)


def _augment(augment, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, res, res) float views of uint8 (B, H, W, 3) images, augmented on their device."""
    forward = augment if callable(augment) else augment.forward
    return forward(images, generator=generator)


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "memory_kind": "cuda_allocated"}
    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory_kind": "cpu_rss"}


class _Monitor:
    """Per-epoch collapse and quality monitors on fixed image subsets (chosen once from the seed).

    ``embedding_std``: mean over dimensions of the std of L2-normalised features of the holdout (val) images
    (collapse drives it to 0; spread-out features are near 1/sqrt(D)); ``mean_pairwise_cosine``: their mean
    off-diagonal cosine similarity (collapse drives it to 1; ``collapsed`` when above ``COLLAPSE_COSINE``);
    ``knn_top1``: cosine kNN (k = knn_k, similarity-weighted votes) accuracy of the labelled val images against
    the labelled train bank (None when either is empty).
    """

    def __init__(self, cache, data, params, resolution, device, amp_dtype, memory_format):
        self.cache, self.resolution, self.device = cache, resolution, device
        self.amp_dtype, self.memory_format = amp_dtype, memory_format
        self.k = int(params["knn_k"])
        size = int(params["monitor_size"])
        rng = np.random.default_rng([int(params["seed"]), 2**31 - 1])
        codes, _ = data.species_codes()
        val = data.rows_of("val")
        holdout = val if val.size >= 2 else data.rows_of("train")
        self.holdout = np.sort(rng.permutation(holdout)[:size])
        bank = data.labelled_rows(float(params["label_fraction"]))
        bank = bank[codes[bank] >= 0]
        self.bank = np.sort(rng.permutation(bank)[:size])
        queries = val[codes[val] >= 0]
        self.queries = np.sort(rng.permutation(queries)[:size])
        self.codes = torch.as_tensor(codes)

    def features(self, encoder: nn.Module, rows: np.ndarray) -> torch.Tensor:
        return F.normalize(
            encode_rows(encoder, self.cache, rows, self.resolution, self.device, self.amp_dtype, self.memory_format),
            dim=1,
        )

    @torch.no_grad()
    def __call__(self, encoder: nn.Module) -> dict:
        was_training = encoder.training
        encoder.eval()
        try:
            z = self.features(encoder, self.holdout)
            cosine = z @ z.T  # (n, n)
            n = z.shape[0]
            mean_cosine = float((cosine.sum() - cosine.diagonal().sum()) / max(1, n * (n - 1)))
            record = {
                "embedding_std": float(z.std(dim=0).mean()),
                "mean_pairwise_cosine": mean_cosine,
                "collapsed": mean_cosine > COLLAPSE_COSINE,
                "knn_top1": None,
                "knn_k": self.k,
            }
            if self.bank.size and self.queries.size:
                record["knn_top1"] = self.knn_top1(
                    self.features(encoder, self.queries), self.features(encoder, self.bank)
                )
            return record
        finally:
            encoder.train(was_training)

    def knn_top1(self, queries: torch.Tensor, bank: torch.Tensor, temperature: float = 0.07) -> float:
        bank_labels = self.codes[self.bank].to(bank.device)  # (T,)
        query_labels = self.codes[self.queries].to(bank.device)  # (V,)
        k = min(self.k, bank.shape[0])
        similarity, index = (queries @ bank.T).topk(k, dim=1)  # (V, k)
        votes = torch.zeros(queries.shape[0], int(self.codes.max()) + 1, device=bank.device)
        votes.scatter_add_(1, bank_labels[index], (similarity / temperature).exp())
        return float((votes.argmax(dim=1) == query_labels).float().mean())
