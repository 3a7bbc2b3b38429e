"""Benchmark: neighbour_table against cKDTree's capped nearest-K query on clustered points (not a test).

For each size, separate subprocesses (so each peak RSS belongs to one method) time on the same synthetic points:
  ours       neighbour_table(radius 5 km, K=64), after a warm-up call on a tiny input (its time is reported as
             the compile/cache-load time);
  kdtree     cKDTree build + query(k=64, distance_upper_bound=chord(5 km)), the nearest-K reference;
  ball_list  cKDTree.query_ball_point full radius lists + a uniform K-sample per list (only at 1e5: the lists
             grow ~N² on clustered data).
Prints a table and writes bench/results/neighbours.json with times, peak RSS and ratios against kdtree.

    python bench/neighbours.py [--sizes 100000 1000000 2700000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RADIUS_KM = 5.0
K = 64
BALL_LIST_MAX_N = 100_000
RESULTS = Path(__file__).resolve().parent / "results" / "neighbours.json"


def clustered_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """90 % in Gaussian clusters (heavy-tailed sizes, 0.2-20 km spreads) over California, 9 % uniform over it,
    1 % uniform over the globe."""
    rng = np.random.default_rng(seed)
    n_global = n // 100
    n_uniform = n * 9 // 100
    n_clustered = n - n_global - n_uniform
    n_clusters = max(n_clustered // 300, 1)
    weights = rng.pareto(1.2, n_clusters) + 1.0
    sizes = rng.multinomial(n_clustered, weights / weights.sum())
    centre_lat = rng.uniform(32.5, 42.0, n_clusters)
    centre_lon = rng.uniform(-124.4, -114.1, n_clusters)
    spread_km = np.exp(rng.uniform(np.log(0.2), np.log(20.0), n_clusters))
    km_lat = np.repeat(spread_km, sizes) * rng.standard_normal(n_clustered)
    km_lon = np.repeat(spread_km, sizes) * rng.standard_normal(n_clustered)
    lat_c = np.repeat(centre_lat, sizes) + km_lat / 111.2
    lon_c = np.repeat(centre_lon, sizes) + km_lon / (111.2 * np.cos(np.radians(np.repeat(centre_lat, sizes))))
    lat = np.concatenate(
        [lat_c, rng.uniform(32.5, 42.0, n_uniform), np.degrees(np.arcsin(rng.uniform(-1, 1, n_global)))]
    )
    lon = np.concatenate([lon_c, rng.uniform(-124.4, -114.1, n_uniform), rng.uniform(-180, 180, n_global)])
    return np.clip(lat, -90, 90), (lon + 180) % 360 - 180


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def worker(method: str, n: int, threads: int) -> dict:
    import numba
    from scipy.spatial import cKDTree

    from geocontrast.geo.coords import km_to_chord, unit_vectors
    from geocontrast.geo.neighbours import neighbour_table

    numba.set_num_threads(threads)
    lat, lon = clustered_points(n)
    result: dict = {"method": method, "n": n}
    if method == "ours":
        t = time.perf_counter()
        neighbour_table(lat[:1000], lon[:1000], RADIUS_KM, K, seed=0)
        result["warmup_s"] = time.perf_counter() - t
        t = time.perf_counter()
        table = neighbour_table(lat, lon, RADIUS_KM, K, seed=0, memory_budget_gb=8.0)
        result["time_s"] = time.perf_counter() - t
        result["summary"] = table.summary()
    else:
        u = unit_vectors(lat, lon)
        chord = float(km_to_chord(RADIUS_KM))
        t = time.perf_counter()
        tree = cKDTree(u)
        if method == "kdtree":
            d, _ = tree.query(u, k=K + 1, distance_upper_bound=chord, workers=threads)  # +1: the point itself
            result["mean_found"] = float(np.isfinite(d[:, 1:]).sum(axis=1).mean())
        else:
            rng = np.random.default_rng(0)
            balls = tree.query_ball_point(u, chord, workers=threads)
            samples = [rng.choice(b, K, replace=False) if len(b) > K else b for b in balls]
            result["pairs_listed"] = int(sum(len(b) for b in balls))
            del samples
        result["time_s"] = time.perf_counter() - t
    result["peak_rss_gb"] = peak_rss_gb()
    return result


def run_worker(method: str, n: int, threads: int) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(n), "--threads", str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 2_700_000])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.threads)))
        return

    rows = []
    print(
        f"{'n':>9} {'ours s':>8} {'ours GB':>8} {'kdtree s':>9} {'kdtree GB':>9} {'kdtree/ours':>11} "
        f"{'balls s':>8} {'balls/ours':>10} {'warmup s':>8}"
    )
    for n in args.sizes:
        ours = run_worker("ours", n, args.threads)
        kdtree = run_worker("kdtree", n, args.threads)
        balls = run_worker("ball_list", n, args.threads) if n <= BALL_LIST_MAX_N else None
        row = {
            "n": n,
            "ours": ours,
            "kdtree_nearest_k": kdtree,
            "ball_list": balls,
            "kdtree_over_ours": kdtree["time_s"] / ours["time_s"],
            "ball_list_over_ours": balls["time_s"] / ours["time_s"] if balls else None,
        }
        rows.append(row)
        balls_s = f"{balls['time_s']:8.2f} {row['ball_list_over_ours']:10.1f}" if balls else f"{'-':>8} {'-':>10}"
        print(
            f"{n:>9} {ours['time_s']:8.2f} {ours['peak_rss_gb']:8.2f} {kdtree['time_s']:9.2f} "
            f"{kdtree['peak_rss_gb']:9.2f} {row['kdtree_over_ours']:11.2f} {balls_s} {ours['warmup_s']:8.2f}",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "radius_km": RADIUS_KM,
                "k": K,
                "threads": args.threads,
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "processor": platform.processor(),
                    "python": platform.python_version(),
                },
                "note": "peak RSS per method from its own subprocess; ratios are times within this one invocation",
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
