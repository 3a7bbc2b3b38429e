"""Auxiliary geographic terms of the NT-Xent factorial (:mod:`geocontrast.strategies.contrastive`): the loss is
NT-Xent plus λ × the term, on the anchor view's encoder features. Each term has its weight option (λ, default 0:
no term, no head, so the strategy is exactly its point of the factorial) and adds heads, never views: the images
through the encoder, and the sampled batches, are those of the strategy without it.

- :class:`LocationAlignment` (``location_weight``): a symmetric InfoNCE between the image embedding and a location
  (and date) embedding (:class:`~geocontrast.losses.SymmetricInfoNCELoss`), as CSP (Mai et al. ICML 2023),
  SatCLIP and GeoCLIP align them, here with the image encoder training beside SimCLR. The location encoder is
  the geographic prior's network (:class:`~geocontrast.prior.location.LocationModel`, Mac Aodha et al.'s residual
  MLP, which CSP uses too) on the prior's encoding of place and day, trained jointly.
- :class:`ClusterPrediction` (``pretext_weight``): cross entropy of a linear head predicting the photo's geographic
  cluster, k-means on the train photos' coordinates (Ayush et al. ICCV 2021, geography-aware SSL).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geocontrast.geo.training_data import TrainingData
from geocontrast.losses import SymmetricInfoNCELoss
from geocontrast.models import ProjectionHead
from geocontrast.prior.location import LocationModel
from geocontrast.prior.model import InputEncoding, PriorSettings

KMEANS_SAMPLE = 100_000
"""At most this many located train photos fit the k-means (a seeded uniform sample); every photo is then assigned
to its nearest centre. 500,000 photos cost no more than 100,000 this way."""


def auxiliary_terms(section: str, data: TrainingData, anchors: np.ndarray, seed: int, options: dict) -> list:
    """The terms whose weight in ``options`` is not 0, built on ``data`` (``anchors``: the train rows whose
    coordinates the clusters are fitted to; ``seed``: the job's seed, which seeds them)."""
    for key in ("location_weight", "pretext_weight"):
        if not float(options[key]) >= 0:
            raise ValueError(f"{section}.{key} must be >= 0 (0: no term), got {options[key]}")
    terms = []
    if float(options["location_weight"]) > 0:
        terms.append(LocationAlignment(data, options))
    if float(options["pretext_weight"]) > 0:
        terms.append(ClusterPrediction(section, data, anchors, seed, options))
    return terms


def latitude_longitude(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) lat, lon in degrees of (N, 3) unit vectors (NaN rows give NaN)."""
    return np.degrees(np.arcsin(np.clip(unit[:, 2], -1.0, 1.0))), np.degrees(np.arctan2(unit[:, 1], unit[:, 0]))


class LocationAlignment:
    """λ × symmetric InfoNCE between ``location_image`` (a projection head on the anchor view's features) and
    ``location`` (the location encoder on the photo's encoded place and, with ``location_date``, day of year).

    Options: ``location_weight`` (λ), ``location_temperature``, ``location_date``; the embeddings have
    ``projection_dim`` dimensions. Photos without coordinates are masked out of the term (neither anchor nor
    negative); an undated photo's day encodes as (0, 0), off the circle of the dated ones.
    """

    name = "location"

    def __init__(self, data: TrainingData, options: dict):
        self.weight = float(options["location_weight"])
        self.options = options
        self.encoding = InputEncoding(("location", "date") if options["location_date"] else ("location",))
        lat, lon = latitude_longitude(data.unit)
        self.located = np.isfinite(lat) & np.isfinite(lon)  # (N,)
        self.encoded = np.nan_to_num(self.encoding(lat, lon, data.day_of_year), nan=0.0)  # (N, width)
        self.criterion = SymmetricInfoNCELoss(float(options["location_temperature"]), gather_distributed=True)

    def heads(self, feature_dim: int) -> dict[str, nn.Module]:
        prior = PriorSettings()
        dim = int(self.options["projection_dim"])
        return {
            "location_image": ProjectionHead(feature_dim, int(self.options["projection_hidden_dim"]), dim),
            "location": LocationModel(dim, prior.hidden, prior.n_blocks, prior.dropout, self.encoding),
        }

    def loss(self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, anchors: np.ndarray) -> torch.Tensor:
        device = features["anchor"].device
        z_image = heads["location_image"](features["anchor"])  # (B, dim)
        z_location = heads["location"](torch.as_tensor(self.encoded[anchors], device=device))  # (B, dim)
        return self.criterion(z_image, z_location, torch.as_tensor(self.located[anchors], device=device))

    def diagnostics(self, batches: list[np.ndarray]) -> dict:
        """``located_share`` of the sampled anchors (the rest skip the term), ``batches_without_term``: batches
        with fewer than 2 located anchors (they contribute 0)."""
        located = [self.located[anchors] for anchors in batches]
        return {
            "weight": self.weight,
            "located_share": float(np.concatenate(located).mean()),
            "batches_without_term": int(sum(found.sum() < 2 for found in located)),
        }


class ClusterPrediction:
    """λ × cross entropy of ``pretext`` (a linear head on the anchor view's features) against the photo's
    geographic cluster: k-means with ``pretext_clusters`` centres on the unit vectors of the located train photos
    (at most :data:`KMEANS_SAMPLE` of them), seeded by the job's seed, so each replicate has its own clusters.
    Photos without coordinates have no target (-1) and no share of the term. Fewer distinct located places than
    ``pretext_clusters`` give that many clusters (``n_clusters``)."""

    name = "pretext"

    def __init__(self, section: str, data: TrainingData, anchors: np.ndarray, seed: int, options: dict):
        self.weight = float(options["pretext_weight"])
        self.requested = int(options["pretext_clusters"])
        if self.requested < 2:
            raise ValueError(f"{section}.pretext_clusters must be >= 2, got {self.requested}")
        self.train_rows = anchors[np.isfinite(data.unit[anchors]).all(axis=1)]  # located train photos
        if np.unique(data.unit[self.train_rows], axis=0).shape[0] < 2:
            raise ValueError(f"{section}: geo_pretext needs located train photos at 2 or more places")
        self.clusters, self.n_clusters = geographic_clusters(data.unit, self.train_rows, self.requested, seed)

    def heads(self, feature_dim: int) -> dict[str, nn.Module]:
        return {"pretext": nn.Linear(feature_dim, self.n_clusters)}

    def loss(self, features: dict[str, torch.Tensor], heads: nn.ModuleDict, anchors: np.ndarray) -> torch.Tensor:
        logits = heads["pretext"](features["anchor"]).float()  # (B, n_clusters)
        target = torch.as_tensor(self.clusters[anchors], device=logits.device)  # (B,)
        known = target >= 0
        per_row = F.cross_entropy(logits, target.clamp_min(0), reduction="none")  # (B,)
        return torch.where(known, per_row, 0.0).sum() / known.sum().clamp_min(1)  # no NaN when none is known

    def diagnostics(self, batches: list[np.ndarray]) -> dict:
        """``targeted_share`` of the sampled anchors, ``n_clusters`` (of ``pretext_clusters`` asked for) and the
        clusters' ``sizes`` in located train photos, largest first."""
        anchors = np.concatenate(batches)
        assigned = self.clusters[self.train_rows]
        return {
            "weight": self.weight,
            "targeted_share": float((self.clusters[anchors] >= 0).mean()),
            "n_clusters": self.n_clusters,
            "pretext_clusters": self.requested,
            "sizes": sorted(np.bincount(assigned, minlength=self.n_clusters).tolist(), reverse=True),
        }


def geographic_clusters(unit: np.ndarray, rows: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, int]:
    """((N,) int64 cluster of every located row, -1 without coordinates; the number of clusters): k-means
    (k-means++, sklearn) fitted to the unit vectors of the located ``rows`` (a seeded sample of :data:`KMEANS_SAMPLE`
    when more), k clusters, or as many as there are distinct places when fewer. Unit vectors: the Euclidean
    distance is the chord, monotone in the great-circle distance, with no seam at the antimeridian."""
    from sklearn.cluster import KMeans  # here: importing the strategies need not load scikit-learn

    located = np.isfinite(unit).all(axis=1)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[located[rows]]
    rng = np.random.default_rng(seed)
    if rows.size > KMEANS_SAMPLE:
        rows = np.sort(rng.choice(rows, KMEANS_SAMPLE, replace=False))
    places = np.unique(unit[rows], axis=0).shape[0]
    kmeans = KMeans(n_clusters=min(k, places), n_init=1, random_state=int(rng.integers(2**31)))
    kmeans.fit(unit[rows])
    clusters = np.full(unit.shape[0], -1, dtype=np.int64)
    clusters[located] = kmeans.predict(unit[located])
    return clusters, kmeans.n_clusters
