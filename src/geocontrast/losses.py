"""Losses of the pretraining strategies: NT-Xent (SimCLR), SupCon, triplet margin, negative cosine (BYOL, SimSiam),
swapped prototype prediction with Sinkhorn-Knopp assignments (SwAV), the symmetric image-location InfoNCE (CLIP-style:
CSP, SatCLIP, GeoCLIP)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geocontrast.distributed import gather_with_gradients


def checked_temperature(temperature: float) -> float:
    """``temperature`` as a float; a value near zero is refused (the logits divide by it and would overflow)."""
    if not temperature > 1e-8:
        raise ValueError(
            f"temperature must be > 1e-8 (the logits divide by it and would overflow), got {temperature}; use e.g. 0.1"
        )
    return float(temperature)


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy (NT-Xent), SimCLR (Chen et al. 2020).

    For the 2B views of a batch, the anchor view i of item n has its positive (the other view of n) in the
    numerator; the denominator holds every other view of the batch (2B - 1 terms) plus every extra negative.
    Cosine similarity; computed in float32 even under autocast. Mean over the 2B views.

    Args:
        temperature: softmax temperature; must be > 1e-8 (division by a near-zero temperature overflows).
        false_negative_smoothing: epsilon in [0, 1) of the targets' smoothing towards the false negatives (the
            AN-LS idea of Cole et al. 2021, here over the denominator's likely false negatives): an anchor with
            false negatives puts 1 - epsilon of its target on its positive and epsilon on the in-batch false
            negatives' views, shared in proportion to their degree; 0 (default) is NT-Xent's one-hot target.
        gather_distributed: in a torch.distributed run (DistributedDataParallel, one process per GPU), each process
            passes its contiguous share of the global batch (rank r: items r*b ... r*b + b - 1) and the views and
            extra negatives of every process are gathered, so the denominators hold the whole global batch, as a
            single process would see it. The gather passes gradients back to the process that owns each item, so
            the parameter gradients averaged by DistributedDataParallel equal the single-process gradients of the
            global batch. Without an initialised process group (or with one process) it changes nothing.

    forward(z_a, z_b, extra_negatives=None, false_negatives=None, extra_false_negatives=None):
        z_a, z_b: (b, D) projections of the two views; row n of each forms a positive pair. b = B, or this
            process's share of the global batch of B items when gathering.
        extra_negatives: (e, D) additional negatives shared by all anchors (e.g. geo-chosen negatives); gathered
            into the global (E, D) like the views.
        false_negatives: (b, B) bool, or float degrees in [0, 1]: how much global item m, m != n, is a false
            negative of this process's item n (geo-near items). Both views of m enter both views of n's
            denominators weighted by 1 - degree: True or 1 removes them (the hard mask), 0 keeps them (plain
            NT-Xent), between down-weights them (weak negatives). The item's own column is ignored: the positive
            is never masked.
        extra_false_negatives: (b, E) bool or float degrees; global extra negative e enters item n's denominators
            weighted by 1 - degree (True removes it). The smoothing never targets extra negatives.

    Example:
        >>> loss = NTXentLoss(temperature=0.1)
        >>> value = loss(projection(encoder(view_a)), projection(encoder(view_b)))
    """

    def __init__(
        self, temperature: float = 0.1, false_negative_smoothing: float = 0.0, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        self.temperature = checked_temperature(temperature)
        if not 0.0 <= false_negative_smoothing < 1.0:
            raise ValueError(
                f"false_negative_smoothing must be in [0, 1) (the positive keeps 1 - epsilon), "
                f"got {false_negative_smoothing}"
            )
        self.false_negative_smoothing = float(false_negative_smoothing)
        self.gather_distributed = bool(gather_distributed)

    def _gather(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(every process's rows in rank order, this process's first row in them), when gathering."""
        return gather_with_gradients(z) if self.gather_distributed else (z, 0)

    def forward(
        self,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        extra_negatives: torch.Tensor | None = None,
        false_negatives: torch.Tensor | None = None,
        extra_false_negatives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if z_a.ndim != 2 or z_a.shape != z_b.shape:
            raise ValueError(f"z_a and z_b must both be (b, D), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
        local_size = z_a.shape[0]
        device = z_a.device
        with torch.autocast(device_type=device.type, enabled=False):
            a, b = F.normalize(z_a.float(), dim=1), F.normalize(z_b.float(), dim=1)  # (b, D) each
            all_a, offset = self._gather(a)  # (B, D)
            all_b, _ = self._gather(b)  # (B, D)
            batch_size = all_a.shape[0]
            z = torch.cat([a, b])  # (2b, D) this process's views: rows of the logits
            logits = z @ torch.cat([all_a, all_b]).T / self.temperature  # (2b, 2B)
            row = torch.arange(2 * local_size, device=device)  # (2b,)
            item = offset + row % local_size  # (2b,) global item of each row
            second_view = row >= local_size  # (2b,) rows of view b
            positive = item + batch_size * (~second_view)  # (2b,) column of the other view of the same item
            itself = torch.zeros_like(logits, dtype=torch.bool)  # (2b, 2B)
            itself[row, item + batch_size * second_view] = True
            logits = logits.masked_fill(itself, float("-inf"))
            degree = None  # (2b, 2B) false-negative degree of each column
            if false_negatives is not None:
                if false_negatives.shape != (local_size, batch_size):
                    raise ValueError(
                        f"false_negatives must be (b, B) = {(local_size, batch_size)}, "
                        f"got {tuple(false_negatives.shape)}"
                    )
                items = _degrees(false_negatives, device)  # (b, B)
                own = torch.arange(local_size, device=device)
                items[own, offset + own] = 0.0  # the item diagonal: the positive sits there
                degree = items.repeat(2, 2)  # (2b, 2B)
                logits = logits + torch.log1p(-degree)  # weight 1 - degree; log(0) = -inf drops a term
            if extra_negatives is not None:
                if extra_negatives.ndim != 2 or extra_negatives.shape[1] != z.shape[1]:
                    raise ValueError(
                        f"extra_negatives must be (e, D) with D = {z.shape[1]}, got {tuple(extra_negatives.shape)}"
                    )
                e, _ = self._gather(F.normalize(extra_negatives.float(), dim=1))  # (E, D)
                extra_logits = z @ e.T / self.temperature  # (2b, E)
                if extra_false_negatives is not None:
                    if extra_false_negatives.shape != (local_size, e.shape[0]):
                        raise ValueError(
                            f"extra_false_negatives must be (b, E) = {(local_size, e.shape[0])}, "
                            f"got {tuple(extra_false_negatives.shape)}"
                        )
                    extra_degree = _degrees(extra_false_negatives, device).repeat(2, 1)  # (2b, E)
                    extra_logits = extra_logits + torch.log1p(-extra_degree)
                logits = torch.cat([logits, extra_logits], dim=1)  # (2b, 2B + E)
            elif extra_false_negatives is not None:
                raise ValueError("extra_false_negatives given without extra_negatives")
            if self.false_negative_smoothing == 0.0 or degree is None:
                return F.cross_entropy(logits, positive)
            return self._smoothed_cross_entropy(logits, positive, degree)

    def _smoothed_cross_entropy(
        self, logits: torch.Tensor, positive: torch.Tensor, degree: torch.Tensor
    ) -> torch.Tensor:
        """Cross entropy against targets that move ``false_negative_smoothing`` of a row's mass from its positive
        to its in-batch false negatives, in proportion to their degree (rows without any keep the one-hot)."""
        if (degree >= 1.0).any():
            raise ValueError(
                "false_negative_smoothing needs false-negative degrees below 1: an item of degree 1 has left the "
                "denominator and cannot take target mass"
            )
        epsilon = self.false_negative_smoothing
        total = degree.sum(dim=1, keepdim=True)  # (2b, 1)
        target = torch.zeros_like(logits)  # (2b, 2B [+ E])
        target[:, : degree.shape[1]] = epsilon * degree / total.clamp_min(1e-12)
        rows = torch.arange(logits.shape[0], device=logits.device)
        target[rows, positive] = 1.0 - epsilon * (total[:, 0] > 0).float()
        log_prob = logits.log_softmax(dim=1)  # -inf at dropped terms, where the target is 0
        return -torch.where(target > 0, target * log_prob, torch.zeros_like(log_prob)).sum(dim=1).mean()


def _degrees(false_negatives: torch.Tensor, device) -> torch.Tensor:
    """False-negative degrees as float32 on ``device``: a bool mask gives 0 or 1; float degrees are checked to lie
    in [0, 1] (a host sync, which the plain mask spares the GPU)."""
    false_negatives = torch.as_tensor(false_negatives, device=device)
    degree = false_negatives.to(torch.float32).clone()
    if false_negatives.is_floating_point() and degree.numel() and not 0.0 <= degree.min() <= degree.max() <= 1.0:
        raise ValueError("false-negative degrees must lie in [0, 1]")
    return degree


class SymmetricInfoNCELoss(nn.Module):
    """Symmetric InfoNCE between two modalities (CLIP, Radford et al. 2021), as CSP (Mai et al. ICML 2023),
    SatCLIP (Klemmer et al. 2023) and GeoCLIP (Vivanco et al. NeurIPS 2023) align images with their locations.

    Item n's image embedding has its own location embedding as the positive and every other item's location
    embedding as a negative, and the other way round; the loss is the mean of the two cross entropies. Unlike
    :class:`NTXentLoss` the denominators hold the other modality only (B terms, not 2B - 1): an image is never
    contrasted with another image here. Items with ``valid`` False (a photo without coordinates) are neither
    anchors nor negatives; with fewer than 2 valid items a row has only its own positive and contributes 0.
    Cosine similarity, float32 even under autocast.

    Args:
        temperature: softmax temperature; must be > 1e-8 (CLIP starts its learnt one at 0.07).
        gather_distributed: in a torch.distributed run, every process's embeddings (and validity) are gathered
            so the negatives span the global batch, as :class:`NTXentLoss`; each process divides its rows' sum by
            the global number of valid rows over the number of processes, so that the processes' losses (and
            DistributedDataParallel's averaged gradients) are the single-process ones of the global batch.

    forward(z_image, z_location, valid=None): z_image, z_location (b, D), row n of each from one item;
    valid (b,) bool (None: every item).

    Example:
        >>> loss = SymmetricInfoNCELoss(temperature=0.07)
        >>> value = loss(project(encoder(view)), location_encoder(encode(lat, lon)), valid=has_coordinates)
    """

    def __init__(self, temperature: float = 0.07, gather_distributed: bool = False) -> None:
        super().__init__()
        self.temperature = checked_temperature(temperature)
        self.gather_distributed = bool(gather_distributed)

    def _gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        return gather_with_gradients(rows) if self.gather_distributed else (rows, 0)

    def forward(
        self, z_image: torch.Tensor, z_location: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        if z_image.ndim != 2 or z_image.shape != z_location.shape:
            raise ValueError(
                f"z_image and z_location must both be (b, D), got {tuple(z_image.shape)} and {tuple(z_location.shape)}"
            )
        local_size, device = z_image.shape[0], z_image.device
        valid = torch.ones(local_size, dtype=torch.bool, device=device) if valid is None else valid.to(device)
        if valid.shape != (local_size,):
            raise ValueError(f"valid must be (b,) = ({local_size},), got {tuple(valid.shape)}")
        with torch.autocast(device_type=device.type, enabled=False):
            image = F.normalize(z_image.float(), dim=1)  # (b, D)
            location = F.normalize(z_location.float(), dim=1)  # (b, D)
            all_image, offset = self._gather(image)  # (B, D)
            all_location, _ = self._gather(location)  # (B, D)
            all_valid = self._gather(valid.float())[0] > 0.5  # (B,)
            target = offset + torch.arange(local_size, device=device)  # (b,) each row's own column
            losses = []
            for rows, columns in ((image, all_location), (location, all_image)):
                logits = rows @ columns.T / self.temperature  # (b, B)
                logits = logits.masked_fill(~all_valid[None, :], float("-inf"))  # invalid items: no negatives
                logits = logits.masked_fill(~valid[:, None], 0.0)  # invalid rows: finite, weighted 0 below
                losses.append(F.cross_entropy(logits, target, reduction="none"))  # (b,)
            per_row = (losses[0] + losses[1]) / 2  # (b,)
            processes = all_valid.shape[0] // local_size
            # the global mean over valid rows, times the processes: their losses average to the one-process loss
            return torch.where(valid, per_row, 0.0).sum() * processes / all_valid.sum().clamp_min(1)


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al. 2020, the "L_out" form): every other view with the same label
    is a positive.

    For view i among the N views, with P(i) the other views of its label and A(i) all other views::

        loss_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i·z_p / t) / sum_{a in A(i)} exp(z_i·z_a / t) )

    Cosine similarity, float32 even under autocast; mean over the views that have at least one positive.

    Args:
        temperature: softmax temperature; must be > 1e-8.

    forward(z, labels): z (N, D) projections; labels (N,) int class of each view.

    Example:
        >>> loss = SupConLoss(temperature=0.1)
        >>> value = loss(torch.cat([z_anchor, z_same_species]), torch.cat([species, species]))
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = checked_temperature(temperature)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or labels.shape != (z.shape[0],):
            raise ValueError(f"z must be (N, D) and labels (N,), got {tuple(z.shape)} and {tuple(labels.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = F.normalize(z.float(), dim=1)  # (N, D)
            logits = z @ z.T / self.temperature  # (N, N)
            self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
            log_prob = logits.masked_fill(self_mask, float("-inf")).log_softmax(dim=1)  # (N, N)
            positives = (labels[:, None] == labels[None, :]) & ~self_mask  # (N, N)
            n_positives = positives.sum(dim=1)  # (N,)
            has_positive = n_positives > 0
            if not has_positive.any():
                raise ValueError("SupConLoss: no view has another view of its label in the batch")
            summed = log_prob.masked_fill(~positives, 0.0).sum(dim=1)  # (N,)
            return -(summed[has_positive] / n_positives[has_positive]).mean()


class TripletMarginLoss(nn.Module):
    """Triplet margin loss on L2-normalised embeddings (Schroff et al. 2015, FaceNet).

    ``mean(max(0, |a - p|^2 - |a - n|^2 + margin))`` with squared Euclidean distances between unit vectors
    (2 - 2 cos), so the margin is on the same scale for every encoder.

    Args:
        margin: required gap between the negative and the positive squared distance, in (0, 4].

    forward(anchor, positive, negative): (B, D) embeddings, row b of each forms one triplet.

    Example:
        >>> loss = TripletMarginLoss(margin=0.2)
        >>> value = loss(embed(anchors), embed(neighbours), embed(far_away))
    """

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        if not 0.0 < margin <= 4.0:
            raise ValueError(
                f"margin must be in (0, 4] (squared distances between unit vectors lie in [0, 4]), got {margin}"
            )
        self.margin = float(margin)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        if anchor.ndim != 2 or not anchor.shape == positive.shape == negative.shape:
            raise ValueError(
                f"anchor, positive and negative must all be (B, D), got {tuple(anchor.shape)}, "
                f"{tuple(positive.shape)} and {tuple(negative.shape)}"
            )
        with torch.autocast(device_type=anchor.device.type, enabled=False):
            a, p, n = (F.normalize(x.float(), dim=1) for x in (anchor, positive, negative))  # (B, D) each
            positive_distance = (a - p).pow(2).sum(dim=1)  # (B,)
            negative_distance = (a - n).pow(2).sum(dim=1)  # (B,)
            return F.relu(positive_distance - negative_distance + self.margin).mean()


class NegativeCosineLoss(nn.Module):
    """Symmetrised negative cosine similarity of a prediction and a stop-gradient target, as used by BYOL
    (Grill et al. 2020: ``2 - 2 cos``) and SimSiam (Chen & He 2021: ``-cos``); both forms differ by an affine
    map, so this returns BYOL's ``2 - 2 cos`` averaged over the two directions.

    forward(p_a, z_b, p_b, z_a): predictions p of one view against targets z of the other view, all (B, D).
    The targets are detached here: the stop-gradient is part of the loss, not the caller's duty.

    Example:
        >>> loss = NegativeCosineLoss()
        >>> value = loss(predict(project(f_a)), project(f_b), predict(project(f_b)), project(f_a))
    """

    def forward(self, p_a: torch.Tensor, z_b: torch.Tensor, p_b: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        if p_a.ndim != 2 or not p_a.shape == z_b.shape == p_b.shape == z_a.shape:
            raise ValueError("predictions and targets must all be (B, D) of one shape")
        with torch.autocast(device_type=p_a.device.type, enabled=False):
            forward = F.cosine_similarity(p_a.float(), z_b.detach().float(), dim=1)  # (B,)
            backward = F.cosine_similarity(p_b.float(), z_a.detach().float(), dim=1)  # (B,)
            return 2.0 - (forward + backward).mean()


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft assignments of B samples to K prototypes that share the samples equally (SwAV, Caron et al. 2020).

    The entropy-regularised transport of ``exp(scores / epsilon)`` onto uniform marginals, by Sinkhorn-Knopp's
    alternate normalisations: every prototype is brought to 1/K of the mass, then every sample to 1/B. Returns
    (B, K): each row sums to 1 exactly (a distribution over prototypes) and each column to B / K once the
    iterations have converged (SwAV stops after 3, on its way there). Float32, no gradient.

    Args:
        scores: (B, K) similarities of samples and prototypes (cosines).
        epsilon: entropic regularisation; smaller is closer to a hard assignment, > 0.
        iterations: rounds of the two normalisations, >= 1.
    """
    if not epsilon > 0 or iterations < 1:
        raise ValueError(f"epsilon must be > 0 and iterations >= 1, got {epsilon} and {iterations}")
    with torch.autocast(device_type=scores.device.type, enabled=False):
        q = torch.exp((scores.float() - scores.float().max()) / epsilon).T  # (K, B); the shift cancels below
        n_prototypes, n_samples = q.shape
        q /= q.sum()
        for _ in range(iterations):
            q /= q.sum(dim=1, keepdim=True) * n_prototypes  # every prototype holds 1/K
            q /= q.sum(dim=0, keepdim=True) * n_samples  # every sample holds 1/B
        return (q * n_samples).T  # (B, K)


class SwAVLoss(nn.Module):
    """Swapped prediction of prototype assignments, SwAV (Caron et al. 2020).

    Each view's projection is scored against the prototypes (cosine). The first ``n_assigned`` views (the two
    full-size views) get codes from :func:`sinkhorn_knopp` on their scores, without gradient; every other view
    predicts each code by a softmax of its own scores at ``temperature``, and the loss is the mean cross entropy
    over those (code, other view) pairs. Float32 even under autocast.

    Args:
        temperature: softmax temperature of the predictions; > 1e-8.
        epsilon, iterations: of :func:`sinkhorn_knopp`.

    forward(projections, prototypes, n_assigned=2): projections, one (B, D) per view (normalised here);
    prototypes (K, D) (normalised here). Each process assigns its own share of the batch (SwAV sums the
    transport over processes; not done here).

    Example:
        >>> loss = SwAVLoss(temperature=0.1)
        >>> value = loss([project(encoder(view_a)), project(encoder(view_b))], prototypes.weight)
    """

    def __init__(self, temperature: float = 0.1, epsilon: float = 0.05, iterations: int = 3) -> None:
        super().__init__()
        self.temperature = checked_temperature(temperature)
        if not epsilon > 0 or iterations < 1:
            raise ValueError(f"sinkhorn epsilon must be > 0 and iterations >= 1, got {epsilon} and {iterations}")
        self.epsilon, self.iterations = float(epsilon), int(iterations)

    def forward(
        self, projections: Sequence[torch.Tensor], prototypes: torch.Tensor, n_assigned: int = 2
    ) -> torch.Tensor:
        if len(projections) < 2 or not 1 <= n_assigned <= len(projections):
            raise ValueError(
                f"SwAVLoss needs >= 2 views and 1 <= n_assigned <= views, got {len(projections)} and {n_assigned}"
            )
        if prototypes.ndim != 2 or any(z.ndim != 2 or z.shape[1] != prototypes.shape[1] for z in projections):
            raise ValueError("projections must be (B, D) each and prototypes (K, D), with one D")
        with torch.autocast(device_type=prototypes.device.type, enabled=False):
            c = F.normalize(prototypes.float(), dim=1)  # (K, D)
            scores = [F.normalize(z.float(), dim=1) @ c.T for z in projections]  # (B, K) per view
            losses = []
            for assigned in range(n_assigned):
                codes = sinkhorn_knopp(scores[assigned].detach(), self.epsilon, self.iterations)  # (B, K)
                for view, view_scores in enumerate(scores):
                    if view != assigned:
                        log_prob = F.log_softmax(view_scores / self.temperature, dim=1)  # (B, K)
                        losses.append(-(codes * log_prob).sum(dim=1).mean())
            return torch.stack(losses).mean()
