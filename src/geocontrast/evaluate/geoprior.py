"""Presence-only geographic prior P(y | lat, lon) and its combination with an image classifier.

After Mac Aodha et al. 2019, "Presence-only geographical priors for fine-grained image classification", and
Cole et al. 2023, "Spatial implicit neural representations for global-scale species mapping" (SINR): a residual
MLP maps a wrap-around encoding of (lat, lon) to one presence logit per species, trained from presence-only
observations with the "assume negative, full" loss (:func:`assume_negative_loss`): at an observation of species y
every other species is assumed absent, and at a random location every species is. At test time
P(y | image, x) ∝ P(y | image) · P(y | x) (:func:`combine`).

CLI (for the workflow's geoprior rule)::

    python -m geocontrast.evaluate.geoprior --manifest manifest.parquet --splits splits.parquet \\
        --label-fraction 10 --out-dir geoprior [--params-json '{"epochs": 100}'] [--seed 0] [--threads 1]

writes ``probs.npy`` ((N, C) float32, every manifest row, manifest order, rows without coordinates all 1.0),
``prior.json`` (``classes``, params, ``n_train`` and the location model's own val/test accuracy, for reporting
only) and ``grid.npz`` (the prior on a lat/lon grid over the observations, for range maps: ``lat`` (n_lat,),
``lon`` (n_lon,) ascending cell centres, ``values`` (C, n_lat, n_lon) float32, ``species`` (C,)) into
``--out-dir``. When no labelled train row has coordinates the prior is skipped: ``probs.npy`` has no columns,
``grid.npz`` no species and ``prior.json`` says why under ``skipped`` (:func:`load_prior` reads both).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geocontrast.atomic import atomic_path, write_json
from geocontrast.cli import json_object
from geocontrast.data.manifest import read_manifest
from geocontrast.evaluate.metrics import most_common_scores, top_k_accuracy
from geocontrast.geo.training_data import training_data

if TYPE_CHECKING:
    import torch

    from geocontrast.models.location import LocationModel

# Chosen on the val split of the default world (labelled_10: 286 observations, 71 species; 2-3 seeds each):
# λ 8-256, 25-300 epochs, batch 64 to full, lr 1e-3 to 1e-2, weight decay 1e-4 to 1e-2 and dropout 0 or 0.5 all
# gave top-1 0.14-0.19 and top-5 0.45-0.50 (most common species 0.158 / 0.437); λ <= 4 learns only the most
# common species, 500 epochs overfit (top-5 0.43-0.45). These are among the best and take ~200 small steps.
DEFAULTS: dict = {
    "hidden": 256,  # width of the residual MLP
    "n_blocks": 4,  # residual blocks
    "dropout": 0.5,  # inside each residual block
    "pos_weight": 16.0,  # λ: weight of the observed species' term against the C - 1 assumed absences
    "epochs": 40,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "background": "bbox",  # pseudo-negatives drawn within the training locations' bounding box, or the globe
    "device": "auto",  # auto: cuda if available, else cpu
}
BACKGROUNDS = ("bbox", "globe")
TOP_K = (1, 5)
PROBS, PRIOR, GRID = "probs.npy", "prior.json", "grid.npz"
GRID_CELLS = 96  # per axis of the range grid written for maps


def resolve_params(params: dict) -> dict:
    """``params`` over :data:`DEFAULTS`, checked; unknown keys are refused (a typo would silently use a default)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown geoprior params {unknown}; known: {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **params}
    if params["background"] not in BACKGROUNDS:
        raise ValueError(f"geoprior param background must be one of {BACKGROUNDS}, got {params['background']!r}")
    for key in ("hidden", "epochs", "batch_size"):
        if int(params[key]) < 1:
            raise ValueError(f"geoprior param {key} must be >= 1, got {params[key]}")
    if float(params["pos_weight"]) <= 0:
        raise ValueError(f"geoprior param pos_weight must be > 0, got {params['pos_weight']}")
    return params


def encode_location(lat, lon) -> np.ndarray:
    """(N, 4) float32 wrap-around encoding [sin(πλ), cos(πλ), sin(πφ), cos(πφ)] with λ = lon/180, φ = lat/90.

    Longitudes -180 and 180 encode identically, so the model is continuous across the antimeridian.
    NaN coordinates give NaN rows.
    """
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    if lat.shape != lon.shape:
        raise ValueError(f"lat has {lat.size} values, lon {lon.size}")
    angles = np.pi * np.stack([lon / 180.0, lat / 90.0], axis=1)  # (N, 2)
    return np.stack(
        [np.sin(angles[:, 0]), np.cos(angles[:, 0]), np.sin(angles[:, 1]), np.cos(angles[:, 1])], axis=1
    ).astype(np.float32)


