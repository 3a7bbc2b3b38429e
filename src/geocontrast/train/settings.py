"""The settings of one pretraining job, config ``pretrain`` less the keys that choose the jobs.

Built once by the CLI (:mod:`geocontrast.train.__main__`) from ``--params-json`` and passed down; this module
imports no torch, so the workflow could read it to plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from geocontrast.settings import Settings


@dataclass(frozen=True)
class PretrainSettings(Settings):
    """How one encoder is pretrained; each field is config ``pretrain.<name>`` (with its default) except ``seed``
    (one of ``pretrain.seeds``), ``options`` (``pretrain.strategy_options.<strategy>``), ``deterministic`` (the
    top-level key) and ``progress`` (a job's own switch). The other keys of ``pretrain`` choose the jobs
    (:data:`geocontrast.registry.PRETRAIN_JOB_KEYS`)."""

    section: ClassVar[str] = "pretrain"

    encoder: str = "cnn5_half"
    init_weights: str | None = None  # a weights file or torchvision weights name, from local files only
    resolution: int = 32
    epochs: int = 5  # epochs over the train split, whatever the strategy's anchors (geocontrast.train.budget)
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    augment_strength: float = 1.0
    augment: Mapping[str, Any] = field(default_factory=dict)  # AugmentRecipe settings over its defaults
    seed: int = 0
    steps_per_epoch: int | None = None  # cap on optimiser steps per epoch (None: train rows // batch_size)
    warmup_fraction: float = 0.1  # share of all steps spent in linear warm-up
    knn_k: int = 20
    label_fraction: float = 10  # percent; labelled_<pct> rows supervised trains on and the kNN monitor's bank
    monitor_size: int = 512  # at most this many val and labelled train images in the per-epoch monitors
    pairs_from: Literal["train", "all"] = "train"  # rows positives/negatives may come from
    device: str = "auto"  # auto: cuda if available, else cpu
    amp: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA or on CPUs with bf16
    channels_last: bool = True
    compile: bool = False
    progress: bool = True  # tqdm bar on stderr
    options: Mapping[str, Any] = field(default_factory=dict)  # the strategy's own (registry.STRATEGIES)
    deterministic: bool = False  # geocontrast.determinism.make_deterministic: one thread, deterministic kernels
