"""CLI of the pretraining loop (called by the workflow's pretrain rule)::

    python -m geocontrast.train --strategy context_pos_neg --cache cache/32px.npy --manifest manifest.parquet \\
        --splits splits.parquet --out-dir pretrain/context_pos_neg/seed0 --params-json '{"epochs": 10}' \\
        [--neighbours neighbours.npz] [--negatives negatives.npz] [--threads T]

Under ``torchrun --nproc_per_node N -m geocontrast.train ...`` the N processes train one model together
(:mod:`geocontrast.distributed`); ``--threads`` is then the job's total, shared by the processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geocontrast import registry
from geocontrast.cli import exit_without_teardown, json_object


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.train", description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", required=True, help=f"one of: {', '.join(registry.STRATEGIES)}")
    parser.add_argument("--cache", required=True, type=Path, help="uint8 image cache (.npy), manifest order")
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--splits", required=True, type=Path)
    parser.add_argument("--out-dir", required=True, type=Path, help="gets encoder.pt, last.pt, metrics.jsonl")
    parser.add_argument("--params-json", type=json_object, default="{}", help="the pretrain settings as a JSON object")
    parser.add_argument("--neighbours", type=Path, help="neighbour table (.npz), for geo-positive strategies")
    parser.add_argument("--negatives", type=Path, help="negative table (.npz), for geo-negative strategies")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    args = parser.parse_args(argv)

    from geocontrast.train.settings import PretrainSettings

    try:
        settings = PretrainSettings.from_mapping(args.params_json)
        tables = registry.strategy(args.strategy).tables(settings.options)
    except ValueError as error:
        parser.error(str(error))
    missing = [f"--{table}" for table in tables if getattr(args, table) is None]
    if missing:
        parser.error(f"strategy {args.strategy!r} needs {' and '.join(missing)}")

    from geocontrast import distributed
    from geocontrast.train.loop import train

    encoder = train(
        args.strategy,
        args.cache,
        args.manifest,
        args.splits,
        args.out_dir,
        settings,
        neighbours_path=args.neighbours,
        negatives_path=args.negatives,
        threads=args.threads,
    )
    distributed.leave()
    print(encoder)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