def assume_negative_loss(
    logits: torch.Tensor, random_logits: torch.Tensor, targets: torch.Tensor, pos_weight: float
) -> torch.Tensor:
    """Cole et al.'s "AN-full" loss, the batch mean of, per observation of species y at x with a random location r,

        −λ·log σ(f(x))_y − Σ_{c≠y} log(1 − σ(f(x))_c) − Σ_c log(1 − σ(f(r))_c)

    ``logits``: (B, C) at the observations; ``random_logits``: (B, C) at random locations; ``targets``: (B,) int64
    species; ``pos_weight``: λ > 0. Sums over species (SINR averages over them, which only rescales the loss).
    log σ(z) and log(1 − σ(z)) = log σ(−z) are computed as logsigmoid, exact and finite for any logit.
    """
    import torch.nn.functional as F

    if pos_weight <= 0:
        raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
    targets = targets.reshape(-1, 1)
    log_present = F.logsigmoid(logits).gather(1, targets)[:, 0]  # (B,)
    log_absent = F.logsigmoid(-logits)  # (B, C)
    log_absent_others = log_absent.sum(1) - log_absent.gather(1, targets)[:, 0]  # (B,)
    log_absent_random = F.logsigmoid(-random_logits).sum(1)  # (B,)
    return -(pos_weight * log_present + log_absent_others + log_absent_random).mean()


def location_bbox(lat, lon) -> tuple[float, float, float, float]:
    """(lat_min, lat_max, lon_west, lon_width) of finite points, degrees: the smallest longitude interval that
    holds every point (it may cross the antimeridian: west + width > 180)."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    usable = np.isfinite(lat) & np.isfinite(lon)
    if not usable.any():
        raise ValueError("no finite coordinates to take a bounding box of")
    lons = np.unique(lon[usable])
    # The interval is the circle minus its largest empty gap between consecutive longitudes.
    gaps = np.append(np.diff(lons), lons[0] + 360.0 - lons[-1])  # gaps[i]: after lons[i]; the last wraps around
    widest = int(np.argmax(gaps))
    west = lons[(widest + 1) % lons.size]
    return float(lat[usable].min()), float(lat[usable].max()), float(west), float(360.0 - gaps[widest])


def random_locations(
    n: int, bbox: tuple[float, float, float, float] | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of n points uniform on the sphere within ``bbox`` (:func:`location_bbox`; None: the globe)."""
    lat_min, lat_max, west, width = (-90.0, 90.0, -180.0, 360.0) if bbox is None else bbox
    # Uniform area: sin(lat) is uniform, not lat.
    sin_lat = rng.uniform(np.sin(np.radians(lat_min)), np.sin(np.radians(lat_max)), n)
    lon = west + rng.uniform(0.0, width, n)
    return np.degrees(np.arcsin(sin_lat)), (lon + 180.0) % 360.0 - 180.0


def fit_location_model(lat, lon, labels, n_classes: int, params: dict, seed: int) -> LocationModel:
    """Train a :class:`~geocontrast.models.location.LocationModel` on presence-only observations; returns it in
    eval mode on its device.

    ``lat``, ``lon``: (N,) finite degrees; ``labels``: (N,) species indices in [0, n_classes); ``params``: see
    :data:`DEFAULTS`. AdamW at a constant lr; each step pairs every observation with a fresh
    random location. Deterministic given ``seed`` (on one device and thread count); the global RNGs are untouched.
    """
    import torch

    from geocontrast.models.location import LocationModel
    from geocontrast.runtime import resolve_device

    params = resolve_params(params)
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if not lat.shape == lon.shape == labels.shape or lat.ndim != 1:
        raise ValueError(
            f"lat, lon and labels must be (N,) arrays of one length, got {lat.shape}, {lon.shape}, {labels.shape}"
        )
    if lat.size == 0:
        raise ValueError("no observations to fit a location model on")
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError("lat and lon must be finite (drop rows without coordinates first)")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]")

    device = resolve_device(params["device"])
    bbox = location_bbox(lat, lon) if params["background"] == "bbox" else None
    rng = np.random.default_rng(seed)
    encoded = torch.from_numpy(encode_location(lat, lon)).to(device)  # (N, 4)
    targets = torch.from_numpy(labels).to(device)  # (N,)
    batch_size = min(int(params["batch_size"]), lat.size)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # weight init and dropout
        model = LocationModel(n_classes, int(params["hidden"]), int(params["n_blocks"]), float(params["dropout"])).to(
            device
        )
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
        )
        model.train()
        for _ in range(int(params["epochs"])):
            order = torch.from_numpy(rng.permutation(lat.size)).to(device)
            for batch in torch.split(order, batch_size):
                random_encoded = torch.from_numpy(encode_location(*random_locations(batch.numel(), bbox, rng)))
                logits = model(torch.cat([encoded[batch], random_encoded.to(device)]))  # (2B, C)
                loss = assume_negative_loss(
                    logits[: batch.numel()], logits[batch.numel() :], targets[batch], float(params["pos_weight"])
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"location model loss {loss.item()}; lower lr")
    return model.eval()


