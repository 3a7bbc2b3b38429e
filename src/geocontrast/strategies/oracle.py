"""Oracle: the positive is another train photo of the same species, under a supervised contrastive loss
(SupCon, Khosla et al. 2020) where every same-species view of the batch counts as a positive. It uses every
train label, so it is an upper bound for the label-free strategies, not a competitor.

Anchors are the train rows with a species; a species with one train photo pairs it with itself (two
augmentations). Options: ``projection_dim`` (128), ``projection_hidden_dim`` (512); settings ``temperature``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geocontrast.losses import SupConLoss
from geocontrast.strategies.base import PairBatch, Strategy
from geocontrast.strategies.contrastive import projection_head


class Oracle(Strategy):
    name = "oracle"
    label_fraction = 100.0

    def __init__(self, data, settings):
        super().__init__(data, settings)
        self.criterion = SupConLoss(temperature=float(settings.temperature))
        self.codes, _ = data.species_codes()
        train = data.rows_of("train")
        self.rows = train[self.codes[train] >= 0]
        if self.rows.size < 2:
            raise ValueError(f"strategy {self.name!r}: fewer than 2 train rows with a species")
        order = np.argsort(self.codes[self.rows], kind="stable")
        self.by_species = self.rows[order]  # train rows grouped by species
        codes = self.codes[self.by_species]
        self.starts = np.searchsorted(codes, np.arange(codes.max() + 1))
        self.counts = np.bincount(codes, minlength=codes.max() + 1)
        self.position = np.zeros(data.n_rows, dtype=np.int64)  # each train row's index within its species group
        self.position[self.by_species] = np.arange(codes.size) - self.starts[codes]

    def anchor_rows(self) -> np.ndarray:
        return self.rows

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        species = self.codes[anchors]
        others = self.counts[species] - 1  # photos of the species besides the anchor
        pick = (rng.random(anchors.size) * np.maximum(others, 1)).astype(np.int64)  # uniform in [0, others)
        pick += pick >= self.position[anchors]  # skip the anchor's own place in its group
        positive = np.where(others > 0, self.by_species[self.starts[species] + np.minimum(pick, others)], anchors)
        return PairBatch(views={"anchor": anchors, "positive": positive}, targets=species)

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        return nn.ModuleDict({"projection": projection_head(encoder.feature_dim, self.options)})

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        project = heads["projection"]
        z = torch.cat([project(features["anchor"]), project(features["positive"])])  # (2B, out_dim)
        labels = torch.as_tensor(np.concatenate([batch.targets, batch.targets]), device=z.device)  # (2B,)
        return self.criterion(z, labels)
