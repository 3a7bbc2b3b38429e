"""The settings of each evaluation protocol, downstream task and the class-activation maps, typed once.

Each is the config section it names (``section``), with the schema's defaults; the CLIs build them from their
``--params-json`` (:func:`section_settings`) and pass them down. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from geocontrast.registry import RANKS
from geocontrast.settings import Settings


@dataclass(frozen=True)
class LinearSettings(Settings):
    """L2-regularised multinomial logistic regression on frozen features (full-batch L-BFGS, at most ``max_iter``
    iterations per penalty), its penalty λ·||W||² chosen on val from ``penalties``; also the ``<rank>_probe``
    tasks, genus_pairs' binary probes and fusion."""

    section: ClassVar[str] = "evaluate.linear"

    penalties: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    max_iter: int = 100


@dataclass(frozen=True)
class KnnSettings(Settings):
    """Cosine kNN: ``k`` neighbours vote with weight exp(similarity / ``temperature``)."""

    section: ClassVar[str] = "evaluate.knn"

    k: int = 20
    temperature: float = 0.07


CROP_AND_FLIP = {"jitter_probability": 0.0, "greyscale": 0.0, "blur": 0.0}
"""The fine-tune's augmentation over the recipe's defaults: the random resized crop and the flip only (colour is a
species cue that colour jitter and greyscale would teach the classifier to ignore)."""


@dataclass(frozen=True)
class FinetuneSettings(Settings):
    """Encoder + linear head trained end to end, early-stopped on val: the head from random weights or from the
    linear probe (LP-FT), trained at ``lr``, the encoder at ``lr × encoder_lr_scale``; ``deterministic`` is the
    top-level key."""

    section: ClassVar[str] = "evaluate.finetune"

    max_epochs: int = 30
    patience: int = 6
    val_every: int = 3
    batch_size: int = 32
    lr: float = 0.001
    encoder_lr_scale: float = 1.0
    head_init: Literal["random", "linear_probe"] = "linear_probe"
    weight_decay: float = 1e-4
    augment_strength: float = 0.5
    augment: Mapping[str, Any] = field(default_factory=lambda: dict(CROP_AND_FLIP))  # over AugmentRecipe's defaults
    device: str = "auto"
    deterministic: bool = False


@dataclass(frozen=True)
class GenusPairsSettings(Settings):
    """How many genus pairs of each kind, and the labelled train images a genus needs to be paired."""

    section: ClassVar[str] = "evaluate.genus_pairs"

    n_pairs: int = 3
    min_images: int = 2


@dataclass(frozen=True)
class MislabelSettings(Settings):
    """The share of labelled train images relabelled, and the neighbours that judge each image."""

    section: ClassVar[str] = "evaluate.mislabel"

    noise_fraction: float = 0.1
    k: int = 10


@dataclass(frozen=True)
class ClusteringSettings(Settings):
    """k-means restarts."""

    section: ClassVar[str] = "evaluate.clustering"

    n_init: int = 10


@dataclass(frozen=True)
class CamSettings(Settings):
    """Class-activation maps: ``n_photos`` test photos chosen with ``seed``, the classifier fine-tuned at
    ``class_rank``, the maps averaged over the classes of a coarser ``average_rank`` (CAM-Agg)."""

    section: ClassVar[str] = "report.cam"

    n_photos: int = 6
    class_rank: str = "species"
    average_rank: str = "genus"
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        ranks = [self.class_rank, self.average_rank]
        if any(rank not in RANKS for rank in ranks) or RANKS.index(ranks[0]) >= RANKS.index(ranks[1]):
            raise ValueError(f"{self.section}: average_rank must be a rank coarser than class_rank, got {ranks}")


SECTIONS: dict[str, type[Settings]] = {
    settings.section.removeprefix("evaluate."): settings
    for settings in (
        LinearSettings,
        KnnSettings,
        FinetuneSettings,
        GenusPairsSettings,
        MislabelSettings,
        ClusteringSettings,
    )
}
"""The settings of each ``evaluate.<section>`` a protocol or task reads (:data:`geocontrast.registry.PROTOCOLS`,
:data:`~geocontrast.registry.TASKS`)."""


def section_settings(section: str, mapping: Mapping[str, Any]) -> Settings:
    """The settings of config ``evaluate.<section>`` from ``mapping``; an unknown section, key or type is
    refused, naming it."""
    if section not in SECTIONS:
        raise ValueError(f"evaluate.{section}: unknown section; known: {', '.join(SECTIONS)}")
    return SECTIONS[section].from_mapping(mapping)
