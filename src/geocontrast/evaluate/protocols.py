"""The evaluation protocols: linear probe and kNN on frozen features, end-to-end fine-tuning, and their scoring.

Every protocol sees labelled train rows, labelled val rows (its only source for model selection) and test
inputs *without* test labels: no function here takes test labels except :func:`score`, which runs after
selection is over.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from geocontrast.data.splits import stratified_share
from geocontrast.determinism import make_deterministic
from geocontrast.evaluate import RANKS, TOP_K, similarity
from geocontrast.evaluate.settings import FinetuneSettings, KnnSettings, LinearSettings
from geocontrast.geo.training_data import training_data
from geocontrast.metrics import (
    ancestor_codes,
    confused_pairs,
    hit_record,
    macro_top_k_accuracy,
    rank_accuracy,
    top_k_accuracy,
)
from geocontrast.models import build_encoder
from geocontrast.prior.scores import WEIGHT_WITHOUT_VAL, choose_prior_weight, class_frequencies, combine
from geocontrast.runtime import encode_rows, gather_rows, keep_freed_memory
from geocontrast.train.augment import AugmentRecipe, BatchAugment
from geocontrast.train.checkpoint import atomic_save

TIE_BREAK = 1e-3  # zero-vote classes share at most this fraction of a row's smallest vote


@dataclass
class EvalRows:
    """Manifest rows of each role (labelled rows only) and the class index of every manifest row (-1: none)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    codes: np.ndarray
    names: list[str]
    ancestors: dict[str, np.ndarray]

    @property
    def n_classes(self) -> int:
        return len(self.names)

    @property
    def missing_ranks(self) -> dict[str, str]:
        """Why the accuracy at a rank coarser than the classes' own that the taxonomy does not give every class is
        not computed, per metric (acc_<rank>)."""
        finest = RANKS.index(next(iter(self.ancestors)))
        return {
            f"acc_{rank}": f"not every species has its {rank} in the manifest"
            for rank in RANKS[finest:]
            if rank not in self.ancestors
        }


def eval_rows(
    manifest: pd.DataFrame, splits: pd.DataFrame, label_fraction_pct: float, val_fraction: float | str = "budget"
) -> EvalRows:
    """The labelled train subset of the budget, the val rows model selection may use and the test rows, each with
    a species.

    ``val_fraction`` (config ``evaluate.val_fraction``): the share of the val photos with a species kept for
    selection, drawn stratified by species (:func:`geocontrast.data.splits.stratified_share`, seeded by the
    replicate's own val photos, so every protocol and job of a replicate keeps the same ones); ``"budget"``: the
    budget's own share (10 % of val at a 10 % label budget), so selection never sees more labels than the budget.
    """
    data = training_data(manifest, splits)
    codes, names = data.species_codes()
    train = data.labelled_rows(label_fraction_pct)
    val = _with_species(data.rows_of("val"), codes)
    share = float(label_fraction_pct) / 100.0 if val_fraction == "budget" else float(val_fraction)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"evaluate.val_fraction must be 'budget' or a share in (0, 1], got {val_fraction!r}")
    if val.size:
        val = val[stratified_share(manifest["image_id"].to_numpy()[val], codes[val], share)]
    rows = EvalRows(
        train=train[codes[train] >= 0],
        val=val,
        test=_with_species(data.rows_of("test"), codes),
        codes=codes,
        names=names,
        ancestors=ancestor_codes(names, manifest),
    )
    for role in ("train", "val", "test"):
        if getattr(rows, role).size == 0:
            raise ValueError(f"no labelled {role} rows at label fraction {label_fraction_pct} %")
    return rows