def location_probabilities(model: LocationModel, lat, lon, chunk: int = 65536) -> np.ndarray:
    """(N, C) float32 presence probabilities σ(f(x)); rows with NaN lat or lon are 1.0 everywhere (no prior)."""
    import torch

    encoded = encode_location(lat, lon)  # (N, 4)
    usable = np.isfinite(encoded).all(axis=1)
    device = next(model.parameters()).device
    model.eval()
    probs = np.ones((encoded.shape[0], model.classes.out_features), dtype=np.float32)
    rows = np.flatnonzero(usable)
    with torch.no_grad():
        for start in range(0, rows.size, chunk):
            part = rows[start : start + chunk]
            probs[part] = torch.sigmoid(model(torch.from_numpy(encoded[part]).to(device))).float().cpu().numpy()
    return probs


def combine(image_probs, location_probs) -> np.ndarray:
    """(N, C) P(y | image, x) ∝ P(y | image) · P(y | x), each row normalised to sum 1 (float64 products).

    A row of ones in ``location_probs`` (no coordinates) returns the image probabilities unchanged. A row whose
    product is zero everywhere (the prior rules out every species the image allows) also keeps the image row.
    Returns ``image_probs``' float dtype (float64 for integer input).
    """
    image = np.asarray(image_probs)
    location = np.asarray(location_probs)
    if image.shape != location.shape or image.ndim != 2:
        raise ValueError(f"image_probs {image.shape} and location_probs {location.shape} must be equal (N, C)")
    product = image.astype(np.float64) * location.astype(np.float64)  # (N, C)
    total = product.sum(axis=1, keepdims=True)  # (N, 1)
    image_total = image.sum(axis=1, keepdims=True, dtype=np.float64)
    combined = np.where(total > 0, product / np.where(total > 0, total, 1.0), image / image_total)
    return combined.astype(image.dtype if np.issubdtype(image.dtype, np.floating) else np.float64)


