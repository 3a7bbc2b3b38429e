"""Argument types and groups shared by the command-line entry points the workflow's rules call."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
from pathlib import Path
from typing import NoReturn


def json_object(text: str) -> dict:
    """argparse ``type=`` for JSON-object arguments (``--params-json '{...}'``); errors name the argument."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {type(value).__name__}")
    return value


def val_fraction(text: str) -> float | str:
    """argparse ``type=`` for ``--val-fraction`` (config ``evaluate.val_fraction``): ``budget`` or a share in
    (0, 1]."""
    if text == "budget":
        return text
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0.0 < share <= 1.0:
        raise argparse.ArgumentTypeError(f"must be 'budget' or a share in (0, 1], got {text!r}")
    return share


def add_val_fraction_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--val-fraction",
        type=val_fraction,
        default="budget",
        help="share of the val photos model selection uses (budget: the label budget's share)",
    )


def add_evaluation_rows_arguments(parser: argparse.ArgumentParser) -> None:
    """The rows an evaluation scores and its prior: --manifest, --splits, --label-fractions (one per budget),
    --val-fraction and either --priors (one per budget) or --no-prior-reason."""
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--splits", required=True, type=Path)
    parser.add_argument("--label-fractions", required=True, type=float, nargs="+", help="percent, one per budget")
    add_val_fraction_argument(parser)
    priors = parser.add_mutually_exclusive_group()
    priors.add_argument("--priors", type=Path, nargs="+", help="(N, C) geographic prior per budget (.npy)")
    priors.add_argument("--no-prior-reason", default="no geographic prior given", help="why there is no --priors")


def add_encoder_arguments(parser: argparse.ArgumentParser, classifier: bool = False) -> None:
    """The encoder a job reads and its images: --cache, --encoder or --random-init (or, with ``classifier``,
    --classifier: a fine-tuned classifier of the finetune protocol), --resolution."""
    parser.add_argument("--cache", required=True, type=Path, help="uint8 image cache (.npy), manifest order")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--encoder", type=Path, help="encoder.pt of a pretraining job")
    source.add_argument("--random-init", help="encoder name for the untrained baseline (seeded by the run's seed)")
    if classifier:
        source.add_argument("--classifier", type=Path, help="finetune_l<pct>.pt: a classifier already fine-tuned")
    parser.add_argument("--resolution", required=True, type=int)


def exit_without_teardown(code: int | None) -> NoReturn:
    """End a CLI after ``main()`` returned: run the atexit handlers (logging's flush, a benchmark's process record),
    flush stdout and stderr, then leave with ``os._exit``, skipping the interpreter's teardown of every module and
    object, which computes nothing. With torch (and torch._dynamo, which the first optimiser imports) loaded that
    teardown costs 0.4-2 s of CPU per process; with pandas, pyarrow, numba or matplotlib 0.1-0.3 s, a fifth of a
    short job such as splits or a neighbour table (issue [V]; every CLI the workflow calls ends here). Every output
    is written and closed by then (atomic_path, worker pools shut down); an error (an exception, argparse's exit)
    still leaves through the normal teardown."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code or 0)
