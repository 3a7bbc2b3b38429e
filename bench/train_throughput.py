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
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import yaml
from snakemake.utils import validate

from geocontrast.data.cache import load_image_cache
from geocontrast.runtime import cpu_supports_bf16, resolve_amp, resolve_device
from geocontrast.strategies import STRATEGIES

from parts.throughput import (
    BATCH,
    Case,
    Data,
    Plan,
    build_cases,
    compute_rate,
    e2e_rate,
    geo_tables,
    lightly_rate,
    resized_cache,
    synthetic_data,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "train_throughput.json"
N_IMAGES = 3000  # enough train anchors for the capped epochs and DataLoader batches of every plan below
E2E_OVER_COMPUTE_TARGET = 0.9
OVER_LIGHTLY_TARGET = {"cnn5": 2.0, "resnet18": 1.0}
# Same encoder, heads, loss and view count as the strategy named: the compute-only step is identical.
COMPUTE_TWIN = {"supervised_full": "supervised", "context_pos": "augmented"}
CUDA_EXTRAS = (("resnet50", 224), ("resnet18", 128))


# As small as a fair measurement allows on 2 cores. cnn5: short measurements, an even number of repetitions so the
# reversed order balances drift (ABBA). resnet18 at 64 px (3x3 stem, no max-pool) costs ~9 s per 128 images in
# fp32 on 2 idle cores, ~20x cnn5: one timed step per measurement and one repetition already take ~5 minutes.
CPU_PLANS = {"cnn5": Plan(steps=2, warmup=1, reps=4, fewer_threads=True), "resnet18": Plan(steps=1, warmup=1, reps=1)}
QUICK_PLAN = Plan(steps=2, warmup=1, reps=1)
CUDA_PLAN = Plan(steps=10, warmup=3, reps=3, fewer_threads=True)


def load_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.json"))  # fills the defaults
    return config


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
