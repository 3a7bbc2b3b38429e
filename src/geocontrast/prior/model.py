"""The presence-only location model of the geographic prior (:mod:`geocontrast.prior.fit` fits and
writes it): its parameters, the encodings of place and day, the assume-negative losses, the fit, and its presence
probabilities at points and on a range grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from geocontrast.settings import Settings

if TYPE_CHECKING:
    import torch

    from geocontrast.prior.location import LocationModel


# Chosen on the val split of the default world (labelled_10: 286 observations, 71 species; 2-3 seeds each):
# λ 8-256, 25-300 epochs, batch 64 to full, lr 1e-3 to 1e-2, weight decay 1e-4 to 1e-2 and dropout 0 or 0.5 all
# gave top-1 0.14-0.19 and top-5 0.45-0.50 (most common species 0.158 / 0.437); λ <= 4 learns only the most
# common species, 500 epochs overfit (top-5 0.43-0.45). These are among the best and take ~200 small steps.
# Inputs and loss, val top-1 / top-5 over model seeds 0-2 (bench/measure/geoprior_limits.py --losses full
# random_locations data_locations --data photos --seed S): location + date 0.182 / 0.557 (full),
# 0.191 / 0.550 (data_locations), 0.059 / 0.321 (random_locations); location only 0.160 / 0.475 (full),
# 0.154 / 0.477 (data_locations). The date is where the information is (the flowering season); full and
# data_locations tie within the seeds' spread, full stays (the thesis's loss, lower ECE).
INPUTS = ("location", "date")
SCALINGS = ("global", "regional")
LOSSES = ("full", "random_locations", "data_locations")
BACKGROUNDS = ("bbox", "globe")
GRID_CELLS = 96  # per axis of the range grid written for maps
DAYS_PER_YEAR = 365.0
MARGINAL_DAYS = (np.arange(12) + 0.5) * DAYS_PER_YEAR / 12 + 1  # mid-month days: a date model without a date
MARGINAL_LOCATIONS = 256  # training locations averaged over for a record with a date but no coordinates
PRESENCE_BLOCK_ELEMENTS = 1 << 24  # (point, species) presence values computed at once: 64 MB of float32
MIN_HALF_EXTENT_DEG = 0.5  # regional scaling of a (near) one-point box
AUTO_MIN_BATCH = 64
AUTO_STEPS_PER_EPOCH = 32  # batch_size auto: 19,000 occurrence records fit in 1,280 steps (~2 min), not 12,000


def batch_size(param, n_records: int) -> int:
    """The records per step: ``param``, or for "auto" 64 (:data:`AUTO_MIN_BATCH`) until the records fill more than
    :data:`AUTO_STEPS_PER_EPOCH` such batches, then n / that: an epoch stays a bounded number of steps, so an
    occurrence table far larger than the labelled photos does not multiply the fit's time."""
    if param == "auto":
        return max(AUTO_MIN_BATCH, -(-n_records // AUTO_STEPS_PER_EPOCH))
    return min(int(param), n_records)


@dataclass(frozen=True)
class PriorSettings(Settings):
    """The location model, its loss and its fit (config ``evaluate.geoprior``); ``inputs`` kept in the order of
    :data:`INPUTS`."""

    section: ClassVar[str] = "evaluate.geoprior"

    inputs: tuple[Literal["location", "date"], ...] = ("location", "date")  # the day of year as sin/cos
    scaling: Literal["global", "regional"] = "global"  # regional: the records' bounding box spans the input
    loss: Literal["full", "random_locations", "data_locations"] = "full"  # the assume-negative variant
    hidden: int = 256  # width of the residual MLP
    n_blocks: int = 4  # residual blocks
    dropout: float = 0.5  # inside each residual block
    pos_weight: float = 16.0  # λ: weight of the observed species' term against the assumed absences
    epochs: int = 40
    batch_size: int | Literal["auto"] = "auto"  # records per step; auto: see batch_size()
    lr: float = 1e-3
    weight_decay: float = 1e-4
    background: Literal["bbox", "globe"] = "bbox"  # pseudo-negatives within the records' bounding box, or anywhere
    device: str = "auto"  # auto: cuda if available, else cpu

    def __post_init__(self) -> None:
        super().__post_init__()
        where = self.section
        if not self.inputs or len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"{where}.inputs: expected distinct items of {list(INPUTS)}, got {list(self.inputs)}")
        object.__setattr__(self, "inputs", tuple(name for name in INPUTS if name in self.inputs))
        if self.batch_size != "auto" and self.batch_size < 1:
            raise ValueError(f"{where}.batch_size: expected >= 1 or 'auto', got {self.batch_size}")
        for key in ("hidden", "epochs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")
        if self.pos_weight <= 0:
            raise ValueError(f"{where}.pos_weight: expected > 0, got {self.pos_weight}")


def encode_location(lat, lon, region: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """(N, 4) float32 wrap-around encoding [sin(a), cos(a), sin(b), cos(b)] of longitude and latitude.

    Global (``region`` None): a = π·lon/180, b = π·lat/90, as Mac Aodha et al.; longitudes -180 and 180 encode
    identically, so the model is continuous across the antimeridian. Regional (``region`` a
    :func:`location_bbox`): each coordinate is scaled to x in [-1, 1] over the box (longitude as the signed
    offset from the box's centre, so a box across the antimeridian stays continuous) and a = (π/2)·x: the box
    spans half a circle, so its opposite edges stay apart. NaN coordinates give NaN rows.
    """
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    if lat.shape != lon.shape:
        raise ValueError(f"lat has {lat.size} values, lon {lon.size}")
    if region is None:
        angles = np.pi * np.stack([lon / 180.0, lat / 90.0], axis=1)  # (N, 2)
    else:
        lat_min, lat_max, west, width = region
        east_of_centre = (lon - (west + width / 2) + 180.0) % 360.0 - 180.0
        x_lon = east_of_centre / max(width / 2, MIN_HALF_EXTENT_DEG)
        x_lat = (lat - (lat_min + lat_max) / 2) / max((lat_max - lat_min) / 2, MIN_HALF_EXTENT_DEG)
        angles = np.pi / 2 * np.stack([x_lon, x_lat], axis=1)
    return np.stack(
        [np.sin(angles[:, 0]), np.cos(angles[:, 0]), np.sin(angles[:, 1]), np.cos(angles[:, 1])], axis=1
    ).astype(np.float32)


def encode_day(day_of_year) -> np.ndarray:
    """(N, 2) float32 [sin(πd), cos(πd)] with d = 2·(day − 1)/365 − 1 in [-1, 1): 31 December and 1 January are
    neighbours. NaN days give NaN rows."""
    day = np.asarray(day_of_year, dtype=np.float64).reshape(-1)
    angle = np.pi * (2.0 * (day - 1.0) / DAYS_PER_YEAR - 1.0)
    return np.stack([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


@dataclass(frozen=True)
class InputEncoding:
    """The model's inputs: ``inputs`` (a subset of :data:`INPUTS`, in that order) and the box of regional scaling
    (None: global). Called on (lat, lon, day_of_year) arrays it returns the (N, width) encoding."""

    inputs: tuple[str, ...] = ("location",)
    region: tuple[float, float, float, float] | None = None

    @property
    def width(self) -> int:
        return 4 * ("location" in self.inputs) + 2 * ("date" in self.inputs)

    def __call__(self, lat, lon, day_of_year=None) -> np.ndarray:
        parts = []
        if "location" in self.inputs:
            parts.append(encode_location(lat, lon, self.region))
        if "date" in self.inputs:
            days = np.full(np.size(lat), np.nan) if day_of_year is None else day_of_year
            parts.append(encode_day(days))
        return np.concatenate(parts, axis=1)


def assume_negative_loss(
    logits: torch.Tensor,
    random_logits: torch.Tensor | None,
    targets: torch.Tensor,
    pos_weight: float,
    variant: str = "full",
) -> torch.Tensor:
    """Cole et al.'s "assume negative" losses, the batch mean over observations of species y at x, with r a random
    location (and day) drawn for each:

    - ``full`` (AN-full): −λ·log σ(f(x))_y − Σ_{c≠y} log(1 − σ(f(x))_c) − Σ_c log(1 − σ(f(r))_c)
    - ``random_locations`` (AN-SSDL): −λ·log σ(f(x))_y − log(1 − σ(f(r))_y)
    - ``data_locations`` (AN-SLDS): −λ·log σ(f(x))_y − Σ_{c≠y} log(1 − σ(f(x))_c)

    ``logits``: (B, C) at the observations; ``random_logits``: (B, C) at the random points (unused, may be None,
    for data_locations); ``targets``: (B,) int64 species; ``pos_weight``: λ > 0 (SINR weights only AN-full's
    positive; here λ weights it in every variant). Sums over species (SINR averages, which only rescales).
    log σ(z) and log(1 − σ(z)) = log σ(−z) are computed as logsigmoid, exact and finite for any logit.
    """
    import torch.nn.functional as F

    if pos_weight <= 0:
        raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
    if variant not in LOSSES:
        raise ValueError(f"loss variant must be one of {LOSSES}, got {variant!r}")
    targets = targets.reshape(-1, 1)
    loss = -pos_weight * F.logsigmoid(logits).gather(1, targets)[:, 0]  # (B,)
    if variant in ("full", "data_locations"):
        log_absent = F.logsigmoid(-logits)  # (B, C)
        loss = loss - (log_absent.sum(1) - log_absent.gather(1, targets)[:, 0])
    if variant == "full":
        loss = loss - F.logsigmoid(-random_logits).sum(1)
    elif variant == "random_locations":
        loss = loss - F.logsigmoid(-random_logits).gather(1, targets)[:, 0]
    return loss.mean()


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


def fit_location_model(
    lat, lon, labels, n_classes: int, settings: PriorSettings, seed: int, day_of_year=None
) -> LocationModel:
    """Train a :class:`LocationModel` on presence-only records; returns it in eval mode on its device.

    ``lat``, ``lon``: (N,) finite degrees; ``labels``: (N,) species indices in [0, n_classes); ``day_of_year``:
    (N,) finite days, needed when the settings' inputs hold date. AdamW at a
    constant lr; each step pairs every record with a fresh random location (and a uniform random day).
    Deterministic given ``seed`` (on one device and thread count); the global RNGs are untouched.
    """
    import torch

    from geocontrast.prior.location import LocationModel
    from geocontrast.runtime import resolve_device

    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    uses_date = "date" in settings.inputs
    days = np.asarray(day_of_year if day_of_year is not None else np.full(lat.shape, np.nan), dtype=np.float64)
    if not lat.shape == lon.shape == labels.shape == days.shape or lat.ndim != 1:
        raise ValueError(
            f"lat, lon, labels and days must be (N,) arrays of one length, got {lat.shape}, {lon.shape}, "
            f"{labels.shape}, {days.shape}"
        )
    if lat.size == 0:
        raise ValueError("no observations to fit a location model on")
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError("lat and lon must be finite (drop rows without coordinates first)")
    if uses_date and not np.isfinite(days).all():
        raise ValueError("a date model needs a finite day_of_year for every record (drop undated rows first)")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]")

    device = resolve_device(settings.device)
    bbox = location_bbox(lat, lon)
    encoding = InputEncoding(settings.inputs, bbox if settings.scaling == "regional" else None)
    background = bbox if settings.background == "bbox" else None
    rng = np.random.default_rng(seed)
    encoded = torch.from_numpy(encoding(lat, lon, days)).to(device)  # (N, D)
    targets = torch.from_numpy(labels).to(device)  # (N,)
    records_per_step = batch_size(settings.batch_size, lat.size)
    variant, pos_weight = settings.loss, float(settings.pos_weight)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # weight init and dropout
        model = LocationModel(n_classes, settings.hidden, settings.n_blocks, float(settings.dropout), encoding).to(
            device
        )
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=float(settings.lr), weight_decay=float(settings.weight_decay)
        )
        model.train()
        for _ in range(settings.epochs):
            order = torch.from_numpy(rng.permutation(lat.size)).to(device)
            for batch in torch.split(order, records_per_step):
                n = batch.numel()
                random_days = rng.uniform(1.0, 1.0 + DAYS_PER_YEAR, n)
                random_encoded = torch.from_numpy(encoding(*random_locations(n, background, rng), random_days))
                logits = model(torch.cat([encoded[batch], random_encoded.to(device)]))  # (2B, C)
                loss = assume_negative_loss(logits[:n], logits[n:], targets[batch], pos_weight, variant)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"location model loss {loss.item()}; lower lr")
    pick = np.random.default_rng(seed).permutation(lat.size)[:MARGINAL_LOCATIONS]
    model.marginal_locations = np.stack([lat[pick], lon[pick]], axis=1)
    return model.eval()


def rows_per_block(model: LocationModel) -> int:
    """Points whose presence over every species fits :data:`PRESENCE_BLOCK_ELEMENTS`."""
    return max(1, PRESENCE_BLOCK_ELEMENTS // model.classes.out_features)


def _presence(model: LocationModel, encoded: np.ndarray) -> np.ndarray:
    import torch

    chunk = rows_per_block(model)
    device = next(model.parameters()).device
    with torch.no_grad():
        parts = [
            torch.sigmoid(model(torch.from_numpy(encoded[start : start + chunk]).to(device))).float().cpu().numpy()
            for start in range(0, encoded.shape[0], chunk)
        ]
    return np.concatenate(parts) if parts else np.zeros((0, model.classes.out_features), np.float32)


def location_probabilities(model: LocationModel, lat, lon, day_of_year=None) -> np.ndarray:
    """(N, C) float32 presence probabilities σ(f(x[, day])), using what each row has.

    A date model averages over the year (:data:`MARGINAL_DAYS`) where the day is missing and over its training
    locations (``model.marginal_locations``) where the coordinates are; a row with none of the model's inputs
    is 1.0 everywhere (no prior).
    """
    model.eval()
    encoding = model.encoding
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    days = np.full(lat.shape, np.nan) if day_of_year is None else np.asarray(day_of_year, np.float64).reshape(-1)
    uses_location, uses_date = "location" in encoding.inputs, "date" in encoding.inputs
    has_location = np.isfinite(lat) & np.isfinite(lon)
    has_day = np.isfinite(days)
    probs = np.ones((lat.size, model.classes.out_features), dtype=np.float32)
    direct = (has_location | (not uses_location)) & (has_day | (not uses_date))
    probs[direct] = _presence(model, encoding(lat[direct], lon[direct], days[direct]))
    if uses_location and uses_date:
        undated = np.flatnonzero(has_location & ~has_day)
        if undated.size:
            n = MARGINAL_DAYS.size
            probs[undated] = _averaged(
                model, np.repeat(lat[undated], n), np.repeat(lon[undated], n), np.tile(MARGINAL_DAYS, undated.size), n
            )
        unplaced, places = np.flatnonzero(~has_location & has_day), model.marginal_locations
        if unplaced.size and len(places):
            n = len(places)
            probs[unplaced] = _averaged(
                model,
                np.tile(places[:, 0], unplaced.size),
                np.tile(places[:, 1], unplaced.size),
                np.repeat(days[unplaced], n),
                n,
            )
    return probs


def _averaged(model: LocationModel, lat, lon, days, n: int) -> np.ndarray:
    """(len(lat) / n, C) presence averaged over each run of ``n`` consecutive points, a block of runs at a time:
    a photo without coordinates averages over 256 places, so all such photos at once were (256 x photos, C)."""
    runs, n_classes = len(lat) // n, model.classes.out_features
    per_block = max(1, rows_per_block(model) // n)
    averaged = np.empty((runs, n_classes), dtype=np.float32)
    for first in range(0, runs, per_block):
        points = slice(first * n, (first + per_block) * n)
        presence = _presence(model, model.encoding(lat[points], lon[points], days[points]))
        averaged[first : first + per_block] = presence.reshape(-1, n, n_classes).mean(axis=1)
    return averaged


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


def range_probabilities(model: LocationModel, lat, lon) -> np.ndarray:
    """(N, C) the prior's range at points: the presence probability, averaged over the year for a date model."""
    return location_probabilities(model, lat, lon)  # no day given: a date model averages over MARGINAL_DAYS
