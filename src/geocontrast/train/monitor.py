"""Per-epoch monitors of a pretraining run: representation collapse and an online kNN accuracy (metrics.jsonl).

They encode fixed image subsets, chosen once from the seed, with the encoder in eval mode; their time is outside
the loop's images/s but inside its wall time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geocontrast.geo.training_data import TrainingData
from geocontrast.runtime import encode_rows
from geocontrast.train.settings import PretrainSettings

COLLAPSE_COSINE = 0.999
"""All holdout features point the same way: the representation has collapsed. Post-ReLU features of an untrained
or briefly trained cnn5 already reach a mean pairwise cosine of 0.98 (embedding_std ~0.006, far below 1/sqrt(D))
while their kNN accuracy is well above chance, so neither 1/sqrt(D) nor a looser cosine marks collapse."""


RANK_FALL = 0.5
"""A representation whose effective rank falls below this share of its peak (the untrained encoder's included)
has partly collapsed: its features crowd into fewer directions though they do not all point one way."""


def effective_rank(features: torch.Tensor) -> float:
    """exp of the entropy of the normalised singular values of the centred (n, D) features (Roy and Vetterli 2007):
    about the number of directions the features spread over, D at most."""
    singular = torch.linalg.svdvals((features - features.mean(dim=0)).float())
    shares = singular / singular.sum().clamp_min(1e-12)
    return float(torch.exp(-(shares * torch.log(shares.clamp_min(1e-12))).sum()))


def collapse_note(record: dict, start: dict, peak_rank: float) -> str:
    """How the representation of a monitor ``record`` collapsed, against the untrained encoder's ``start`` record
    and the highest effective rank so far: "total: ..." (:data:`COLLAPSE_COSINE`), "partial: ..." (its online kNN
    below the untrained encoder's, or its effective rank below :data:`RANK_FALL` of its peak), or ""."""
    if record["collapsed"]:
        return f"total: mean pairwise cosine {record['mean_pairwise_cosine']:.4f}"
    reasons = []
    if record["knn_top1"] is not None and start["knn_top1"] is not None and record["knn_top1"] < start["knn_top1"]:
        reasons.append(
            f"online kNN top-1 {record['knn_top1']:.3f} below the untrained encoder's {start['knn_top1']:.3f}"
        )
    if record["effective_rank"] < RANK_FALL * peak_rank:
        reasons.append(f"effective rank {record['effective_rank']:.1f} below {RANK_FALL:g} x its peak {peak_rank:.1f}")
    return f"partial: {'; '.join(reasons)}" if reasons else ""


class Monitor:
    """Per-epoch collapse and quality monitors on fixed image subsets (chosen once from the seed).

    ``embedding_std``: mean over dimensions of the std of L2-normalised features of the holdout (val) images
    (collapse drives it to 0; spread-out features are near 1/sqrt(D)); ``effective_rank``: theirs
    (:func:`effective_rank`); ``mean_pairwise_cosine``: their mean
    off-diagonal cosine similarity (collapse drives it to 1; ``collapsed`` when above ``COLLAPSE_COSINE``);
    ``knn_top1``: cosine kNN (k = knn_k, similarity-weighted votes) accuracy of the labelled val images against
    the labelled train bank (None when either is empty).
    """

    def __init__(
        self,
        cache: np.ndarray,
        data: TrainingData,
        settings: PretrainSettings,
        resolution: int,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        memory_format: torch.memory_format,
    ) -> None:
        self.cache, self.resolution, self.device = cache, resolution, device
        self.amp_dtype, self.memory_format = amp_dtype, memory_format
        self.k = int(settings.knn_k)
        size = int(settings.monitor_size)
        rng = np.random.default_rng([int(settings.seed), 2**31 - 1])
        codes, _ = data.species_codes()
        val = data.rows_of("val")
        holdout = val if val.size >= 2 else data.rows_of("train")
        self.holdout = np.sort(rng.permutation(holdout)[:size])
        bank = data.labelled_rows(float(settings.label_fraction))
        bank = bank[codes[bank] >= 0]
        self.bank = np.sort(rng.permutation(bank)[:size])
        queries = val[codes[val] >= 0]
        self.queries = np.sort(rng.permutation(queries)[:size])
        self.codes = torch.as_tensor(codes)

    def features(self, encoder: nn.Module, rows: np.ndarray) -> torch.Tensor:
        return F.normalize(
            encode_rows(encoder, self.cache, rows, self.resolution, self.device, self.amp_dtype, self.memory_format),
            dim=1,
        )

    @torch.no_grad()
    def __call__(self, encoder: nn.Module) -> dict:
        was_training = encoder.training
        encoder.eval()
        try:
            z = self.features(encoder, self.holdout)
            cosine = z @ z.T  # (n, n)
            n = z.shape[0]
            mean_cosine = float((cosine.sum() - cosine.diagonal().sum()) / max(1, n * (n - 1)))
            record = {
                "embedding_std": float(z.std(dim=0).mean()),
                "effective_rank": effective_rank(z),
                "mean_pairwise_cosine": mean_cosine,
                "collapsed": mean_cosine > COLLAPSE_COSINE,
                "knn_top1": None,
                "knn_k": self.k,
            }
            if self.bank.size and self.queries.size:
                record["knn_top1"] = self.knn_top1(
                    self.features(encoder, self.queries), self.features(encoder, self.bank)
                )
            return record
        finally:
            encoder.train(was_training)

    def knn_top1(self, queries: torch.Tensor, bank: torch.Tensor, temperature: float = 0.07) -> float:
        bank_labels = self.codes[self.bank].to(bank.device)  # (T,)
        query_labels = self.codes[self.queries].to(bank.device)  # (V,)
        k = min(self.k, bank.shape[0])
        similarity, index = (queries @ bank.T).topk(k, dim=1)  # (V, k)
        votes = torch.zeros(queries.shape[0], int(self.codes.max()) + 1, device=bank.device)
        votes.scatter_add_(1, bank_labels[index], (similarity / temperature).exp())
        return float((votes.argmax(dim=1) == query_labels).float().mean())
