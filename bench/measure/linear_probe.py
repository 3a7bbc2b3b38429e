"""Time the linear probe (geocontrast.evaluate.protocols.linear_probe) at the default world's size.

The default world at 10 % labels gives the probe about 295 labelled train photos, 400 val and 800 test photos
of 256 features over 80 species. The features here are noisy class centres of that shape; the probe runs with
its default settings (``evaluate.linear``) and the median wall time of the repetitions is reported with the
selection record of the last.

    PYTHONPATH=src .venv/bin/python bench/measure/linear_probe.py [--threads 1] [--repeats 5]

Prints one JSON object (nothing is written). It runs an older checkout's probe too (``PYTHONPATH`` at its
``src``), which took a ``seed``, so two versions can be timed side by side on one machine.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import time

import numpy as np
import torch

from geocontrast.evaluate.protocols import linear_probe
from geocontrast.evaluate.settings import LinearSettings


def features(n: int, centres: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, centres.shape[0], size=n)
    return (centres[labels] + 2.0 * rng.normal(size=(n, centres.shape[1]))).astype(np.float32), labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=295)
    parser.add_argument("--val", type=int, default=400)
    parser.add_argument("--test", type=int, default=800)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.classes, args.dim))
    (train_x, train_y), (val_x, val_y), (test_x, _) = (
        features(n, centres, rng) for n in (args.train, args.val, args.test)
    )
    settings = LinearSettings()
    seeded = {"seed": 0} if "seed" in inspect.signature(linear_probe).parameters else {}
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        _, selection = linear_probe(train_x, train_y, val_x, val_y, test_x, args.classes, settings, **seeded)
        seconds.append(time.perf_counter() - start)
    report = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "shape": {"train": args.train, "val": args.val, "test": args.test, "dim": args.dim, "classes": args.classes},
        "settings": settings.as_dict(),
        "seconds_median": round(statistics.median(seconds), 3),
        "seconds": [round(s, 3) for s in seconds],
        "selection": selection,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