def range_grid_axes(lat, lon, cells: int = GRID_CELLS, pad: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Ascending cell-centre axes (n_lat,), (n_lon,) of a grid over the observations' extent plus ``pad`` of it
    on each side, for range maps of the prior."""
    axes = []
    for values in (lat, lon):
        low, high = float(np.min(values)), float(np.max(values))
        margin = pad * max(high - low, 1e-3)
        axes.append(np.linspace(low - margin, high + margin, cells))
    axes[0] = np.clip(axes[0], -90.0, 90.0)
    return axes[0], axes[1]


def skip_prior(reason: str, n_rows: int, classes: list[str], label_fraction: float, out_dir: Path) -> dict:
    """Write the outputs of a prior that cannot be fitted: ``probs.npy`` (n_rows, 0), an empty ``grid.npz`` and
    ``prior.json`` with ``skipped``: the reason (which :func:`load_prior` hands to the evaluations)."""
    print(f"geoprior: skipped: {reason}", file=sys.stderr)
    with atomic_path(out_dir / PROBS) as partial:
        np.save(partial, np.zeros((n_rows, 0), np.float32))
    with atomic_path(out_dir / GRID) as partial:
        empty = np.zeros(0)
        np.savez(partial, lat=empty, lon=empty, species=np.array([], dtype=str), values=np.zeros((0, 0, 0)))
    prior = {"classes": classes, "label_fraction": label_fraction, "skipped": reason}
    write_json(prior, out_dir / PRIOR)
    return prior


def load_prior(path: Path | None, reason_without: str) -> tuple[np.ndarray | None, str | None]:
    """The (N, C) prior at ``path`` (memory-mapped) and None, or None and why there is none: ``reason_without``
    when ``path`` is None, the ``skipped`` reason of the ``prior.json`` beside a prior that was skipped."""
    if path is None:
        return None, reason_without
    probs = np.load(path, mmap_mode="r")
    if probs.ndim == 2 and probs.shape[1] == 0:
        summary = Path(path).with_name(PRIOR)
        reason = json.loads(summary.read_text()).get("skipped") if summary.exists() else None
        return None, f"geographic prior skipped: {reason or 'no labelled train row with coordinates'}"
    return probs, None


def geoprior(
    manifest_path: Path, splits_path: Path, label_fraction: float, out_dir: Path, params: dict, seed: int = 0
) -> dict:
    """Fit the prior on the labelled train rows with coordinates; write ``probs.npy`` and ``prior.json``.

    Returns the ``prior.json`` content. Without a labelled train row with coordinates the prior is skipped
    (:func:`skip_prior`); raises ValueError naming the file when no row has a species.
    """
    params = resolve_params(params)
    manifest = read_manifest(Path(manifest_path))
    data = training_data(manifest, pd.read_parquet(splits_path))
    codes, classes = data.species_codes()  # (N,), sorted species names
    if not classes:
        raise ValueError(f"{manifest_path}: no row has a species")
    has_coords = manifest["has_coords"].to_numpy(bool)
    lat = np.where(has_coords, manifest["lat"].to_numpy(np.float64, na_value=np.nan), np.nan)
    lon = np.where(has_coords, manifest["lon"].to_numpy(np.float64, na_value=np.nan), np.nan)
    try:
        labelled = data.labelled_rows(label_fraction)
    except ValueError as error:
        raise ValueError(f"{splits_path}: {error}") from None
    train = labelled[has_coords[labelled] & (codes[labelled] >= 0)]
    if train.size == 0:
        reason = (
            f"none of the {labelled.size} train rows labelled under label_fraction {label_fraction:g} has "
            f"coordinates and a species in {manifest_path}"
        )
        return skip_prior(reason, len(manifest), classes, label_fraction, Path(out_dir))

    started = time.perf_counter()
    model = fit_location_model(lat[train], lon[train], codes[train], len(classes), params, seed)
    seconds = time.perf_counter() - started
    probs = location_probabilities(model, lat, lon)  # (N, C)

    prior = {
        "classes": classes,
        "params": params,
        "seed": seed,
        "label_fraction": label_fraction,
        "n_train": int(train.size),
        "fit_seconds": round(seconds, 3),
    }
    for split in ("val", "test"):
        rows = data.rows_of(split)
        rows = rows[has_coords[rows] & (codes[rows] >= 0)]
        prior[f"n_{split}"] = int(rows.size)
        # The most common labelled species is the baseline the prior has to beat. None (JSON null): no usable row.
        most_common = most_common_scores(codes[train], len(classes), rows.size)
        accuracy = top_k_accuracy(probs[rows], codes[rows], TOP_K) if rows.size else dict.fromkeys(TOP_K)
        baseline = top_k_accuracy(most_common, codes[rows], TOP_K) if rows.size else dict.fromkeys(TOP_K)
        for k in TOP_K:
            prior[f"{split}_top{k}"], prior[f"{split}_most_common_top{k}"] = accuracy[k], baseline[k]

    with atomic_path(Path(out_dir) / PROBS) as partial:
        np.save(partial, probs)
    grid_lat, grid_lon = range_grid_axes(lat[has_coords], lon[has_coords])
    with atomic_path(Path(out_dir) / GRID) as partial:
        lon_mesh, lat_mesh = np.meshgrid(grid_lon, grid_lat)  # (n_lat, n_lon)
        values = location_probabilities(model, lat_mesh.ravel(), lon_mesh.ravel())  # (n_lat * n_lon, C)
        np.savez(
            partial,
            lat=grid_lat,
            lon=grid_lon,
            species=np.array(classes, dtype=str),
            values=values.T.reshape(len(classes), *lat_mesh.shape).astype(np.float32),
        )
    write_json(prior, Path(out_dir) / PRIOR)
    return prior


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geocontrast.evaluate.geoprior", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="validated manifest (.parquet)")
    parser.add_argument("--splits", type=Path, required=True, help="splits (.parquet), manifest order")
    parser.add_argument("--label-fraction", type=float, required=True, help="percent: 10 uses labelled_10")
    parser.add_argument("--out-dir", type=Path, required=True, help=f"gets {PROBS} and {PRIOR}")
    parser.add_argument("--params-json", type=json_object, default="{}", help="location model params as a JSON object")
    parser.add_argument("--seed", type=int, default=0)
    # The matrices are small: one thread fitted the default world in 4.7 s, two took 35 s on 2 busy cores.
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    params = args.params_json

    import torch

    torch.set_num_threads(args.threads)
    try:
        prior = geoprior(args.manifest, args.splits, args.label_fraction, args.out_dir, params, args.seed)
    except ValueError as error:
        print(f"geoprior: {error}", file=sys.stderr)
        return 1
    print(json.dumps({key: value for key, value in prior.items() if key != "classes"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