def _with_species(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return rows[codes[rows] >= 0]


def feature_rows(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n, D) float32 features of ``rows`` from (N, D) features of any float dtype; on a memory-mapped file only
    those rows are read."""
    return np.asarray(features[rows], dtype=np.float32)


@dataclass
class ProbeFit:
    """A fitted linear probe: logits = ((x - mean) / std) @ weight + bias over the ``classes`` it was fitted on
    (those with labelled train rows), float64."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    classes: np.ndarray  # (K,) class indices
    weight: torch.Tensor  # (D, K)
    bias: torch.Tensor  # (K,)


def fit_probe(train_x, train_y, val_x, val_y, settings: LinearSettings) -> tuple[ProbeFit, dict]:
    """L2-regularised multinomial logistic regression on frozen features, its penalty chosen on val top-1.

    Features are standardised with the labelled train mean and std. For each penalty λ of ``settings.penalties``,
    from the strongest to the weakest, the mean cross-entropy + λ·||W||² (the bias unpenalised) is minimised by
    full-batch L-BFGS in float64 (:func:`fit_logistic`), the first fit from W = 0 and the bias at the log class
    frequencies, each next one from the previous solution. Deterministic: no random initialisation, no batches.
    Ties in val top-1 go to the stronger penalty (the simpler model). Only the classes with labelled train rows
    are fitted (an absent class's bias would fall without end). Returns (the chosen fit, selection record: the
    grid, the chosen penalty, and val top-1 and the weights' norm ||W|| at each penalty).
    """
    mean, std = train_x.mean(axis=0, dtype=np.float64), train_x.std(axis=0, dtype=np.float64) + 1e-6
    train_t, val_t = (torch.as_tensor((x - mean) / std, dtype=torch.float64) for x in (train_x, val_x))
    fitted, train_codes = np.unique(train_y, return_inverse=True)  # (K,) classes with train rows, codes in 0..K-1
    train_labels = torch.as_tensor(train_codes, dtype=torch.int64)
    counts = torch.bincount(train_labels, minlength=fitted.size).double()
    weight = torch.zeros(train_t.shape[1], fitted.size, dtype=torch.float64)  # (D, K), warm-started along the grid
    bias = (counts / counts.sum()).log()  # (K,): the optimum at W = 0
    by_penalty, norms, best = {}, {}, None
    for penalty in sorted(settings.penalties, reverse=True):
        weight, bias = fit_logistic(train_t, train_labels, weight, bias, float(penalty), int(settings.max_iter))
        val_top1 = float((fitted[(val_t @ weight + bias).argmax(dim=1).numpy()] == val_y).mean())
        by_penalty[str(penalty)], norms[str(penalty)] = val_top1, float(weight.norm())
        if best is None or val_top1 > best[0]:
            best = (val_top1, penalty, weight, bias)
    val_top1, penalty, weight, bias = best
    selection = {
        "penalty": penalty,
        "penalties": sorted(settings.penalties, reverse=True),
        "val_top1": val_top1,
        "val_top1_by_penalty": by_penalty,
        "weight_norm_by_penalty": norms,
    }
    return ProbeFit(mean, std, fitted, weight, bias), selection


def linear_probe(train_x, train_y, val_x, val_y, test_x, n_classes: int, settings: LinearSettings):
    """The linear probe (:func:`fit_probe`) and its test probabilities. Returns (test probabilities (n, C),
    selection record). Classes without labelled train rows are ranked below every fitted class, each at
    ``TIE_BREAK`` × the row's smallest fitted probability, as kNN ranks classes without a vote."""
    fit, selection = fit_probe(train_x, train_y, val_x, val_y, settings)
    mean, std = fit.mean.astype(np.float32), fit.std.astype(np.float32)
    test_t = torch.as_tensor((test_x - mean) / std, dtype=torch.float32)  # (n, D): the largest input, in float32
    fitted_probs = softmax_in_place(test_t @ fit.weight.float() + fit.bias.float())  # (n, K)
    probs = (TIE_BREAK * fitted_probs.amin(dim=1, keepdim=True)).expand(-1, n_classes).clone()  # (n, C)
    probs[:, torch.as_tensor(fit.classes)] = fitted_probs
    probs /= probs.sum(dim=1, keepdim=True)
    return probs.numpy(), selection


def probe_head(fit: ProbeFit, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (C, D), bias (C,)) float32 of an ``nn.Linear`` on the raw features that gives the probe's logits;
    a class the probe did not fit gets weight 0 and a bias ``log(TIE_BREAK)`` below the lowest fitted bias."""
    scaled = fit.weight / torch.as_tensor(fit.std)[:, None]  # (D, K)
    fitted_bias = fit.bias - torch.as_tensor(fit.mean) @ scaled  # (K,)
    weight = torch.zeros(n_classes, fit.weight.shape[0], dtype=torch.float64)
    bias = torch.full((n_classes,), float(fitted_bias.min()) + float(np.log(TIE_BREAK)), dtype=torch.float64)
    weight[torch.as_tensor(fit.classes)] = scaled.T
    bias[torch.as_tensor(fit.classes)] = fitted_bias
    return weight.float(), bias.float()


LBFGS_TOLERANCE = 1e-6  # largest gradient entry at which a fit has converged (the loss is a mean over rows)


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, penalty: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean cross-entropy(x @ W + b, y) + ``penalty``·||W||² by L-BFGS (strong-Wolfe line search) from
    (``weight`` (D, K), ``bias`` (K,)), for at most ``max_iter`` iterations; returns the new (W, b)."""
    weight, bias = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=LBFGS_TOLERANCE,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(objective)
    return weight.detach(), bias.detach()


def knn_probabilities(
    train_x, train_y, test_x, n_classes: int, settings: KnnSettings, block_bytes: int = similarity.BLOCK_BYTES
) -> np.ndarray:
    """Cosine kNN: the k most similar labelled train rows vote with weight exp(similarity / temperature).

    Returns (n, C) vote shares (rows sum to 1). Classes without a vote are ranked below every voted class by
    their labelled frequency (as the most-common baseline would), not by class index: each gets
    ``TIE_BREAK`` × (its labelled share) × (the row's smallest vote), which changes no order among voted classes.
    Test rows are scored in blocks (:func:`geocontrast.evaluate.similarity.top_k_blocks`, ``block_bytes`` of
    similarities at a time), so no (test, train) matrix is ever held; the answer equals the dense computation.
    """
    bank = F.normalize(torch.as_tensor(train_x, dtype=torch.float32), dim=1)
    queries = F.normalize(torch.as_tensor(test_x, dtype=torch.float32), dim=1)
    k = min(int(settings.k), bank.shape[0])
    labels = torch.as_tensor(train_y)
    labelled_share = torch.bincount(labels, minlength=n_classes).double() / labels.numel()  # (C,)
    shares = np.empty((queries.shape[0], n_classes), dtype=np.float32)
    for start, top_similarity, index in similarity.top_k_blocks(queries, bank, k, block_bytes=block_bytes):
        votes = torch.zeros(index.shape[0], n_classes, dtype=torch.float64)  # (b, C)
        votes.scatter_add_(1, labels[index], (top_similarity.double() / float(settings.temperature)).exp())
        smallest_vote = torch.where(votes > 0, votes, torch.inf).amin(dim=1, keepdim=True)  # (b, 1)
        votes = torch.where(votes > 0, votes, TIE_BREAK * labelled_share * smallest_vote)
        shares[start : start + index.shape[0]] = (votes / votes.sum(dim=1, keepdim=True)).float().numpy()
    return shares


def finetune(
    encoder: nn.Module,
    cache: np.ndarray,
    rows: EvalRows,
    resolution: int,
    settings: FinetuneSettings,
    seed: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    *,
    probe: LinearSettings,
):
    """Fine-tune a classifier (:func:`fit_classifier`) and return (the classifier, test probabilities (n, C),
    selection record, val probabilities (n_val, C) of the restored model, for the prior's weight)."""
    model, selection = fit_classifier(encoder, cache, rows, resolution, settings, seed, device, amp_dtype, probe=probe)
    test_probs = _predict(model, cache, rows.test, resolution, device, amp_dtype)
    return model, test_probs, selection, _predict(model, cache, rows.val, resolution, device, amp_dtype)


def save_classifier(path, model: nn.Sequential, encoder_name: str, class_names: list[str], selection: dict) -> None:
    """Write a fine-tuned ``Sequential(encoder, Linear)``: {"classifier": state_dict, "encoder_name", "classes"
    (names in output order), "selection"}. The CAM job reads it instead of fine-tuning the same encoder again."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    saved = {"classifier": state, "encoder_name": encoder_name, "classes": list(class_names), "selection": selection}
    atomic_save(saved, path)


def load_classifier(path, small_input: bool) -> tuple[nn.Sequential, list[str], dict]:
    """The classifier written by :func:`save_classifier` (eval mode, CPU), its class names and selection record."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    encoder = build_encoder(saved["encoder_name"], small_input=small_input)
    model = nn.Sequential(encoder, nn.Linear(encoder.feature_dim, len(saved["classes"])))
    model.load_state_dict(saved["classifier"])
    return model.eval(), saved["classes"], saved["selection"]


def fit_classifier(
    encoder: nn.Module,
    cache: np.ndarray,
    rows: EvalRows,
    resolution: int,
    settings: FinetuneSettings,
    seed: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    *,
    probe: LinearSettings,
) -> tuple[nn.Sequential, dict]:
    """Train encoder + linear head end to end on the labelled train rows, early-stopped on val top-1.

    The head starts random or, with ``head_init: linear_probe`` (LP-FT, Kumar et al. 2022), as the linear probe
    of the encoder's frozen features (:func:`fit_probe` with ``probe``, the ``evaluate.linear`` settings), whose
    model is then validated as epoch 0. The head trains at ``lr``, the encoder at ``lr × encoder_lr_scale``. Every
    ``val_every`` epochs (and after the last) the val top-1 is measured; training stops once ``patience`` epochs
    have passed without improvement (or at ``max_epochs``) and the weights of the best validated epoch are
    restored. Returns (the classifier ``Sequential(encoder, Linear)`` in eval mode, selection record with the
    best epoch, the val top-1 of each validated epoch and, for LP-FT, the probe's selection).
    """
    if settings.deterministic:
        make_deterministic(device)
    keep_freed_memory()
    torch.manual_seed(seed)
    model = nn.Sequential(encoder, nn.Linear(encoder.feature_dim, rows.n_classes)).to(device)
    model = model.to(memory_format=torch.channels_last)
    record, curve, best = {}, {}, (-1.0, 0, None)
    val_labels = rows.codes[rows.val]
    if settings.head_init == "linear_probe":
        record["probe"] = _head_from_probe(model, cache, rows, resolution, device, amp_dtype, probe)
        val_probs = _predict(model, cache, rows.val, resolution, device, amp_dtype)
        val_top1 = top_k_accuracy(val_probs, val_labels, ks=(1,))[1]
        curve["0"], best = val_top1, (val_top1, 0, copy.deepcopy(model.state_dict()))
    recipe = AugmentRecipe.from_config(settings.augment)
    augment = BatchAugment(resolution, strength=float(settings.augment_strength), recipe=recipe).to(device)
    lr = float(settings.lr)
    groups = [
        {"params": model[0].parameters(), "lr": lr * float(settings.encoder_lr_scale)},
        {"params": model[1].parameters(), "lr": lr},
    ]
    optimiser = torch.optim.AdamW(groups, lr=lr, weight_decay=float(settings.weight_decay))
    generator = torch.Generator(device=device).manual_seed(seed)
    train_labels = torch.as_tensor(rows.codes[rows.train], device=device)
    batch_size = min(int(settings.batch_size), rows.train.size)
    max_epochs, val_every = int(settings.max_epochs), int(settings.val_every)
    for epoch in range(max_epochs):
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(rows.train.size)
        for start in range(0, order.size - batch_size + 1, batch_size):  # drop the ragged batch: BN needs > 1
            index = order[start : start + batch_size]
            images = augment(gather_rows(cache, rows.train[index], device), generator=generator)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = F.cross_entropy(
                    model(images.contiguous(memory_format=torch.channels_last)).float(), train_labels[index]
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if (epoch + 1) % val_every and epoch + 1 < max_epochs:
            continue
        val_probs = _predict(model, cache, rows.val, resolution, device, amp_dtype)
        val_top1 = top_k_accuracy(val_probs, val_labels, ks=(1,))[1]
        curve[str(epoch + 1)] = val_top1
        if val_top1 > best[0]:
            best = (val_top1, epoch + 1, copy.deepcopy(model.state_dict()))
        elif epoch + 1 - best[1] >= int(settings.patience):
            break
    val_top1, best_epoch, state = best
    model.load_state_dict(state)
    return model.eval(), {"best_epoch": best_epoch, "val_top1": val_top1, "val_top1_by_epoch": curve, **record}


def _head_from_probe(
    model: nn.Sequential, cache, rows: EvalRows, resolution, device, amp_dtype, probe: LinearSettings
) -> dict:
    """Set ``model``'s head to the linear probe (``probe``: its penalties and iterations) of its encoder's frozen
    train features (LP-FT); returns the probe's selection record."""
    model.eval()
    with torch.no_grad():
        train_x, val_x = (
            encode_rows(model[0], cache, part, resolution, device, amp_dtype).cpu().numpy()
            for part in (rows.train, rows.val)
        )
    fit, selection = fit_probe(train_x, rows.codes[rows.train], val_x, rows.codes[rows.val], probe)
    weight, bias = probe_head(fit, rows.n_classes)
    with torch.no_grad():
        model[1].weight.copy_(weight.to(device))
        model[1].bias.copy_(bias.to(device))
    return selection


def _predict(model: nn.Module, cache, rows, resolution, device, amp_dtype) -> np.ndarray:
    model.eval()
    return softmax_in_place(encode_rows(model, cache, rows, resolution, device, amp_dtype)).cpu().numpy()


SOFTMAX_BLOCK_ROWS = 4096


def softmax_in_place(logits: torch.Tensor) -> torch.Tensor:
    """The row softmax of (n, C) ``logits`` written over them a block of rows at a time, so that no second (n, C)
    tensor is held (each row's softmax is computed alone: the same values as ``logits.softmax(dim=1)``)."""
    for block in logits.split(SOFTMAX_BLOCK_ROWS):
        block.copy_(block.softmax(dim=1))
    return logits


def score(
    test_probs: np.ndarray,
    rows: EvalRows,
    location_probs: np.ndarray | None = None,
    val_probs: np.ndarray | None = None,
) -> dict:
    """Test metrics (:data:`geocontrast.evaluate.METRIC_COLUMNS`), the most frequent confusions and which test
    photos were hit (:func:`~geocontrast.metrics.hit_record`, for paired statistics).

    ``location_probs``: (N, C) geographic prior of every manifest row; without it the prior columns are NaN.
    With it, the prior is combined by :func:`~geocontrast.prior.scores.combine` with the class frequencies it was
    trained on divided out (a :class:`~geocontrast.prior.fit.LocationPrior`'s ``class_prior``; for a plain array,
    or a prior that did not record them, the labelled train frequencies), at the weight chosen on ``val_probs``
    ((n_val, C) image probabilities of the val rows; None: weight 1); ``prior_weighting`` records how.
    """
    labels = rows.codes[rows.test]
    micro = top_k_accuracy(test_probs, labels)
    macro = macro_top_k_accuracy(test_probs, labels, ks=(1, 5))
    predicted = test_probs.argmax(axis=1)
    result = {f"top{k}": micro[k] for k in TOP_K}
    result.update({f"macro_top{k}": macro[k] for k in (1, 5)})
    if location_probs is None:
        result.update({f"prior_top{k}": float("nan") for k in TOP_K})
    else:
        class_prior = getattr(location_probs, "class_prior", None)
        if class_prior is None:
            class_prior = class_frequencies(rows.codes[rows.train], rows.n_classes)
        weighting = (
            dict(WEIGHT_WITHOUT_VAL)
            if val_probs is None
            else choose_prior_weight(
                val_probs, location_probs, rows.codes[rows.val], class_prior, location_rows=rows.val
            )
        )
        combined = combine(test_probs, location_probs, class_prior, weighting["weight"], location_rows=rows.test)
        with_prior = top_k_accuracy(combined, labels)
        result.update({f"prior_top{k}": with_prior[k] for k in TOP_K})
        result["prior_weighting"] = weighting
    for k in (1, 5):
        result[f"prior_gain_top{k}"] = result[f"prior_top{k}"] - result[f"top{k}"]
    result.update({f"acc_{rank}": value for rank, value in rank_accuracy(predicted, labels, rows.ancestors).items()})
    result["confused_pairs"] = confused_pairs(predicted, labels, rows.names)
    result["test_hits"] = hit_record(test_probs, labels, rows.test)
    return result
