"""Supervised baseline: cross-entropy on the labelled train rows (encoder from scratch).

``supervised`` sees the ``label_fraction`` budget (percent, default 10: column ``labelled_10``; the workflow
pretrains it once per evaluated label budget, with that budget as ``label_fraction``); ``supervised_full`` sees
every labelled train row (``labelled_100``). Both put a linear classifier on the encoder
unless the options ``hidden_dim`` / ``dropout`` ask for two dense layers; ``classifier`` is the herbarium studies'
classifier network: the ``supervised`` budget with two dense layers, each preceded by batch-norm and dropout.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geocontrast.models import ClassifierHead
from geocontrast.strategies.base import PairBatch, Strategy


class Supervised(Strategy):
    name = "supervised"

    def __init__(self, data, settings):
        super().__init__(data, settings)
        self.label_fraction = float(self.trained_label_fraction(settings))
        self.codes, self.classes = data.species_codes()
        self.rows = data.labelled_rows(self.label_fraction)
        self.rows = self.rows[self.codes[self.rows] >= 0]
        if self.rows.size == 0:
            raise ValueError(
                f"strategy {self.name!r}: no labelled train rows at label_fraction {self.label_fraction:g} %"
            )

    @staticmethod
    def trained_label_fraction(settings) -> float:
        """Percent of the train labels it trains on: the job's ``label_fraction``."""
        return settings.label_fraction

    def anchor_rows(self) -> np.ndarray:
        return self.rows

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> PairBatch:
        anchors = np.asarray(anchors, dtype=np.int64)
        return PairBatch(views={"anchor": anchors}, targets=self.codes[anchors])

    def heads(self, encoder: nn.Module) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                "classifier": ClassifierHead(
                    encoder.feature_dim,
                    len(self.classes),
                    hidden_dim=int(self.options["hidden_dim"]),
                    dropout=float(self.options["dropout"]),
                )
            }
        )

    def loss(
        self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, batch: PairBatch, views: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        logits = heads["classifier"](features["anchor"])  # (B, n_classes)
        targets = torch.as_tensor(batch.targets, device=logits.device)
        return F.cross_entropy(logits.float(), targets)


class SupervisedFull(Supervised):
    name = "supervised_full"

    @staticmethod
    def trained_label_fraction(settings) -> float:
        return 100


class Classifier(Supervised):
    name = "classifier"
