"""Benchmark training throughput: the real loop end to end, against compute-only and against lightly's SimCLR.

Measured in one invocation, on the same uint8 images, batch 128, per encoder (cnn5 and resnet18 by default):
  e2e      each strategy through geocontrast.train.loop.train() (capped steps per epoch, 2+ epochs): the epoch
           rate from metrics.jsonl, first epoch dropped as warm-up; anchors/s, and images/s = anchors/s x views;
  compute  the same encoder, heads, loss and number of views on random float tensors already in memory
           (forward + backward + AdamW step): no sampling, gathering or augmentation;
  lightly  lightly's SimCLR reference: SimCLRTransform(input_size=resolution) per image with PIL in a torch
           DataLoader over the same images, lightly's NTXentLoss and SimCLRProjectionHead, same encoder, AMP and
           memory format as the loop; 0 and 1 DataLoader workers (and, for cnn5, 1 worker with one compute
           thread fewer), the best one reported.
Repetitions are interleaved (every measurement once per repetition, the order reversed on odd repetitions);
medians are reported. Targets: e2e/compute >= 0.9 for every strategy; e2e(augmented)/lightly >= 2 for cnn5 and
>= 1 for resnet18. With CUDA, also ResNet-50 at 224 px and ResNet-18 at 128 px (augmented: e2e and compute).

    .venv/bin/python bench/train_throughput.py [--encoders cnn5 resnet18] [--resolution 64] [--threads 2]
        [--cache results/synthetic_flora/cache/64px.npy] [--quick]

Takes ~8 minutes on 2 idle cores (resnet18 is two thirds of it; on a busy machine several times longer);
--quick: ~1 minute, cnn5 only, one repetition. Without --cache it renders a small synthetic world into a
temporary folder (manifest, splits, cache, geo tables); with --cache it uses that cache and the manifest.parquet
and splits.parquet two folders up. Prints a table and writes bench/results/train_throughput.json, with every
measurement and the machine's load beside it. Absolute rates vary with the shared machine; the ratios, measured
side by side in this run, are the comparable numbers.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from snakemake.utils import validate
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
from geocontrast.runtime import cpu_supports_bf16, resolve_amp, resolve_device
from geocontrast.strategies import STRATEGIES, PairBatch, Strategy, build_strategy, required_tables
from geocontrast.train.loop import METRICS, resolve_params, train

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "train_throughput.json"
BATCH = 128
N_IMAGES = 3000  # enough train anchors for the capped epochs and DataLoader batches of every plan below
MONITOR_SIZE = 32  # the loop's per-epoch monitors are outside its timing, but cost wall time
E2E_OVER_COMPUTE_TARGET = 0.9
OVER_LIGHTLY_TARGET = {"cnn5": 2.0, "resnet18": 1.0}
# Same encoder, heads, loss and view count as the strategy named: the compute-only step is identical.
COMPUTE_TWIN = {"supervised_full": "supervised", "context_pos": "augmented"}
CUDA_EXTRAS = (("resnet50", 224), ("resnet18", 128))


@dataclass(frozen=True)
class Plan:
    steps: int  # timed optimiser steps per measurement (also the loop's steps_per_epoch cap)
    warmup: int  # untimed steps first (compute, lightly); the loop's warm-up is its whole first epoch
    reps: int
    fewer_threads: bool = False  # also try lightly with 1 worker and one compute thread fewer


# As small as a fair measurement allows on 2 cores. cnn5: short measurements, an even number of repetitions so the
# reversed order balances drift (ABBA). resnet18 at 64 px (3x3 stem, no max-pool) costs ~9 s per 128 images in
# fp32 on 2 idle cores, ~20x cnn5: one timed step per measurement and one repetition already take ~5 minutes.
CPU_PLANS = {"cnn5": Plan(steps=2, warmup=1, reps=4, fewer_threads=True), "resnet18": Plan(steps=1, warmup=1, reps=1)}
QUICK_PLAN = Plan(steps=2, warmup=1, reps=1)
CUDA_PLAN = Plan(steps=10, warmup=3, reps=3, fewer_threads=True)


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


def load_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.json"))  # fills the defaults
    return config


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
    make_splits(manifest, **config["splits"]).to_parquet(scratch / "splits.parquet", index=False)
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


def loop_params(encoder: str, resolution: int, epochs: int = 1, steps_per_epoch: int | None = None) -> dict:
    """The training params of every e2e run; the rest are the loop's defaults (amp auto, channels_last)."""
    return {
        "encoder": encoder,
        "resolution": resolution,
        "batch_size": BATCH,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "monitor_size": MONITOR_SIZE,
        "progress": False,
    }


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
        strategy = build_strategy(name, tables, resolve_params(loop_params("cnn5", 64)))  # rows: any encoder
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
        loop_params(encoder, resolution, epochs, case.steps_per_epoch),
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


def measurements(cases: list[Case], lightly_settings: list[str]) -> list[tuple[str, str]]:
    """(kind, key) in the order of one repetition: each compute-only step beside its strategy's e2e, lightly
    beside augmented."""
    order, computed = [], set()
    for case in cases:
        order.append(("e2e", case.name))
        twin = COMPUTE_TWIN.get(case.name, case.name)
        if twin not in computed:
            order.append(("compute", twin))
            computed.add(twin)
        if case.name == "augmented":
            order += [("lightly", key) for key in lightly_settings]
    return order


