"""One training budget for every strategy: the same optimiser steps at the same batch size, and what they cost.

An epoch is measured over the whole train split, whatever the strategy's anchors: ``n_train // batch_size``
optimiser steps (at most ``steps_per_epoch``), each on ``batch_size`` anchors. A strategy whose anchors are a
subset of the train rows (``supervised``: its labelled rows) cycles over them until the epoch's steps are spent:
each pass over its anchors is a fresh permutation cut into whole batches (the remainder waits for the next pass,
so no batch holds an anchor twice), and every permutation of epoch e comes from the epoch's generator,
``numpy.random.default_rng([seed, e])``, before it draws any pair. A resumed run therefore draws them again
exactly, and a strategy whose anchors are the train split draws one permutation per epoch, as it always did.

Why epochs over the train set rather than a separate ``steps`` key: the checkpoint, the metrics line and the
learning-rate schedule already count in epochs, configs written for the self-supervised strategies keep their
meaning, and ``epochs`` × ``steps_per_epoch`` is the budget in steps all the same, now equal across strategies
(before, ``supervised`` took 2 steps per epoch on its 295 labelled rows against ~22 for the others).

What a job spent is recorded cumulatively in every ``metrics.jsonl`` line and, at the end, as the ``budget`` of
``encoder.pt``: :data:`SPENT_KEYS`, there with the labels it trained on (``label_fraction``, percent).
:func:`pretraining_facts` reads them back for a results row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geocontrast.train.settings import PretrainSettings

SPENT_KEYS = ("step", "anchors_seen", "encoder_images", "wall_seconds")
"""Cumulative over the job (resumed runs included): optimiser steps; anchors drawn (global batch items);
images through the encoder (every view of every anchor, extra negatives included); wall_seconds: time in the
epochs (steps and monitors; not start-up or checkpoint writes)."""
PRETRAINING_FACTS = {
    "step": "pretrain_steps",
    "anchors_seen": "pretrain_anchors",
    "encoder_images": "pretrain_images",
    "wall_seconds": "pretrain_seconds",
}
"""Results-row column of each spent key (:func:`pretraining_facts`)."""
PRETRAINING_COLLAPSE = "pretrain_collapse"
"""Results-row column of how the pretrained representation collapsed at the job's end ("" when it did not:
:func:`geocontrast.train.monitor.collapse_note`)."""
PRETRAINING_LABELS = "pretrain_label_fraction"
"""Results-row column of the percent of the train labels the encoder's pretraining trained on: 0 for a
label-free strategy; a label-trained one (``supervised``) is pretrained at each evaluated label budget."""


@dataclass(frozen=True)
class Budget:
    """``epochs`` of ``steps_per_epoch`` optimiser steps on ``batch_size`` anchors (global, all processes) drawn
    from a pool of ``anchor_pool`` rows."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    anchor_pool: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def plan_budget(n_train: int, n_anchors: int, settings: PretrainSettings, round_batch=lambda size: size) -> Budget:
    """The budget of ``settings`` (epochs, batch_size, steps_per_epoch) for a strategy with ``n_anchors`` anchors
    on a train split of ``n_train`` rows; ``round_batch`` rounds a batch size to what the processes can share.

    The batch is smaller than ``batch_size`` only where the train split, or the strategy's anchors, hold fewer
    rows than one batch; the number of steps never depends on the strategy.
    """
    epoch_batch = round_batch(min(int(settings.batch_size), n_train))
    steps_per_epoch = max(1, n_train // epoch_batch)
    if settings.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, int(settings.steps_per_epoch))
    return Budget(int(settings.epochs), steps_per_epoch, round_batch(min(epoch_batch, n_anchors)), n_anchors)


def epoch_batches(anchors: np.ndarray, batch_size: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(steps, batch_size) anchor rows of one epoch: whole batches cut from as many fresh permutations of
    ``anchors`` as ``steps`` need, all drawn from ``rng`` first."""
    per_pass = anchors.size // batch_size
    if per_pass < 1:
        raise ValueError(f"{anchors.size} anchors cannot fill a batch of {batch_size}")
    passes = -(-steps // per_pass)
    cut = per_pass * batch_size
    return np.concatenate([rng.permutation(anchors)[:cut].reshape(per_pass, batch_size) for _ in range(passes)])[:steps]


def last_record(path: Path) -> dict:
    """The last record of a pretraining job: the last line of its ``metrics.jsonl``, or the ``budget`` of its
    ``encoder.pt``."""
    path = Path(path)
    if path.suffix == ".jsonl":
        lines = path.read_text().splitlines()
        if not lines:
            raise ValueError(f"{path}: no epoch recorded")
        return json.loads(lines[-1])
    import torch  # only for checkpoints: reading metrics.jsonl stays torch-free

    return torch.load(path, map_location="cpu", weights_only=False)["budget"]


def pretraining_facts(path: Path) -> dict:
    """The results-row columns of :data:`PRETRAINING_FACTS` and :data:`PRETRAINING_COLLAPSE` for the job that wrote
    ``path`` (metrics.jsonl or encoder.pt); from encoder.pt also :data:`PRETRAINING_LABELS` (its
    ``budget["label_fraction"]``)."""
    last = last_record(path)
    facts = {PRETRAINING_FACTS[key]: last[key] for key in SPENT_KEYS}
    facts[PRETRAINING_COLLAPSE] = last.get("collapse", "")  # jobs written before the collapse note: ""
    return {**facts, PRETRAINING_LABELS: last["label_fraction"]} if "label_fraction" in last else facts
