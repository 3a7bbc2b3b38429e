"""Benchmark the kNN protocol's top-k search: blocked torch matmul + topk against faiss-cpu's exact index.

The kNN protocol and the mislabel task need, for every query row, the k most cosine-similar bank rows. geocontrast
does it in blocks of query rows (geocontrast.evaluate.similarity); faiss.IndexFlatIP is the usual library for the
same exact search. Both run on the same random unit vectors (D = 256, cnn5's feature size) with the same threads;
the median of the repetitions is reported with the share of top-k indices on which they agree. faiss is optional:
without it only the blocked search is timed.

    PYTHONPATH=src .venv/bin/python bench/knn_blocks.py [--bank 50000] [--queries 20000] [--threads 1]

Writes bench/results/knn_blocks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geocontrast.evaluate.similarity import BLOCK_BYTES, top_k_blocks

RESULTS = Path(__file__).parent / "results" / "knn_blocks.json"


def blocked_search(queries: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    blocks = top_k_blocks(torch.from_numpy(queries), torch.from_numpy(bank), k)
    return torch.cat([index for _, _, index in blocks]).numpy()


def faiss_search(queries: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(bank)
    return index.search(queries, k)[1]


def timed(search, *args) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = search(*args)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", type=int, default=50_000, help="labelled rows searched")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    bank, queries = (
        F.normalize(torch.from_numpy(rng.normal(size=(n, args.dim)).astype(np.float32)), dim=1).numpy()
        for n in (args.bank, args.queries)
    )
    searches = {"blocked_torch": blocked_search}
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        searches["faiss_flat_ip"] = faiss_search
    except ImportError:
        print("faiss not importable: timing the blocked search only")
    seconds: dict[str, list[float]] = {name: [] for name in searches}
    answers = {}
    for repeat in range(args.repeats):
        for name in searches if repeat % 2 == 0 else reversed(list(searches)):
            elapsed, answers[name] = timed(searches[name], queries, bank, args.k)
            seconds[name].append(elapsed)
    result = {
        "bank": args.bank,
        "queries": args.queries,
        "dim": args.dim,
        "k": args.k,
        "threads": args.threads,
        "block_bytes": BLOCK_BYTES,
        "median_s": {name: statistics.median(times) for name, times in seconds.items()},
        "seconds": seconds,
        "machine": {"cpu": platform.processor() or platform.machine(), "load_1min": os.getloadavg()[0]},
    }
    if "faiss_flat_ip" in answers:
        same = [len(set(a) & set(b)) / args.k for a, b in zip(answers["blocked_torch"], answers["faiss_flat_ip"])]
        result["top_k_agreement"] = float(np.mean(same))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_s"]), result.get("top_k_agreement"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