def bench_encoder(
    encoder: str,
    resolution: int,
    data: Data,
    strategies: list[str],
    plan: Plan,
    threads: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    with_lightly: bool,
    scratch: Path,
) -> dict:
    """Every measurement of one encoder in ``plan.reps`` interleaved repetitions, summarised."""
    cases = {case.name: case for case in build_cases(data, strategies, plan)}
    twins = sorted({COMPUTE_TWIN[name] for name in strategies if name in COMPUTE_TWIN} - set(cases))
    cases.update({case.name: case for case in build_cases(data, twins, plan)})
    pairs = [(0, threads), (1, threads)] + ([(1, threads - 1)] if plan.fewer_threads and threads > 1 else [])
    settings = {f"workers{w}_threads{t}": (w, t) for w, t in pairs} if with_lightly else {}
    order = measurements([cases[name] for name in strategies], list(settings))
    log = []
    for rep in range(plan.reps):
        for kind, key in order if rep % 2 == 0 else order[::-1]:  # reversed on odd reps: drift hits both sides
            started = time.perf_counter()
            entry = {"rep": rep + 1, "kind": kind, "key": key}
            if kind == "e2e":
                entry.update(e2e_rate(data, cases[key], encoder, resolution, plan, threads, scratch / key))
            elif kind == "compute":
                entry["anchors_per_s"] = compute_rate(cases[key], encoder, resolution, plan, device, amp_dtype)
            else:
                entry["anchors_per_s"] = lightly_rate(
                    data.cache, encoder, resolution, plan, device, amp_dtype, *settings[key]
                )
            # The machine is shared: the load beside each measurement tells how far to trust it.
            entry.update(seconds=time.perf_counter() - started, load_1min=os.getloadavg()[0])
            log.append(entry)
            print(
                f"  {encoder} rep {rep + 1}/{plan.reps} {kind:8} {key:22} {entry['anchors_per_s']:8.1f} anchors/s "
                f"({entry['seconds']:.0f} s, load {entry['load_1min']:.1f})",
                file=sys.stderr,
                flush=True,
            )
    return {"plan": asdict(plan), **summarise(encoder, cases, strategies, log), "measurements": log}


def summarise(encoder: str, cases: dict, strategies: list[str], log: list[dict]) -> dict:
    """Medians (images/s = anchors/s x views), ratios and pass/fail against the targets."""

    def rates(kind: str, key: str) -> list[float]:  # in repetition order
        return [entry["anchors_per_s"] for entry in log if entry["kind"] == kind and entry["key"] == key]

    rows = {}
    for name in strategies:
        views, twin = cases[name].views, COMPUTE_TWIN.get(name, name)
        e2e, compute = statistics.median(rates("e2e", name)), statistics.median(rates("compute", twin))
        rows[name] = {
            "views": views,
            "e2e_anchors_per_s": e2e,
            "e2e_images_per_s": e2e * views,
            "compute_images_per_s": compute * views,
            "compute_measured_as": twin,
            "e2e_over_compute": e2e / compute,
            "target": E2E_OVER_COMPUTE_TARGET,
            "pass": e2e / compute >= E2E_OVER_COMPUTE_TARGET,
            "e2e_over_compute_per_rep": [a / b for a, b in zip(rates("e2e", name), rates("compute", twin))],
        }
    result = {"amp": sorted({entry["amp"] for entry in log if entry["kind"] == "e2e"}), "strategies": rows}
    lightly_keys = sorted({entry["key"] for entry in log if entry["kind"] == "lightly"})
    if not lightly_keys:
        return result
    medians = {key: 2 * statistics.median(rates("lightly", key)) for key in lightly_keys}  # 2 views
    best = max(medians, key=medians.get)
    ratio = rows["augmented"]["e2e_images_per_s"] / medians[best] if "augmented" in rows else None
    target = OVER_LIGHTLY_TARGET.get(encoder)
    result["lightly"] = {
        "images_per_s": medians,
        "best": best,
        "best_images_per_s": medians[best],
        "augmented_over_lightly": ratio,
        "target": target,
        "pass": None if ratio is None or target is None else ratio >= target,
    }
    return result


def machine_info(device: torch.device, threads: int, amp_dtype: torch.dtype | None) -> dict:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightly": importlib.metadata.version("lightly") if importlib.util.find_spec("lightly") else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_native_bf16": cpu_supports_bf16(),
        "amp": "bf16" if amp_dtype is not None else "fp32",
        "load_average_start": os.getloadavg(),
    }


