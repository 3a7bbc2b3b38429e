"""What a pretraining job spent, and how it ended, read back for the results rows.

What a job spent is recorded cumulatively in every ``metrics.jsonl`` line and, at the end, as the ``budget`` of
``encoder.pt`` (:mod:`geocontrast.train.loop`): :data:`SPENT_KEYS`, there with the labels it trained on
(``label_fraction``, percent) and how its representation ended (``collapse``). :func:`pretraining_facts` reads
them back for a results row; evaluation imports this module, never the budget's planning.
"""

from __future__ import annotations

import json
from pathlib import Path

SPENT_KEYS = ("step", "anchors_seen", "encoder_images", "wall_seconds")
"""Cumulative over the job (resumed runs included): optimiser steps; anchors drawn (global batch items);
images through the encoder (every view of every anchor, extra negatives included, and the photos a strategy
re-embeds for its bank: :meth:`geocontrast.strategies.Strategy.refresh`); wall_seconds: time in the
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