def print_table(results: dict) -> None:
    print(
        f"\n{'encoder':9} {'strategy':16} {'views':>5} {'e2e anchors/s':>13} {'e2e img/s':>10} "
        f"{'compute img/s':>13} {'e2e/compute':>11} {'target':>6} pass"
    )
    for encoder, result in results["encoders"].items():
        for name, row in result["strategies"].items():
            print(
                f"{encoder:9} {name:16} {row['views']:>5} {row['e2e_anchors_per_s']:13.1f} "
                f"{row['e2e_images_per_s']:10.1f} {row['compute_images_per_s']:13.1f} "
                f"{row['e2e_over_compute']:11.2f} {row['target']:>6} {'PASS' if row['pass'] else 'FAIL'}"
            )
    if results["lightly_reference"] != "measured":
        print(f"lightly reference: {results['lightly_reference']}")
    for encoder, result in results["encoders"].items():
        lightly = result.get("lightly")
        if lightly:
            settings = ", ".join(f"{key} {rate:.1f}" for key, rate in lightly["images_per_s"].items())
            verdict = "" if lightly["pass"] is None else ("PASS" if lightly["pass"] else "FAIL")
            print(
                f"{encoder}: lightly SimCLR images/s: {settings}; best {lightly['best']}. "
                f"e2e(augmented)/lightly = {lightly['augmented_over_lightly']:.2f} "
                f"(target >= {lightly['target']}) {verdict}"
            )
    extras = results["cuda_extras"]
    if isinstance(extras, str):
        print(f"CUDA extras (resnet50 224 px, resnet18 128 px): {extras}")
    else:
        for name, result in extras.items():
            row = result["strategies"]["augmented"]
            print(
                f"CUDA {name}: SimCLR e2e {row['e2e_images_per_s']:.1f} images/s, compute-only "
                f"{row['compute_images_per_s']:.1f}, ratio {row['e2e_over_compute']:.2f}"
            )
    print(
        f"machine: {results['machine']['cpu_model']}, {results['machine']['cpu_count']} cores, torch "
        f"{results['machine']['torch']}, amp {results['machine']['amp']}, load average "
        f"{results['machine']['load_average_start']} -> {results['machine']['load_average_end']}; "
        f"{results['wall_seconds']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--encoders",
        nargs="+",
        choices=["cnn5", "resnet18", "resnet50"],
        default=None,
        help="default: cnn5 resnet18 (cnn5 with --quick)",
    )
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument(
        "--cache",
        type=Path,
        help="existing (N, res, res, 3) uint8 cache; manifest.parquet and splits.parquet are read from two folders up",
    )
    parser.add_argument("--images", type=int, default=N_IMAGES, help="synthetic images when no --cache")
    parser.add_argument("--quick", action="store_true", help="~1 minute: fewer steps, one repetition, cnn5")
    parser.add_argument("--reps", type=int, help="override the plan's repetitions")
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=list(STRATEGIES),
        default=list(STRATEGIES),
        help="default: every registered strategy",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    encoders = args.encoders or (["cnn5"] if args.quick else ["cnn5", "resnet18"])
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = resolve_device("auto")
    amp_dtype = resolve_amp("auto", device)  # the loop's default; train() records its own choice per run
    with_lightly = importlib.util.find_spec("lightly") is not None
    results: dict = {
        "machine": machine_info(device, args.threads, amp_dtype),
        "batch_size": BATCH,
        "resolution": args.resolution,
        "encoders": {},
        "lightly_reference": "measured"
        if with_lightly
        else "NOT MEASURED: lightly is not installed (pip install lightly==1.6.0)",
    }
    if not with_lightly:
        print(f"lightly reference: {results['lightly_reference']}", file=sys.stderr)

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        config = load_config()
        if args.cache:
            data = geo_tables(
                args.cache,
                args.cache.parents[1] / "manifest.parquet",
                args.cache.parents[1] / "splits.parquet",
                scratch,
                config,
            )
        else:
            data = synthetic_data(scratch, args.images, args.resolution, config)
        results["images"] = {
            "source": str(args.cache) if args.cache else f"synthetic ({args.images} rendered)",
            "n_images": int(load_image_cache(data.cache).shape[0]),
        }
        for encoder in encoders:
            plan = (
                CUDA_PLAN
                if device.type == "cuda"
                else (QUICK_PLAN if args.quick else CPU_PLANS.get(encoder, QUICK_PLAN))
            )
            plan = replace(plan, reps=args.reps or plan.reps)
            results["encoders"][encoder] = bench_encoder(
                encoder,
                args.resolution,
                data,
                args.strategies,
                plan,
                args.threads,
                device,
                amp_dtype,
                with_lightly,
                scratch,
            )
        if device.type == "cuda":
            results["cuda_extras"] = {
                f"{encoder}_{resolution}px": bench_encoder(
                    encoder,
                    resolution,
                    replace(data, cache=resized_cache(data.cache, resolution, scratch / f"resized{resolution}.npy")),
                    ["augmented"],
                    CUDA_PLAN,
                    args.threads,
                    device,
                    amp_dtype,
                    False,
                    scratch,
                )
                for encoder, resolution in CUDA_EXTRAS
            }
        else:
            results["cuda_extras"] = "not measured (no CUDA)"
    results["targets"] = {
        "e2e_over_compute": E2E_OVER_COMPUTE_TARGET,
        "e2e_augmented_over_lightly": OVER_LIGHTLY_TARGET,
    }
    results["machine"]["load_average_end"] = os.getloadavg()
    results["wall_seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
